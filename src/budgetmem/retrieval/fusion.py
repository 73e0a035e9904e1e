"""Merging a dense and a lexical ranking into one.

- Reciprocal rank fusion (Cormack, Clarke and Buettcher, SIGIR 2009):
  ``score(d) = sum over rankings of 1 / (k + rank(d))``, rank starting at 1.
- Weighted fusion: each ranking's scores min-max normalised to [0, 1] over its
  candidates, then ``w * dense + (1 - w) * lexical`` (a missing score counts as 0).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["rrf", "weighted"]

Ranking = tuple[np.ndarray, np.ndarray]  # (rows, scores), best first


def rrf(rankings: Sequence[Ranking], k: int = 60) -> dict[int, float]:
    fused: dict[int, float] = {}
    for rows, _ in rankings:
        for rank, row in enumerate(rows.tolist(), start=1):
            fused[row] = fused.get(row, 0.0) + 1.0 / (k + rank)
    return fused


def _minmax(scores: np.ndarray) -> np.ndarray:
    if scores.size == 0:
        return scores
    lo, hi = float(scores.min()), float(scores.max())
    if hi - lo < 1e-12:
        return np.ones_like(scores, dtype=np.float64)
    return (scores.astype(np.float64) - lo) / (hi - lo)


def weighted(dense: Ranking, lexical: Ranking, dense_weight: float) -> dict[int, float]:
    fused: dict[int, float] = {}
    for (rows, scores), w in ((dense, dense_weight), (lexical, 1.0 - dense_weight)):
        for row, s in zip(rows.tolist(), _minmax(scores).tolist()):
            fused[row] = fused.get(row, 0.0) + w * s
    return fused
