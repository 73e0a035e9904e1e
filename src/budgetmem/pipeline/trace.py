"""The per-query result: the answer, the memory, and a cost ledger of every step.

Every LLM call carries its exact tokens, USD, latency and price source; non-LLM tiers
record their CPU time and $0. The answer call is a separate line, and extraction and
whole-query totals are kept apart (the routing paper's cost is the extraction cost;
the answer call is counted here too, so nothing is silent).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from budgetmem.pipeline.types import ScoredChunk, StepRecord

__all__ = ["QueryResult"]


def _chunk_dict(c: ScoredChunk) -> dict[str, Any]:
    ch = c.chunk
    return {
        "chunk_id": ch.id,
        "score": round(c.score, 6),
        "session_id": ch.session_id,
        "session_date": ch.session_date,
        "dia_ids": list(ch.dia_ids),
        "text": ch.text,
    }


@dataclass
class QueryResult:
    question: str
    answer: str
    memory: str
    strategy: str
    policy: str
    candidates: tuple[ScoredChunk, ...]
    filtered: tuple[ScoredChunk, ...]
    facts: dict[str, tuple[str, ...]]
    steps: list[StepRecord]
    """One per module, in pipeline order."""
    answer_step: StepRecord
    wall_s: float
    retrieval_s: float = 0.0
    cost_weight: float | None = None
    cache: dict[str, int] = field(default_factory=dict)
    """Module-cache hits / misses during this query."""
    context: dict[str, Any] = field(default_factory=dict)
    """What a baseline put in the answer model's context (e.g. full-context truncation), how a
    policy routed (``routing``), or how escalation decided (``escalation``)."""
    passes: list[QueryResult] = field(default_factory=list)
    """Earlier passes this query also ran and paid for (escalation's cheap pass): their steps
    and answer are part of every total below; ``steps`` and ``answer`` are the final pass's."""

    # ------------------------------------------------------------------ totals
    @property
    def tiers(self) -> dict[str, str]:
        return {s.module: s.tier for s in self.steps}

    @property
    def all_steps(self) -> list[StepRecord]:
        """Every module and answer step of every pass, earlier passes first."""
        return [s for p in self.passes for s in p.all_steps] + [*self.steps, self.answer_step]

    @property
    def extraction_usd(self) -> float:
        return sum(s.usd for s in self.steps) + sum(p.extraction_usd for p in self.passes)

    @property
    def answer_usd(self) -> float:
        return self.answer_step.usd + sum(p.answer_usd for p in self.passes)

    @property
    def total_usd(self) -> float:
        return self.extraction_usd + self.answer_usd

    @property
    def usd_paid(self) -> float:
        """Spent by this run (cache hits cost nothing now)."""
        return sum(s.usd_paid for s in self.steps) + self.answer_step.usd_paid + sum(p.usd_paid for p in self.passes)

    @property
    def extraction_tokens(self) -> tuple[int, int]:
        p = sum(s.prompt_tokens for s in self.steps) + sum(x.extraction_tokens[0] for x in self.passes)
        c = sum(s.completion_tokens for s in self.steps) + sum(x.extraction_tokens[1] for x in self.passes)
        return p, c

    @property
    def answer_tokens(self) -> tuple[int, int]:
        steps = [self.answer_step, *(p.answer_step for p in self.passes)]
        return sum(s.prompt_tokens for s in steps), sum(s.completion_tokens for s in steps)

    @property
    def llm_seconds(self) -> float:
        """Seconds inside LLM calls made by this run (cache hits excluded)."""
        return sum(c.latency_s for s in self.all_steps if not s.cache_hit for c in s.calls)

    @property
    def parse_failures(self) -> list[dict[str, Any]]:
        """Steps whose LLM output did not parse: what came back and what was used instead."""
        return [
            {"module": s.module, "tier": s.tier, "fallback": s.fallback, "raw_output": s.raw_output}
            for s in self.all_steps
            if s.parse_status == "failed"
        ]

    # ------------------------------------------------------------------ output
    def to_dict(self) -> dict[str, Any]:
        p, c = self.extraction_tokens
        ap, ac = self.answer_tokens
        return {
            "question": self.question,
            "answer": self.answer,
            "memory": self.memory,
            "strategy": self.strategy,
            "policy": self.policy,
            "cost_weight": self.cost_weight,
            "tiers": self.tiers,
            "candidates": [_chunk_dict(x) for x in self.candidates],
            "filtered": [_chunk_dict(x) for x in self.filtered],
            "facts": {k: list(v) for k, v in self.facts.items()},
            "steps": [s.to_dict() for s in self.steps],
            "answer_step": self.answer_step.to_dict(),
            "totals": {
                "extraction_usd": self.extraction_usd,
                "answer_usd": self.answer_usd,
                "total_usd": self.total_usd,
                "usd_paid": self.usd_paid,
                "extraction_prompt_tokens": p,
                "extraction_completion_tokens": c,
                "answer_prompt_tokens": ap,
                "answer_completion_tokens": ac,
                "wall_s": self.wall_s,
                "retrieval_s": self.retrieval_s,
                "llm_s": self.llm_seconds,
            },
            "cache": self.cache,
            "context": self.context,
            "passes": [x.to_dict() for x in self.passes],
            "price_sources": sorted({c.price_source for s in self.all_steps for c in s.calls}),
        }

    def table(self) -> str:
        from budgetmem.tables import table

        rows = []
        labelled = [(f"pass {i + 1}: ", s) for i, x in enumerate(self.passes) for s in x.all_steps]
        prefix = f"pass {len(self.passes) + 1}: " if self.passes else ""
        labelled += [(prefix, s) for s in [*self.steps, self.answer_step]]
        for label, s in labelled:
            status = s.parse_status + (f" -> {s.fallback}" if s.fallback else "") + (" (cached)" if s.cache_hit else "")
            retried = [r for c in s.calls for r in c.retries]
            if retried and not s.cache_hit:  # transient failures the backend recovered from stay visible
                status += f"; retried after {', '.join(retried)}"
            rows.append(
                [label + s.module, s.tier, s.method, s.model or "-", len(s.calls), s.prompt_tokens, s.completion_tokens,
                 f"{s.usd:.6f}", f"{s.wall_s:.2f}", f"{s.cpu_s:.2f}", status]
            )  # fmt: skip
        p, c = self.extraction_tokens
        n_calls = sum(len(s.calls) for s in self.steps) + sum(len(s.calls) for x in self.passes for s in x.steps)
        rows.append(["extraction", "", "", "", n_calls, p, c, f"{self.extraction_usd:.6f}", "", "", ""])
        ap, ac = self.answer_tokens
        rows.append(
            ["query total", "", "", "", "", p + ap, c + ac,
             f"{self.total_usd:.6f}", f"{self.wall_s:.2f}", "", f"paid now ${self.usd_paid:.6f}"]
        )  # fmt: skip
        head = ["step", "tier", "method", "model", "calls", "prompt tok", "compl. tok", "USD", "wall s", "cpu s", "parse"]
        lines = [table(head, rows, max_width=44)]
        sources = sorted({c.price_source for s in self.all_steps for c in s.calls})
        lines += [f"price: {src}" for src in sources]
        if self.cache:
            lines.append(f"module cache: {self.cache.get('hits', 0)} hits, {self.cache.get('misses', 0)} misses")
        return "\n".join(lines)
