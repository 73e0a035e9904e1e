"""The typed contract every module honours, whatever its tier (routing paper §4.1, Eq. 4-6).
Which module reads and writes which is in the stage table (stages.py).

    filter:   (q, C_q)         -> FilterResult   a ranked subset of chunks with scores
    entity:   (q, C~_q)        -> FactsResult    short fact strings
    temporal: (q, C~_q)        -> FactsResult
    topic:    (q, C~_q)        -> FactsResult
    summary:  (q, e, t, p)     -> SummaryResult  the memory text handed to the answer model
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING, Any, Literal, cast

from budgetmem.chunk import Chunk

if TYPE_CHECKING:
    from collections.abc import Iterable

    from budgetmem.errors import LLMError
    from budgetmem.settings import PipelineSettings

__all__ = [
    "Tier",
    "STRATEGIES",
    "ScoredChunk",
    "ModuleInput",
    "FilterResult",
    "keep_count",
    "kept_order",
    "FactsResult",
    "SummaryResult",
    "ModuleResult",
    "CallRecord",
    "CallTotals",
    "StepRecord",
    "charge",
    "paid_calls",
]


class Tier(IntEnum):
    LOW = 0
    MID = 1
    HIGH = 2

    @classmethod
    def parse(cls, text: str) -> Tier:
        from budgetmem.errors import ConfigError

        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ConfigError(f"unknown tier {text!r}", hint="use low, mid or high") from None


STRATEGIES: tuple[str, ...] = ("implementation", "reasoning", "capacity")


@dataclass(frozen=True)
class ScoredChunk:
    chunk: Chunk
    score: float


@dataclass(frozen=True)
class ModuleInput:
    """Everything a module may read. Which fields a module uses is fixed by its contract."""

    query: str
    chunks: tuple[ScoredChunk, ...] = ()
    """Filter: the retrieved candidates C_q. Extractors: the filtered chunks C~_q."""
    facts: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Summary: the extractors' outputs, keyed entity / temporal / topic."""
    question_date: str | None = None
    """When the question is asked (LongMemEval gives one); resolves "today", "last week"."""


@dataclass(frozen=True)
class FilterResult:
    chunks: tuple[ScoredChunk, ...]
    """Kept chunks, best first; scores are the module's own relevance scores."""


def keep_count(n_tokens: Sequence[int], keep: int, keep_tokens: int) -> int:
    """How many of the ranked chunks (their token counts, best first) a filter keeps: the
    best ``keep``, and further ones in order while everything kept stays within
    ``keep_tokens``. A count alone treats a 60-word encyclopedia paragraph like a 256-token
    stretch of chat; on HotpotQA (documents cut at paragraph ends) three of five paragraphs
    dropped the bridge document of a two-hop question about as often as it kept it."""
    total, kept = 0, 0
    for n in n_tokens:
        total += n
        if kept >= keep and total > keep_tokens:
            break
        kept += 1
    return kept


def kept_order(chunks: Sequence[ScoredChunk], scores: Sequence[float], settings: PipelineSettings) -> list[int]:
    """Indices of the chunks a filter keeps given its ``scores``: best first (equal scores
    keep the retriever's order), as many as :func:`keep_count` allows."""
    order = sorted(range(len(chunks)), key=lambda i: (-scores[i], i))
    return order[: keep_count([chunks[i].chunk.n_tokens for i in order], settings.filter_keep, settings.filter_tokens)]


@dataclass(frozen=True)
class FactsResult:
    facts: tuple[str, ...]


@dataclass(frozen=True)
class SummaryResult:
    text: str


ModuleResult = FilterResult | FactsResult | SummaryResult


@dataclass(frozen=True)
class CallRecord:
    """One LLM call inside a module step (reasoning HIGH makes several)."""

    purpose: str
    """e.g. 'direct', 'cot', 'plan', 'act', 'reflect', 'repair'."""
    model: str
    prompt_tokens: int
    completion_tokens: int
    usd: float
    latency_s: float
    price_source: str
    mean_logprob: float | None = None
    """The reply's mean token log-probability, where it was asked for (the answer call)."""
    retries: tuple[str, ...] = ()
    """Failed attempts the backend retried before this reply ('HTTP 429', 'timeout', ...)."""

    @classmethod
    def from_completion(cls, purpose: str, out: Completion) -> CallRecord:
        """The ledger line of one finished call (module steps, the answer, the judge)."""
        return cls(purpose, out.model, out.prompt_tokens, out.completion_tokens, out.usd, out.latency_s, out.price.source,
                   out.mean_logprob, tuple(out.retries))  # fmt: skip


class CallTotals:
    """Token and dollar totals over ``self.calls`` (shared by step records and LLM outcomes)."""

    calls: list[CallRecord]

    @property
    def prompt_tokens(self) -> int:
        return sum(c.prompt_tokens for c in self.calls)

    @property
    def completion_tokens(self) -> int:
        return sum(c.completion_tokens for c in self.calls)

    @property
    def usd(self) -> float:
        """What these calls cost at the configured prices."""
        return sum(c.usd for c in self.calls)


@dataclass
class StepRecord(CallTotals):
    """The ledger line of one module (or the answer call) for one query."""

    module: str
    tier: str
    strategy: str
    method: Literal["rules", "encoder", "llm"]
    model: str | None = None
    calls: list[CallRecord] = field(default_factory=list)
    wall_s: float = 0.0
    cpu_s: float = 0.0
    parse_status: Literal["ok", "repaired", "failed", "n/a"] = "n/a"
    fallback: str | None = None
    """What the module returned instead when parsing failed (documented per module)."""
    raw_output: str | None = None
    """The unparseable text, kept when parsing failed (or when a reflection's revision did
    not parse and the draft was kept)."""
    note: str | None = None
    """What the LLM behaviour wants the reader to know (e.g. draft kept, call skipped)."""
    cache_hit: bool = False
    """True when the result came from the module cache: nothing was paid this time."""

    @property
    def usd_paid(self) -> float:
        """What was actually spent now: zero on a cache hit."""
        return 0.0 if self.cache_hit else self.usd

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        # JSON has no tuples: a row read back from results.jsonl must equal the one written.
        d["calls"] = [{**c, "retries": list(c["retries"])} for c in d["calls"]]
        d.update(
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            usd=self.usd,
            usd_paid=self.usd_paid,
        )
        return d


def charge(exc: LLMError, calls: Iterable[CallRecord], purpose: str | None = None) -> None:
    """Before an LLM error leaves a place that holds paid calls, put them on the error
    (:attr:`~budgetmem.errors.LLMError.spent`): a failed query still reports what it cost.

    ``purpose``: given where the failing call was made; its own reply, when it came with
    token usage (``exc.paid``), becomes the last line, under that purpose."""
    # A backend sets ``paid`` to its own Completion (errors.py types it by a protocol only).
    own = [CallRecord.from_completion(purpose, cast("Completion", exc.paid))] if purpose is not None and exc.paid is not None else []
    exc.charge([*calls, *own])


def paid_calls(steps: Iterable[StepRecord]) -> list[CallRecord]:
    """The calls these steps paid for now (a cache hit or a reused step paid nothing)."""
    return [c for s in steps if not s.cache_hit for c in s.calls]
