"""The pipeline: filter -> {entity, temporal, topic} -> summary, then the answer
(routing paper §4.1, Eq. 3-6). A policy picks each module's tier from the state.

The stages and their order come from the stage table (stages.py); this file knows only
how the three kinds of input flow: a stage reading the *candidates* refines them into the
chunks the later stages read (Eq. 4); consecutive stages reading the *chunks* run side by
side on the same input (Eq. 5); a stage reading the *facts* writes the memory (Eq. 6).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

from budgetmem.chunk import Chunk
from budgetmem.encoder import Encoder
from budgetmem.errors import ConfigError, LLMError
from budgetmem.llm import LLM
from budgetmem.pipeline.answers import (
    ANSWER_PROMPT_VERSION,
    STYLES,
    answer_grammar,
    build_shorten_prompt,
    question_kind,
    shape_answer,
    style_rules,
    word_count,
)
from budgetmem.pipeline.cache import ModuleCache, cache_key, source_tags
from budgetmem.pipeline.context import RunContext
from budgetmem.pipeline.executor import run_step, step_key
from budgetmem.pipeline.outputs import FACT_LIST, SCORES, TEXT
from budgetmem.pipeline.policy import Policy, PolicyState
from budgetmem.pipeline.stages import STAGES, Stage
from budgetmem.pipeline.tiers import TierSpec, provider_of, tier_spec
from budgetmem.pipeline.trace import QueryResult
from budgetmem.pipeline.types import (
    CallRecord,
    FactsResult,
    FilterResult,
    ModuleInput,
    ModuleResult,
    ScoredChunk,
    StepRecord,
    SummaryResult,
    Tier,
    charge,
    paid_calls,
)
from budgetmem.settings import PipelineSettings

__all__ = ["Pipeline", "StagePlan", "Reuse", "llm_resolver", "ANSWER_MAX_TOKENS"]

Reuse = dict[str, tuple[object, StepRecord]]
"""Step key -> (result, ledger line) of steps already run for this query by an earlier pass
(escalation): a later pass that runs the same step on the same input takes the result and
pays nothing again, whether or not the on-disk module cache is on."""


def _reused(rec: StepRecord) -> StepRecord:
    """The ledger line of a step taken from an earlier pass: no calls (they were paid, and
    are shown, in that pass), marked as a cache hit."""
    return StepRecord(
        rec.module, rec.tier, rec.strategy, rec.method, model=rec.model, parse_status=rec.parse_status,
        fallback=rec.fallback, raw_output=rec.raw_output, note="reused from an earlier pass of this query",
        cache_hit=True,
    )  # fmt: skip


@dataclass(frozen=True)
class StagePlan:
    """A stage as this pipeline runs it: what it reads and its three tiers under the strategy."""

    module: str
    reads: str
    tiers: dict[str, TierSpec]


# Answer length caps per dataset (routing paper Appendix A.2, Table 4: 32 for LoCoMo,
# 512 for LongMemEval and HotpotQA); the style table holds them.
ANSWER_MAX_TOKENS = {name: rules.max_tokens for name, rules in STYLES.items()}


def _check_stages(stages: Sequence[Stage]) -> None:
    names = [s.name for s in stages]
    if len(set(names)) != len(names):
        raise ConfigError(f"stage names must be unique, got {', '.join(names)}")
    if not stages or stages[-1].output is not TEXT:
        raise ConfigError("the last stage must write the memory (a text output such as the summary's)")
    for s in stages:
        expected = {"candidates": SCORES, "chunks": FACT_LIST, "facts": TEXT}[s.reads]
        if s.output is not expected:
            raise ConfigError(f"stage {s.name!r} reads {s.reads} but its output does not fit that place in the flow")


def _groups(stages: Sequence[Stage]) -> list[list[int]]:
    """Stage indices in run order; consecutive chunk readers form one group (run side by side)."""
    groups: list[list[int]] = []
    for i, s in enumerate(stages):
        if s.reads == "chunks" and groups and stages[groups[-1][-1]].reads == "chunks":
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


class Pipeline:
    def __init__(
        self,
        encoder: Encoder,
        settings: PipelineSettings,
        llm: Callable[[str], LLM],
        cache: ModuleCache | None = None,
        stages: Sequence[Stage] = STAGES,
    ) -> None:
        """``llm`` maps a provider string to an LLM (the registry, or test doubles);
        ``stages``: the module table to run (the standard five by default)."""
        _check_stages(stages)
        self.settings = settings
        self.cache = cache
        self.table: tuple[Stage, ...] = tuple(stages)
        self._llm = llm
        self.ctx = RunContext(encoder=encoder, settings=settings, llm_for=self._llm_for)

    def _llm_for(self, spec: TierSpec) -> LLM:
        return self._llm(provider_of(spec, self.settings.module_llm, self.settings.ladder))

    @property
    def answer_model(self) -> LLM:
        return self._llm(self.settings.answer_llm)

    @property
    def modules(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.table)

    def stages(self) -> list[StagePlan]:
        """The stages in order, with what each reads and its three tiers under the strategy."""
        return [
            StagePlan(s.name, s.shows, {t.name: tier_spec(self.settings.strategy, s.name, t) for t in Tier})
            for s in self.table
        ]

    # ------------------------------------------------------------------ run
    def _decide(self, policy: Policy, index: int, inp: ModuleInput, cost_weight: float | None) -> TierSpec:
        name = self.table[index].name
        tier = policy.decide(PolicyState(inp.query, name, index, inp, cost_weight))
        return tier_spec(self.settings.strategy, name, Tier(tier))

    def _run_group(
        self, group: list[int], specs: list[TierSpec], inp: ModuleInput, reuse: Reuse | None = None
    ) -> list[tuple[ModuleResult, StepRecord]]:
        lock = threading.Lock()

        def one(k: int) -> tuple[ModuleResult, StepRecord]:
            stage = self.table[group[k]]
            if reuse is None:
                return run_step(stage, specs[k], inp, self.ctx, self.cache)
            key = step_key(stage, specs[k], inp, self.ctx)
            with lock:
                earlier = reuse.get(key)
            if earlier is not None:
                return earlier[0], _reused(earlier[1])  # type: ignore[return-value]
            result, rec = run_step(stage, specs[k], inp, self.ctx, self.cache)
            with lock:
                reuse[key] = (result, rec)
            return result, rec

        done: list[tuple[ModuleResult, StepRecord] | None] = [None] * len(group)
        failed: list[LLMError] = []

        def attempt(k: int) -> None:
            try:
                done[k] = one(k)
            except LLMError as exc:
                failed.append(exc)

        if len(group) > 1 and self.settings.concurrent:
            # Every sibling runs to its end, so what each paid is known when one fails.
            with ThreadPoolExecutor(max_workers=len(group), thread_name_prefix="budgetmem-extract") as pool:
                list(pool.map(attempt, range(len(group))))
        else:
            for k in range(len(group)):
                attempt(k)
                if failed:
                    break
        if failed:
            first = failed[0]
            # The siblings that failed too paid for their calls as well; the first error speaks for all.
            charge(first, [*paid_calls(r for _, r in filter(None, done)), *(c for e in failed[1:] for c in e.spent)])
            raise first
        return done  # type: ignore[return-value]  # no failure: every slot is filled

    def run(
        self,
        query: str,
        candidates: Sequence[ScoredChunk],
        policy: Policy,
        *,
        cost_weight: float | None = None,
        question_date: str | None = None,
        answer: bool = True,
        reuse: Reuse | None = None,
    ) -> QueryResult:
        """``reuse``: steps an earlier pass of this query ran (see :data:`Reuse`); this run
        adds its own to it."""
        started = time.perf_counter()
        steps: list[StepRecord] = []
        chunks: tuple[ScoredChunk, ...] = tuple(candidates)
        facts: dict[str, tuple[str, ...]] = {}
        memory = ""
        try:
            for group in _groups(self.table):
                reads = self.table[group[0]].reads
                inp = ModuleInput(
                    query, tuple(candidates) if reads == "candidates" else chunks,
                    facts=dict(facts) if reads == "facts" else {}, question_date=question_date,
                )  # fmt: skip
                specs = [self._decide(policy, i, inp, cost_weight) for i in group]  # decided in order: reproducible
                for i, (result, rec) in zip(group, self._run_group(group, specs, inp, reuse)):
                    steps.append(rec)
                    if isinstance(result, FilterResult):  # Eq. 4: the filter refines the candidates
                        chunks = result.chunks
                    elif isinstance(result, FactsResult):  # Eq. 5: each extractor's facts, by name
                        facts[self.table[i].name] = result.facts
                    elif isinstance(result, SummaryResult):  # Eq. 6: the summary is the memory m
                        memory = result.text

            answer_text, answer_step = (
                self.answer(query, memory, question_date, sources=[c.chunk for c in candidates], reuse=reuse)
                if answer
                else ("", StepRecord("answer", "-", "-", "llm"))
            )
        except LLMError as exc:
            charge(exc, paid_calls(steps))  # the steps that finished before the failure were paid
            raise
        cache = {}
        if self.cache is not None:
            # Counted from this query's own steps, not from the shared cache's counters, which
            # other queries running at the same time (thread executor) move too.
            looked_up = [*steps, answer_step] if answer else steps
            hits = sum(s.cache_hit for s in looked_up)
            cache = {"hits": hits, "misses": len(looked_up) - hits}
        note = getattr(policy, "trace_note", None)  # e.g. the rule router's question type and map row
        context = {"routing": note(query)} if callable(note) else {}
        return QueryResult(
            question=query,
            answer=answer_text,
            memory=memory,
            strategy=self.settings.strategy,
            policy=policy.name,
            candidates=tuple(candidates),
            filtered=chunks,
            facts=facts,
            steps=steps,
            answer_step=answer_step,
            wall_s=time.perf_counter() - started,
            cost_weight=cost_weight,
            cache=cache,
            context=context,
        )

    def answer(
        self,
        query: str,
        memory: str,
        question_date: str | None = None,
        *,
        sources: Iterable[Chunk] = (),
        reuse: Reuse | None = None,
    ) -> tuple[str, StepRecord]:
        """The answer model reads (query, memory) only: y = f_ans(q, m), held to the style's
        short-answer contract (:mod:`budgetmem.pipeline.answers`).

        Cached like a module step (key: model, prompt version, grammar, the exact prompt), so
        router training, which revisits the same memories, pays for each answer once.
        ``sources``: the chunks the memory was made from (the cache entry is forgotten with them)."""
        from budgetmem.pipeline.prompts import build_answer_prompt

        prompt = build_answer_prompt(query, memory, style=self.settings.answer_style, question_date=question_date)
        return self.short_answer(query, prompt, version=ANSWER_PROMPT_VERSION, sources=sources, reuse=reuse)

    def short_answer(
        self,
        query: str,
        prompt: str,
        *,
        version: str,
        extra_tokens: int = 0,
        cited: bool = False,
        clean: Callable[[str], str] = lambda text: text,
        sources: Iterable[Chunk] = (),
        reuse: Reuse | None = None,
    ) -> tuple[str, StepRecord]:
        """Ask ``prompt`` and return the short answer the style asks for, with its ledger line.

        One path for every system (pipeline and baselines), so comparisons stay fair: the
        question's kind sets a grammar where the backend takes one, the reply is shaped by the
        rules, and a reply still longer than the style allows is shortened by a second, cheap
        call on the answer model (a ``shorten`` line in the same step's ledger). The raw reply
        is kept in ``raw_output``; a reply with no answer in it gives ``""`` with
        ``parse_status="failed"`` (it is in ``QueryResult.parse_failures``). ``cited``: the reply ends with ``[CITE: ...]`` markers
        (packed-rag), which the grammar then leaves room for; ``clean`` removes them before
        the answer is read."""
        from budgetmem.pipeline.prompts import extract_answer

        style = self.settings.answer_style
        rules = style_rules(style)
        kind = question_kind(query, style)
        llm = self.answer_model
        grammar = answer_grammar(kind, rules.max_words, cited=cited) if self.settings.answer_grammar and llm.supports_grammar else None
        raw, record = self.answer_call(
            prompt, version=version, max_tokens=rules.max_tokens + extra_tokens, grammar=grammar, sources=sources,
            reuse=reuse,
        )
        answer = shape_answer(extract_answer(clean(raw), style), kind)
        notes = [f"answer kind: {kind}" + (" (grammar)" if grammar else "")]
        if rules.short and self.settings.answer_shorten and word_count(answer) > rules.max_words:
            long_answer = answer
            short_prompt = build_shorten_prompt(query, long_answer, kind, rules.max_words)
            short_grammar = answer_grammar(kind, rules.max_words) if llm.supports_grammar else None
            try:
                text, second = self.answer_call(
                    short_prompt, version=version, max_tokens=rules.max_tokens, grammar=short_grammar,
                    sources=sources, purpose="shorten", reuse=reuse,
                )  # fmt: skip
            except LLMError as exc:
                charge(exc, paid_calls([record]))
                raise
            shortened = shape_answer(extract_answer(text, style), kind)
            record.calls.extend(second.calls)
            record.cache_hit = record.cache_hit and second.cache_hit
            record.wall_s += second.wall_s
            record.cpu_s += second.cpu_s
            if shortened and word_count(shortened) < word_count(long_answer):
                answer = shortened
                notes.append(f"shortened by a second call from {word_count(long_answer)} words")
            else:
                notes.append("the shorten call gave nothing shorter; the long answer is kept")
        record.raw_output = raw
        record.parse_status = "ok"
        if not answer.strip():
            # A reply with no answer in it (only tags, only whitespace) is a failure the ledger
            # shows, never a blank presented as the answer.
            record.parse_status = "failed"
            notes.append("the reply held no answer")
        record.note = "; ".join(notes)
        return answer, record

    def answer_call(
        self,
        prompt: str,
        *,
        version: str,
        max_tokens: int,
        grammar: str | None = None,
        sources: Iterable[Chunk] = (),
        purpose: str = "answer",
        reuse: Reuse | None = None,
    ) -> tuple[str, StepRecord]:
        """One answer-model call on a ready prompt: the raw reply and its ledger line.

        Shared by :meth:`short_answer` and other answer formats (e.g. cited answers,
        selective-write paper §III-H), so they all get the same cache and cost record.
        ``version`` names the prompt family in the cache key: bump it when its wording
        changes. ``sources``: the chunks the prompt shows, or was made from; an entry without
        any is dropped by every forget, since nothing shows it holds no forgotten text."""
        llm = self.answer_model
        wall0, cpu0 = time.perf_counter(), time.process_time()
        record = StepRecord("answer", "-", self.settings.strategy, "llm", model=llm.name, parse_status="n/a")
        # The answer's mean token log-probability is one of escalation's confidence signals;
        # the key says whether it was measured, so an entry without it is not taken for one with.
        scored = llm.supports_logprobs and purpose == "answer"
        parts: list[object] = ["answer", llm.name, version, max_tokens, prompt]
        if grammar is not None:  # keys of grammar-free calls stay as they were
            parts.append(grammar)
        if scored:
            parts.append("logprob")
        if reuse is not None:
            earlier = reuse.get(cache_key(parts))
            if earlier is not None:  # the same answer prompt in an earlier pass of this query
                return str(earlier[0]), _reused(earlier[1])
        key = cache_key(parts) if self.cache is not None else None
        saved = self.cache.get(key) if self.cache is not None and key is not None else None
        if saved is not None:
            text = saved["text"]
            record.calls = [CallRecord(**c) for c in saved["calls"]]
            record.cache_hit = True
        else:
            try:
                if scored:
                    out = llm.complete(prompt, max_tokens=max_tokens, grammar=grammar, logprobs=True)
                else:
                    out = llm.complete(prompt, max_tokens=max_tokens, grammar=grammar)
            except LLMError as exc:
                charge(exc, [], purpose)
                raise
            text = out.text
            record.calls = [CallRecord.from_completion(purpose, out)]
            if self.cache is not None and key is not None:
                self.cache.put(key, {"text": text, "calls": [asdict(c) for c in record.calls]}, source_tags(sources))
        record.wall_s = time.perf_counter() - wall0
        record.cpu_s = time.process_time() - cpu0
        if reuse is not None:
            reuse[cache_key(parts)] = (text, record)
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
