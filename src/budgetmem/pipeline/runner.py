"""The pipeline: filter -> {entity, temporal, topic} -> summary, then the answer
(routing paper §4.1, Eq. 3-6). A policy picks each module's tier from the state."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

from budgetmem.encoder import Encoder
from budgetmem.chunk import Chunk
from budgetmem.llm import LLM
from budgetmem.pipeline.cache import ModuleCache, cache_key, source_tags
from budgetmem.pipeline.context import RunContext
from budgetmem.pipeline.executor import run_step
from budgetmem.pipeline.policy import Policy, PolicyState
from budgetmem.pipeline.tiers import TierSpec, tier_spec
from budgetmem.pipeline.trace import QueryResult
from budgetmem.pipeline.types import (
    EXTRACTORS,
    MODULES,
    CallRecord,
    FactsResult,
    FilterResult,
    ModuleInput,
    ScoredChunk,
    StepRecord,
    SummaryResult,
    Tier,
)
from budgetmem.settings import PipelineSettings

__all__ = ["Pipeline", "Stage", "llm_resolver"]


@dataclass(frozen=True)
class Stage:
    module: str
    reads: str
    tiers: dict[str, TierSpec]


# Answer length caps per dataset (routing paper Appendix A.2, Table 4: 32 for LoCoMo,
# 512 for LongMemEval and HotpotQA).
ANSWER_MAX_TOKENS = {"locomo": 32, "longmemeval": 512, "hotpotqa": 512, "plain": 128}

_READS = {
    "filter": "query + retrieved candidate chunks",
    "entity": "query + filtered chunks",
    "temporal": "query + filtered chunks",
    "topic": "query + filtered chunks",
    "summary": "query + entity / temporal / topic facts (+ filtered chunks)",
}


class Pipeline:
    def __init__(
        self,
        encoder: Encoder,
        settings: PipelineSettings,
        llm: Callable[[str], LLM],
        cache: ModuleCache | None = None,
    ) -> None:
        """``llm`` maps a provider string to an LLM (the registry, or test doubles)."""
        self.settings = settings
        self.cache = cache
        self._llm = llm
        self.ctx = RunContext(encoder=encoder, settings=settings, llm_for=self._llm_for)

    def _llm_for(self, spec: TierSpec) -> LLM:
        s = self.settings
        if spec.rung in ("small", "medium", "large"):
            return self._llm(s.ladder[("small", "medium", "large").index(spec.rung)])
        return self._llm(s.module_llm)

    @property
    def answer_model(self) -> LLM:
        return self._llm(self.settings.answer_llm)

    def stages(self) -> list[Stage]:
        """The stages in order, with what each reads and its three tiers under the strategy."""
        return [
            Stage(m, _READS[m], {t.name: tier_spec(self.settings.strategy, m, t) for t in Tier}) for m in MODULES
        ]

    # ------------------------------------------------------------------ run
    def _decide(self, policy: Policy, module: str, inp: ModuleInput, cost_weight: float | None) -> TierSpec:
        tier = policy.decide(PolicyState(inp.query, module, MODULES.index(module), inp, cost_weight))
        return tier_spec(self.settings.strategy, module, Tier(tier))

    def run(
        self,
        query: str,
        candidates: Sequence[ScoredChunk],
        policy: Policy,
        *,
        cost_weight: float | None = None,
        question_date: str | None = None,
        answer: bool = True,
    ) -> QueryResult:
        started = time.perf_counter()
        steps: list[StepRecord] = []

        # Eq. 4: the filter refines the candidates.
        inp = ModuleInput(query, tuple(candidates), question_date=question_date)
        filtered, rec = run_step(self._decide(policy, "filter", inp, cost_weight), inp, self.ctx, self.cache)
        assert isinstance(filtered, FilterResult)
        steps.append(rec)

        # Eq. 5: the three extractors read the same filtered chunks, independently.
        mid = ModuleInput(query, filtered.chunks, question_date=question_date)
        specs = [self._decide(policy, m, mid, cost_weight) for m in EXTRACTORS]  # decided in order: reproducible
        if self.settings.concurrent:
            with ThreadPoolExecutor(max_workers=len(EXTRACTORS), thread_name_prefix="budgetmem-extract") as pool:
                outs = list(pool.map(lambda spec: run_step(spec, mid, self.ctx, self.cache), specs))
        else:
            outs = [run_step(spec, mid, self.ctx, self.cache) for spec in specs]
        facts: dict[str, tuple[str, ...]] = {}
        for m, (result, rec) in zip(EXTRACTORS, outs):
            assert isinstance(result, FactsResult)
            facts[m] = result.facts
            steps.append(rec)

        # Eq. 6: the summary fuses them into the memory m.
        sum_in = ModuleInput(query, filtered.chunks, facts=facts, question_date=question_date)
        summary, rec = run_step(self._decide(policy, "summary", sum_in, cost_weight), sum_in, self.ctx, self.cache)
        assert isinstance(summary, SummaryResult)
        steps.append(rec)

        answer_text, answer_step = (
            self.answer(query, summary.text, question_date, sources=[c.chunk for c in candidates])
            if answer
            else ("", StepRecord("answer", "-", "-", "llm"))
        )
        cache = {}
        if self.cache is not None:
            # Counted from this query's own steps, not from the shared cache's counters, which
            # other queries running at the same time (thread executor) move too.
            looked_up = [*steps, answer_step] if answer else steps
            hits = sum(s.cache_hit for s in looked_up)
            cache = {"hits": hits, "misses": len(looked_up) - hits}
        return QueryResult(
            question=query,
            answer=answer_text,
            memory=summary.text,
            strategy=self.settings.strategy,
            policy=policy.name,
            candidates=tuple(candidates),
            filtered=filtered.chunks,
            facts=facts,
            steps=steps,
            answer_step=answer_step,
            wall_s=time.perf_counter() - started,
            cost_weight=cost_weight,
            cache=cache,
        )

    def answer(
        self, query: str, memory: str, question_date: str | None = None, *, sources: Iterable[Chunk] = ()
    ) -> tuple[str, StepRecord]:
        """The answer model reads (query, memory) only: y = f_ans(q, m).

        Cached like a module step (key: model, prompt version, the exact prompt), so router
        training, which revisits the same memories, pays for each answer once. ``sources``:
        the chunks the memory was made from (the cache entry is forgotten with them)."""
        from budgetmem.pipeline.prompts import PROMPT_VERSION, build_answer_prompt, extract_answer

        prompt = build_answer_prompt(query, memory, style=self.settings.answer_style, question_date=question_date)
        max_tokens = ANSWER_MAX_TOKENS[self.settings.answer_style]
        text, record = self.answer_call(prompt, version=PROMPT_VERSION, max_tokens=max_tokens, sources=sources)
        return extract_answer(text, self.settings.answer_style), record

    def answer_call(
        self, prompt: str, *, version: str, max_tokens: int, sources: Iterable[Chunk] = ()
    ) -> tuple[str, StepRecord]:
        """One answer-model call on a ready prompt: the raw reply and its ledger line.

        Shared by :meth:`answer` and other answer formats (e.g. cited answers, selective-write
        paper §III-H), so they all get the same cache and cost record. ``version`` names the
        prompt family in the cache key: bump it when its wording changes. ``sources``: the
        chunks the prompt shows, or was made from; an entry without any is dropped by every
        forget, since nothing shows it holds no forgotten text."""
        llm = self.answer_model
        wall0, cpu0 = time.perf_counter(), time.process_time()
        record = StepRecord("answer", "-", self.settings.strategy, "llm", model=llm.name, parse_status="n/a")
        key = cache_key(["answer", llm.name, version, max_tokens, prompt]) if self.cache is not None else None
        saved = self.cache.get(key) if self.cache is not None and key is not None else None
        if saved is not None:
            text = saved["text"]
            record.calls = [CallRecord(**c) for c in saved["calls"]]
            record.cache_hit = True
        else:
            out = llm.complete(prompt, max_tokens=max_tokens)
            text = out.text
            record.calls = [CallRecord.from_completion("answer", out)]
            if self.cache is not None and key is not None:
                self.cache.put(key, {"text": text, "calls": [asdict(c) for c in record.calls]}, source_tags(sources))
        record.wall_s = time.perf_counter() - wall0
        record.cpu_s = time.process_time() - cpu0
        return text, record


def llm_resolver(overrides: Mapping[str, LLM] | None, make: Callable[[str], LLM]) -> Callable[[str], LLM]:
    """Provider string -> LLM, building each once; ``overrides`` wins (test doubles, custom clients)."""
    built: dict[str, LLM] = dict(overrides or {})
    lock = threading.Lock()

    def resolve(provider: str) -> LLM:
        with lock:  # the extractors run in threads; build each backend once
            if provider not in built:
                built[provider] = make(provider)
            return built[provider]

    return resolve
