"""``budgetmem models``: list, prepare and verify the embedded models."""

from __future__ import annotations

import argparse

from budgetmem.cli.common import print_json, settings_from
from budgetmem.tables import table
from budgetmem.errors import ChecksumError
from budgetmem.models import MODELS, get_model, prepare, status, verify


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("models", help="list, prepare or verify the embedded models")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=run_list)
    msub = p.add_subparsers(dest="models_command", metavar="ACTION")
    pl = msub.add_parser("list", help="list the models with size, path and status (default)")
    pl.add_argument("--json", action="store_true", help="machine-readable output")
    pl.set_defaults(run=run_list)
    pp = msub.add_parser("prepare", help="download and assemble models into the cache (once)")
    pp.add_argument("names", nargs="*", metavar="NAME", help="models to prepare (default: all)")
    pp.add_argument("--force", action="store_true", help="rebuild even if ready")
    pp.set_defaults(run=run_prepare)
    pv = msub.add_parser("verify", help="re-hash prepared models against their pinned sha256")
    pv.add_argument("names", nargs="*", metavar="NAME")
    pv.set_defaults(run=run_verify)


def _root(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    return settings_from(args).models_dir


def run_list(args: argparse.Namespace) -> int:
    root = _root(args)
    statuses = [status(spec, root) for spec in MODELS.values()]
    if getattr(args, "json", False):
        print_json(
            [
                {
                    "name": s.spec.name,
                    "kind": s.spec.kind,
                    "ladder": s.spec.ladder,
                    "dim": s.spec.dim,
                    "size_bytes": s.spec.size_bytes,
                    "path": str(s.path),
                    "status": s.state,
                    "description": s.spec.description,
                }
                for s in statuses
            ]
        )
        return 0
    rows = [
        [
            s.spec.name,
            s.spec.kind + (f" ({s.spec.ladder})" if s.spec.ladder else f" ({s.spec.dim}-d)"),
            f"{s.spec.size_bytes / 1e6:,.0f} MB",
            s.state,
            str(s.path),
        ]
        for s in statuses
    ]
    print(table(["model", "kind", "size", "status", "path"], rows, max_width=100))
    return 0


def run_prepare(args: argparse.Namespace) -> int:
    root = _root(args)
    names = args.names or list(MODELS)
    specs = [get_model(n) for n in names]  # validate every name before any work
    for spec in specs:
        path = prepare(spec, root, force=args.force)
        print(f"{spec.name}: ready at {path}")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    root = _root(args)
    names = args.names or [s.name for s in MODELS.values() if status(s, root).state == "ready"]
    bad = [n for n in names if not verify(n, root)]
    for n in names:
        print(f"{n}: {'MISMATCH' if n in bad else 'ok'}")
    if bad:
        raise ChecksumError(f"{', '.join(bad)} no longer match their pinned sha256", hint="run: budgetmem models prepare --force NAME")
    return 0
