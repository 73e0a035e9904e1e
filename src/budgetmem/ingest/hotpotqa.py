"""HotpotQA long-context records in the MemAgent format (routing paper §5.1, App. A.1).

A file is a JSON list of records: ``input`` (the question), ``context`` (evidence and
distractor passages concatenated, each opened by a ``Document N:`` line) and ``answers``
(a list of gold strings). Each record carries its own context, so each becomes one History
named by its ``_id`` / ``id`` / ``index`` (else its position); each passage becomes one
document session, chunked at 1,024 tokens by default (paper Table 4).
"""

from __future__ import annotations

import re
from typing import Any

from budgetmem.errors import InputError
from budgetmem.ingest.history import History, Session, Turn

__all__ = ["looks_like_hotpotqa", "parse_hotpotqa", "split_documents", "record_name"]

_DOC = re.compile(r"^[ \t]*Document[ \t]+(\d+)[ \t]*:[ \t]*", re.MULTILINE)


def looks_like_hotpotqa(data: Any) -> bool:
    return (
        isinstance(data, list) and bool(data) and isinstance(data[0], dict) and "context" in data[0] and "input" in data[0]
    )


def record_name(rec: dict[str, Any], position: int) -> str:
    for key in ("_id", "id", "index"):
        if key in rec and rec[key] is not None:
            return str(rec[key])
    return f"hotpotqa-{position}"


def split_documents(context: str) -> list[tuple[str, str]]:
    """``(number, text)`` per ``Document N:`` passage, in order. Text before the first
    marker (rare) is kept as document 0; a context with no marker is one document."""
    marks = list(_DOC.finditer(context))
    docs: list[tuple[str, str]] = []
    head = context[: marks[0].start()] if marks else context
    if head.strip():
        docs.append(("0", head.strip()))
    for m, nxt in zip(marks, [*marks[1:], None]):
        text = context[m.end() : nxt.start() if nxt else len(context)].strip()
        if text:
            docs.append((m.group(1), text))
    return docs


def parse_hotpotqa(data: Any, source: str) -> list[History]:
    if not isinstance(data, list):
        raise InputError(f"{source}: a HotpotQA (MemAgent) file is a JSON list of records")
    histories = []
    for i, rec in enumerate(data):
        if not isinstance(rec, dict) or not isinstance(rec.get("context"), str):
            raise InputError(f"{source}: record {i} has no 'context' string")
        name = record_name(rec, i)
        sessions = tuple(
            Session(f"doc_{n}", None, (Turn(text=text, dia_id=f"doc_{n}"),), "document")
            for n, text in split_documents(rec["context"])
        )
        histories.append(History(name=name, source=source, format="hotpotqa", sessions=sessions))
    return histories
