"""The kill -9 campaigns of ``bench/reliability.py``, one trial each on a tiny plan.

The campaigns are long benchmark runs; these run their own trial functions once (a real
budgetmem process killed with SIGKILL, checked, re-run and compared with an uninterrupted
run), so a change that breaks a campaign, or the promise it checks, fails here first. The
checkers are also shown a store broken on purpose, so a checker that sees nothing fails too.
"""

from __future__ import annotations

import random
import sqlite3
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from campaigns import kill, kill_runs, serve_kill  # noqa: E402

pytestmark = [pytest.mark.models, pytest.mark.timeout(600)]


@pytest.fixture(autouse=True)
def _locomo(locomo_dev: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUDGETMEM_LOCOMO_DEV", str(locomo_dev))


def _passed(t) -> None:  # type: ignore[no-untyped-def]
    assert t.ok, (t.failures, t.lost, t.duplicates, t.detail)


INGEST = kill.IngestPlan(trials=1, before={"priya-tomasz": 1}, after={"priya-tomasz": 2}, budget="3",
                         modes=(("store.evict", 1.0),))  # fmt: skip


@pytest.fixture(scope="module")
def ingest_ctx(tmp_path_factory: pytest.TempPathFactory, locomo_dev: Path) -> kill.IngestContext:
    return kill.ingest_setup(tmp_path_factory.mktemp("ingest-setup"), INGEST)


def test_ingest_killed_inside_an_eviction_keeps_the_old_store_and_reingests_in_full(ingest_ctx, tmp_path):
    t = kill.ingest_trial(0, tmp_path, random.Random(1), ingest_ctx)
    _passed(t)
    assert t.detail["mode"] == "store.evict" and t.detail["phase"].startswith("store.evict:")
    assert t.detail["state"] == "before" and t.detail["rerun_added"] == ingest_ctx.sessions


def test_ingest_checker_sees_a_partial_session_and_a_lost_chunk(ingest_ctx, tmp_path):
    db = tmp_path / "broken.db"
    kill.killing.copy_db(ingest_ctx.template, db)
    assert kill.broken_sessions(kill.snapshot(db)) == []
    con = sqlite3.connect(db)
    con.execute("DELETE FROM chunks WHERE id = (SELECT max(id) FROM chunks)")
    con.commit()
    con.close()
    found = kill.broken_sessions(kill.snapshot(db))
    assert any("of its" in f for f in found) and any("seen_chunks" in f for f in found), found


def test_compress_killed_then_rerun_ends_with_the_uninterrupted_notes(tmp_path):
    plan = kill.CompressPlan(trials=1, sessions=1)
    ctx = kill.compress_setup(tmp_path / "setup", plan)
    work = tmp_path / "trial"
    work.mkdir()
    t = kill.compress_trial(0, work, random.Random(3), ctx)
    _passed(t)
    assert t.detail["rc"] == -9


def _runs(setup, trial, plan, tmp_path, seed):  # type: ignore[no-untyped-def]
    ctx = setup(tmp_path / "setup", plan)
    try:
        work = tmp_path / "trial"
        work.mkdir()
        return trial(0, work, random.Random(seed), ctx, plan)
    finally:
        kill_runs._teardown(ctx)


def test_eval_killed_mid_write_resumes_to_the_uninterrupted_rows(tmp_path):
    plan = kill_runs.EvalPlan(trials=1, questions=3, sessions=2, fresh_store=0.0, torn_write=1.0)
    t = _runs(kill_runs.eval_setup, kill_runs.eval_trial, plan, tmp_path, 0)
    _passed(t)
    assert t.detail["mode"] == "torn write" and t.detail["rc"] == -9


def test_train_killed_resumes_from_its_checkpoint_to_the_same_weights(tmp_path):
    plan = kill_runs.TrainPlan(trials=1, steps=2, batch_size=2, eval_every=2, train_questions=2, val_questions=1,
                               sessions=2, torn_write=0.0, aimed=1.0)  # fmt: skip
    t = _runs(kill_runs.train_setup, kill_runs.train_trial, plan, tmp_path, 5)
    _passed(t)
    assert t.detail["mode"].startswith("at ") and t.detail["rc"] == -9, t.detail


def test_serve_killed_under_concurrent_adds_keeps_every_acknowledged_add_once(tmp_path):
    import fastapi  # noqa: F401  (the server extra; a missing one fails here)

    t = serve_kill.serve_trial(0, tmp_path, random.Random(2), serve_kill.ServePlan(trials=1, max_acks=10))
    _passed(t)
    assert t.detail["unanswered"] >= 1 and t.detail["acked"] >= t.detail["ack_target"], t.detail
