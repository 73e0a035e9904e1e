"""``budgetmem train``: train a budget-tier router with PPO; re-run the command to resume."""

from __future__ import annotations

import argparse
from pathlib import Path

from budgetmem.cli.common import add_pipeline_args, pipeline_settings, print_json
from budgetmem.pipeline.types import STRATEGIES


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from budgetmem.eval.datasets import DATASETS

    p = sub.add_parser("train", help="train a learned router (PPO, cost-aware reward) on a dataset's train split")
    p.add_argument("--dataset", required=True, choices=sorted(DATASETS))
    p.add_argument("--data", required=True, metavar="PATH", help="the dataset file")
    p.add_argument("--out", required=True, metavar="DIR", help="run directory (re-run the command to resume)")
    p.add_argument("--strategy", default="implementation", choices=STRATEGIES)
    p.add_argument("--cost-weight", type=float, default=0.0, metavar="L", help="lambda of the reward (default 0)")
    p.add_argument("--steps", type=int, help="PPO updates (default 600)")
    p.add_argument("--batch-size", type=int, help="episodes per update (default 32)")
    p.add_argument("--eval-every", type=int, default=10, metavar="N", help="validate every N steps (default 10)")
    p.add_argument("--train-questions", type=int, metavar="N", help="only the first N training questions")
    p.add_argument("--val-questions", type=int, metavar="N", help="only the first N validation questions")
    p.add_argument("--no-align", action="store_true", help="turn reward-scale alignment (Eq. 10) off: the ablation")
    p.add_argument("--seed", type=int, default=0, help="seed of the split, batches and tier sampling")
    p.add_argument("--split-file", metavar="FILE", help='JSON {"train": [...], "val": [...], "test": [...]}')
    p.add_argument("--store", metavar="FILE", help="store file to share with eval runs (default DIR/store.db)")
    p.add_argument("--chunk-tokens", type=int, metavar="N", help="chunk size (default per dataset)")
    p.add_argument("--encoder", metavar="NAME", help="sentence encoder: retrieval, MID tiers and the router's state")
    add_pipeline_args(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from budgetmem.eval.run import dataset_settings
    from budgetmem.router.ppo import PPOSettings
    from budgetmem.router.train import TrainConfig, train_router

    settings = pipeline_settings(args, encoder__name=args.encoder)
    settings = dataset_settings(settings, args.dataset, style=args.style, chunk_tokens=args.chunk_tokens)
    ppo = PPOSettings().with_budget(args.steps, args.batch_size)
    cfg = TrainConfig(
        dataset=args.dataset, data=Path(args.data), out=Path(args.out), strategy=args.strategy,
        cost_weight=args.cost_weight, ppo=ppo, align=not args.no_align, seed=args.seed,
        split_file=Path(args.split_file) if args.split_file else None, train_questions=args.train_questions,
        val_questions=args.val_questions, eval_every=args.eval_every, store=Path(args.store) if args.store else None,
    )  # fmt: skip
    result = train_router(cfg, settings, progress=not args.no_progress)
    info = {"out": str(result.out), "steps": result.steps, "best_step": result.best_step, "best_validation": result.best_val,
            "seconds": round(result.seconds, 1), "cache_hit_rate": round(result.cache_hit_rate, 4),
            "router": str(result.out / "best.pt")}  # fmt: skip
    if args.json:
        print_json(info)
        return 0
    print(f"trained {result.steps} steps in {result.seconds / 60:.1f} min; best validation objective "
          f"{result.best_val:.4f} at step {result.best_step}; module-cache hit rate {100 * result.cache_hit_rate:.1f}%")  # fmt: skip
    print(f"router: {result.out / 'best.pt'} (use --policy router:{result.out / 'best.pt'}); log: {result.out / 'log.csv'}")
    return 0
