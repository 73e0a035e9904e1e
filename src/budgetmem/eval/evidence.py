"""LoCoMo evidence ids: normalisation, chunk labels and recall.

LoCoMo's ``evidence`` lists hold dialogue ids like ``D8:6``. A few are malformed in the
public file: several ids in one string (``'D8:6; D9:17'``), an extra colon (``'D:11:26'``),
stray spaces, a bare ``'D'``, or an id of a turn that does not exist (``'D10:19'`` in a
session of 16 turns). We split on ``;``/``,``/whitespace, parse ``D<session>:<turn>``
leniently, and keep an id only if it names a real turn of the conversation.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from budgetmem.chunk import Chunk
from budgetmem.ingest.history import History

__all__ = ["normalise_evidence", "recall", "turn_ids", "evidence_labels"]

_ID = re.compile(r"^D:?(\d+):(\d+)$")
_SPLIT = re.compile(r"[;,\s]+")


def normalise_evidence(raw: Iterable[str], turns: set[str]) -> tuple[list[str], list[str], list[str]]:
    """(matched ids, repaired raw strings, unmatched pieces) of one question's evidence list."""
    matched: list[str] = []
    repaired: list[str] = []
    unmatched: list[str] = []
    for item in raw:
        item = str(item)
        if item in turns:
            if item not in matched:
                matched.append(item)
            continue
        fixed = False
        for p in (p for p in _SPLIT.split(item.strip()) if p):
            m = _ID.match(p)
            norm = f"D{int(m.group(1))}:{int(m.group(2))}" if m else p
            if norm in turns:
                fixed = True
                if norm not in matched:
                    matched.append(norm)
            else:
                unmatched.append(repr(item) if norm == item else f"{item!r} (read as {norm!r})")
        if fixed:
            repaired.append(repr(item))
    return matched, repaired, unmatched


def recall(evidence: Iterable[str], retrieved_dia_ids: Iterable[str]) -> float:
    """Fraction of the evidence ids found among the retrieved chunks' dia_ids."""
    ev = set(evidence)
    return len(ev & set(retrieved_dia_ids)) / len(ev) if ev else 0.0


def turn_ids(history: History) -> set[str]:
    return {t.dia_id for s in history.sessions for t in s.turns if t.dia_id}


def evidence_labels(chunks: Sequence[Chunk], evidence: Iterable[str]) -> list[int]:
    """1 for a chunk that holds any evidence turn (LoCoMo ids, or LongMemEval's
    ``has_answer`` turns recorded in the chunk's meta), else 0."""
    ev = set(evidence)
    return [
        int(bool(ev.intersection(c.dia_ids)) or bool(c.meta.get("has_answer_dia_ids")))
        for c in chunks
    ]
