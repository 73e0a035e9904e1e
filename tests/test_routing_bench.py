"""bench/routing.py fits the rule map and the escalation calibration on a typed sample of the
train split, not on its first questions (one conversation's, with no single-hop question)."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter

import pytest
from conftest import REPO

sys.path.insert(0, str(REPO / "bench"))
import routing as bench  # noqa: E402

from budgetmem.eval.datasets import load_eval_set  # noqa: E402
from budgetmem.eval.splits import make_split  # noqa: E402


def test_the_fit_sample_has_each_type_alike_and_spans_the_split(tmp_path, locomo_dev) -> None:  # type: ignore[no-untyped-def]
    data = load_eval_set("locomo", locomo_dev)
    train = list(make_split(data, "train", seed=0).items)
    assert "single-hop" not in {i.category for i in train[:30]}  # why the first N would not do
    path = tmp_path / "sample.json"
    ids = bench.fit_sample(train, 30, path)
    assert json.loads(path.read_text(encoding="utf-8"))["train"] == ids
    kind = {i.id: i.category for i in train}
    assert Counter(kind[i] for i in ids) == {"temporal": 7, "multi-hop": 7, "single-hop": 7, "open-domain": 7}
    assert len({i.split(":")[0] for i in ids}) == len({i.history for i in train})  # every train conversation
    order = [i.id for i in train]
    assert ids == sorted(ids, key=order.index)  # in the split's order
    # The file is an ordinary split file: the harness reads it, and it holds train questions only.
    sample = make_split(data, "train", seed=0, split_file=path)
    assert [i.id for i in sample.items] == ids


def test_percentile_thresholds_escalate_about_that_share_of_questions(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    conf = [i / 100 for i in range(100)]  # the cheap pass's confidences: 0.00 ... 0.99
    rows = [{"trace": {"context": {"escalation": {"confidence": c}}}} for c in reversed(conf)]
    asked = []
    monkeypatch.setattr(bench, "evaluate", lambda system, strategy, args, **kw: asked.append(system) or rows)
    args = argparse.Namespace(thresholds="q10, q50,0.95,q90", cheap="mid", costly="mid,summary=high", strategy="x")
    ts = bench.thresholds(args)
    assert asked == ["escalate:mid>mid,summary=high@0"]  # confidences from the pass that never escalates
    assert ts == sorted(ts) and 0.95 in ts
    # Escalation happens below T: by hand, 10, 50 and 90 of the 100 questions, and 95 at T = 0.95.
    assert [sum(c < t for c in conf) for t in ts] == [10, 50, 90, 95]


def test_fixed_thresholds_need_no_run_and_bad_percentiles_are_refused(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(bench, "evaluate", lambda *a, **kw: pytest.fail("no run is needed for fixed thresholds"))
    args = argparse.Namespace(thresholds="0.7,0.1", cheap="low", costly="mid", strategy="reasoning")
    assert bench.thresholds(args) == [0.1, 0.7]
    with pytest.raises(SystemExit, match="percentiles"):
        bench.thresholds(argparse.Namespace(thresholds="q0,q50", cheap="low", costly="mid", strategy="reasoning"))


def test_only_implementation_writes_the_packaged_fitted_files() -> None:
    from budgetmem.router.escalate import default_calibration_path
    from budgetmem.router.rules import default_rules_path

    assert bench.fitted_files("implementation") == (default_rules_path(), default_calibration_path())
    rules, cal = bench.fitted_files("reasoning")
    assert rules.parent == cal.parent == bench.RESULTS / "reasoning"
    assert {rules, cal}.isdisjoint({default_rules_path(), default_calibration_path()})


def test_llm_seconds_count_every_pass_once_and_cached_calls_keep_their_latency() -> None:
    def step(*latencies: float, hit: bool = False) -> dict:
        return {"cache_hit": hit, "calls": [{"latency_s": x} for x in latencies]}

    # Pass 1 (cheap): two module calls and an answer; pass 2 reuses the first step (no calls,
    # marked a hit), computes one more, and answers again; a cached call still counts.
    first = {"steps": [step(1.5), step(2.0, 0.25)], "answer_step": step(0.5)}
    final = {"steps": [step(hit=True), step(3.0, hit=True)], "answer_step": step(0.75), "passes": [first]}
    assert bench._llm_seconds(final) == pytest.approx(1.5 + 2.25 + 0.5 + 3.0 + 0.75)
    assert len(bench._steps(final)) == 6
    assert any(s["cache_hit"] for s in bench._steps(final))  # so the wall column leaves this row out
    naive = {"steps": [], "answer_step": step(15.3, hit=True)}  # naive RAG: no module steps at all
    assert [s["cache_hit"] for s in bench._steps(naive)] == [True]


def test_the_hindsight_oracle_takes_each_questions_best_map_and_the_cheapest_on_a_tie() -> None:
    def row(f1: float, usd: float) -> dict:
        return {"metrics": {"f1": f1}, "cost": {"extraction_usd": usd}}

    runs = {
        "low": {"a": row(0.0, 0.0), "b": row(0.5, 0.0), "c": row(1.0, 0.0)},
        "mid": {"a": row(1.0, 0.0), "b": row(0.5, 0.0), "c": row(0.0, 0.0)},
        "high": {"a": row(1.0, 4e-4), "b": row(1.0, 2e-4), "c": row(1.0, 1e-4)},
    }
    o = bench.oracle(runs, ["a", "b", "c"])
    # By hand: a -> mid (ties high at 1.0, costs less), b -> high (1.0 against 0.5), c -> low
    # (ties high, free). F1 mean (1 + 1 + 1) / 3; extraction (0 + 200 + 0) / 3 µ$.
    assert o["f1"] == pytest.approx(100.0)
    assert o["ext"] == pytest.approx(200 / 3)
    assert o["picked"] == pytest.approx({"low": 1 / 3, "mid": 1 / 3, "high": 1 / 3})
    # Preferring the best map overall on a tie: c -> high (ties low at 1.0), extraction (0 + 200 + 100) / 3.
    o = bench.oracle(runs, ["a", "b", "c"], prefer="high")
    assert o["f1"] == pytest.approx(100.0) and o["ext"] == pytest.approx(100 * (4 + 2 + 1) / 3)
    assert o["picked"] == pytest.approx({"low": 0, "mid": 0, "high": 1})
    assert [bench._fixed(x) for x in ("mid,summary=high", "router λ=0", "rules", "naive-rag", "escalate-mid>high@0.5")] == [
        True, False, False, False, False]  # fmt: skip
