"""``budgetmem ingest PATH``: read, chunk, embed and store a history."""

from __future__ import annotations

import argparse
import sys

from budgetmem.store import describe
from budgetmem.cli.common import add_store_args, print_json, settings_from
from budgetmem.tables import table
from budgetmem.errors import ConfigError
from budgetmem.ingest import FORMATS
from budgetmem.encoder import Encoder
from budgetmem.memory import BudgetMem
from budgetmem.models import encoder_models


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("ingest", help="store a conversation or documents in a namespace")
    p.add_argument("path", metavar="PATH", help="LoCoMo / LongMemEval .json, .txt / .md, or a folder of them")
    add_store_args(p)
    p.add_argument("--format", default="auto", choices=FORMATS, help="input format (default: detect)")
    p.add_argument("--encoder", choices=[s.name for s in encoder_models()], help="sentence encoder (default all-mpnet-base-v2)")
    p.add_argument("--chunk-tokens", type=int, metavar="N", help="chunk size in encoder tokens (default 256)")
    add_write_args(p)
    p.set_defaults(run=run)


def add_write_args(p: argparse.ArgumentParser) -> None:
    from budgetmem.settings import WRITE_POLICIES

    g = p.add_argument_group("budgeted writes (store only the most salient chunks)")
    g.add_argument("--write-policy", choices=WRITE_POLICIES, help="how chunks are scored for storage (default: all)")
    g.add_argument("--write-budget", metavar="B", help="keep a share (0.3 or 30%%) or a number of chunks (200)")
    g.add_argument("--write-threshold", type=float, metavar="T", help="streaming: admit chunks scoring above T")
    g.add_argument("--write-model", metavar="FILE", help="the learned policy's model (budgetmem train-writer)")
    g.add_argument("--access-weight", type=float, metavar="W", help="eviction: weight of access counts (default 0.3)")


def write_overrides(args: argparse.Namespace) -> dict[str, object]:
    return {
        "write__policy": args.write_policy, "write__budget": args.write_budget, "write__threshold": args.write_threshold,
        "write__model": args.write_model, "write__access_weight": args.access_weight,
    }  # fmt: skip


def run(args: argparse.Namespace) -> int:
    if args.write_budget is not None and args.write_policy is None:
        raise ConfigError("--write-budget needs --write-policy", hint="e.g. --write-policy salience --write-budget 0.3")
    settings = settings_from(
        args, encoder__name=args.encoder, chunking__max_tokens=args.chunk_tokens, **write_overrides(args)
    )
    from budgetmem.ingest import load_histories

    histories = load_histories(args.path, args.format)  # bad input fails before the store is touched
    # An explicit --encoder must match an existing namespace (the store refuses a mismatch);
    # without it, an existing namespace keeps the encoder it was embedded with.
    encoder = Encoder(settings.encoder, settings.models_dir) if args.encoder else None
    with BudgetMem(args.store, args.namespace, settings=settings, encoder=encoder) as mem:
        report = mem.add_histories(histories, progress=sys.stderr.isatty() and not args.json)
    if args.json:
        print_json(
            {
                "store": describe(args.store),
                "encoder": report.encoder,
                "seconds": round(report.seconds, 3),
                "load_seconds": round(report.load_seconds, 3),
                "chunks_added": report.chunks_added,
                "chunks_per_s": round(report.chunks_per_s, 2),
                "namespaces": [n.__dict__ for n in report.namespaces],
            }
        )
        return 0
    rows = [
        [n.namespace, n.sessions_added, n.sessions_skipped, n.chunks_added, n.tokens_added,
         n.chunks_added if n.chunks_stored < 0 else n.chunks_stored, n.chunks_evicted, n.write_policy]
        for n in report.namespaces
    ]  # fmt: skip
    header = ["namespace", "sessions added", "skipped (already stored)", "chunks", "tokens", "stored", "evicted", "policy"]
    print(table(header, rows))
    print(
        f"\n{report.chunks_added} chunks embedded with {report.encoder} in {report.seconds:.1f} s "
        f"({report.chunks_per_s:.1f} chunks/s; model load {report.load_seconds:.1f} s) into {describe(args.store)}"
    )
    return 0
