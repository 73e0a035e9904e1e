"""Executors: local, threads and Ray give the same rows, in the same order, and the same PPO
updates, for a fixed seed. The Ray tests run a real local Ray with 2 CPUs; the scripted
fake LLMs reach its workers through a picklable factory (FakeLLMFactory), since each
worker builds its own."""

from __future__ import annotations

import csv
import json
import os
import random
import time
from pathlib import Path

import pytest
import torch
from evaldata import write_jsonl
from fakes import FakeLLMFactory, ScriptedFakeLLM
from test_router_train import ANSWER, MODULE, answer_script, module_script

from budgetmem import Settings
from budgetmem.errors import ConfigError, InputError
from budgetmem.eval import dataset_settings
from budgetmem.executors import ExecutorSettings, make_executor
from budgetmem.harness import EvalConfig, run_eval
from budgetmem.training.ppo import PPOSettings
from budgetmem.training.train import TrainConfig, train_router

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src"
VOLATILE = {"wall_s", "cpu_s", "latency_s", "retrieval_s", "llm_s", "decision_ms"}
LLMS = FakeLLMFactory(((ANSWER, answer_script), (MODULE, module_script)))


def _stable(x):
    """A row without its timings (the only fields allowed to differ between executors)."""
    if isinstance(x, dict):
        return {k: _stable(v) for k, v in x.items() if k not in VOLATILE}
    if isinstance(x, list):
        return [_stable(v) for v in x]
    return x


# ----------------------------------------------------------------------------- the interface


def _slow_square(worker, item, shared):
    time.sleep(random.random() * 0.02)  # finish out of order
    if item == 7:
        raise InputError("item seven is bad", hint="skip it")
    return (worker["name"], item * item + shared)


@pytest.mark.parametrize("kind", ["local", "threads"])
def test_results_come_back_in_order_and_errors_surface(kind):
    with make_executor(ExecutorSettings(kind, workers=4)) as ex:
        ex.start(lambda: {"name": "w"})
        assert list(ex.map(_slow_square, range(7), 1)) == [("w", i * i + 1) for i in range(7)]
        with pytest.raises(InputError, match="item seven"):
            list(ex.map(_slow_square, range(10), 0))
    with pytest.raises(ConfigError, match="workers"):
        ExecutorSettings("threads", workers=0)
    with pytest.raises(ConfigError, match="unknown executor"):
        ExecutorSettings("spark")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- Ray


@pytest.fixture(scope="module")
def ray_cluster():
    import ray  # the ray extra; make test installs it: a missing one fails here

    # Ray's workers inherit this environment: they import budgetmem from this tree and the
    # test helpers (the fake LLM scripts) from tests/.
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(SRC), str(TESTS), *([old] if old else [])])
    # On a shared machine other people's jobs fill the memory; Ray's monitor would then kill
    # these small workers for it. The tests keep their workers.
    os.environ.setdefault("RAY_memory_monitor_refresh_ms", "0")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="warning")
    try:
        yield ray
    finally:
        ray.shutdown()
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


def test_ray_executor_orders_results_and_unwraps_library_errors(ray_cluster):
    with make_executor(ExecutorSettings("ray", workers=2)) as ex:
        ex.start(_Named("r"))
        assert list(ex.map(_slow_square, range(6), 0)) == [("r", i * i) for i in range(6)]
        with pytest.raises(InputError, match="item seven"):  # itself, not wrapped in Ray's error
            list(ex.map(_slow_square, range(9), 0))


class _Named:
    def __init__(self, name):
        self.name = name

    def __call__(self):
        return {"name": self.name}


@pytest.fixture
def six_questions(tmp_path):
    path = write_jsonl(tmp_path / "six.jsonl")
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    lines[1]["questions"].append({"id": "raj-3", "question": "Which vegetables does Raj grow?", "answer": "tomatoes"})
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return path


def _settings(tmp_path, tag):
    base = Settings().replace(
        encoder__name="all-minilm-l6-v2", pipeline__answer_llm=ANSWER, pipeline__module_llm=MODULE, retrieval__top_k=2,
        pipeline__cache_path=tmp_path / f"cache-{tag}.sqlite",
    )  # fmt: skip
    return dataset_settings(base, "jsonl", chunk_tokens=32)


def test_eval_rows_are_identical_on_every_executor(six_questions, tmp_path, ray_cluster):
    rows = {}
    for kind, workers in (("local", 1), ("threads", 3), ("ray", 2)):
        # Random tiers: every question routes differently, LLM tiers included, and each
        # question's draws must not depend on which worker answered it or when.
        cfg = EvalConfig("jsonl", six_questions, tmp_path / kind, split="all", policy="random",
                         executor=ExecutorSettings(kind, workers=workers))  # fmt: skip
        run = run_eval(cfg, _settings(tmp_path, kind), llms=LLMS, progress=False, log=lambda m: None)
        written = [json.loads(x) for x in (tmp_path / kind / "results.jsonl").read_text().splitlines()]
        assert written == run.rows and len(written) == 6
        rows[kind] = [_stable(r) for r in written]
    assert {r["id"] for r in rows["local"]} == {"ana-1", "ana-2", "ana-3", "raj-1", "raj-2", "raj-3"}
    assert len({json.dumps(r["tiers"]) for r in rows["local"]}) > 1  # tiers really differ per question
    assert rows["threads"] == rows["local"]
    assert rows["ray"] == rows["local"]
    # LLM objects live in this process: Ray cannot send them, and says what to pass instead.
    with pytest.raises(ConfigError, match="picklable factory"):
        run_eval(EvalConfig("jsonl", six_questions, tmp_path / "objects", split="all", policy="high",
                            executor=ExecutorSettings("ray", workers=2)),
                 _settings(tmp_path, "objects"), llms={ANSWER: ScriptedFakeLLM(ANSWER, answer_script)},
                 progress=False, log=lambda m: None)  # fmt: skip


def _csv(path):
    with path.open() as fh:
        return [_stable(r) for r in csv.DictReader(fh)]


def test_ppo_updates_are_identical_on_every_executor(six_questions, tmp_path, ray_cluster):
    runs = {}
    for kind, workers in (("local", 1), ("threads", 3), ("ray", 2)):
        cfg = TrainConfig(dataset="jsonl", data=six_questions, out=tmp_path / kind, cost_weight=0.2,
                          ppo=PPOSettings(steps=2, batch_size=3, epochs=2), hidden=16, eval_every=2,
                          executor=ExecutorSettings(kind, workers=workers))  # fmt: skip
        train_router(cfg, _settings(tmp_path, f"train-{kind}"), llms=LLMS, progress=False, log=lambda m: None)
        runs[kind] = cfg.out
    ref = torch.load(runs["local"] / "last.pt", weights_only=False)["state_dict"]
    for kind in ("threads", "ray"):
        got = torch.load(runs[kind] / "last.pt", weights_only=False)["state_dict"]
        # Bit for bit (threads included: budgetmem.encoder asks MKL for alignment-independent kernels).
        assert all(torch.equal(ref[k], got[k]) for k in ref), kind
        for name in ("log.csv", "ppo.csv", "val.csv"):
            assert _csv(runs[kind] / name) == _csv(runs["local"] / name), (kind, name)
    # every PPO epoch is logged, not only the last one's
    assert [(r["step"], r["epoch"]) for r in _csv(runs["local"] / "ppo.csv")] == [
        ("1", "1"), ("1", "2"), ("2", "1"), ("2", "2")]  # fmt: skip


def test_cli_executor_flags(tmp_path, capsys):
    from budgetmem.cli.main import main

    data = write_jsonl(tmp_path / "q.jsonl")
    base = ["eval", "--dataset", "jsonl", "--data", str(data), "--out", str(tmp_path / "o"), "--no-progress"]
    assert main([*base, "--ray-address", "ray://head:10001"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--ray-address needs --executor ray" in err and "\n" not in err
    assert main([*base, "--executor", "threads", "--workers", "0"]) == 2
    assert "workers must be >= 1" in capsys.readouterr().err


def test_workers_share_the_module_cache_through_postgresql(six_questions, tmp_path, ray_cluster, pg_address):
    """Thread workers fill the module cache in the database; Ray workers (other processes) of
    a later run on the same address find every module call there, and answer alike."""
    import psycopg

    def entries() -> int:
        with psycopg.connect(pg_address) as conn:
            return int(conn.execute("SELECT count(*) FROM budgetmem.module_cache").fetchone()[0])

    runs = {}
    for kind, workers in (("threads", 3), ("ray", 2)):
        cfg = EvalConfig("jsonl", six_questions, tmp_path / f"pg-{kind}", split="all", policy="high",
                         store=pg_address, executor=ExecutorSettings(kind, workers=workers))  # fmt: skip
        runs[kind] = run_eval(cfg, _settings(tmp_path, "pg"), llms=LLMS, progress=False, log=lambda m: None)
        if kind == "threads":
            filled = entries()
            assert filled > 0 and runs[kind].cache["misses"] > 0
    assert runs["ray"].cache["misses"] == 0 and runs["ray"].cache["hits"] == runs["threads"].cache["misses"] + runs["threads"].cache["hits"]
    assert entries() == filled
    assert not (tmp_path / "cache-pg.sqlite").exists()  # the file cache was never used
    assert [_stable(r)["answer"] for r in runs["ray"].rows] == [_stable(r)["answer"] for r in runs["threads"].rows]
