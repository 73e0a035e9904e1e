"""Pipeline logic with a scripted fake LLM (ScriptedFakeLLM): stages, tiers per strategy,
the cost ledger, fallbacks, caching, concurrency and policies."""

from __future__ import annotations

import json
import re
import threading

import pytest
from conftest import EXAMPLE
from fakes import TEST_PRICE, ScriptedFakeLLM

from budgetmem import BudgetMem, Settings
from budgetmem.errors import ConfigError
from budgetmem.pipeline.policy import FixedPolicy, PolicyState, RandomPolicy, parse_policy
from budgetmem.pipeline.prompts import task_text
from budgetmem.pipeline.stages import MODULES
from budgetmem.pipeline.types import ModuleInput, Tier

MODEL = "fake:module"
ANSWER = "fake:answer"


def _module_of(prompt: str) -> str | None:
    return next((m for m in MODULES if task_text(m) in prompt), None)


def smart_script(prompt: str) -> str:
    """Well-formed replies for every module, keyed by what the prompt asks for."""
    module = _module_of(prompt)
    if module is None:
        return "Zakwas"
    if "<plan></plan>" in prompt and "<draft>" not in prompt and "Your plan:" not in prompt:
        return "<plan>- find the bakery name</plan>"
    if module == "filter":
        n = len(re.findall(r"<memory index=", prompt))
        scores = [10 if "Zakwas" in block else 1 for block in re.split(r"<memory index=", prompt)[1:]]
        assert len(scores) == n
        return "<answer>" + json.dumps(scores) + "</answer>"
    if module == "summary":
        return "<answer>Tomasz's bakery is called Zakwas (2 September 2024).</answer>"
    return "<answer>" + json.dumps([f"{module} fact: the bakery is Zakwas"]) + "</answer>"


@pytest.fixture
def settings(tmp_path):
    base = Settings().replace(encoder__name="all-minilm-l6-v2", chunking__max_tokens=64, retrieval__top_k=5)
    return base.replace(
        pipeline__module_llm=MODEL,
        pipeline__answer_llm=ANSWER,
        pipeline__ladder=("fake:s", "fake:m", "fake:l"),
        pipeline__cache_path=tmp_path / "cache.sqlite",
    )


@pytest.fixture
def make_mem(tmp_path, minilm):
    """A BudgetMem over the example conversation, sharing the session's encoder."""

    def make(settings, llms, **kw):
        mem = BudgetMem(tmp_path / "m.db", "demo", settings=settings, llms=llms, encoder=minilm, **kw)
        if mem.store.namespace("demo") is None:
            mem.add(EXAMPLE)
        return mem

    return make


def _fakes(script=smart_script):
    names = [MODEL, ANSWER, "fake:s", "fake:m", "fake:l"]
    return {n: ScriptedFakeLLM(n, script) for n in names}


def test_stages_list_modules_and_tiers(tmp_path, settings, make_mem):
    with make_mem(settings, _fakes(), strategy="reasoning") as mem:
        stages = mem.pipeline.stages()
    assert [s.module for s in stages] == list(MODULES)
    assert {t: s.behaviour for t, s in stages[0].tiers.items()} == {"LOW": "direct", "MID": "cot", "HIGH": "reflect"}


def test_implementation_mid_uses_no_llm_and_ledger_adds_up(tmp_path, settings, make_mem):
    llms = _fakes()
    with make_mem(settings, llms, policy="mid") as mem:
        r = mem.query("What did Tomasz name his bakery?")
    assert [s.module for s in r.steps] == list(MODULES)
    assert r.tiers == {m: "MID" for m in MODULES}
    assert all(s.method == "encoder" and s.usd == 0 and not s.calls and s.cpu_s >= 0 for s in r.steps)
    assert llms[MODEL].prompts == []  # no module LLM at MID
    (call,) = r.answer_step.calls
    prompt = llms[ANSWER].prompts[0]
    assert r.memory in prompt  # the answer model reads (query, memory)
    assert call.usd == pytest.approx((len(prompt.split()) * TEST_PRICE.input_per_m + 1 * TEST_PRICE.output_per_m) / 1e6)
    assert r.total_usd == pytest.approx(r.extraction_usd + r.answer_usd) and r.extraction_usd == 0
    assert r.answer == "Zakwas"
    d = r.to_dict()
    assert d["totals"]["answer_usd"] == call.usd and d["price_sources"] == [TEST_PRICE.source]
    assert "query total" in r.table() and "price: test price (scripted fake)" in r.table()


def test_implementation_high_flows_through_the_llm(tmp_path, settings, make_mem):
    llms = _fakes()
    # filter_tokens=0: the filter keeps exactly filter_keep of these short chat chunks
    with make_mem(settings.replace(pipeline__concurrent=False, pipeline__filter_tokens=0), llms, policy="high") as mem:
        r = mem.query("What did Tomasz name his bakery?")
    assert all(s.method == "llm" and s.parse_status == "ok" and len(s.calls) == 1 for s in r.steps)
    assert "Zakwas" in r.filtered[0].chunk.text and r.filtered[0].score == 1.0
    assert len(r.filtered) == settings.pipeline.filter_keep
    assert r.facts == {m: (f"{m} fact: the bakery is Zakwas",) for m in ("entity", "temporal", "topic")}
    assert r.memory == "Tomasz's bakery is called Zakwas (2 September 2024)."
    assert [_module_of(p) for p in llms[MODEL].prompts] == list(MODULES)
    # extractors see the filtered chunks only, with their metadata
    entity_prompt = llms[MODEL].prompts[1]
    assert r.filtered[0].chunk.session_date in entity_prompt and entity_prompt.count("<memory index=") == 3
    expected = sum(c.usd for s in r.steps for c in s.calls)
    assert r.extraction_usd == pytest.approx(expected) and r.extraction_usd > 0


def test_reasoning_high_is_plan_act_reflect(tmp_path, settings, make_mem):
    llms = _fakes()
    with make_mem(settings.replace(pipeline__concurrent=False), llms, strategy="reasoning", policy="high") as mem:
        r = mem.query("What did Tomasz name his bakery?")
    for s in r.steps:
        assert [c.purpose for c in s.calls] == ["plan", "act", "reflect"], s.module
    assert r.memory.startswith("Tomasz's bakery")


def test_capacity_routes_each_tier_to_its_rung(tmp_path, settings, make_mem):
    llms = _fakes()
    with make_mem(settings, llms, strategy="capacity", policy="low,topic=mid,summary=high") as mem:
        r = mem.query("What did Tomasz name his bakery?")
    models = {s.module: s.model for s in r.steps}
    assert models == {"filter": "fake:s", "entity": "fake:s", "temporal": "fake:s", "topic": "fake:m", "summary": "fake:l"}
    assert len(llms["fake:l"].prompts) == 1 and _module_of(llms["fake:l"].prompts[0]) == "summary"


def test_unparseable_output_falls_back_visibly(tmp_path, settings, make_mem):
    def script(prompt: str) -> str:
        return "I cannot do that." if _module_of(prompt) == "entity" else smart_script(prompt)

    with make_mem(settings, _fakes(script), policy="high") as mem:
        r = mem.query("What did Tomasz name his bakery?")
    entity = next(s for s in r.steps if s.module == "entity")
    assert entity.parse_status == "failed" and entity.fallback == "rules"
    assert entity.raw_output and "cannot" in entity.raw_output
    assert len(entity.calls) == 2  # the answer and one repair, both paid and counted
    assert r.facts["entity"], "the rules fallback returns facts, never a silent empty list"


def test_cache_never_pays_twice(tmp_path, settings, make_mem):
    llms = _fakes()
    with make_mem(settings, llms, policy="high") as mem:
        first = mem.query("What did Tomasz name his bakery?")
        n_calls = len(llms[MODEL].prompts)
        second = mem.query("What did Tomasz name his bakery?")
    # five module steps and the answer call
    assert first.cache == {"hits": 0, "misses": 6}
    assert second.cache == {"hits": 6, "misses": 0}
    assert len(llms[MODEL].prompts) == n_calls  # no module or answer call the second time
    assert all(s.cache_hit and s.usd_paid == 0 for s in [*second.steps, second.answer_step])
    assert second.extraction_usd == pytest.approx(first.extraction_usd)
    assert second.answer_usd == pytest.approx(first.answer_usd) and first.answer_usd > 0
    assert first.extraction_usd > 0
    assert second.usd_paid == 0.0 and second.answer == first.answer
    assert second.memory == first.memory and second.filtered == first.filtered


def test_concurrent_and_sequential_agree(tmp_path, settings, make_mem):
    results = []
    for concurrent in (True, False):
        s = settings.replace(pipeline__concurrent=concurrent, pipeline__cache_path=tmp_path / f"c{concurrent}.sqlite")
        with make_mem(s, _fakes(), policy="high") as mem:
            results.append(mem.query("What did Tomasz name his bakery?"))
    a, b = results
    assert (a.facts, a.memory, a.answer) == (b.facts, b.memory, b.answer)


def test_thread_safe_queries(tmp_path, settings, make_mem):
    with make_mem(settings, _fakes(), policy="mid") as mem:
        out: dict[int, str] = {}

        def ask(i: int) -> None:
            out[i] = mem.query("Who is Priya's Portuguese tutor?").memory

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(out) == 3 and len(set(out.values())) == 1


def test_async_queries_run_concurrently_and_match_the_sync_result(settings, make_mem):
    import asyncio

    with make_mem(settings, _fakes(), policy="mid") as mem:
        sync = mem.query("Who is Priya's Portuguese tutor?")

        async def main():
            hits = await mem.asearch("Portuguese tutor", k=2)
            results = await asyncio.gather(*(mem.aquery("Who is Priya's Portuguese tutor?", policy="mid") for _ in range(3)))
            return hits, results

        hits, results = asyncio.run(main())
    assert len(hits) == 2 and all(h.chunk.text for h in hits)
    assert [r.memory for r in results] == [sync.memory] * 3 and all(r.answer == sync.answer for r in results)


def test_policies():
    state = PolicyState("q", "entity", 1, ModuleInput("q"))
    assert parse_policy("low").decide(state) is Tier.LOW
    mixed = parse_policy("mid,filter=high,summary=low")
    assert isinstance(mixed, FixedPolicy)
    assert [mixed.tiers[m] for m in MODULES] == [Tier.HIGH, Tier.MID, Tier.MID, Tier.MID, Tier.LOW]
    a, b = RandomPolicy(7), RandomPolicy(7)
    seq_a = [a.decide(state) for _ in range(20)]
    assert seq_a == [b.decide(state) for _ in range(20)] and len(set(seq_a)) == 3
    for bad in ("medium", "filter=high", "mid,foo=low", "low,high"):
        with pytest.raises(ConfigError):
            parse_policy(bad)


def _module_prompts(llms) -> int:
    return sum(_module_of(p) is not None for p in llms[MODEL].prompts)


def test_one_computation_is_paid_once_across_strategies(tmp_path, settings, make_mem):
    # With the ladder's medium rung on the module LLM, implementation HIGH, reasoning LOW and
    # capacity MID are one direct prompt on one model: the cache serves them from one entry.
    s = settings.replace(pipeline__ladder=("fake:s", MODEL, "fake:l"))
    llms = _fakes()
    q = "What did Tomasz name his bakery?"
    with make_mem(s, llms, strategy="implementation", policy="high") as mem:
        first = mem.query(q)
    paid = _module_prompts(llms)
    assert paid >= 5 and first.cache == {"hits": 0, "misses": 6}
    for strategy, policy in (("reasoning", "low"), ("capacity", "mid")):
        with make_mem(s, llms, strategy=strategy, policy=policy) as mem:
            again = mem.query(q)
        assert again.cache == {"hits": 6, "misses": 0}, strategy
        assert _module_prompts(llms) == paid
        assert [st.strategy for st in again.steps] == [strategy] * 5  # the ledger names the tier that ran
        assert again.memory == first.memory and again.extraction_usd == pytest.approx(first.extraction_usd)
    with make_mem(s, llms, strategy="reasoning", policy="mid") as mem:  # chain of thought: a new computation
        cot = mem.query(q)
    assert not any(st.cache_hit for st in cot.steps) and _module_prompts(llms) > paid


def test_cache_entries_under_labelled_keys_still_serve(tmp_path, settings, make_mem, monkeypatch):
    # Cache files written when the key held the strategy and tier (before 2026-12-01) serve
    # every label of the same computation.
    from budgetmem.pipeline import executor

    def labelled(stage, spec, model, inp, ctx):
        return executor.cache_key([spec.strategy, spec.module, spec.tier.name,
                                   *executor._computation(stage, spec, model, inp, ctx)])  # fmt: skip

    s = settings.replace(pipeline__ladder=("fake:s", MODEL, "fake:l"))
    llms = _fakes()
    q = "What did Tomasz name his bakery?"
    with monkeypatch.context() as m:
        m.setattr(executor, "_step_key", labelled)
        with make_mem(s, llms, strategy="implementation", policy="high") as mem:
            mem.query(q)
    paid = _module_prompts(llms)
    with make_mem(s, llms, strategy="capacity", policy="mid") as mem:
        again = mem.query(q)
    assert again.cache == {"hits": 6, "misses": 0} and _module_prompts(llms) == paid
    with make_mem(s, llms, strategy="capacity", policy="high") as mem:  # another model: not served
        big = mem.query(q)
    assert not any(st.cache_hit for st in big.steps)
