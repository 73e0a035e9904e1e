"""``budgetmem delete`` / ``forget``: remove memories for good.

Both call :meth:`BudgetMem.delete`, :meth:`~BudgetMem.forget_session` or
:meth:`~BudgetMem.forget`: the chunks leave the store (index, archive, session counts), the
module-cache entries computed from them go too, and both files are wiped so the text cannot
be read back. Unlike ``gc`` there is no archive to restore from afterwards.
"""

from __future__ import annotations

import argparse
import sys

from budgetmem.cli.common import add_store_args, print_json, settings_from
from budgetmem.errors import InputError
from budgetmem.memory import BudgetMem, ForgetReport
from budgetmem.store import Store, open_store

_AFTER = (
    "What is forgotten leaves the index, the archive and the session counts; module-cache "
    "entries computed from it are dropped; the store and cache files are then rebuilt and their WALs "
    "emptied, so the text cannot be read back. There is no undo. An id or session that is not "
    "in --namespace is an error (exit status 2)."
)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    d = sub.add_parser("delete", help="forget one chunk for good", description="Forget one chunk for good. " + _AFTER)
    d.add_argument("chunk_id", type=int, metavar="CHUNK_ID", help="as shown by search --json (chunk_id)")
    add_store_args(d)
    d.set_defaults(run=run_delete)

    f = sub.add_parser(
        "forget",
        help="forget a session, or a whole namespace, for good",
        description="Forget every chunk of one session (--session), or the whole namespace. " + _AFTER
        + " Forgetting a whole namespace asks for confirmation on a terminal; elsewhere (scripts, "
        "pipes) it needs --yes.",
    )  # fmt: skip
    add_store_args(f)
    f.add_argument("--session", metavar="ID", help="only this session id (default: the whole namespace)")
    f.add_argument("-y", "--yes", action="store_true", help="forget a whole namespace without asking")
    f.set_defaults(run=run_forget)


def _open(args: argparse.Namespace) -> tuple[Store, BudgetMem]:
    store = open_store(args.store, create=False)
    return store, BudgetMem(store, args.namespace, settings=settings_from(args))


def _report(report: ForgetReport, what: str, as_json: bool, backend: str = "sqlite") -> int:
    if as_json:
        print_json(report.to_dict())
        return 0
    print(
        f"forgot {what} in {report.namespace}: {report.chunks} chunks, {report.archived} archived, "
        f"{report.sessions} session rows, {report.cache_entries} module-cache entries"
    )
    if backend == "postgresql":
        print(
            "note: PostgreSQL vacuums the deleted rows but does not overwrite them; WAL archives, "
            "backups and replicas keep their own copies",
            file=sys.stderr,
        )
    elif not report.wiped:
        print(
            "note: another reader holds an older snapshot, so a WAL still has the old pages; "
            "they go at the next forget or when the last reader closes",
            file=sys.stderr,
        )
    return 0


def run_delete(args: argparse.Namespace) -> int:
    store, mem = _open(args)
    with store, mem:
        report = mem.delete(args.chunk_id)
    return _report(report, f"chunk {args.chunk_id}", args.json, store.backend)


def _confirm(namespace: str, store: Store) -> None:
    """A whole namespace goes only with --yes, or a 'y' typed at a terminal."""
    info = store.require_namespace(namespace)
    if not sys.stdin.isatty():
        raise InputError(f"forgetting all of namespace {namespace!r} needs confirmation", hint="add --yes")
    answer = input(f"forget all of {namespace!r} ({info.n_chunks} chunks, {info.n_archived} archived) for good? [y/N] ")
    if answer.strip().lower() not in ("y", "yes"):
        raise InputError("nothing forgotten", hint="answer y, or pass --yes")


def run_forget(args: argparse.Namespace) -> int:
    store, mem = _open(args)
    with store, mem:
        if args.session is not None:
            return _report(mem.forget_session(args.session), f"session {args.session}", args.json, store.backend)
        if not args.yes:
            _confirm(args.namespace, store)
        return _report(mem.forget(), "the whole namespace", args.json, store.backend)
