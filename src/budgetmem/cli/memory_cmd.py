"""``budgetmem stats`` / ``gc`` / ``restore``: what a namespace stores, and its archive.

A write budget moves rejected and evicted chunks to the store's archive, where they are
out of retrieval but whole. ``restore`` puts them back; ``gc`` deletes them for good.
"""

from __future__ import annotations

import argparse

from budgetmem.cli.common import add_store_option, print_json
from budgetmem.tables import table
from budgetmem.store import NamespaceInfo, Store, open_store


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("stats", help="stored vs seen chunks and tokens, archive, write policy")
    add_store_option(p)
    p.add_argument("--namespace", metavar="NAME", help="one namespace (default: all)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=run_stats)

    g = sub.add_parser("gc", help="delete archived (rejected or evicted) chunks for good")
    add_store_option(g)
    g.add_argument("--namespace", metavar="NAME", help="one namespace (default: all)")
    g.add_argument("--dry-run", action="store_true", help="only say what would be deleted")
    g.add_argument("--vacuum", action="store_true", help="then give the space back to the file system")
    g.set_defaults(run=run_gc)

    r = sub.add_parser("restore", help="put archived chunks back into a namespace's index")
    add_store_option(r)
    r.add_argument("--namespace", required=True, metavar="NAME")
    r.add_argument("--ids", metavar="ID,...", help="only these chunk ids (default: the whole archive)")
    r.set_defaults(run=run_restore)


def stats_dict(info: NamespaceInfo) -> dict[str, object]:
    from budgetmem.memory import namespace_stats

    return namespace_stats(info)


def _infos(store: Store, namespace: str | None) -> list[NamespaceInfo]:
    return [store.require_namespace(namespace)] if namespace else store.namespaces()


def run_stats(args: argparse.Namespace) -> int:
    with open_store(args.store, create=False) as store:
        stats = [stats_dict(i) for i in _infos(store, args.namespace)]
    if args.json:
        print_json(stats if not args.namespace else stats[0])
        return 0
    rows = [
        [s["namespace"], s["write_policy"]["policy"], s["write_budget"] or "-", f"{s['stored_chunks']} / {s['seen_chunks']}",
         f"{s['stored_tokens']:,} / {s['seen_tokens']:,}", f"{s['saved_chunks_pct']}% / {s['saved_tokens_pct']}%",
         s["archived_chunks"]]
        for s in stats
    ]  # fmt: skip
    print(table(["namespace", "policy", "budget", "chunks stored / seen", "tokens stored / seen",
                 "saved (chunks / tokens)", "archived"], rows))  # fmt: skip
    return 0


def run_gc(args: argparse.Namespace) -> int:
    with open_store(args.store, create=False) as store:
        infos = _infos(store, args.namespace)
        n = sum(i.n_archived for i in infos)
        if args.dry_run:
            print(f"would delete {n} archived chunks from {len(infos)} namespace(s); nothing changed")
            return 0
        deleted = store.purge(args.namespace)
        if args.vacuum:
            store.vacuum()
    print(f"deleted {deleted} archived chunks for good" + (" and vacuumed the file" if args.vacuum else ""))
    return 0


def run_restore(args: argparse.Namespace) -> int:
    from budgetmem.errors import InputError

    ids = None
    if args.ids:
        try:
            ids = [int(x) for x in args.ids.split(",") if x.strip()]
        except ValueError:
            raise InputError(f"--ids must be comma-separated chunk ids, got {args.ids!r}") from None
    with open_store(args.store, create=False) as store:
        store.require_namespace(args.namespace)
        n = store.restore(args.namespace, ids)
    print(f"restored {n} chunks into {args.namespace}")
    return 0
