"""The rule router (``--policy rules``): a baseline that needs no reinforcement learning.

Route by what the question asks for, as query-type routers over memory tiers do: classify
the question's type, then look the tier of each module up in a table fitted on the train
split.

    temporal     "When did ...", "What year ...", "How long ago ..."
    open-domain  "Would ... likely ...", "What might ..." (inference beyond the record)
    multi-hop    "What do X and Y have in common", "What activities has ..." (several facts)
    single-hop   one fact ("What is Caroline's job?")
    other        not a question at all ("Tell me about the trip.")

Classification: rules first (surface patterns of temporal, open-domain and some multi-hop
questions, which are reliable), then the nearest *prototype*: the mean sentence embedding
of each type's training questions (all-MiniLM-L6-v2 by default) plus a per-type offset
fitted on train. The packaged file keeps prototypes for single-hop and multi-hop only, the
types the patterns leave open: on LoCoMo's train split, prototypes for all four types sent
half the single-hop questions elsewhere (val accuracy 0.50); two with an offset reach 0.60
on the undecided val questions, where always answering single-hop reaches 0.59. Single-
against multi-hop is barely visible in the question's wording. Both the prototypes and the type -> tiers
map are data in one JSON file (``router/data/rules.json`` by default; ``rules:PATH`` for
another), written by :func:`budgetmem.training.rules_fit.fit_rules`.

The trace shows the type, how it was decided, and the map row used (``context.routing``).
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from budgetmem.errors import ConfigError, InputError
from budgetmem.pipeline.policy import PolicyState
from budgetmem.pipeline.stages import MODULES
from budgetmem.pipeline.types import Tier
from budgetmem.router.data_files import packaged, save_json
from budgetmem.userfiles import decode_json, read_user_text

__all__ = [
    "QUESTION_TYPES", "RULES_FORMAT", "Classification", "QuestionClassifier", "RuleRouter", "RuleTable",
    "default_rules_path", "load_rule_table", "rule_type",
]  # fmt: skip

QUESTION_TYPES: tuple[str, ...] = ("temporal", "multi-hop", "single-hop", "open-domain", "other")
RULES_FORMAT = "budgetmem-rules/1"

# Surface patterns, checked in this order; the first that matches decides. Open-domain first:
# "When would X likely ..." asks for an inference, not a date.
_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("open-domain", re.compile(
        r"^\s*(would|could|might|is it likely|are they likely|do you think|does \w+ seem)\b"
        r"|\b(likely|probably|might|would (?:\w+ )?(?:be|want|enjoy|consider|prefer|have been|pursue|like))\b"
        r"|\bwhat (?:might|would|could)\b", re.I)),
    ("temporal", re.compile(
        r"^\s*when\b|\bwhat (?:year|month|day|date|time|week|season)\b|\bwhich (?:year|month|day|date|week)\b"
        r"|\bin what (?:year|month)\b|\bhow long (?:ago|has|have|had|did|was|were|is|since|before|after)\b"
        r"|\bhow many (?:days|weeks|months|years) (?:ago|before|after|since|did|has|have|had|was|were)\b", re.I)),
    ("multi-hop", re.compile(
        r"\bin common\b|\bboth\b|\bwhat (?:activities|things|books|events|hobbies|places|types|kinds|items|ways)\b"
        r"|\bhow many times\b|\bwhich (?:activities|books|events|places)\b", re.I)),
)
_QUESTION_START = re.compile(
    r"^\s*(who|whom|whose|what|when|where|which|why|how|is|are|was|were|do|does|did|has|have|had|can|could|would"
    r"|will|should|might|may|name|list)\b", re.I)  # fmt: skip


def rule_type(question: str) -> str | None:
    """The type the surface patterns give, or ``other`` for text that is not a question, or
    None when the patterns do not decide (the prototypes will)."""
    q = question.strip()
    for name, pattern in _PATTERNS:
        if pattern.search(q):
            return name
    if "?" not in q and not _QUESTION_START.search(q):
        return "other"
    return None


class _Encodes(Protocol):
    def encode(self, texts: list[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class Classification:
    type: str
    how: str
    """``rule`` (a surface pattern decided) or ``prototype`` (nearest type embedding)."""
    similarity: float | None = None
    """Cosine similarity to the chosen prototype (None for a rule)."""

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "how": self.how, "similarity": self.similarity}


class QuestionClassifier:
    """Rules, then nearest prototype. ``prototypes``: type -> unit vector (the mean embedding
    of that type's training questions); may be empty, in which case undecided questions are
    single-hop (the commonest type)."""

    def __init__(
        self,
        encoder: _Encodes | None,
        prototypes: dict[str, np.ndarray],
        offsets: dict[str, float] | None = None,
        cache_size: int = 4096,
    ) -> None:
        """``offsets``: added to a type's cosine similarity before the argmax (a prior)."""
        unknown = set(prototypes) - set(QUESTION_TYPES)
        if unknown:
            raise ConfigError(f"unknown question types in prototypes: {', '.join(sorted(unknown))}")
        if prototypes and encoder is None:
            raise ConfigError("prototypes need an encoder to embed questions with")
        self.encoder = encoder
        self.names = list(prototypes)
        self.matrix = np.stack([_unit(prototypes[n]) for n in self.names]) if prototypes else np.zeros((0, 0))
        self.offsets = np.array([float((offsets or {}).get(n, 0.0)) for n in self.names])
        self._cache: OrderedDict[str, Classification] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def classify(self, question: str) -> Classification:
        with self._lock:
            hit = self._cache.get(question)
        if hit is not None:
            return hit
        decided = rule_type(question)
        if decided is not None:
            out = Classification(decided, "rule")
        elif not self.names or self.encoder is None:
            out = Classification("single-hop", "default")
        else:
            v = _unit(np.asarray(self.encoder.encode([question])[0], dtype=np.float64))
            sims = self.matrix @ v
            best = int(np.argmax(sims + self.offsets))
            out = Classification(self.names[best], "prototype", round(float(sims[best]), 4))
        with self._lock:
            self._cache[question] = out
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return out


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    n = float(np.linalg.norm(v))
    return v / n if n > 1e-12 else v


@dataclass(frozen=True)
class RuleTable:
    """What a rules file holds: the encoder its prototypes were made with, the prototypes,
    and per question type a tier for every module (plus how the map was chosen)."""

    encoder: str
    prototypes: dict[str, tuple[float, ...]]
    tiers: dict[str, dict[str, str]]
    """question type -> module -> LOW | MID | HIGH."""
    strategy: str | None = None
    fitted: dict[str, Any] = field(default_factory=dict)
    offsets: dict[str, float] = field(default_factory=dict)
    """Per-type additive offsets on the prototype similarity (fitted on train)."""
    """How it was fitted (data, split, questions, candidate maps and their scores)."""

    def __post_init__(self) -> None:
        for t in QUESTION_TYPES:
            row = self.tiers.get(t)
            if row is None:
                raise ConfigError(f"rules map has no row for question type {t!r}")
            missing = [m for m in MODULES if m not in row]
            if missing:
                raise ConfigError(f"rules map row {t!r} has no tier for {', '.join(missing)}")
            for m in MODULES:
                Tier.parse(row[m])

    def to_dict(self) -> dict[str, Any]:
        return {"format": RULES_FORMAT, "encoder": self.encoder, "strategy": self.strategy,
                "tiers": self.tiers, "fitted": self.fitted, "offsets": self.offsets,
                "prototypes": {k: [round(float(x), 6) for x in v] for k, v in self.prototypes.items()}}  # fmt: skip

    def save(self, path: str | Path) -> Path:
        return save_json(path, self.to_dict())


def default_rules_path() -> Path:
    return packaged("rules.json")


def load_rule_table(path: str | Path | None = None) -> RuleTable:
    p = Path(path) if path is not None else default_rules_path()
    if not p.is_file():
        raise InputError(f"rules file {p} not found", hint="fit one with bench/routing.py --part fit, or use --policy rules")
    raw = decode_json(read_user_text(p, "rules file"), f"rules file {p}")
    if not isinstance(raw, dict) or raw.get("format") != RULES_FORMAT:
        raise InputError(f"{p} is not a {RULES_FORMAT} file")
    protos = {str(k): tuple(float(x) for x in v) for k, v in (raw.get("prototypes") or {}).items()}
    tiers = {str(t): {str(m): str(v).upper() for m, v in row.items()} for t, row in (raw.get("tiers") or {}).items()}
    offsets = {str(k): float(v) for k, v in (raw.get("offsets") or {}).items()}
    return RuleTable(str(raw.get("encoder") or ""), protos, tiers, raw.get("strategy"), dict(raw.get("fitted") or {}), offsets)


class RuleRouter:
    """A pipeline policy: the question's type picks a row of the map; the row gives each
    module's tier."""

    def __init__(self, table: RuleTable, encoder: _Encodes | None, *, name: str = "rules") -> None:
        self.table = table
        protos = {k: np.asarray(v, dtype=np.float64) for k, v in table.prototypes.items()}
        self.classifier = QuestionClassifier(encoder, protos, table.offsets)
        self.name = name
        self.meta = {"strategy": table.strategy} if table.strategy else {}

    def decide(self, state: PolicyState) -> Tier:
        kind = self.classifier.classify(state.query).type
        return Tier.parse(self.table.tiers[kind][state.module])

    def trace_note(self, query: str) -> dict[str, Any]:
        """What the trace shows: the type, how it was decided, and the map row used."""
        c = self.classifier.classify(query)
        return {"router": self.name, **c.to_dict(), "map": dict(self.table.tiers[c.type])}
