"""Metric helpers checked by hand or against an independent reference, and the LLM judge's
parsing and repair logic with a scripted fake LLM (ScriptedFakeLLM)."""

from __future__ import annotations

import math
import random

import pytest
from fakes import TEST_PRICE, ScriptedFakeLLM

from budgetmem.eval.judge import Judge, JudgeParseError, build_judge_prompt, parse_judgement
from budgetmem.eval.metrics import best_f1, bootstrap_ci


def test_best_f1_by_hand():
    # "Barro" vs "Barro Studio": p=1, r=1/2 -> F1 2/3; vs "Barro": exact match.
    assert best_f1("Barro", ["Barro Studio"]) == (pytest.approx(2 / 3), 0.0)
    assert best_f1("Barro", ["Barro Studio", "barro"]) == (1.0, 1.0)
    assert best_f1("anything", []) == (0.0, 0.0)


def test_bootstrap_ci_against_the_normal_approximation():
    # 100 values, half ones: mean 0.5, standard error sqrt(0.25 / 100) = 0.05, so a 95%
    # interval of about 0.5 +- 1.96 * 0.05 = [0.402, 0.598].
    values = [1.0] * 50 + [0.0] * 50
    lo, hi = bootstrap_ci(values, n_boot=4000, seed=1)
    assert lo == pytest.approx(0.402, abs=0.02) and hi == pytest.approx(0.598, abs=0.02)
    assert bootstrap_ci([0.3] * 7) == (pytest.approx(0.3), pytest.approx(0.3))
    assert bootstrap_ci([0.7]) == (0.7, 0.7)
    assert all(math.isnan(x) for x in bootstrap_ci([]))
    rng = random.Random(5)
    skewed = [rng.random() ** 3 for _ in range(60)]
    lo, hi = bootstrap_ci(skewed)
    assert lo < sum(skewed) / 60 < hi


@pytest.mark.parametrize(
    ("reply", "score", "why"),
    [
        ('{"explanation": "matches the gold", "score": 1}', 1.0, "matches the gold"),
        ('```json\n{"score": 0.5, "explanation": "partly"}\n```', 0.5, "partly"),
        ('Here you go: {"explanation": "wrong city", "score": "0"} done', 0.0, "wrong city"),
        ('{"explanation": "ok", "score": 1.0}', 1.0, "ok"),
    ],
)
def test_parse_judgement(reply, score, why):
    assert parse_judgement(reply) == (score, why)


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("The answer is right.", "no JSON object"),
        ('{"explanation": "x", "score": 0.7}', "not 0, 0.5 or 1"),
        ('{"explanation": "x"}', "no 'score'"),
        ('{"score": true}', "not 0, 0.5 or 1"),
        ('{"score": 1,}', "not valid JSON"),
        # Found by fuzzing: json.loads raised a plain ValueError / RecursionError on these.
        ('{"score": ' + "7" * 5000 + "}", "number too long"),
        ('{"score": 1, "x": ' + "[" * 3000 + "}", "nesting too deep"),
    ],
)
def test_parse_judgement_rejects(reply, reason):
    with pytest.raises(JudgeParseError, match=reason):
        parse_judgement(reply)


def test_judge_prompt_carries_the_contract():
    p = build_judge_prompt("Where?", ["Basel", "Basel, Switzerland"], "In Basel")
    assert "- Basel\n- Basel, Switzerland" in p and "In Basel" in p and "Where?" in p
    assert '"score"' in p and "0.5" in p


def test_judge_ok_repaired_and_failed():
    ok = Judge(ScriptedFakeLLM("fake:judge", ['{"explanation": "same", "score": 1}'], tokens=(100, 10)))
    j = ok.judge("Q?", ["a"], "a")
    assert (j.score, j.status, len(j.calls)) == (1.0, "ok", 1)
    assert j.usd == pytest.approx(100 * TEST_PRICE.input_per_m / 1e6 + 10 * TEST_PRICE.output_per_m / 1e6)

    fixed = Judge(ScriptedFakeLLM("fake:judge", ["Correct!", '{"explanation": "fine", "score": 0.5}']))
    j = fixed.judge("Q?", ["a"], "b")
    assert (j.score, j.status, [c.purpose for c in j.calls]) == (0.5, "repaired", ["judge", "repair"])
    assert "could not be read" in fixed.llm.prompts[1]

    broken = Judge(ScriptedFakeLLM("fake:judge", ["nope", "still nope"]))
    j = broken.judge("Q?", ["a"], "b")
    assert j.score is None and j.status == "failed" and j.raw == "still nope" and len(j.calls) == 2


def test_judge_uses_a_grammar_where_the_backend_has_one():
    llm = ScriptedFakeLLM("fake:judge", ['{"explanation": "x", "score": 0}'], supports_grammar=True)
    Judge(llm).judge("Q?", ["a"], "b")
    assert llm.received[0].grammar is not None and "score ::=" in llm.received[0].grammar
