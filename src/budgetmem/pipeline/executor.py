"""Run one module at one tier: dispatch by the tier's method, record the ledger line,
consult the cache, and fall back visibly when an LLM's output cannot be parsed.

Fallback (documented behaviour): when an LLM tier's output still fails to parse after its
one repair, the module returns what its implementation-LOW computation returns for the same
input, and the step records ``parse_status="failed"``, ``fallback="rules"`` and the raw
text. A failed parse never turns into a silent empty result.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

from budgetmem.pipeline.cache import ModuleCache, cache_key, source_tags
from budgetmem.pipeline.context import RunContext
from budgetmem.pipeline.stages import Stage
from budgetmem.pipeline.tiers import TierSpec, provider_of, tier_spec
from budgetmem.pipeline.types import STRATEGIES, CallRecord, ModuleInput, ModuleResult, StepRecord, Tier

__all__ = ["run_step", "step_key", "IMPLEMENTATION_VERSION"]

IMPLEMENTATION_VERSION = "impl-5"
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


def step_key(stage: Stage, spec: TierSpec, inp: ModuleInput, ctx: RunContext) -> str:
    """The identity of one step's computation (the module cache's key; escalation's reuse key)."""
    return _step_key(stage, spec, _model_of(spec, ctx), inp, ctx)


def _step_key(stage: Stage, spec: TierSpec, model: str | None, inp: ModuleInput, ctx: RunContext) -> str:
    # What is computed, not which tier label chose it: on the embedded ladder implementation
    # HIGH, reasoning LOW and capacity MID are one direct prompt on one model (routing paper
    # §4.2), and a cache shared by the three strategies pays for it once.
    return cache_key(["step", spec.module, *_computation(stage, spec, model, inp, ctx)])


def _labelled_keys(stage: Stage, spec: TierSpec, model: str | None, inp: ModuleInput, ctx: RunContext) -> Iterator[str]:
    """The keys cache files written before the step key dropped the tier label hold this
    computation under: one per (strategy, tier) that runs it, so those files keep serving.
    A generator: the cache draws on it only after the step key missed."""
    s = ctx.settings
    provider = provider_of(spec, s.module_llm, s.ladder) if spec.method == "llm" else None
    rest = _computation(stage, spec, model, inp, ctx)
    for o in (tier_spec(strategy, spec.module, tier) for strategy in STRATEGIES for tier in Tier):
        if (o.method, o.behaviour) == (spec.method, spec.behaviour) and (
            provider is None or provider_of(o, s.module_llm, s.ladder) == provider
        ):
            yield cache_key([o.strategy, o.module, o.tier.name, *rest])


def _computation(stage: Stage, spec: TierSpec, model: str | None, inp: ModuleInput, ctx: RunContext) -> list[Any]:
    s = ctx.settings
    version = stage.version if spec.method == "llm" else IMPLEMENTATION_VERSION
    return [spec.method, spec.behaviour, model, version, s.layout, s.filter_keep, s.filter_tokens, s.max_facts,
            _input_key(inp)]  # fmt: skip


def _model_of(spec: TierSpec, ctx: RunContext) -> str | None:
    if spec.method == "encoder":
        return ctx.encoder.name
    if spec.method == "llm":
        return ctx.llm_for(spec).name
    return None


def run_step(
    stage: Stage, spec: TierSpec, inp: ModuleInput, ctx: RunContext, cache: ModuleCache | None
) -> tuple[ModuleResult, StepRecord]:
    """``stage`` at the tier ``spec`` on ``inp``: its result and ledger line."""
    module = stage.tiers
    model = _model_of(spec, ctx)
    record = StepRecord(module=spec.module, tier=spec.tier.name, strategy=spec.strategy, method=spec.method, model=model)
    key = _step_key(stage, spec, model, inp, ctx) if cache is not None else None
    wall0, cpu0 = time.perf_counter(), time.process_time()

    cached = cache.get(key, _labelled_keys(stage, spec, model, inp, ctx)) if cache is not None and key is not None else None
    if cached is not None:
        result = stage.output.load(cached["result"], inp)
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
            stage,
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
            result = stage.output.to_result(outcome.value, inp, ctx.settings)
    record.wall_s = time.perf_counter() - wall0
    record.cpu_s = time.process_time() - cpu0

    if cache is not None and key is not None:
        # Tagged with the chunks it read (the summary's facts came from the same chunks), so
        # forgetting a chunk finds this entry.
        cache.put(
            key,
            {
                "result": stage.output.dump(result, inp),
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
