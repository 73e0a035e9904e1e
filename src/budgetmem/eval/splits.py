"""Train / validation / test splits, and the record of which was used.

- LoCoMo is split by conversation: no history is shared between parts, so a router never
  sees the test conversations' chunks in training.
- Other datasets are split by question, seeded, 6/2/2 (routing paper §5.1). LongMemEval and
  HotpotQA questions each bring their own history, so that is also a split by history.
- A split file (JSON ``{"train": [...], "val": [...], "test": [...]}`` of question ids or
  history names) overrides both.
- ``all`` takes every question: a file kept entirely for testing.

Every result written by the evaluator carries the :class:`Split` it came from.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from budgetmem.errors import InputError
from budgetmem.eval.datasets import EvalItem, EvalSet
from budgetmem.userfiles import decode_json, read_user_text

__all__ = ["PARTS", "Split", "make_split"]

PARTS = ("train", "val", "test", "all")


@dataclass(frozen=True)
class Split:
    part: str
    method: str
    """How the parts were drawn, in words (unit, ratios, seed, or the split file)."""
    groups: tuple[str, ...]
    """The histories (LoCoMo) or question ids in this part, sorted."""
    items: tuple[EvalItem, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"part": self.part, "method": self.method, "groups": list(self.groups), "questions": len(self.items)}


def _cut(groups: list[str], seed: int, ratios: tuple[float, float, float]) -> dict[str, list[str]]:
    order = sorted(groups)
    random.Random(seed).shuffle(order)
    n = len(order)
    a = round(ratios[0] * n)
    b = round((ratios[0] + ratios[1]) * n)
    return {"train": order[:a], "val": order[a:b], "test": order[b:]}


def _from_file(path: Path, items: tuple[EvalItem, ...]) -> dict[str, list[str]]:
    raw = decode_json(read_user_text(path, "split file"), f"split file {path}")
    if not isinstance(raw, dict) or not set(raw) <= {"train", "val", "test"}:
        raise InputError(f"split file {path} must be an object with train / val / test lists")
    known = {i.id for i in items} | {i.history for i in items}
    seen: dict[str, str] = {}
    for part, names in raw.items():
        if not isinstance(names, list):
            raise InputError(f"split file {path}: '{part}' must be a list of ids")
        for name in map(str, names):
            if name not in known:
                raise InputError(f"split file {path}: {name!r} is neither a question id nor a history in the data")
            if name in seen and seen[name] != part:
                raise InputError(f"split file {path}: {name!r} is in both {seen[name]} and {part}")
            seen[name] = part
    return {part: [str(n) for n in raw.get(part, [])] for part in ("train", "val", "test")}


def make_split(
    data: EvalSet,
    part: str = "test",
    *,
    seed: int = 0,
    ratios: tuple[float, float, float] = (0.6, 0.2, 0.2),
    split_file: str | Path | None = None,
) -> Split:
    """The questions of one part of ``data``, with how that part was drawn."""
    if part not in PARTS:
        raise InputError(f"unknown split {part!r}", hint=f"use one of: {', '.join(PARTS)}")
    if abs(sum(ratios) - 1.0) > 1e-9 or min(ratios) < 0:
        raise InputError(f"split ratios {ratios} must be non-negative and sum to 1")
    if part == "all":
        groups = sorted({i.history for i in data.items})
        return Split("all", "every question (the whole file is held out for testing)", tuple(groups), data.items)
    by_history = data.dataset == "locomo"
    if split_file is not None:
        parts = _from_file(Path(split_file), data.items)
        method = f"split file {Path(split_file).name}"
    else:
        unit = sorted({i.history for i in data.items}) if by_history else sorted({i.id for i in data.items})
        parts = _cut(unit, seed, ratios)
        ratio_text = "/".join(f"{round(r * 10):g}" for r in ratios)
        method = f"{'conversation' if by_history else 'question'}-level {ratio_text}, seed {seed}"
    chosen = set(parts[part])
    picked = tuple(i for i in data.items if i.id in chosen or i.history in chosen)
    if not picked:
        raise InputError(f"the {part} split of {data.source} is empty ({method})", hint="use --split all for a small file")
    return Split(part, method, tuple(sorted(chosen)), picked)
