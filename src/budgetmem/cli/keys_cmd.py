"""``budgetmem keys create / list / revoke``: API keys of the memory service.

Keys live in the store file, hashed (see :mod:`budgetmem.store.keys`): ``create`` prints a
key once and it cannot be shown again; ``list`` shows ids and prefixes, never keys.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone

from budgetmem.cli.common import add_store_option, print_json
from budgetmem.tables import table
from budgetmem.store import open_store
from budgetmem.store.keys import SCOPES, KeyStore


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "keys", help="API keys of the memory service (budgetmem serve)",
        description="A key opens one namespace and the namespaces below it, with scopes: read (search, list, "
        "stats), query (the answer pipeline: it costs money), write (add, delete, forget), metrics (/metrics).",
    )  # fmt: skip
    keys = p.add_subparsers(dest="keys_command", metavar="ACTION", required=True)

    c = keys.add_parser("create", help="make a key; it is printed once")
    add_store_option(c)
    c.add_argument("--namespace", required=True, metavar="NAME", help="the namespace (and its children) it opens")
    c.add_argument("--scope", default="read,query", metavar="S,...", help=f"of {','.join(SCOPES)} (default read,query)")
    c.add_argument("--name", metavar="LABEL", help="a note for keys list, e.g. who holds it")
    c.add_argument("--json", action="store_true", help='print {"key": ..., "id": ..., ...}')
    c.set_defaults(run=run_create)

    ls = keys.add_parser("list", help="ids, namespaces, scopes, last use (never the keys)")
    add_store_option(ls)
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(run=run_list)

    r = keys.add_parser("revoke", help="revoke a key by id; requests with it get 401 at once")
    r.add_argument("key_id", metavar="ID", help="as keys list shows it (or its bm_ID prefix)")
    add_store_option(r)
    r.add_argument("--json", action="store_true")
    r.set_defaults(run=run_revoke)


def _when(t: float | None) -> str:
    return "-" if t is None else datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M")


def run_create(args: argparse.Namespace) -> int:
    with open_store(args.store) as store:
        token, info = KeyStore(store).create(args.namespace, args.scope, name=args.name)
    if args.json:
        print_json({"key": token, **info.to_dict()})
        return 0
    print(token)
    print(
        f"key {info.id} for {info.namespace} (and below), scopes {','.join(sorted(info.scopes))}: "
        "shown once, store it now",
        file=sys.stderr,
    )
    return 0


def run_list(args: argparse.Namespace) -> int:
    with open_store(args.store, create=False) as store:
        infos = KeyStore(store).list()
    if args.json:
        print_json([i.to_dict() for i in infos])
        return 0
    rows = [
        [i.id, i.prefix + "_…", i.namespace, ",".join(sorted(i.scopes)), i.name or "-", _when(i.created_at),
         _when(i.last_used), "revoked" if i.revoked_at else "active"]
        for i in infos
    ]  # fmt: skip
    print(table(["id", "prefix", "namespace", "scopes", "name", "created", "last used", "state"], rows))
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    with open_store(args.store, create=False) as store:
        info = KeyStore(store).revoke(args.key_id)
    if args.json:
        print_json(info.to_dict())
    else:
        print(f"revoked key {info.id} ({info.namespace})")
    return 0
