"""Plain text and Markdown documents: one document is one session, paragraphs are turns.

Paragraphs keep the blank lines that follow them, so joining the turns of a document
gives back the file's text exactly.
"""

from __future__ import annotations

import re
from pathlib import Path

from budgetmem.ingest.history import History, Session, Turn

__all__ = ["parse_text", "document_session", "TEXT_SUFFIXES"]

TEXT_SUFFIXES = {".txt": "text", ".md": "markdown", ".markdown": "markdown"}


def _paragraphs(text: str) -> list[str]:
    # Split after blank-line runs only: a paragraph keeps its trailing newlines.
    pieces, start = [], 0
    for m in re.finditer(r"\n[ \t]*\n\s*", text):
        pieces.append(text[start : m.end()])
        start = m.end()
    if start < len(text):
        pieces.append(text[start:])
    return [p for p in pieces if p]


def document_session(text: str, session_id: str, date_time: str | None = None) -> Session:
    """One document as one session, a turn per paragraph (no turns if the text is empty)."""
    turns = tuple(Turn(text=p, dia_id=f"{session_id}:p{i}") for i, p in enumerate(_paragraphs(text)))
    return Session(session_id, date_time, turns, "document")


def parse_text(text: str, path: Path, fmt: str) -> History:
    session = document_session(text, path.stem)
    sessions = (session,) if session.turns else ()
    return History(name=path.stem, source=str(path), format=fmt, sessions=sessions)
