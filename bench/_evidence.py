"""The benchmarks' scored LoCoMo questions: those with evidence that names real turns.

Normalising the ids is the library's (:mod:`budgetmem.eval.evidence`); ids that name no
turn are counted as unmatched and left out of the recall denominator (no chunk can
contain them).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from budgetmem.eval.evidence import normalise_evidence, recall

__all__ = ["CATEGORIES", "Question", "EvidenceStats", "normalise_evidence", "load_questions", "recall"]

CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}


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


