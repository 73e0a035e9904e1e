"""Run one module at one tier: dispatch by the tier's method, record the ledger line,
consult the cache, and fall back visibly when an LLM's output cannot be parsed.

Fallback (documented behaviour): when an LLM tier's output still fails to parse after its
one repair, the module returns what its implementation-LOW computation returns for the same
input, and the step records ``parse_status="failed"``, ``fallback="rules"`` and the raw
text. A failed parse never turns into a silent empty result.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from budgetmem.pipeline.cache import ModuleCache, cache_key, source_tags
from budgetmem.pipeline.context import RunContext
from budgetmem.pipeline.modules import get_module
from budgetmem.pipeline.tiers import TierSpec
from budgetmem.pipeline.types import (
    CallRecord,
    FactsResult,
    FilterResult,
    ModuleInput,
    ModuleResult,
    ScoredChunk,
    StepRecord,
    SummaryResult,
)

__all__ = ["run_step", "IMPLEMENTATION_VERSION"]

IMPLEMENTATION_VERSION = "impl-1"
"""Version of the rules / encoder tiers; part of their cache key (bump when they change)."""


def _input_key(inp: ModuleInput) -> dict[str, Any]:
    return {
        "query": inp.query,
        "question_date": inp.question_date,
        "chunks": [
            [c.chunk.text, c.chunk.session_id, c.chunk.session_date, list(c.chunk.dia_ids), round(c.score, 6)]
            for c in inp.chunks
        ],
        "facts": {k: list(v) for k, v in sorted(inp.facts.items())},
    }


def _step_key(spec: TierSpec, model: str | None, inp: ModuleInput, ctx: RunContext) -> str:
    from budgetmem.pipeline.prompts import PROMPT_VERSION

    s = ctx.settings
    version = PROMPT_VERSION if spec.method == "llm" else IMPLEMENTATION_VERSION
    return cache_key(
        [spec.strategy, spec.module, spec.tier.name, spec.method, spec.behaviour, model, version,
         s.layout, s.filter_keep, s.max_facts, _input_key(inp)]
    )  # fmt: skip


def _to_result(module: str, value: Any, inp: ModuleInput, ctx: RunContext) -> ModuleResult:
    """Turn a parsed LLM value into the module's typed result (the contract of types.py)."""
    if module == "filter":
        # Scores 0-10 per memory, in order (App. C.5 contract) -> ranked top-k, scores in [0, 1].
        order = sorted(range(len(inp.chunks)), key=lambda i: (-float(value[i]), i))
        kept = order[: ctx.settings.filter_keep]
        return FilterResult(tuple(ScoredChunk(inp.chunks[i].chunk, float(value[i]) / 10.0) for i in kept))
    if module == "summary":
        return SummaryResult(str(value).strip())
    facts = list(dict.fromkeys(str(v).strip() for v in value if str(v).strip()))
    return FactsResult(tuple(facts[: ctx.settings.max_facts]))


def _dump(module: str, result: ModuleResult, inp: ModuleInput) -> dict[str, Any]:
    if isinstance(result, FilterResult):
        index = {_identity(c): i for i, c in enumerate(inp.chunks)}
        return {"kept": [[index[_identity(c)], c.score] for c in result.chunks]}
    if isinstance(result, FactsResult):
        return {"facts": list(result.facts)}
    return {"text": result.text}


def _identity(c: ScoredChunk) -> tuple[object, ...]:
    return (c.chunk.id, c.chunk.session_id, c.chunk.position, c.chunk.text)


def _load(module: str, data: dict[str, Any], inp: ModuleInput) -> ModuleResult:
    if "kept" in data:
        return FilterResult(tuple(ScoredChunk(inp.chunks[i].chunk, float(s)) for i, s in data["kept"]))
    if "facts" in data:
        return FactsResult(tuple(data["facts"]))
    return SummaryResult(data["text"])


def _model_of(spec: TierSpec, ctx: RunContext) -> str | None:
    if spec.method == "encoder":
        return ctx.encoder.name
    if spec.method == "llm":
        return ctx.llm_for(spec).name
    return None


def run_step(spec: TierSpec, inp: ModuleInput, ctx: RunContext, cache: ModuleCache | None) -> tuple[ModuleResult, StepRecord]:
    module = get_module(spec.module)
    model = _model_of(spec, ctx)
    record = StepRecord(module=spec.module, tier=spec.tier.name, strategy=spec.strategy, method=spec.method, model=model)
    key = _step_key(spec, model, inp, ctx) if cache is not None else None
    wall0, cpu0 = time.perf_counter(), time.process_time()

    cached = cache.get(key) if cache is not None and key is not None else None
    if cached is not None:
        result = _load(spec.module, cached["result"], inp)
        saved = cached["record"]
        record.calls = [CallRecord(**c) for c in saved["calls"]]
        record.parse_status = saved["parse_status"]
        record.fallback = saved["fallback"]
        record.raw_output = saved["raw_output"]
        record.note = saved.get("note")
        record.cache_hit = True
        record.wall_s = time.perf_counter() - wall0
        record.cpu_s = time.process_time() - cpu0
        return result, record

    if spec.method == "rules":
        result = module.rules(inp, ctx)
    elif spec.method == "encoder":
        result = module.encoder(inp, ctx)
    else:
        from budgetmem.pipeline.behaviours import run_llm

        outcome = run_llm(
            ctx.llm_for(spec),
            spec.module,
            inp,
            behaviour=spec.behaviour,
            layout=ctx.settings.layout,
            max_facts=ctx.settings.max_facts,
        )
        record.calls = list(outcome.calls)
        record.parse_status = outcome.parse_status
        record.note = outcome.note
        record.raw_output = outcome.raw_output
        if outcome.value is None:
            record.fallback = "rules"
            result = module.rules(inp, ctx)
        else:
            result = _to_result(spec.module, outcome.value, inp, ctx)
    record.wall_s = time.perf_counter() - wall0
    record.cpu_s = time.process_time() - cpu0

    if cache is not None and key is not None:
        # Tagged with the chunks it read (the summary's facts came from the same chunks), so
        # forgetting a chunk finds this entry.
        cache.put(
            key,
            {
                "result": _dump(spec.module, result, inp),
                "record": {
                    "calls": [asdict(c) for c in record.calls],
                    "parse_status": record.parse_status,
                    "fallback": record.fallback,
                    "raw_output": record.raw_output,
                    "note": record.note,
                },
            },
            sources=source_tags(c.chunk for c in inp.chunks),
        )
    return result, record
