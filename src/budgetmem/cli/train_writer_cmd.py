"""``budgetmem train-writer``: fit the learned write policy on a dataset's evidence labels."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from budgetmem.cli.common import print_json, settings_from
from budgetmem.tables import table


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from budgetmem.eval.datasets import DATASETS

    p = sub.add_parser("train-writer", help="train the learned write policy on answer-evidence labels")
    p.add_argument("--dataset", required=True, choices=sorted(DATASETS))
    p.add_argument("--data", required=True, metavar="PATH", help="the dataset file (LoCoMo evidence, LongMemEval has_answer)")
    p.add_argument("--out", required=True, metavar="FILE", help="model file to write, e.g. writer.pt")
    p.add_argument("--seed", type=int, default=0, help="seed of the split")
    p.add_argument("--split-file", metavar="FILE", help='JSON {"train": [...], "val": [...], "test": [...]}')
    p.add_argument("--encoder", metavar="NAME", help="sentence encoder (novelty feature; default all-mpnet-base-v2)")
    p.add_argument("--chunk-tokens", type=int, metavar="N", help="chunk size (default per dataset)")
    p.add_argument("--epochs", type=int, help="training passes (default 300)")
    p.add_argument("--margin", type=float, help="ranking-loss margin gamma (default 0.1)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from budgetmem.encoder import Encoder
    from budgetmem.eval.datasets import DEFAULTS, load_eval_set
    from budgetmem.eval.splits import make_split
    from budgetmem.write.learned import WriterTrainSettings
    from budgetmem.training.writer import fit_writer

    settings = settings_from(args, encoder__name=args.encoder)
    chunk_tokens = args.chunk_tokens or DEFAULTS[args.dataset][1]
    data = load_eval_set(args.dataset, Path(args.data))
    split_file = Path(args.split_file) if args.split_file else None
    parts = {part: make_split(data, part, seed=args.seed, split_file=split_file).items for part in ("train", "val")}
    train = WriterTrainSettings()
    train = dataclasses.replace(train, **{k: v for k, v in {"epochs": args.epochs, "margin": args.margin}.items() if v})
    encoder = Encoder(settings.encoder, settings.models_dir)
    say = (lambda m: print(m, file=sys.stderr, flush=True)) if not args.json else (lambda _m: None)
    fit = fit_writer(data, parts, encoder, chunk_tokens, Path(args.out), weights=settings.write.weights, train=train, log=say)
    info = {"model": str(fit.path), "auc": fit.auc, "weights": fit.model.weights.tolist(), "bias": fit.model.bias,
            "final_loss": fit.model.meta["final"]}  # fmt: skip
    if args.json:
        print_json(info)
        return 0
    rows = [[part, int(a["chunks"]), int(a["evidence"]), f"{a['learned']:.3f}", f"{a['salience']:.3f}"] for part, a in fit.auc.items()]
    print(table(["split", "chunks", "evidence chunks", "AUC learned", "AUC hand-weighted"], rows))
    print(f"\nmodel: {fit.path} (use --write-policy learned --write-model {fit.path})")
    return 0
