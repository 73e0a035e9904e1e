"""The inference behaviours (direct, cot, reflect) and the repair call, on a scripted fake
LLM; plus one grammar-constrained repair on the real SmolLM2 model."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from fakes import ScriptedFakeLLM as _Fake

from budgetmem.errors import ConfigError, LLMResponseError, ModelError
from budgetmem.chunk import Chunk
from budgetmem.llm.base import LLM, Completion, Message, Price, usd_cost
from budgetmem.pipeline.behaviours import NO_FACTS_SUMMARY, LLMOutcome, budget, run_llm
from budgetmem.pipeline.parsers import parse_scores, parse_string_list, parse_text, scores_grammar, string_list_grammar, text_grammar
from budgetmem.pipeline.types import ModuleInput, ScoredChunk
from budgetmem.settings import LLMSettings, Settings

PRICE = Price(input_per_m=1.0, output_per_m=3.0, source="scripted test price")
PROMPT_TOKENS, COMPLETION_TOKENS = 100, 7


def ScriptedFakeLLM(*texts: str | Exception, grammar: bool = True) -> _Fake:  # noqa: N802 - reads like the class
    """The shared scripted fake with this file's fixed token counts and price."""
    fake = _Fake("fake:scripted", list(texts), supports_grammar=grammar, price=PRICE, tokens=(PROMPT_TOKENS, COMPLETION_TOKENS), latency_s=0.01)
    _BUILT.append(fake)
    return fake


@pytest.fixture(autouse=True)
def _one_user_message_at_temperature_zero(monkeypatch):
    """Every request the behaviours make is one user message (no system turn) at temperature 0."""
    yield
    # checked after each test on every fake it built
    for fake in _BUILT:
        for r in fake.received:
            assert r.temperature == 0.0 and r.roles == ("user",)
    _BUILT.clear()


_BUILT: list[_Fake] = []


def _chunk(i: int, text: str) -> ScoredChunk:
    c = Chunk(text, 10, "test", "h", f"session_{i}", f"1 June 202{i}", 0, (f"D{i}:1", f"D{i}:2"), ("A",))
    return ScoredChunk(c, 1.0)


INP = ModuleInput("What did Priya give Rui?", (_chunk(1, "Priya: I gave Rui a blue bowl."), _chunk(2, "Tomasz: I run.")))
FACTS_INP = ModuleInput("What did Priya give Rui?", facts={"entity": ("Priya - gave - Rui a bowl",)})


def _sums_match(out: LLMOutcome, n_calls: int) -> None:
    assert len(out.calls) == n_calls
    assert out.prompt_tokens == n_calls * PROMPT_TOKENS
    assert out.completion_tokens == n_calls * COMPLETION_TOKENS
    assert out.usd == pytest.approx(n_calls * usd_cost(PRICE, PROMPT_TOKENS, COMPLETION_TOKENS))
    for c in out.calls:
        assert (c.model, c.price_source, c.latency_s) == ("fake:scripted", "scripted test price", 0.01)


def test_direct_is_one_call() -> None:
    llm = ScriptedFakeLLM('<answer>["Priya - gave - Rui (a blue bowl)"]</answer>')
    out = run_llm(llm, "entity", INP, behaviour="direct", layout="prefix-first", max_facts=8)
    assert out.value == ["Priya - gave - Rui (a blue bowl)"] and out.parse_status == "ok" and out.raw_output is None
    assert [c.purpose for c in out.calls] == ["direct"]
    _sums_match(out, 1)
    sent = llm.received[0]
    assert sent.max_tokens == budget("entity", "direct") and sent.stop == ("</answer>",) and sent.grammar is None
    assert "<memories>" in sent.prompt and "<thinking>" not in sent.prompt


def test_cot_is_one_call_and_its_thinking_is_ignored() -> None:
    llm = ScriptedFakeLLM("<thinking>Memory 1 matters. <answer>[0, 0]</answer> was wrong.</thinking>\n<answer>[9, 1]")
    out = run_llm(llm, "filter", INP, behaviour="cot", layout="prefix-first", max_facts=8)
    assert out.value == [9.0, 1.0] and out.parse_status == "ok"
    assert [c.purpose for c in out.calls] == ["cot"]
    _sums_match(out, 1)
    assert "<thinking>" in llm.received[0].prompt
    assert llm.received[0].max_tokens == budget("filter", "cot", 2) > budget("filter", "direct", 2)


def test_reflect_is_plan_act_reflect_and_returns_the_revision() -> None:
    llm = ScriptedFakeLLM(
        "<plan>\n- find gifts\n- find gifts\n- find who got them\n</plan>",
        '<answer>["Priya - gave - Tomasz (a bowl)"]</answer>',
        '<thinking>the bowl went to Rui</thinking><answer>["Priya - gave - Rui (a blue bowl)"]</answer>',
    )
    out = run_llm(llm, "entity", INP, behaviour="reflect", layout="prefix-first", max_facts=8)
    assert [c.purpose for c in out.calls] == ["plan", "act", "reflect"]
    assert out.value == ["Priya - gave - Rui (a blue bowl)"] and out.parse_status == "ok" and out.note is None
    _sums_match(out, 3)
    plan_p, act_p, reflect_p = (r.prompt for r in llm.received)
    assert "<plan>\n- find gifts\n- find who got them\n</plan>" in act_p  # repeated plan lines dropped
    assert "- find who got them" in reflect_p
    assert '["Priya - gave - Tomasz (a bowl)"]' in reflect_p and '["Priya - gave - Tomasz (a bowl)"]' not in act_p
    # all three start with the shared memories-and-question prefix (llama.cpp reuses it)
    shared = plan_p[: plan_p.index("</query>")]
    assert act_p.startswith(shared) and reflect_p.startswith(shared)
    assert act_p.index("<plan>") > act_p.index("</query>")


def test_reflect_keeps_a_parsed_draft_when_the_revision_is_unreadable() -> None:
    llm = ScriptedFakeLLM("- look at memory 1", "<answer>[8, 2]</answer>", "I think it is fine.")
    out = run_llm(llm, "filter", INP, behaviour="reflect", layout="prefix-first", max_facts=8)
    assert out.value == [8.0, 2.0] and out.parse_status == "ok"
    assert out.raw_output == "I think it is fine." and out.note and "kept the parsed draft" in out.note
    assert [c.purpose for c in out.calls] == ["plan", "act", "reflect"]  # no repair call


def test_reflect_repairs_when_draft_and_revision_are_unreadable() -> None:
    llm = ScriptedFakeLLM("plan", "garbage draft <answer>", "still garbage", "<answer>Rui got a bowl.</answer>")
    out = run_llm(llm, "summary", FACTS_INP, behaviour="reflect", layout="prefix-first", max_facts=8)
    assert [c.purpose for c in out.calls] == ["plan", "act", "reflect", "repair"]
    assert out.value == "Rui got a bowl." and out.parse_status == "repaired"
    draft_block = llm.received[2].prompt.split("<draft>")[1].split("</draft>")[0]
    assert "garbage draft" in draft_block and "<answer>" not in draft_block  # tag fragments stripped
    assert llm.received[3].prompt.startswith(llm.received[2].prompt)  # repair extends the failed prompt
    assert llm.received[3].grammar == text_grammar()


def test_garbage_then_good_repair_with_grammar() -> None:
    llm = ScriptedFakeLLM("Memory 1: high, memory 2: low", "<answer>[9, 0]</answer>", grammar=True)
    out = run_llm(llm, "filter", INP, behaviour="direct", layout="prefix-first", max_facts=8)
    assert out.value == [9.0, 0.0] and out.parse_status == "repaired" and out.raw_output is None
    assert [c.purpose for c in out.calls] == ["direct", "repair"]
    _sums_match(out, 2)
    repair = llm.received[1]
    assert repair.grammar == scores_grammar(2)
    assert repair.prompt.startswith(llm.received[0].prompt)
    assert "Memory 1: high, memory 2: low" in repair.prompt and "no <answer> tag" in repair.prompt


def test_repair_without_grammar_is_a_stricter_reask() -> None:
    llm = ScriptedFakeLLM("Priya gave a bowl", '<answer>["Priya - gave - Rui"]</answer>', grammar=False)
    out = run_llm(llm, "topic", INP, behaviour="direct", layout="prefix-first", max_facts=8)
    assert out.parse_status == "repaired" and out.value == ["Priya - gave - Rui"]
    repair = llm.received[1]
    assert repair.grammar is None and repair.stop == ("</answer>",)
    assert "ONLY the final answer inside <answer></answer> tags" in repair.prompt


def test_garbage_twice_fails_visibly() -> None:
    llm = ScriptedFakeLLM("no idea", "<answer>[11, 0]</answer>")
    out = run_llm(llm, "filter", INP, behaviour="cot", layout="prefix-first", max_facts=8)
    assert out.value is None and out.parse_status == "failed"
    assert out.raw_output == "<answer>[11, 0]</answer>" and out.note and "outside 0-10" in out.note
    assert [c.purpose for c in out.calls] == ["cot", "repair"]
    _sums_match(out, 2)


def test_llm_errors_propagate() -> None:
    llm = ScriptedFakeLLM(LLMResponseError("server said 500"))
    with pytest.raises(LLMResponseError):
        run_llm(llm, "entity", INP, behaviour="direct", layout="prefix-first", max_facts=8)


def test_no_input_means_no_call() -> None:
    llm = ScriptedFakeLLM()
    empty = run_llm(llm, "temporal", ModuleInput("q"), behaviour="reflect", layout="prefix-first", max_facts=8)
    assert empty.value == [] and empty.calls == [] and empty.parse_status == "ok"
    summary = run_llm(llm, "summary", ModuleInput("q", facts={"entity": ()}), behaviour="cot", layout="prefix-first", max_facts=8)
    assert summary.value == NO_FACTS_SUMMARY and summary.calls == [] and summary.note
    assert llm.received == []


def test_max_tokens_override_and_bad_names() -> None:
    llm = ScriptedFakeLLM("<answer>A summary.</answer>")
    out = run_llm(llm, "summary", FACTS_INP, behaviour="direct", layout="instruction-first", max_facts=8, max_tokens=33)
    assert out.value == "A summary." and llm.received[0].max_tokens == 33
    assert llm.received[0].prompt.startswith("Task:")
    with pytest.raises(ConfigError):
        run_llm(llm, "entity", INP, behaviour="ponder", layout="prefix-first", max_facts=8)
    with pytest.raises(ConfigError):
        run_llm(llm, "answer", INP, behaviour="direct", layout="prefix-first", max_facts=8)


# --------------------------------------------------------------------------- real model


@pytest.fixture(scope="module")
def smol() -> Any:
    import llama_cpp  # noqa: F401  (the embedded extra; make test installs it)
    from budgetmem.llm import make_llm
    from budgetmem.models import model_path

    try:
        path: Path = model_path("smollm2-135m")
    except ModelError as exc:
        pytest.fail(f"smollm2-135m is not prepared (make models prepares it): {exc}")
    assert path.is_file()
    # One thread: on a shared 2-core runner, llama.cpp's all-core default collapses when
    # another process is busy (a 60-token call took 150 s instead of 8 s in our runs).
    return make_llm("llamacpp:smollm2-135m", settings=Settings(llm=LLMSettings(n_threads=1)))


class _GarbageFirst(LLM):
    """The real model, except that the first reply is scripted garbage: forces the repair path."""

    def __init__(self, real: LLM) -> None:
        self.real, self.name, self.price, self.supports_grammar = real, real.name, real.price, real.supports_grammar
        self.grammars: list[str | None] = []

    def complete(self, messages: str | Sequence[Message], **kw: Any) -> Completion:
        self.grammars.append(kw.get("grammar"))
        if len(self.grammars) == 1:
            return self._completion("Memory one is good, the rest not so much.", 50, 12, 0.0, "stop")
        return self.real.complete(messages, **kw)


@pytest.mark.models
def test_grammar_repair_on_smollm2_returns_exactly_n_scores(smol: LLM) -> None:
    chunks = tuple(_chunk(i, f"Speaker: note number {i} about the weather.") for i in range(1, 4))
    llm = _GarbageFirst(smol)
    out = run_llm(llm, "filter", ModuleInput("Did it rain?", chunks), behaviour="direct", layout="prefix-first", max_facts=8)
    assert out.parse_status == "repaired" and [c.purpose for c in out.calls] == ["direct", "repair"]
    assert llm.grammars == [None, scores_grammar(3)]
    assert out.value is not None and len(out.value) == 3 and all(0 <= v <= 10 for v in out.value)  # type: ignore[operator, arg-type]
    assert out.calls[1].model == "llamacpp:smollm2-135m" and out.calls[1].completion_tokens > 0


@pytest.mark.models
def test_grammars_compile_and_constrain_smollm2(smol: LLM) -> None:
    from llama_cpp import LlamaGrammar

    ask = "Tell me a long story about a dragon."  # an unconstrained reply would never parse
    for grammar, parse in (
        (scores_grammar(4), lambda t: parse_scores(t, 4)),
        (string_list_grammar(3, max_chars=40), lambda t: parse_string_list(t, 3)),
        (text_grammar(max_chars=80), parse_text),
    ):
        LlamaGrammar.from_string(grammar, verbose=False)
        out = smol.complete(ask, max_tokens=60, grammar=grammar)
        assert out.text.startswith("<answer>") and out.text.endswith("</answer>"), out.text
        parse(out.text)


def test_plan_tags_are_found_where_lowering_changes_lengths() -> None:
    from budgetmem.pipeline.behaviours import _plan_text

    # Found by fuzzing: "İ".lower() is two characters, so an index found in text.lower()
    # cut the text one character late and left "<" of the <answer> tag in the plan.
    assert _plan_text("İ<answer>") == "İ"
    assert _plan_text("İİ <PLAN>step one</plan> İ") == "step one"


def test_a_long_repeated_plan_line_is_kept_once() -> None:
    from budgetmem.pipeline.behaviours import _plan_text

    # Found by fuzzing: lines were compared whole but stored cut to 200 characters, so a
    # repeated line longer than that (the looping the dedupe is for) was kept again and again.
    assert _plan_text("<plan>" + ("x" * 300 + "\n") * 3) == "x" * 200
