"""Routing baselines and target-cost mode (issue #18): the rule router's question classifier
and map, cheap-first escalation (shared steps reused, both passes in the ledger, T = 0 / 1
reproduce the cheap / costly policy), the calibration fit against an independent
reference, and the target-cost controller (convergence on a scripted fake LLM with known
costs, state kept in the store across a restart)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence

import numpy as np
import pytest
from conftest import EXAMPLE
from fakes import ScriptedFakeLLM
from test_pipeline import ANSWER, MODEL, smart_script

from budgetmem import BudgetMem, Settings
from budgetmem.errors import ConfigError, NotFoundError
from budgetmem.llm.base import Completion, Message
from budgetmem.pipeline.policy import parse_policy
from budgetmem.pipeline.stages import MODULES
from budgetmem.router.budget import CONTROL_NAME, CostController, PolicyFamily
from budgetmem.router.escalate import Calibration, confidence_features, fit_calibration, is_abstention, parse_escalation
from budgetmem.router.rules import QUESTION_TYPES, QuestionClassifier, RuleTable, load_rule_table, rule_type
from budgetmem.store import Store
from budgetmem.store.controls import ControlStore

# ----------------------------------------------------------------------------- rule router

HAND_WRITTEN = {
    "temporal": [
        "When did Melanie paint the sunrise?",
        "What year did John move to Seattle?",
        "How long ago did Caroline start her new job?",
        "Which month was the charity race?",
        "How many weeks before the wedding did Gina open her shop?",
    ],
    "open-domain": [
        "Would Caroline likely pursue writing as a career?",
        "What might John do if he loses his job?",
        "Is it likely that Nate owns a pet?",
        "Would Melanie be considered a member of the LGBTQ community?",
    ],
    "multi-hop": [
        "What do Jon and Gina have in common?",
        "What activities has Melanie done with her family?",
        "Which books has Caroline read?",
        "How many times has Tim been to Paris?",
    ],
    "other": [
        "Tell me about the trip to Paris.",
        "Thanks, that helps a lot",
    ],
}


@pytest.mark.parametrize("kind", list(HAND_WRITTEN))
def test_rules_classify_hand_written_questions(kind: str) -> None:
    for q in HAND_WRITTEN[kind]:
        assert rule_type(q) == kind, q


def test_single_hop_questions_are_left_to_the_prototypes() -> None:
    for q in ["What is Caroline's job?", "Where did Tomasz open his bakery?", "Who gave Nate the turtle?"]:
        assert rule_type(q) is None, q
    # Without prototypes an undecided question is single-hop, the commonest type.
    c = QuestionClassifier(None, {}).classify("What is Caroline's job?")
    assert (c.type, c.how) == ("single-hop", "default")


class _AxisEncoder:
    """Embeds a text on axis 0 if it names a person's job, else on axis 1: prototypes on
    those axes make the nearest-prototype rule checkable by hand."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.seen.extend(texts)
        return np.array([[1.0, 0.1] if "job" in t else [0.1, 1.0] for t in texts])


def test_prototypes_decide_what_the_rules_leave_and_only_that() -> None:
    enc = _AxisEncoder()
    clf = QuestionClassifier(enc, {"single-hop": np.array([2.0, 0.0]), "multi-hop": np.array([0.0, 3.0])})
    job = clf.classify("Who gave Caroline her job?")
    assert (job.type, job.how) == ("single-hop", "prototype")
    # cosine of (1, 0.1) with (1, 0): 1 / sqrt(1.01)
    assert job.similarity == pytest.approx(1 / np.sqrt(1.01), abs=1e-4)
    assert clf.classify("Who is Nate's turtle named after?").type == "multi-hop"
    assert clf.classify("When did Caroline get her job?").how == "rule"  # the rules come first
    assert enc.seen == ["Who gave Caroline her job?", "Who is Nate's turtle named after?"]
    clf.classify("Who gave Caroline her job?")
    assert len(enc.seen) == 2  # classified once per question


def test_packaged_classifier_beats_the_majority_type_on_locomo_val(minilm, locomo_dev) -> None:  # type: ignore[no-untyped-def]
    from budgetmem.eval.datasets import load_eval_set
    from budgetmem.eval.splits import make_split

    table = load_rule_table()
    assert set(table.tiers) == set(QUESTION_TYPES)
    assert table.encoder == "all-minilm-l6-v2" and len(table.prototypes["single-hop"]) == minilm.dim
    clf = QuestionClassifier(minilm, {k: np.asarray(v) for k, v in table.prototypes.items()}, table.offsets)
    assert clf.classify("Where did Tomasz open his bakery?").type == "single-hop"
    # The val split was not used to fit the prototypes or their offset (train only).
    val = make_split(load_eval_set("locomo", locomo_dev), "val", seed=0).items
    right = sum(clf.classify(i.question).type == i.category for i in val)
    majority = max(sum(i.category == t for i in val) for t in QUESTION_TYPES)
    assert right / len(val) >= 0.6 > majority / len(val)  # measured: 0.65 against 0.50


def test_rules_file_must_name_every_type_and_module(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rows = {t: {m: "MID" for m in MODULES} for t in QUESTION_TYPES}
    del rows["other"]
    with pytest.raises(ConfigError, match="other"):
        RuleTable("", {}, rows)
    rows["other"] = {m: "LOW" for m in MODULES if m != "summary"}
    with pytest.raises(ConfigError, match="summary"):
        RuleTable("", {}, rows)


@pytest.fixture
def settings(tmp_path):  # type: ignore[no-untyped-def]
    base = Settings().replace(encoder__name="all-minilm-l6-v2", chunking__max_tokens=64, retrieval__top_k=5)
    s = base.replace(
        pipeline__module_llm=MODEL, pipeline__answer_llm=ANSWER, pipeline__ladder=("fake:s", "fake:m", "fake:l"),
        pipeline__concurrent=False,
    )  # fmt: skip
    # No module cache unless a test turns one on (replace() skips None, hence dataclasses).
    return dataclasses.replace(s, pipeline=dataclasses.replace(s.pipeline, cache_path=None))


class LogprobFake(ScriptedFakeLLM):
    """A scripted fake that also reports a mean token log-probability for each reply."""

    supports_logprobs = True

    def __init__(self, name: str, script, logprob: float = -0.2, **kw) -> None:  # type: ignore[no-untyped-def]
        super().__init__(name, script, **kw)
        self.logprob = logprob
        self.asked_logprobs: list[bool] = []

    def complete(self, messages: str | Sequence[Message], *, logprobs: bool = False, **kw) -> Completion:  # type: ignore[no-untyped-def, override]
        self.asked_logprobs.append(logprobs)
        out = super().complete(messages, **kw)
        return self._completion(out.text, out.prompt_tokens, out.completion_tokens, out.latency_s, out.finish_reason,
                                self.logprob if logprobs else None)  # fmt: skip


def _llms(script=smart_script, answer_script=smart_script, tokens=None, logprob=-0.2):  # type: ignore[no-untyped-def]
    out = {n: ScriptedFakeLLM(n, script, tokens=tokens) for n in (MODEL, "fake:s", "fake:m", "fake:l")}
    out[ANSWER] = LogprobFake(ANSWER, answer_script, logprob=logprob, tokens=tokens)
    return out


@pytest.fixture
def make_mem(tmp_path, minilm):  # type: ignore[no-untyped-def]
    def make(settings, llms, **kw):  # type: ignore[no-untyped-def]
        mem = BudgetMem(tmp_path / "m.db", "demo", settings=settings, llms=llms, encoder=minilm, **kw)
        if mem.store.namespace("demo") is None:
            mem.add(EXAMPLE)
        return mem

    return make


def test_rule_router_routes_by_type_and_the_trace_shows_type_and_map(tmp_path, settings, make_mem) -> None:  # type: ignore[no-untyped-def]
    rows = {t: {m: "MID" for m in MODULES} for t in QUESTION_TYPES}
    rows["temporal"] = {**rows["temporal"], "filter": "LOW", "summary": "HIGH"}
    path = RuleTable("", {}, rows, "implementation").save(tmp_path / "rules.json")
    with make_mem(settings, _llms(), policy=f"rules:{path}") as mem:
        when = mem.query("When did Tomasz open his bakery?")
        what = mem.query("What did Tomasz name his bakery?")
    assert when.tiers == {"filter": "LOW", "entity": "MID", "temporal": "MID", "topic": "MID", "summary": "HIGH"}
    assert when.context["routing"] == {"router": "rules:rules.json", "type": "temporal", "how": "rule",
                                       "similarity": None, "map": rows["temporal"]}  # fmt: skip
    assert set(what.tiers.values()) == {"MID"} and what.context["routing"]["type"] == "single-hop"
    assert json.loads(json.dumps(when.to_dict()))["context"]["routing"]["type"] == "temporal"


# ----------------------------------------------------------------------------- escalation


def _same_outcome(a, b) -> None:  # type: ignore[no-untyped-def]
    assert (a.answer, a.memory, a.tiers, a.facts) == (b.answer, b.memory, b.tiers, b.facts)
    assert a.extraction_usd == pytest.approx(b.extraction_usd) and a.total_usd == pytest.approx(b.total_usd)
    assert a.extraction_tokens == b.extraction_tokens and a.answer_tokens == b.answer_tokens
    assert [len(s.calls) for s in [*a.steps, a.answer_step]] == [len(s.calls) for s in [*b.steps, b.answer_step]]


def test_escalation_thresholds_zero_and_one_reproduce_cheap_and_costly(settings, make_mem) -> None:  # type: ignore[no-untyped-def]
    q = "What did Tomasz name his bakery?"
    runs = {}
    for policy in ("mid", "high", "escalate:mid>high@0", "escalate:mid>high@1"):
        llms = _llms()
        with make_mem(settings, llms) as mem:
            runs[policy] = (mem.query(q, policy=policy), len(llms[MODEL].prompts))
    cheap, costly = runs["mid"][0], runs["high"][0]
    assert cheap.tiers != costly.tiers and costly.extraction_usd > 0
    low_end, high_end = runs["escalate:mid>high@0"][0], runs["escalate:mid>high@1"][0]
    _same_outcome(low_end, cheap)
    _same_outcome(high_end, costly)
    assert low_end.passes == [] and high_end.passes == []
    assert runs["escalate:mid>high@1"][1] == runs["high"][1]  # no cheap pass was paid for
    assert low_end.context["escalation"]["escalated"] is False
    assert high_end.context["escalation"]["cheap_pass_skipped"] is True


def test_escalation_reuses_shared_steps_and_the_ledger_shows_both_passes(settings, make_mem) -> None:  # type: ignore[no-untyped-def]
    def answer_script(prompt: str) -> str:
        # The cheap memory (MID summary) makes the answer model abstain; the LLM summary does not.
        return "Zakwas" if "Tomasz's bakery is called Zakwas" in prompt else "Not mentioned"

    llms = _llms(answer_script=answer_script)
    cal = Calibration(2.0, {"abstain": -10.0})  # abstaining: confidence sigmoid(-8); else sigmoid(2)
    with make_mem(settings, llms) as mem:
        esc = parse_escalation("escalate:mid>mid,summary=high@0.5", mem._as_simple_policy, cal)
        r = mem.query("What did Tomasz name his bakery?", policy=esc)
    assert r.answer == "Zakwas" and r.context["escalation"]["escalated"] is True
    assert r.context["escalation"]["cheap_answer"] == "Not mentioned"
    assert r.context["escalation"]["confidence"] == pytest.approx(1 / (1 + np.exp(8)))
    (cheap,) = r.passes
    # filter, entity, temporal and topic are MID in both passes: run once, reused, not paid again
    shared = [s for s in r.steps if s.module != "summary"]
    assert all(s.cache_hit and not s.calls and s.note.startswith("reused") for s in shared)
    assert [s.module for s in cheap.steps] == list(MODULES) and not any(s.cache_hit for s in cheap.steps)
    summary = r.steps[-1]
    assert summary.tier == "HIGH" and len(summary.calls) == 1 and not summary.cache_hit
    assert len(llms[MODEL].prompts) == 1  # the only module LLM call: the HIGH summary
    assert len(llms[ANSWER].prompts) == 2 and all(llms[ANSWER].asked_logprobs)  # one answer per pass
    # the totals are both passes, each call counted once
    assert r.extraction_usd == pytest.approx(summary.usd + cheap.extraction_usd)
    assert r.answer_usd == pytest.approx(r.answer_step.usd + cheap.answer_step.usd)
    ledger = r.table()
    assert "pass 1: filter" in ledger and "pass 2: summary" in ledger and "pass 2: answer" in ledger
    d = r.to_dict()
    assert len(d["passes"]) == 1 and d["totals"]["total_usd"] == pytest.approx(r.total_usd)


def test_escalation_reuses_through_the_module_cache_too(settings, make_mem, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cached = settings.replace(pipeline__cache_path=tmp_path / "cache.sqlite")
    llms = _llms(answer_script=lambda p: "Not mentioned")
    with make_mem(cached, llms) as mem:
        esc = parse_escalation("escalate:mid>mid,summary=high@0.5", mem._as_simple_policy, Calibration(2.0, {"abstain": -10.0}))
        first = mem.query("What did Tomasz name his bakery?", policy=esc)
        n_module, n_answer = len(llms[MODEL].prompts), len(llms[ANSWER].prompts)
        again = mem.query("What did Tomasz name his bakery?", policy=esc)
        disk = mem.pipeline.cache.stats()
    assert first.cache == {"hits": 4, "misses": 8}  # both passes: 6 + 2 computed, 4 steps reused
    assert again.cache == {"hits": 12, "misses": 0} and again.usd_paid == 0
    assert (len(llms[MODEL].prompts), len(llms[ANSWER].prompts)) == (n_module, n_answer)
    assert again.extraction_usd == pytest.approx(first.extraction_usd) and first.extraction_usd > 0
    assert disk["entries"] == 8  # five MID steps, the HIGH summary, an answer per memory


def test_confidence_features_and_abstentions() -> None:
    for text in ["Not mentioned.", "unknown", "", "The conversation does not say", "None"]:
        assert is_abstention(text), text
    for text in ["Zakwas", "7 May 2023", "None of them liked it, they said"]:
        assert not is_abstention(text), text
    assert Calibration(0.5, {"logprob": 1.0, "margin": 2.0}).confidence({"logprob": -1.0, "margin": 0.25}) == pytest.approx(
        1 / (1 + np.exp(-(0.5 - 1.0 + 0.5)))
    )


def test_calibration_fit_matches_an_independent_logistic_regression() -> None:
    sklearn = pytest.importorskip("sklearn.linear_model")
    rng = np.random.default_rng(3)
    n = 200
    feats = [{"logprob": float(-rng.exponential(1.0)), "no_logprob": float(rng.random() < 0.1),
              "abstain": float(rng.random() < 0.3), "margin": float(rng.random() * 0.5)} for _ in range(n)]  # fmt: skip
    z = [1.5 + 1.2 * f["logprob"] - 2.0 * f["abstain"] + 3.0 * f["margin"] for f in feats]
    labels = [int(rng.random() < 1 / (1 + np.exp(-v))) for v in z]
    bias, w = fit_calibration(feats, labels, l2=1.0)
    X = np.array([[f[k] for k in ("logprob", "no_logprob", "abstain", "margin")] for f in feats])
    ref = sklearn.LogisticRegression(C=1.0, tol=1e-10, max_iter=10_000).fit(X, labels)  # L2 on weights, not intercept
    assert bias == pytest.approx(float(ref.intercept_[0]), abs=1e-4)
    assert [w[k] for k in ("logprob", "no_logprob", "abstain", "margin")] == pytest.approx(list(ref.coef_[0]), abs=1e-4)


def test_escalation_specs_are_checked() -> None:
    cal = Calibration(0.0, {})
    for bad in ["escalate:mid>high", "escalate:mid@0.5", "escalate:mid>high@1.5", "escalate:escalate:low>mid@0.1>high@0.5"]:
        with pytest.raises(ConfigError):
            parse_escalation(bad, parse_policy, cal)
    esc = parse_escalation("escalate:low>mid,summary=high@0.25", parse_policy, cal)
    assert esc.name == "escalate:low>mid,summary=high@0.25" and esc.with_threshold(2).threshold == 1.0


# ----------------------------------------------------------------------------- target cost


def _controlled_run(mem: BudgetMem, family: PolicyFamily, target: float, n: int, questions: list[str]) -> list[float]:
    costs = []
    for i in range(n):
        r = mem.query(questions[i % len(questions)], policy=family, target_usd=target)  # type: ignore[arg-type]
        costs.append(r.extraction_usd)
        assert r.context["budget"]["queries"] == len(costs)
    return costs


QUESTIONS = ["What did Tomasz name his bakery?", "When did Tomasz open his bakery?", "Who is Pixel?",
             "What does Tomasz bake?"]  # fmt: skip


@pytest.mark.parametrize("share", [0.15, 0.4, 0.75])
def test_target_cost_converges_within_ten_percent_after_200_queries(settings, make_mem, tmp_path, share) -> None:  # type: ignore[no-untyped-def]
    # Known costs: every module LLM call is 1,000 prompt + 100 completion tokens at $1 / $2 per
    # million = $0.0012; HIGH runs five module calls ($0.006 a query), MID and LOW none.
    cached = settings.replace(pipeline__cache_path=tmp_path / "cache.sqlite")
    family = PolicyFamily({0.0: parse_policy("high"), 0.5: parse_policy("mid"), 1.0: parse_policy("low")})
    target = share * 0.006
    with make_mem(cached, _llms(tokens=(1000, 100))) as mem:
        costs = _controlled_run(mem, family, target, 200, QUESTIONS)
        state = mem.budget()
    assert set(np.round(costs, 9)) == {0.0, 0.006}
    assert abs(np.mean(costs) - target) <= 0.1 * target
    assert state["queries"] == 200 and state["spent_usd"] == pytest.approx(sum(costs))


def test_target_cost_state_survives_a_restart(settings, make_mem, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cached = settings.replace(pipeline__cache_path=tmp_path / "cache.sqlite")
    family = PolicyFamily({0.0: parse_policy("high"), 1.0: parse_policy("low")})
    with make_mem(cached, _llms(tokens=(1000, 100))) as mem:
        before = _controlled_run(mem, family, 0.002, 30, QUESTIONS)
        saved = mem.budget()
    assert saved is not None and saved["queries"] == 30 and saved["spent_usd"] == pytest.approx(sum(before))
    # A new process: a new store connection and a new BudgetMem, same store file.
    with make_mem(cached, _llms(tokens=(1000, 100))) as mem:
        assert mem.budget() == saved
        r = mem.query(QUESTIONS[0], policy=family, target_usd=0.002)  # type: ignore[arg-type]
        assert r.context["budget"]["queries"] == 31
        assert r.context["budget"]["knob"] == pytest.approx(
            min(1.0, max(0.0, saved["knob"] + 0.1 * (r.extraction_usd - 0.002) / 0.002))
        )
        # A new target keeps the knob and restarts the counts.
        r2 = mem.query(QUESTIONS[1], policy=family, target_usd=0.004)  # type: ignore[arg-type]
        assert r2.context["budget"]["queries"] == 1 and r2.context["budget"]["target_usd"] == 0.004
        assert mem.reset_budget() and mem.budget() is None


def test_forgetting_a_namespace_forgets_its_target_cost_state(settings, make_mem, tmp_path) -> None:  # type: ignore[no-untyped-def]
    family = PolicyFamily({0.0: parse_policy("high"), 1.0: parse_policy("low")})
    with make_mem(settings, _llms(tokens=(1000, 100))) as mem:
        _controlled_run(mem, family, 0.002, 3, QUESTIONS)
        ControlStore(mem.store).put("other", CONTROL_NAME, {"knob": 0.9})  # another namespace's state
        assert mem.budget() is not None
        report = mem.forget()
        assert report.namespace_removed and mem.budget() is None
        assert ControlStore(mem.store).get("other", CONTROL_NAME) == {"knob": 0.9}  # untouched
        with pytest.raises(NotFoundError):
            mem.forget()  # nothing left to forget: the store's own error, raised before anything changes


def test_controller_dual_ascent_by_hand(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with Store(tmp_path / "s.db") as store:
        c = CostController(ControlStore(store), "ns", 1.0, eta=0.1, start=0.5)
        assert c.observe(3.0).knob == pytest.approx(0.7)  # 0.5 + 0.1 * (3 - 1) / 1
        assert c.observe(0.0).knob == pytest.approx(0.6)
        assert c.observe(100.0).knob == 1.0  # clipped at the cheap end, and counted as pinned
        assert c.state.pinned == 1
        esc = parse_escalation("escalate:mid>high@0.5", parse_policy, Calibration(0.0, {}))
        chosen, lam, note = c.choose(esc)
        assert lam is None and chosen.threshold == 0.0 and note["threshold"] == 0.0  # knob 1: never escalate
        with pytest.raises(ConfigError, match="router family or an escalation"):
            c.choose(parse_policy("mid"))
        assert ControlStore(store).get("ns", CONTROL_NAME)["queries"] == 3
        with pytest.raises(ConfigError):
            CostController(ControlStore(store), "ns", 0.0)


def test_family_interpolates_between_neighbouring_lambdas(tmp_path) -> None:  # type: ignore[no-untyped-def]
    fam = PolicyFamily({0.0: parse_policy("high"), 0.5: parse_policy("mid"), 1.0: parse_policy("low")})
    with Store(tmp_path / "s.db") as store:
        controls = ControlStore(store)
        controls.put("ns", CONTROL_NAME, {"target_usd": 1.0, "knob": 0.3, "queries": 0, "spent_usd": 0.0, "pinned": 0})
        c = CostController(controls, "ns", 1.0)
        picks = []
        for n in range(1000):
            c.state.queries = n
            picks.append(c.choose(fam)[1])
    # knob 0.3 -> position 0.6 between lambda 0 and 0.5: the upper one 60% of the time
    assert set(picks) == {0.0, 0.5}
    assert picks.count(0.5) / len(picks) == pytest.approx(0.6, abs=0.01)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (bytes(range(256)), "not UTF-8 text"),
        (b"[" * 50_000 + b"]" * 50_000, "nested too deeply"),
        (b'{"format": ' + b"7" * 5000 + b"}", "number too long"),
        (None, "is a folder|not found"),  # a folder: the rules loader checks is_file() first
    ],
)
def test_a_rules_or_calibration_file_that_cannot_be_read_is_an_input_error(tmp_path, data, match) -> None:  # type: ignore[no-untyped-def]
    # Found by the CLI fuzz campaign: `ask --policy rules:BINARY` ended in a
    # UnicodeDecodeError traceback and deeply nested JSON in a RecursionError.
    from budgetmem.errors import InputError
    from budgetmem.router.escalate import load_calibration

    path = tmp_path / "policy.json"
    if data is None:
        path.mkdir()
    else:
        path.write_bytes(data)
    for load in (load_calibration, load_rule_table):
        with pytest.raises(InputError, match=match) as err:
            load(path)
        assert "\n" not in str(err.value)
