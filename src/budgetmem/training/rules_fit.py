"""Fitting the training-free routing baselines on the train split: the rule router's
question-type prototypes and tier map, and escalation's confidence calibration.

* Prototypes: the mean sentence embedding of each LoCoMo category's training questions
  (single-hop, multi-hop, temporal, open-domain). ``other`` has none: only the rules send a
  question there.
* Tier map, a small search: a handful of candidate maps (fixed policies such as ``mid`` or
  ``mid,summary=high``) are each evaluated on the same training questions (ordinary,
  resumable evaluation runs that share the module cache); for every question type the
  candidate with the best ``F1 - penalty * extraction cost`` over that type's questions
  (typed by the classifier itself, as at serving time) is its row. A type with too few
  questions takes the best candidate over all questions.
* Calibration: the cheap policy's features on each training question (an
  ``escalate:CHEAP>COSTLY@0`` run records them without escalating) against the label
  "the costly policy's F1 is no better", fitted by logistic regression.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from budgetmem.errors import ConfigError
from budgetmem.eval.datasets import EvalItem
from budgetmem.pipeline.policy import FixedPolicy, parse_policy
from budgetmem.pipeline.stages import MODULES
from budgetmem.router.escalate import FEATURES, Calibration, fit_calibration
from budgetmem.router.rules import QUESTION_TYPES

__all__ = ["question_prototypes", "fit_offsets", "choose_tier_map", "calibration_from_rows"]

# LoCoMo's categories are the question types the rule router knows (adversarial ones are
# not scored, so they are not a type).
_LOCOMO_TYPES = {"single-hop", "multi-hop", "temporal", "open-domain"}


def question_prototypes(
    items: Sequence[EvalItem], encode: Callable[[list[str]], np.ndarray], types: Sequence[str] = tuple(_LOCOMO_TYPES)
) -> dict[str, list[float]]:
    """Type -> the unit-normalised mean embedding of that type's questions (for ``types``)."""
    by_type: dict[str, list[str]] = {}
    for it in items:
        if it.category in _LOCOMO_TYPES and it.category in types:
            by_type.setdefault(it.category, []).append(it.question)
    if not by_type:
        raise ConfigError("no typed questions to make prototypes from (LoCoMo categories are needed)")
    out = {}
    for kind in QUESTION_TYPES:
        if kind in by_type:
            vecs = np.asarray(encode(by_type[kind]), dtype=np.float64)
            vecs /= np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
            mean = vecs.mean(axis=0)
            out[kind] = [float(x) for x in mean / max(float(np.linalg.norm(mean)), 1e-12)]
    return out


def fit_offsets(
    items: Sequence[EvalItem], encode: Callable[[list[str]], np.ndarray], prototypes: Mapping[str, Sequence[float]],
    *, undecided: Callable[[str], bool],
) -> dict[str, float]:
    """An offset for the first prototype type against the second, chosen on ``items`` (the
    train questions the rules leave open) to maximise accuracy: a 1-D search over
    [-0.2, 0.2] in steps of 0.005. Needs exactly two prototypes."""
    names = list(prototypes)
    if len(names) != 2:
        raise ConfigError("offsets are fitted between exactly two prototypes")
    open_items = [i for i in items if undecided(i.question) and i.category in names]
    if not open_items:
        return {}
    E = np.asarray(encode([i.question for i in open_items]), dtype=np.float64)
    E /= np.maximum(np.linalg.norm(E, axis=1, keepdims=True), 1e-12)
    P = np.array([np.asarray(prototypes[n], dtype=np.float64) for n in names])
    diff = E @ P[0] - E @ P[1]
    truth = np.array([i.category == names[0] for i in open_items])
    grid = np.round(np.arange(-0.2, 0.2001, 0.005), 4)
    # offset o on the first type: it wins when diff + o > 0; ties go to the smallest |o|.
    best = max(grid, key=lambda o: (float(np.mean((diff + o > 0) == truth)), -abs(o)))
    return {names[0]: float(best)}


def _tiers_of(spec: str) -> dict[str, str]:
    policy = parse_policy(spec)
    if not isinstance(policy, FixedPolicy):
        raise ConfigError(f"candidate map {spec!r} is not a fixed per-module map")
    return {m: policy.tiers[m].name for m in MODULES}


def choose_tier_map(
    runs: Mapping[str, Sequence[Mapping[str, Any]]],
    classify: Callable[[str], str],
    *,
    penalty_per_usd: float = 0.0,
    min_questions: int = 3,
) -> tuple[dict[str, dict[str, str]], dict[str, Any]]:
    """``runs``: candidate map (a fixed policy such as ``mid,summary=high``) -> its result
    rows on the same training questions. Returns (type -> module -> tier, the search's
    record: per type, each candidate's n, F1 and cost, and the choice).

    Score = mean F1 - ``penalty_per_usd`` x mean extraction USD; ties go to the cheaper map."""
    if not runs:
        raise ConfigError("no candidate maps to choose from")
    ids = set.intersection(*({r["id"] for r in rows} for rows in runs.values()))
    if not ids:
        raise ConfigError("the candidate runs share no question")
    rows_by = {c: {r["id"]: r for r in rows if r["id"] in ids} for c, rows in runs.items()}
    first = next(iter(rows_by.values()))
    kinds = {i: classify(str(first[i]["question"])) for i in ids}

    def stats(cand: str, subset: set[str]) -> dict[str, float]:
        rs = [rows_by[cand][i] for i in sorted(subset)]  # a fixed order: the same file from the same runs
        f1 = float(np.mean([r["metrics"]["f1"] for r in rs]))
        usd = float(np.mean([r["cost"]["extraction_usd"] for r in rs]))
        return {"n": len(rs), "f1": f1, "extraction_usd": usd, "score": f1 - penalty_per_usd * usd}

    def best(subset: set[str]) -> tuple[str, dict[str, dict[str, float]]]:
        table = {c: stats(c, subset) for c in runs}
        pick = max(table, key=lambda c: (round(table[c]["score"], 9), -table[c]["extraction_usd"]))
        return pick, table

    overall, overall_table = best(ids)
    tiers: dict[str, dict[str, str]] = {}
    record: dict[str, Any] = {"penalty_per_usd": penalty_per_usd, "questions": len(ids), "types": {},
                              "overall": {"choice": overall, "candidates": overall_table}}  # fmt: skip
    for kind in QUESTION_TYPES:
        subset = {i for i in ids if kinds[i] == kind}
        if len(subset) >= min_questions:
            pick, table = best(subset)
            record["types"][kind] = {"choice": pick, "candidates": table}
        else:
            pick = overall
            record["types"][kind] = {"choice": pick, "candidates": {}, "note": f"{len(subset)} questions: overall best"}
        tiers[kind] = _tiers_of(pick)
    return tiers, record


def calibration_from_rows(
    cheap_rows: Sequence[Mapping[str, Any]], costly_rows: Sequence[Mapping[str, Any]], *, l2: float = 1.0
) -> Calibration:
    """Fit escalation's confidence on paired rows: the cheap policy's (from an
    ``escalate:...@0`` run, whose trace records the features) and the costly policy's."""
    costly = {r["id"]: r for r in costly_rows}
    feats, labels = [], []
    for r in cheap_rows:
        note = (r.get("trace") or {}).get("context", {}).get("escalation") or {}
        if r["id"] not in costly or not note.get("features"):
            continue
        feats.append({k: float(note["features"][k]) for k in FEATURES})
        labels.append(int(r["metrics"]["f1"] >= costly[r["id"]]["metrics"]["f1"]))
    if len(feats) < 4 or len(set(labels)) < 2:
        raise ConfigError(f"calibration needs at least 4 paired questions with both outcomes, got {len(feats)}")
    bias, weights = fit_calibration(feats, labels, l2=l2)
    cal = Calibration(bias, weights)
    acc = float(np.mean([(cal.confidence(f) >= 0.5) == bool(y) for f, y in zip(feats, labels)]))
    return Calibration(bias, weights, {"questions": len(feats), "share_not_improved": float(np.mean(labels)),
                                       "train_accuracy": acc, "l2": l2})  # fmt: skip
