"""LoCoMo evidence ids: normalisation and recall of retrieved chunks.

LoCoMo's ``evidence`` lists hold dialogue ids like ``D8:6``. A few are malformed in the
public file: several ids in one string (``'D8:6; D9:17'``), an extra colon (``'D:11:26'``),
stray spaces, a bare ``'D'``, or an id of a turn that does not exist (``'D10:19'`` in a
session of 16 turns). We split on ``;``/``,``/whitespace, parse ``D<session>:<turn>``
leniently, and keep an id only if it names a real turn of the conversation; the rest are
counted as unmatched and left out of the recall denominator (no chunk can contain them).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CATEGORIES", "Question", "EvidenceStats", "normalise_evidence", "load_questions", "recall"]

CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}

_ID = re.compile(r"^D:?(\d+):(\d+)$")
_SPLIT = re.compile(r"[;,\s]+")


@dataclass(frozen=True)
class Question:
    sample_id: str
    category: int
    question: str
    evidence: tuple[str, ...]
    """Normalised evidence ids that name a real turn (never empty for a scored question)."""


@dataclass
class EvidenceStats:
    questions_cat_1_4: int = 0
    no_evidence: int = 0
    """Questions (categories 1-4) whose evidence list is empty: not scored."""
    ids_raw: int = 0
    ids_repaired: list[str] = field(default_factory=list)
    """Raw strings that matched turns only after normalising (split, colon or spaces fixed)."""
    ids_unmatched: list[str] = field(default_factory=list)
    """Ids (after normalising) that name no turn of their conversation: dropped."""
    questions_all_unmatched: int = 0
    """Questions left with no matchable evidence at all: not scored."""


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


def load_questions(samples: list[dict[str, Any]], turns_by_sample: dict[str, set[str]]) -> tuple[list[Question], EvidenceStats]:
    """Scored questions (categories 1-4 with matchable evidence) of raw LoCoMo samples."""
    stats = EvidenceStats()
    out: list[Question] = []
    for s in samples:
        sid = str(s["sample_id"])
        turns = turns_by_sample[sid]
        for qa in s.get("qa", []):
            cat = qa.get("category")
            if cat not in CATEGORIES:
                continue
            stats.questions_cat_1_4 += 1
            raw = [str(e) for e in qa.get("evidence") or [] if str(e).strip()]
            if not raw:
                stats.no_evidence += 1
                continue
            stats.ids_raw += len(raw)
            matched, repaired, unmatched = normalise_evidence(raw, turns)
            stats.ids_repaired.extend(f"{sid}: {r}" for r in repaired)
            stats.ids_unmatched.extend(f"{sid}: {u}" for u in unmatched)
            if not matched:
                stats.questions_all_unmatched += 1
                continue
            out.append(Question(sid, int(cat), str(qa["question"]), tuple(matched)))
    return out, stats


def recall(evidence: Iterable[str], retrieved_dia_ids: Iterable[str]) -> float:
    """Fraction of the evidence ids found among the retrieved chunks' dia_ids."""
    ev = set(evidence)
    return len(ev & set(retrieved_dia_ids)) / len(ev) if ev else 0.0
