"""Storage budgets and the admission / eviction plan (selective-write paper §III-E2).

A budget is a ratio (keep that share of the chunks the namespace has seen: ``0.3`` or
``30%``) or an absolute cap (``200`` chunks). Two modes:

- batch (no threshold): everything offered at once joins the live chunks, then the
  lowest-priority chunks go until the namespace fits its capacity. Into an empty
  namespace, that is exactly Eq. 5: the top-K scores, K = the budget.
- streaming (a threshold): chunks are taken one by one in arrival order; a chunk is
  admitted if its score exceeds the threshold (Eq. 6), and whenever the namespace is over
  capacity the lowest-priority live chunk is evicted, which may be the newcomer itself.

Priority mixes salience and use: ``(1 - w) * rank(score) + w * rank(access count)``, each a
percentile rank among the live chunks, so scores of any scale and raw counts mix on equal
terms; ties go to the older chunk first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from budgetmem.errors import ConfigError
from budgetmem.store import WriteState

__all__ = ["Budget", "parse_budget", "WritePlan", "plan_writes"]


@dataclass(frozen=True)
class Budget:
    ratio: float | None = None
    chunks: int | None = None

    def capacity(self, seen: int) -> int:
        """Live chunks allowed once ``seen`` chunks have been offered (at least 1)."""
        if self.chunks is not None:
            return self.chunks
        assert self.ratio is not None
        return max(1, math.floor(self.ratio * seen + 0.5))

    def __str__(self) -> str:
        return f"{self.chunks}" if self.chunks is not None else f"{self.ratio:g}"


def parse_budget(text: str | None) -> Budget | None:
    if text is None:
        return None
    raw = str(text).strip()
    try:
        if raw.endswith("%"):
            value = float(raw[:-1]) / 100.0
        elif raw.isdigit() and int(raw) >= 1 and "." not in raw:
            n = int(raw)
            if n == 1:  # "1" alone reads as "everything", the natural ratio
                return Budget(ratio=1.0)
            return Budget(chunks=n)
        else:
            value = float(raw)
    except ValueError:
        raise ConfigError(f"bad write budget {text!r}", hint="a ratio like 0.3 or 30%, or a number of chunks like 200") from None
    if not 0.0 < value <= 1.0:
        raise ConfigError(f"write budget ratio must be in (0, 1], got {text!r}", hint="e.g. 0.3 keeps 30% of the chunks")
    return Budget(ratio=value)


@dataclass(frozen=True)
class WritePlan:
    admitted: list[bool]
    """Per new chunk: live after this write."""
    evict: list[int]
    """Ids of chunks that were live before and are archived now."""
    capacity: int | None


def _pct_rank(values: np.ndarray) -> np.ndarray:
    """Average-tie percentile ranks in [0, 1]; a constant column ranks 0.5 everywhere."""
    n = len(values)
    if n <= 1:
        return np.full(n, 0.5)
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(n)
    sorted_vals = values[order]
    i = 0
    while i < n:
        j = i
        while j + 1 < n and sorted_vals[j + 1] == sorted_vals[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0
        i = j + 1
    return ranks / (n - 1)


def _lowest(keys: list[int], score: dict[int, float], access: dict[int, int], weight: float) -> int:
    """The key of the lowest-priority chunk (older first on ties)."""
    s = _pct_rank(np.array([score[k] for k in keys], dtype=np.float64))
    a = _pct_rank(np.array([access[k] for k in keys], dtype=np.float64))
    priority = (1.0 - weight) * s + weight * a
    return keys[min(range(len(keys)), key=lambda i: (priority[i], keys[i]))]


def plan_writes(
    new_scores: Sequence[float],
    live: Sequence[WriteState],
    budget: Budget | None,
    *,
    seen_before: int,
    threshold: float | None,
    access_weight: float,
) -> WritePlan:
    """Which new chunks go live and which live chunks leave. New chunks get keys above every
    stored id, in arrival order, so "older first" on ties holds for them too."""
    n = len(new_scores)
    score: dict[int, float] = {}
    access: dict[int, int] = {}
    for st in live:
        if st.score is None:
            raise ConfigError(
                "this namespace holds chunks stored without a write policy", hint="use a new namespace for budgeted writes"
            )
        score[st.id], access[st.id] = st.score, st.access_count
    big = max([st.id for st in live], default=0) + 1
    new_keys = [big + i for i in range(n)]  # after every stored id: newest
    for k, sc in zip(new_keys, new_scores):
        score[k], access[k] = float(sc), 0
    members = [st.id for st in live]
    capacity: int | None = None
    if threshold is None:
        members += new_keys
        capacity = budget.capacity(seen_before + n) if budget else None
        while capacity is not None and len(members) > capacity:
            members.remove(_lowest(members, score, access, access_weight))
    else:
        for i, k in enumerate(new_keys):
            if score[k] > threshold:
                members.append(k)
            capacity = budget.capacity(seen_before + i + 1) if budget else None
            while capacity is not None and len(members) > capacity:
                members.remove(_lowest(members, score, access, access_weight))
    kept = set(members)
    return WritePlan([k in kept for k in new_keys], [st.id for st in live if st.id not in kept], capacity)
