"""What answers an evaluation question: the tiered pipeline under any policy, or a baseline
on the same backbone and retrieval (routing paper §5.1 compares against both).

- ``PipelineSystem``: retrieve top-K, run filter -> {entity, temporal, topic} -> summary under
  a policy (fixed tiers, a per-module map, random, later a learned router), answer.
- ``NaiveRAG``: the top-K retrieved chunks go straight to the answer model; no extraction.
- ``FullContext``: the whole history goes to the answer model, truncated to its context
  window. The most recent chunks are kept (an agent's newest memory is the one it would
  keep), and the truncation is reported on every question: tokens and chunks kept of total.
- ``PackedRAG``: the episodic window plus the top-K retrieved chunks, packed under a token
  budget (compressed versions where raw text does not fit), answered with cited memory ids;
  the citations are checked on every question (selective-write paper §III-F, §III-H).

All three return the same :class:`QueryResult`, so the ledger, metrics and reports treat
them alike; baselines have no module steps, and their answer call is priced as usual.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Protocol

from budgetmem.errors import ConfigError, InputError, NoCostKnobError
from budgetmem.eval.datasets import EvalItem
from budgetmem.memory import BudgetMem
from budgetmem.pipeline.policy import Policy, RandomPolicy, parse_policy
from budgetmem.pipeline.prompts import build_answer_prompt, render_memories
from budgetmem.pipeline.runner import ANSWER_MAX_TOKENS
from budgetmem.pipeline.trace import QueryResult
from budgetmem.pipeline.types import ScoredChunk

__all__ = ["System", "PipelineSystem", "NaiveRAG", "FullContext", "PackedRAG", "BASELINES", "make_system"]


class System(Protocol):
    name: str
    """How the run is labelled in reports, e.g. ``implementation:mid`` or ``naive-rag``."""

    def answer(self, mem: BudgetMem, item: EvalItem) -> QueryResult: ...


class PipelineSystem:
    def __init__(
        self, strategy: str, policy: Policy | str, cost_weight: float | None = None, target_usd: float | None = None
    ) -> None:
        """``policy``: a Policy, or a spec each BudgetMem loads with its encoder (``router:PATH``,
        ``rules[:PATH]``, ``escalate:CHEAP>COSTLY@T``). ``target_usd``: target-cost mode."""
        self.strategy = strategy
        self.policy = policy
        self.cost_weight = cost_weight
        self.target_usd = target_usd
        if isinstance(policy, str) and policy.startswith("router:"):
            label = f"router:{Path(policy[len('router:') :]).name}"
        else:
            label = policy if isinstance(policy, str) else policy.name
        self.name = f"{strategy}:{label}" + (f"@target=${target_usd:g}" if target_usd is not None else "")

    def answer(self, mem: BudgetMem, item: EvalItem) -> QueryResult:
        # Random tiers are drawn per question, so a question's row does not depend on which
        # questions ran before it (or beside it, under a parallel executor).
        policy = self.policy.for_question(item.id) if isinstance(self.policy, RandomPolicy) else self.policy
        return mem.query(item.question, policy=policy, cost_weight=self.cost_weight, question_date=item.question_date,
                         target_usd=self.target_usd)  # fmt: skip


def _baseline_result(
    mem: BudgetMem, item: EvalItem, name: str, chunks: list[ScoredChunk], started: float, **context: object
) -> QueryResult:
    memory = render_memories(chunks)
    answer, step = mem.pipeline.answer(item.question, memory, item.question_date, sources=[c.chunk for c in chunks])
    return QueryResult(
        question=item.question, answer=answer, memory=memory, strategy="baseline", policy=name,
        candidates=tuple(chunks), filtered=tuple(chunks), facts={}, steps=[], answer_step=step,
        wall_s=time.perf_counter() - started, context=dict(context),
    )  # fmt: skip


class NaiveRAG:
    name = "naive-rag"

    def answer(self, mem: BudgetMem, item: EvalItem) -> QueryResult:
        started = time.perf_counter()
        hits = mem.search(item.question)
        retrieval_s = time.perf_counter() - started
        result = _baseline_result(mem, item, self.name, [ScoredChunk(h.chunk, h.score) for h in hits], started)
        result.retrieval_s = retrieval_s
        return result


class FullContext:
    name = "full-context"

    def __init__(self, max_context_tokens: int | None = None) -> None:
        """``max_context_tokens``: the answer model's window (default: the configured n_ctx)."""
        self.max_context_tokens = max_context_tokens

    def answer(self, mem: BudgetMem, item: EvalItem) -> QueryResult:
        started = time.perf_counter()
        llm = mem.pipeline.answer_model
        style = mem.settings.pipeline.answer_style
        window = self.max_context_tokens or mem.settings.llm.n_ctx
        count = llm.count_tokens
        counter = "answer model tokenizer"
        if count("probe") is None:  # hosted API: no local tokenizer, so count with the encoder's
            count, counter = mem.encoder.count_tokens, f"encoder tokenizer ({mem.encoder.name}), an estimate"
        empty = build_answer_prompt(item.question, render_memories([]), style=style, question_date=item.question_date)
        # Room left for memories: the window less the prompt around them, the answer, and a
        # margin for the chat template's own tokens.
        budget = window - int(count(empty)) - ANSWER_MAX_TOKENS[style] - 64
        if budget <= 0:
            raise ConfigError(f"the answer model's window ({window} tokens) leaves no room for history")
        chunks = mem.store.chunks(mem.namespace)
        if not chunks:
            raise InputError(f"namespace {mem.namespace!r} is empty", hint="ingest the history first")
        sizes = [int(count(c.text)) for c in chunks]
        start = len(chunks)  # newest first, while the chunk texts fit
        used = 0
        while start > 0 and used + sizes[start - 1] <= budget:
            start -= 1
            used += sizes[start]

        def prompt_tokens(first: int) -> int:
            rendered = render_memories([ScoredChunk(c, 0.0) for c in chunks[first:]])
            return int(count(build_answer_prompt(item.question, rendered, style=style, question_date=item.question_date)))

        # The memory tags and metadata add tokens: drop the oldest kept chunk until the real
        # prompt fits the window.
        limit = window - ANSWER_MAX_TOKENS[style] - 64
        while start < len(chunks) and prompt_tokens(start) > limit:
            start += 1
        kept = [ScoredChunk(c, 0.0) for c in chunks[start:]]
        used = sum(sizes[start:])
        total = sum(sizes)
        return _baseline_result(
            mem, item, self.name, kept, started, history_tokens=total, kept_tokens=used, history_chunks=len(chunks),
            kept_chunks=len(kept), truncated=len(kept) < len(chunks), window=window, counted_with=counter,
        )  # fmt: skip


class PackedRAG:
    """Episodic memory + retrieved semantic memory under ``settings.context``, cited answers.

    Selective-write paper §III-G3 (Eq. 19: the episodic window joins the top-ranked chunks),
    §III-H3 (packed in that order up to the token budget) and §III-H1-H2 (each memory shown
    under its id; the model cites the ids it used). The scored answer has the citation
    markers removed; the raw reply, the packing and the citation check go to the trace."""

    name = "packed-rag"

    def answer(self, mem: BudgetMem, item: EvalItem) -> QueryResult:
        return mem.query_packed(item.question, question_date=item.question_date)


BASELINES = ("naive-rag", "full-context", "packed-rag")


def make_system(
    strategy: str, policy: str, *, seed: int = 0, cost_weight: float | None = None, target_usd: float | None = None
) -> System:
    """``policy``: low | mid | high | random | a per-module map | router:PATH | rules[:PATH] |
    escalate:CHEAP>COSTLY@T | naive-rag | full-context | packed-rag."""
    text = policy.strip().lower()
    if target_usd is not None and (text in BASELINES or not (text.startswith(("router:", "escalate:")))):
        raise NoCostKnobError(
            "target-cost mode needs a router family or an escalation policy",
            hint="use --policy router:DIR (a budgetmem frontier directory) or escalate:mid>high@0.5",
        )
    if text == "naive-rag":
        return NaiveRAG()
    if text == "packed-rag":
        return PackedRAG()
    if text == "full-context":
        return FullContext()
    if text.startswith("router:"):
        path = Path(policy.strip()[len("router:") :])
        if not path.exists():
            raise InputError(f"router checkpoint {path} not found", hint="train one with budgetmem train")
        return PipelineSystem(strategy, f"router:{path}", cost_weight, target_usd)
    if text.startswith("escalate:"):
        from budgetmem.router.escalate import Calibration, parse_escalation

        # Fail early on a bad spec; each worker's BudgetMem loads the real calibration.
        parse_escalation(policy, lambda p: _check_simple(p, seed), calibration=Calibration(0.0, {}))
        return PipelineSystem(strategy, policy.strip(), cost_weight, target_usd)
    if text == "rules" or text.startswith("rules:"):
        _check_simple(policy, seed)
        return PipelineSystem(strategy, policy.strip(), cost_weight)
    return PipelineSystem(strategy, parse_policy(policy, seed=seed), cost_weight)


def _check_simple(policy: str, seed: int) -> Policy:
    """Validate a non-escalating policy spec without loading models: a stand-in for routers
    and rule files that exist, the parsed policy otherwise."""
    text = policy.strip()
    if text.lower().startswith("router:"):
        path = Path(text[len("router:") :])
        if not path.exists():
            raise InputError(f"router checkpoint {path} not found", hint="train one with budgetmem train")
        return parse_policy("mid")
    if text.lower().startswith("rules:"):
        path = Path(text[len("rules:") :])
        if not path.is_file():
            raise InputError(f"rules file {path} not found", hint="use --policy rules for the packaged one")
        return parse_policy("mid")
    if text.lower() == "rules":
        return parse_policy("mid")
    return parse_policy(text, seed=seed)
