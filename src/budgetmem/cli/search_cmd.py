"""``budgetmem search "query"``: the top-k chunks of a namespace."""

from __future__ import annotations

import argparse
import textwrap

from budgetmem.cli.common import add_store_option, add_store_args, print_json, settings_from
from budgetmem.tables import table
from budgetmem.memory import BudgetMem
from budgetmem.retrieval import RETRIEVERS
from budgetmem.store import open_store


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("search", help="retrieve the chunks that best match a query")
    p.add_argument("query", metavar="QUERY")
    add_store_args(p)
    p.add_argument("-k", "--top-k", type=int, default=None, metavar="K", help="how many chunks (default 5)")
    p.add_argument("--retriever", choices=RETRIEVERS, help="dense, bm25 or hybrid (default hybrid)")
    p.add_argument("--fusion", choices=["rrf", "weighted"], help="how hybrid merges rankings (default rrf)")
    p.set_defaults(run=run)

    n = sub.add_parser("namespaces", help="list the namespaces of a store")
    add_store_option(n)
    n.add_argument("--json", action="store_true")
    n.set_defaults(run=run_namespaces)


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args, retrieval__fusion=args.fusion)
    store = open_store(args.store, create=False)  # searching never creates a store
    store.require_namespace(args.namespace)
    with store, BudgetMem(store, args.namespace, settings=settings) as mem:
        hits = mem.search(args.query, k=args.top_k, retriever=args.retriever)
    if args.json:
        print_json({"query": args.query, "namespace": args.namespace, "hits": [h.to_dict() for h in hits]})
        return 0
    if not hits:
        print("no matching chunks")
        return 0
    for h in hits:
        c = h.chunk
        parts = ", ".join(f"{name} {value:.4f}" for name, value in h.components.items())
        print(f"#{h.rank}  score {h.score:.4f} ({h.retriever}{': ' + parts if parts and h.retriever == 'hybrid' else ''})")
        print(f"    {c.session_id}  {c.session_date or ''}  {_ids(c.dia_ids)}  chunk {c.id}, {c.n_tokens} tokens")
        for line in c.text.rstrip().splitlines():
            print(textwrap.fill(line, width=100, initial_indent="    | ", subsequent_indent="    |   ") or "    |")
        print()
    return 0


def _ids(ids: tuple[str, ...]) -> str:
    return ids[0] if len(ids) == 1 else f"{ids[0]}..{ids[-1]}" if ids else ""


def run_namespaces(args: argparse.Namespace) -> int:
    with open_store(args.store, create=False) as store:
        infos = store.namespaces()
    if args.json:
        print_json([i.__dict__ for i in infos])
        return 0
    rows = [[i.name, i.encoder, i.dim, i.chunk_tokens, i.n_sessions, i.n_chunks, i.n_tokens] for i in infos]
    print(table(["namespace", "encoder", "dim", "chunk tokens", "sessions", "chunks", "tokens"], rows))
    return 0
