"""Write policies: how each arriving chunk is scored for storage.

One registry, one contract: ``scores(feats, seq)`` gives a number per chunk, higher is
kept first. ``feats`` are the salience features (None for policies that need none, so
random / first / last never load spaCy) and ``seq`` is each chunk's arrival number in its
namespace (0 for the first chunk the namespace ever saw).

- ``salience``: the paper's hand-weighted sum of the features (§IV-B2), divided by the sum
  of the weights so it lies in [0, 1]. Eq. 4 wraps it in a sigmoid; that is monotonic, so
  the top-K is the same, and the plain sum keeps thresholds readable.
- ``learned``: the logistic scorer of :mod:`budgetmem.write.learned`.
- ``tfidf``: the TF-IDF feature alone (the paper's TF-IDF-only baseline, §V).
- ``random``: a uniform draw per chunk, seeded by (seed, arrival number), so a re-run or a
  resumed ingest draws the same numbers.
- ``first`` / ``last``: keep the oldest / the newest chunks.
- ``all``: store everything (no budget).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from budgetmem.errors import ConfigError
from budgetmem.settings import WriteSettings
from budgetmem.write.features import FEATURES

__all__ = ["WritePolicy", "make_write_policy", "policy_spec", "settings_from_spec"]


@dataclass(frozen=True)
class WritePolicy:
    name: str
    needs_features: bool
    scores: Callable[[np.ndarray | None, np.ndarray], np.ndarray]
    """(features or None, arrival numbers) -> one score per chunk."""


def _salience(weights: tuple[float, ...]) -> Callable[[np.ndarray | None, np.ndarray], np.ndarray]:
    w = np.asarray(weights, dtype=np.float64) / float(sum(weights))

    def scores(feats: np.ndarray | None, seq: np.ndarray) -> np.ndarray:
        assert feats is not None
        return (feats.astype(np.float64) @ w).astype(np.float32)

    return scores


def _random(seed: int) -> Callable[[np.ndarray | None, np.ndarray], np.ndarray]:
    def scores(feats: np.ndarray | None, seq: np.ndarray) -> np.ndarray:
        return np.array([np.random.default_rng([seed, int(s)]).random() for s in seq], dtype=np.float32)

    return scores


def make_write_policy(settings: WriteSettings) -> WritePolicy:
    name = settings.policy
    if name == "salience":
        return WritePolicy(name, True, _salience(settings.weights))
    if name == "learned":
        from budgetmem.write.learned import load_writer

        assert settings.model is not None  # WriteSettings checks it
        model = load_writer(settings.model)
        return WritePolicy(name, True, lambda f, s: model.score(f))  # type: ignore[arg-type]
    if name == "tfidf":
        col = FEATURES.index("tfidf")
        return WritePolicy(name, True, lambda f, s: f[:, col].astype(np.float32))  # type: ignore[index]
    if name == "random":
        return WritePolicy(name, False, _random(settings.seed))
    if name == "first":
        return WritePolicy(name, False, lambda f, s: -s.astype(np.float32))
    if name == "last":
        return WritePolicy(name, False, lambda f, s: s.astype(np.float32))
    if name == "all":
        return WritePolicy(name, False, lambda f, s: np.ones(len(s), dtype=np.float32))
    raise ConfigError(f"unknown write policy {name!r}")


def policy_spec(settings: WriteSettings) -> str:
    """What the store records for a budgeted namespace (JSON), so later ingests and
    ``budgetmem stats`` know the policy without being told again."""
    spec: dict[str, Any] = {"policy": settings.policy, "threshold": settings.threshold, "access_weight": settings.access_weight}
    if settings.policy == "salience":
        spec["weights"] = list(settings.weights)
    if settings.policy == "learned":
        spec["model"] = str(settings.model)
    if settings.policy == "random":
        spec["seed"] = settings.seed
    return json.dumps(spec, sort_keys=True)


def settings_from_spec(spec: str, budget: str | None) -> WriteSettings:
    raw = json.loads(spec)
    return WriteSettings(
        policy=raw["policy"], budget=budget, threshold=raw.get("threshold"), access_weight=raw.get("access_weight", 0.3),
        weights=tuple(raw.get("weights") or WriteSettings().weights), model=raw.get("model"), seed=raw.get("seed", 0),
    )  # fmt: skip
