"""The answer step's short-answer contract: question kinds, grammars, shaping, the shorten
call and its ledger line, the raw reply in the trace, and the same path for every system."""

from __future__ import annotations

import re

import pytest
from conftest import EXAMPLE
from fakes import TEST_PRICE, ScriptedFakeLLM

from budgetmem import BudgetMem, Settings
from budgetmem.errors import ConfigError
from budgetmem.eval.datasets import EvalItem
from budgetmem.eval.systems import NaiveRAG, PackedRAG
from budgetmem.llm import make_llm
from budgetmem.models import model_path
from budgetmem.pipeline.answers import (
    answer_grammar,
    build_shorten_prompt,
    question_kind,
    shape_answer,
    style_rules,
    word_count,
)
from budgetmem.pipeline.runner import ANSWER_MAX_TOKENS, Pipeline
from budgetmem.settings import PipelineSettings

ANSWER = "fake:answer"

# Labelled by hand: what each question asks for.
KINDS = [
    ("Are Random House Tower and 888 7th Avenue both used for real estate?", "yes/no"),
    ("Was Wolfgang Amadeus Mozart older than Haydn?", "yes/no"),
    ("Do the two bands come from the same city?", "yes/no"),
    ("Would Caroline likely pursue writing as a career?", "yes/no"),
    ("Is Pluto or Mars the bigger one?", "phrase"),  # names one of two: not a verdict
    ("Which magazine was started first, Arthur's Magazine or First for Women?", "phrase"),
    ("When did Caroline go to the LGBTQ support group?", "date"),
    ("In what year was the band formed?", "date"),
    ("What year did the film come out?", "date"),
    ("What is the name of the bakery?", "phrase"),
    ("Who wrote the novel that the film was based on?", "phrase"),
    ("How many children does the director have?", "phrase"),
]


@pytest.mark.parametrize(("question", "kind"), KINDS)
def test_question_kinds(question: str, kind: str) -> None:
    assert question_kind(question, "hotpotqa") == kind
    assert question_kind(question, "locomo") == kind
    assert question_kind(question, "plain") == "free"  # long-answer style: no short contract


def test_kind_lines_show_no_example_answer() -> None:
    """A small model copies an example answer from its instructions: no line holds one."""
    from budgetmem.pipeline.answers import KIND_RULES

    assert not any(re.search(r"\d", rule.instruction) for rule in KIND_RULES)


def test_unknown_style_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        question_kind("Who?", "klingon")
    with pytest.raises(ConfigError):
        answer_grammar("phrase", 0)


def test_answer_caps_come_from_the_style_table() -> None:
    # Routing paper Table 4: 32 tokens for LoCoMo, 512 for LongMemEval and HotpotQA.
    assert ANSWER_MAX_TOKENS == {"locomo": 32, "longmemeval": 512, "hotpotqa": 512, "plain": 128}
    assert style_rules("hotpotqa").short and not style_rules("plain").short


@pytest.mark.parametrize(
    ("reply", "kind", "shaped"),
    [
        ("Yes, both are used for real estate.", "yes/no", "yes"),
        ("No.", "yes/no", "no"),
        ("They are not from the same city", "yes/no", "no"),
        ("Both of them are magazines", "yes/no", "yes"),
        ("Perhaps", "yes/no", "Perhaps"),  # no verdict to take: left as it is
        ("The answer is: Animorphs.", "phrase", "Animorphs"),
        ("Answer - Greenwich Village", "phrase", "Greenwich Village"),
        ("Answers vary by region", "phrase", "Answers vary by region"),  # not a label
        ("7 May 2023.", "date", "7 May 2023"),
        ("2022-06-04", "date", "4 June 2022"),
        ("around 2022-06-4.", "date", "around 4 June 2022"),
        ("2010-11", "date", "2010-11"),  # a season as likely as a month: left as written
        ("2022-13-04", "date", "2022-13-04"),  # no such month: left as written
        ("1984-85", "date", "1984-85"),  # a span of years, not a month
        ("2022-06-04", "phrase", "2022-06-04"),  # only date answers are rewritten
        ("Wait...", "phrase", "Wait..."),
        ("A long, free reply.", "free", "A long, free reply."),
    ],
)
def test_shape_answer(reply: str, kind: str, shaped: str) -> None:
    assert shape_answer(reply, kind) == shaped  # type: ignore[arg-type]


def test_grammars() -> None:
    assert answer_grammar("free", 10) is None
    yn = answer_grammar("yes/no", 10)
    assert yn is not None and '"yes"' in yn and '"no"' in yn and "word" not in yn
    phrase = answer_grammar("phrase", 4)
    assert phrase is not None and "{0,3}" in phrase and phrase.startswith("root ::= word")
    cited = answer_grammar("phrase", 4, cited=True)
    assert cited is not None and "[CITE: " in cited and "cite?" in cited


@pytest.fixture(scope="module")
def smol():
    try:
        model_path("smollm2-135m")
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"smollm2-135m is not prepared (make models prepares it): {exc}")
    return make_llm("llamacpp:smollm2-135m")


def test_grammars_bind_a_real_model(smol) -> None:
    """SmolLM2 ignores formats unless a grammar forces them (EMBEDDED_STACK.md): here the
    yes/no grammar leaves it the verdict only, and the phrase grammar at most 3 words."""
    prompt = "Tell me at length about the history of bread, in several paragraphs."
    yn = smol.complete(prompt, max_tokens=16, grammar=answer_grammar("yes/no", 3)).text
    assert yn in {"yes", "no", "Yes", "No"}
    phrase = smol.complete(prompt, max_tokens=64, grammar=answer_grammar("phrase", 3)).text
    assert 1 <= word_count(phrase) <= 3 and "\n" not in phrase.strip()
    free = smol.complete(prompt, max_tokens=64).text
    assert word_count(free) > 3  # the same prompt without a grammar runs on


# --------------------------------------------------------------------------- the step


def _pipeline(minilm, script, *, grammar_support: bool, style: str = "hotpotqa", **kw) -> tuple[Pipeline, ScriptedFakeLLM]:
    llm = ScriptedFakeLLM(ANSWER, script, supports_grammar=grammar_support, tokens=(100, 10))
    settings = PipelineSettings(answer_llm=ANSWER, answer_style=style, cache_path=None, **kw)  # type: ignore[arg-type]
    return Pipeline(minilm, settings, lambda provider: llm), llm


def test_grammar_is_sent_by_kind_and_raw_reply_is_kept(minilm) -> None:
    pipe, llm = _pipeline(minilm, ["Yes, both are.", "Animorphs"], grammar_support=True)
    answer, step = pipe.answer("Are both towers in New York?", "memory text")
    assert answer == "yes" and step.raw_output == "Yes, both are."
    assert llm.received[0].grammar == answer_grammar("yes/no", 10)
    assert "yes or no only" in llm.received[0].prompt and "kind: yes/no (grammar)" in (step.note or "")
    answer, step = pipe.answer("Which series did she write?", "memory text")
    assert answer == "Animorphs" and llm.received[1].grammar == answer_grammar("phrase", 10)
    assert [c.purpose for c in step.calls] == ["answer"]  # short already: no second call


def test_long_reply_without_grammar_is_shortened_and_priced(minilm) -> None:
    long_reply = "Animorphs is a science fantasy series of young adult books written by K. A. Applegate."
    pipe, llm = _pipeline(minilm, [long_reply, "Animorphs"], grammar_support=False)
    answer, step = pipe.answer("Which series did she write?", "memory text")
    assert answer == "Animorphs" and step.raw_output == long_reply
    assert all(r.grammar is None for r in llm.received)  # the backend takes none
    assert llm.received[1].prompt == build_shorten_prompt("Which series did she write?", long_reply[:-1], "phrase", 10)
    assert [c.purpose for c in step.calls] == ["answer", "shorten"]
    # Both calls are in the ledger: 100 prompt + 10 completion tokens each at $1 / $2 per M.
    assert step.prompt_tokens == 200 and step.completion_tokens == 20
    assert step.usd == pytest.approx(2 * (100 * TEST_PRICE.input_per_m + 10 * TEST_PRICE.output_per_m) / 1e6)
    assert "shortened by a second call from 15 words" in (step.note or "")


def test_shorten_that_is_not_shorter_keeps_the_long_answer(minilm) -> None:
    long_reply = "one two three four five six seven eight nine ten eleven twelve"
    pipe, _ = _pipeline(minilm, [long_reply, long_reply + " thirteen"], grammar_support=False)
    answer, step = pipe.answer("Which series did she write?", "m")
    assert answer == long_reply and len(step.calls) == 2 and "long answer is kept" in (step.note or "")


def test_shorten_off_and_plain_style_make_one_call(minilm) -> None:
    long_reply = "one two three four five six seven eight nine ten eleven twelve"
    pipe, _ = _pipeline(minilm, [long_reply], grammar_support=False, answer_shorten=False)
    answer, step = pipe.answer("Which series did she write?", "m")
    assert answer == long_reply and len(step.calls) == 1
    pipe, llm = _pipeline(minilm, [long_reply], grammar_support=True, style="plain")
    answer, step = pipe.answer("Which series did she write?", "m")
    assert answer == long_reply and len(step.calls) == 1 and llm.received[0].grammar is None


def test_grammar_off_sends_none(minilm) -> None:
    pipe, llm = _pipeline(minilm, ["no"], grammar_support=True, answer_grammar=False)
    assert pipe.answer("Is it raining?", "m")[0] == "no" and llm.received[0].grammar is None


def test_answers_are_cached_with_their_grammar(minilm, tmp_path) -> None:
    llm = ScriptedFakeLLM(ANSWER, ["Animorphs"], supports_grammar=True)
    settings = PipelineSettings(answer_llm=ANSWER, answer_style="hotpotqa", cache_path=tmp_path / "c.sqlite")
    from budgetmem.pipeline.cache import ModuleCache

    pipe = Pipeline(minilm, settings, lambda provider: llm, ModuleCache(tmp_path / "c.sqlite"))
    first = pipe.answer("Which series?", "m")
    second = pipe.answer("Which series?", "m")  # the script is empty now: a call would fail
    assert first[0] == second[0] == "Animorphs" and second[1].cache_hit and second[1].raw_output == "Animorphs"


# --------------------------------------------------------------------------- every system


@pytest.fixture
def baseline_mem(tmp_path, minilm):
    llm = ScriptedFakeLLM(ANSWER, lambda p: "Yes, Tomasz did. [CITE: 1]" if "CITE" in p else "Yes, he did.", supports_grammar=True)
    settings = Settings().replace(
        encoder__name="all-minilm-l6-v2", chunking__max_tokens=64, pipeline__answer_llm=ANSWER,
        pipeline__cache_path=tmp_path / "cache.sqlite", pipeline__answer_style="locomo",
    )  # fmt: skip
    mem = BudgetMem(tmp_path / "m.db", "demo", settings=settings, llms={ANSWER: llm}, encoder=minilm)
    mem.add(EXAMPLE)
    yield mem, llm
    mem.close()


def test_baselines_take_the_same_answer_step(baseline_mem) -> None:
    mem, llm = baseline_mem
    item = EvalItem("q1", "demo", "Did Tomasz open a bakery?", ("yes",), "single-hop")
    naive = NaiveRAG().answer(mem, item)
    assert naive.answer == "yes" and naive.answer_step.raw_output == "Yes, he did."
    assert llm.received[-1].grammar == answer_grammar("yes/no", 12)
    packed = PackedRAG().answer(mem, item)
    assert packed.answer == "yes" and packed.context["raw_answer"] == "Yes, Tomasz did. [CITE: 1]"
    assert llm.received[-1].grammar == answer_grammar("yes/no", 12, cited=True)
    assert "yes or no only" in llm.received[-1].prompt
    assert packed.context["citations"]["cited"] == [1]  # checked on the raw reply
