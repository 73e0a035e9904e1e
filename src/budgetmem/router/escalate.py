"""Cheap-first escalation (``--policy escalate:CHEAP>COSTLY@T``): answer with the cheap
policy; when the answer looks unreliable, run the costly one, reusing every step the two
passes share. A fast path with a fallback to full deliberation, as a baseline for the
learned router that needs no training beyond a three-weight calibration.

Confidence that the cheap answer is good enough, in [0, 1]:

    x = (mean token log-probability of the answer, clipped to [-5, 0],
         1 if the model could not tell its log-probabilities else 0,
         1 if the answer abstains ("not mentioned", "unknown", ...) else 0,
         retrieval score margin: top-1 minus top-2 candidate score)
    confidence = sigmoid(b + w . x)

``b`` and ``w`` are fitted on the train split by logistic regression (:func:`fit_calibration`)
on the label "escalating would not have improved the answer" (the cheap pass's F1 is at
least the costly pass's), so confidence is the probability that paying more is wasted.
Below the threshold ``T`` the costly pass runs. ``T <= 0`` never escalates and ``T >= 1``
always does (and then skips the cheap pass): the two ends reproduce the cheap and the costly
policy exactly. Sweeping T in between draws escalation's own performance-cost frontier.

The query's ledger shows both passes (``result.passes`` holds the cheap one; every total
counts both), and ``result.context["escalation"]`` the features, confidence and decision.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from budgetmem.errors import ConfigError, InputError, LLMError
from budgetmem.pipeline.policy import Policy
from budgetmem.pipeline.runner import Reuse
from budgetmem.pipeline.trace import QueryResult
from budgetmem.pipeline.types import charge, paid_calls
from budgetmem.router.data_files import packaged, save_json
from budgetmem.userfiles import decode_json, read_user_text

__all__ = [
    "CALIBRATION_FORMAT", "FEATURES", "Calibration", "Escalation", "confidence_features", "default_calibration_path",
    "fit_calibration", "is_abstention", "load_calibration", "parse_escalation",
]  # fmt: skip

CALIBRATION_FORMAT = "budgetmem-escalation/1"
FEATURES: tuple[str, ...] = ("logprob", "no_logprob", "abstain", "margin")

_ABSTAIN = re.compile(
    r"\b(not mentioned|no (?:information|mention|record|answer|details?)|not (?:specified|stated|given|provided|known|sure|clear)"
    r"|unknown|i (?:do not|don't) know|cannot (?:be )?(?:determined|tell|answer|find)|can't (?:tell|answer|find)"
    r"|does not (?:say|mention|specify)|doesn't (?:say|mention|specify)|n/a)\b", re.I)  # fmt: skip


def is_abstention(answer: str) -> bool:
    """The answer says the memory does not hold it (or is empty)."""
    a = answer.strip().lower().strip(".")
    return not a or a in ("none", "no", "nothing") or bool(_ABSTAIN.search(a))


def confidence_features(result: QueryResult) -> dict[str, float]:
    """The raw signals of one answered pass (see the module docstring)."""
    lps = [c.mean_logprob for c in result.answer_step.calls if c.mean_logprob is not None]
    lp = max(-5.0, min(0.0, float(lps[-1]))) if lps else 0.0
    scores = sorted((c.score for c in result.candidates), reverse=True)
    margin = float(scores[0] - scores[1]) if len(scores) > 1 else (float(scores[0]) if scores else 0.0)
    return {"logprob": lp, "no_logprob": 0.0 if lps else 1.0, "abstain": float(is_abstention(result.answer)),
            "margin": margin}  # fmt: skip


@dataclass(frozen=True)
class Calibration:
    bias: float
    weights: dict[str, float]
    fitted: dict[str, Any] = field(default_factory=dict)
    """How it was fitted (data, split, questions, accuracy); empty for a hand-set prior."""

    def __post_init__(self) -> None:
        unknown = set(self.weights) - set(FEATURES)
        if unknown:
            raise ConfigError(f"unknown escalation features: {', '.join(sorted(unknown))}")

    def confidence(self, features: dict[str, float]) -> float:
        z = self.bias + sum(w * features.get(k, 0.0) for k, w in self.weights.items())
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))

    def to_dict(self) -> dict[str, Any]:
        return {"format": CALIBRATION_FORMAT, "bias": self.bias, "weights": self.weights, "fitted": self.fitted}

    def save(self, path: str | Path) -> Path:
        return save_json(path, self.to_dict())


def default_calibration_path() -> Path:
    return packaged("escalation.json")


def load_calibration(path: str | Path | None = None) -> Calibration:
    p = Path(path) if path is not None else default_calibration_path()
    raw = decode_json(read_user_text(p, "calibration file"), f"calibration file {p}")
    if not isinstance(raw, dict) or raw.get("format") != CALIBRATION_FORMAT:
        raise InputError(f"{p} is not a {CALIBRATION_FORMAT} file")
    return Calibration(float(raw["bias"]), {str(k): float(v) for k, v in raw["weights"].items()}, dict(raw.get("fitted") or {}))


def fit_calibration(
    features: Sequence[dict[str, float]], labels: Sequence[int], *, l2: float = 1.0, iters: int = 50
) -> tuple[float, dict[str, float]]:
    """Logistic regression by Newton's method with an L2 penalty on the weights (not the bias):
    ``labels[i]`` is 1 when escalating question i would not have improved its answer."""
    if len(features) != len(labels) or not features:
        raise ConfigError("calibration needs as many labels as feature rows, and at least one")
    X = np.array([[f.get(k, 0.0) for k in FEATURES] for f in features], dtype=np.float64)
    X = np.hstack([np.ones((len(X), 1)), X])
    y = np.asarray(labels, dtype=np.float64)
    beta = np.zeros(X.shape[1])
    penalty = np.diag([0.0] + [l2] * len(FEATURES))
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(X @ beta, -60, 60)))
        grad = X.T @ (p - y) + penalty @ beta
        hess = X.T @ (X * (p * (1 - p))[:, None]) + penalty + 1e-9 * np.eye(len(beta))
        step = np.linalg.solve(hess, grad)
        beta -= step
        if float(np.abs(step).max()) < 1e-10:
            break
    return float(beta[0]), {k: float(b) for k, b in zip(FEATURES, beta[1:])}


RunPass = Callable[[Policy, Reuse], QueryResult]
"""Runs one pass of the query under a policy, sharing ``Reuse`` with the other pass."""


@dataclass(frozen=True)
class Escalation:
    cheap: Policy
    costly: Policy
    threshold: float
    calibration: Calibration
    spec: tuple[str, str] = ("", "")
    """The two policies as written (for the name)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(f"escalation threshold must be in [0, 1], got {self.threshold}")

    @property
    def name(self) -> str:
        cheap, costly = self.spec if all(self.spec) else (self.cheap.name, self.costly.name)
        return f"escalate:{cheap}>{costly}@{self.threshold:g}"

    def with_threshold(self, threshold: float) -> Escalation:
        return replace(self, threshold=min(1.0, max(0.0, threshold)))

    def run(self, run_pass: RunPass) -> QueryResult:
        reuse: Reuse = {}
        if self.threshold >= 1.0:  # always escalates: the cheap pass could change nothing
            final = run_pass(self.costly, reuse)
            final.context["escalation"] = self._note(None, None, True, skipped_cheap=True)
            final.policy = self.name
            return final
        first = run_pass(self.cheap, reuse)
        feats = confidence_features(first)
        conf = self.calibration.confidence(feats)
        if self.threshold <= 0.0 or conf >= self.threshold:
            first.context["escalation"] = self._note(feats, conf, False)
            first.policy = self.name
            return first
        try:
            final = run_pass(self.costly, reuse)
        except LLMError as exc:
            charge(exc, paid_calls(first.all_steps))  # the cheap pass was paid in full
            raise
        final.passes = [first, *final.passes]
        final.wall_s += first.wall_s
        if first.cache and final.cache:  # the query's cache counts cover both passes
            final.cache = {k: first.cache.get(k, 0) + final.cache.get(k, 0) for k in ("hits", "misses")}
        final.context["escalation"] = self._note(feats, conf, True, first=first, final=final)
        final.policy = self.name
        return final

    def _note(
        self, feats: dict[str, float] | None, conf: float | None, escalated: bool, *, skipped_cheap: bool = False,
        first: QueryResult | None = None, final: QueryResult | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        note: dict[str, Any] = {
            "cheap": self.cheap.name, "costly": self.costly.name, "threshold": self.threshold,
            "features": feats, "confidence": conf, "escalated": escalated, "cheap_pass_skipped": skipped_cheap,
        }  # fmt: skip
        if first is not None and final is not None:
            reused = sum(1 for s in [*final.steps, final.answer_step] if s.note and s.note.startswith("reused"))
            note.update(
                cheap_answer=first.answer, cheap_extraction_usd=first.extraction_usd,
                costly_extraction_usd=final.extraction_usd - first.extraction_usd, steps_reused=reused,
            )  # fmt: skip
        return note


_SPEC = re.compile(r"^escalate:(?P<cheap>[^>@]+)>(?P<costly>[^@]+)@(?P<t>[0-9]*\.?[0-9]+)$", re.I)


def parse_escalation(
    text: str, make_policy: Callable[[str], Policy], calibration: Calibration | None = None
) -> Escalation:
    """``escalate:CHEAP>COSTLY@T``: CHEAP and COSTLY are any non-escalating policies
    (``mid``, ``mid,summary=high``, ``rules``, ``router:PATH``), T in [0, 1]."""
    m = _SPEC.match(text.strip())
    if m is None:
        raise ConfigError(f"bad escalation policy {text!r}", hint="write escalate:CHEAP>COSTLY@T, e.g. escalate:mid>high@0.5")
    cheap, costly = m["cheap"].strip(), m["costly"].strip()
    if any(p.lower().startswith("escalate:") for p in (cheap, costly)):
        raise ConfigError("escalation policies do not nest")
    t = float(m["t"])
    if not 0.0 <= t <= 1.0:
        raise ConfigError(f"escalation threshold must be in [0, 1], got {t:g}")
    cal = calibration if calibration is not None else load_calibration()
    return Escalation(make_policy(cheap), make_policy(costly), t, cal, (cheap, costly))
