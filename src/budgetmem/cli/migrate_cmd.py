"""``budgetmem migrate --from memory.db --to postgresql://...``: copy a store into PostgreSQL.

Namespaces (with their archive), API keys and the module cache are copied, each part
checked by counts and checksum against the source; running it again resumes (see
:mod:`budgetmem.store.migrate`). The source is only read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from budgetmem.cli.common import print_json, settings_from


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("migrate", help="copy a store (namespaces, archive, keys, module cache) into PostgreSQL")
    p.add_argument("--from", dest="source", required=True, metavar="STORE", help="the store to copy (a SQLite file)")
    p.add_argument("--to", dest="target", required=True, metavar="URL", help="postgresql://user@host:port/db")
    p.add_argument("--cache", metavar="FILE", help="module cache file to copy (default: the settings' cache, if it exists)")
    p.add_argument("--no-cache", action="store_true", help="do not copy the module cache")
    p.add_argument("--json", action="store_true", help="machine-readable report")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from budgetmem.errors import InputError
    from budgetmem.pipeline.cache import ModuleCache
    from budgetmem.store import is_postgres
    from budgetmem.store.migrate import migrate

    if not is_postgres(args.source) and not Path(args.source).is_file():
        raise InputError(f"source store not found: {args.source}", hint="--from names an existing store file")
    cache = None
    if not args.no_cache:
        path = Path(args.cache).expanduser() if args.cache else settings_from(args).pipeline.cache_path
        if args.cache and not path.is_file():
            raise InputError(f"module cache not found: {path}")
        if path is not None and Path(path).expanduser().is_file():
            cache = ModuleCache(path)
    try:
        report = migrate(args.source, args.target, cache=cache, log=lambda m: print(m, file=sys.stderr))
    finally:
        if cache is not None:
            cache.close()
    if args.json:
        print_json(report.to_dict())
    else:
        print(f"migrated {report.source} -> {report.target}: {len(report.copied)} parts copied, "
              f"{len(report.skipped)} already there; counts and checksums match")  # fmt: skip
    return 0
