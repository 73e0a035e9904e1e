"""Router training end to end on a small JSONL set: the real MiniLM encoder and store, the
real pipeline and module cache, and scripted fake LLMs (ScriptedFakeLLM) for the module
and answer calls. The answer is right only when the summary came from the LLM tier, so
the reward depends on the router's choices."""

from __future__ import annotations

import csv
import json
import re

import pytest
from evaldata import write_jsonl
from fakes import ScriptedFakeLLM

from budgetmem import BudgetMem, Settings
from budgetmem.errors import ConfigError, InputError
from budgetmem.eval import dataset_settings
from budgetmem.harness import EvalConfig, run_eval
from budgetmem.pipeline.prompts import task_text
from budgetmem.pipeline.stages import MODULES
from budgetmem.router import load_router
from budgetmem.training.ppo import PPOSettings
from budgetmem.training.train import LOG_FIELDS, TrainConfig, train_router

ANSWER, MODULE = "fake:answer", "fake:module"
GOLD = {"name of": "Miso", "find": "the shelter on Rua Augusta", "studio": "Barro", "grow": "tomatoes, basil and chillies",
        "August": "Priya"}  # fmt: skip


def module_script(prompt: str) -> str:
    if task_text("filter") in prompt:
        return "<answer>" + json.dumps([7] * len(re.findall(r"<memory index=", prompt))) + "</answer>"
    if task_text("summary") in prompt:
        return "<answer>LLM-SUMMARY</answer>"
    return '<answer>["a fact"]</answer>'


def answer_script(prompt: str) -> str:
    question = prompt.rsplit("Question:", 1)[1]
    right = next(a for k, a in GOLD.items() if k in question)
    return right if "LLM-SUMMARY" in prompt else "I am not sure"


@pytest.fixture
def setup(tmp_path):
    data = write_jsonl(tmp_path / "mine.jsonl")
    base = Settings().replace(
        encoder__name="all-minilm-l6-v2", pipeline__answer_llm=ANSWER, pipeline__module_llm=MODULE, retrieval__top_k=2,
        pipeline__cache_path=tmp_path / "cache.sqlite",
    )  # fmt: skip
    settings = dataset_settings(base, "jsonl", chunk_tokens=32)
    llms = {ANSWER: ScriptedFakeLLM(ANSWER, answer_script), MODULE: ScriptedFakeLLM(MODULE, module_script)}
    return data, settings, llms


def _cfg(data, out, steps, **kw):
    return TrainConfig(dataset="jsonl", data=data, out=out, cost_weight=0.2,
                       ppo=PPOSettings(steps=steps, batch_size=3), hidden=16, eval_every=2, **kw)  # fmt: skip


def _rows(path):
    with path.open() as fh:
        return list(csv.DictReader(fh))


def test_train_logs_validates_checkpoints_and_resumes(setup, tmp_path):
    data, settings, llms = setup
    out = tmp_path / "router"
    first = train_router(_cfg(data, out, 2), settings, llms=llms, progress=False, log=lambda m: None)
    assert first.steps == 2 and first.best_step == 2
    log = _rows(out / "log.csv")
    assert [r["step"] for r in log] == ["1", "2"] and list(log[0]) == LOG_FIELDS
    for r in log:
        for m in MODULES:  # each module's tier ratios sum to one
            assert sum(float(r[f"{m}_{t}"]) for t in ("low", "mid", "high")) == pytest.approx(1.0)
        assert 0.0 <= float(r["f1"]) <= 1.0 and float(r["decision_ms"]) > 0.0
        # Only an LLM summary lets the answer be right; only HIGH tiers cost money here.
        if float(r["summary_high"]) == 0.0:
            assert float(r["f1"]) == 0.0
        any_high = any(float(r[f"{m}_high"]) > 0 for m in MODULES)
        assert (float(r["cost_usd"]) > 0.0) == any_high
    # Killed after logging a third step but before saving it: that line is dropped on resume.
    with (out / "log.csv").open("a") as fh:
        fh.write("3," + ",".join("0" for _ in LOG_FIELDS[1:]) + "\n")
    # Interrupted after two steps; asking for four resumes at step 3, nothing repeated.
    second = train_router(_cfg(data, out, 4), settings, llms=llms, progress=False, log=lambda m: None)
    assert second.steps == 4
    assert [r["step"] for r in _rows(out / "log.csv")] == ["1", "2", "3", "4"]
    assert [r["step"] for r in _rows(out / "val.csv")] == ["2", "4"]
    # The same three training questions come back every step: the module cache serves repeats.
    assert second.cache_hit_rate > 0.0
    assert (out / "curves.png").stat().st_size > 10_000
    with pytest.raises(InputError, match="different training run"):
        train_router(_cfg(data, out, 4, seed=5), settings, llms=llms, progress=False, log=lambda m: None)

    # The best router is a policy everywhere one is accepted.
    from budgetmem.encoder import Encoder

    router = load_router(out / "best.pt", Encoder(settings.encoder))
    assert router.meta["strategy"] == "implementation" and router.meta["cost_weight"] == 0.2
    assert router.meta["step"] == second.best_step
    run = run_eval(
        EvalConfig("jsonl", data, tmp_path / "eval", split="test", policy=f"router:{out / 'best.pt'}",
                   store=tmp_path / "router" / "store.db"),
        settings, llms=llms, progress=False, log=lambda m: None,
    )  # fmt: skip
    assert run.system == "implementation:router:best.pt" and len(run.rows) == 1
    assert set(run.rows[0]["tiers"]) == set(MODULES)
    with pytest.raises(ConfigError, match="trained for the implementation strategy"):
        BudgetMem(tmp_path / "router" / "store.db", "jsonl/ana", settings=settings, strategy="capacity",
                  policy=f"router:{out / 'best.pt'}")  # fmt: skip
    with pytest.raises(InputError, match="not found"):
        run_eval(EvalConfig("jsonl", data, tmp_path / "eval2", policy="router:nope.pt"), settings, llms=llms,
                 progress=False, log=lambda m: None)  # fmt: skip


def test_frontier_trains_per_weight_evaluates_baselines_and_plots(setup, tmp_path):
    from budgetmem.training.frontier import FrontierConfig, run_frontier

    data, settings, llms = setup
    cfg = FrontierConfig(
        dataset="jsonl", data=data, out=tmp_path / "frontier", cost_weights=(0.0, 0.5), baselines=("low", "high"),
        ppo=PPOSettings(steps=2, batch_size=3), eval_every=2, align_ablation=True,
    )  # fmt: skip
    points = run_frontier(cfg, settings, llms=llms, progress=False, log=lambda m: None)
    labels = [p.label for p in points]
    # No alignment at lambda = 0 would repeat the aligned run (r = r_task), so it is not trained.
    assert labels == ["router lambda=0", "router lambda=0.5", "router (no alignment) lambda=0.5",
                      "fixed low", "fixed high"]  # fmt: skip
    assert not (cfg.out / "router-noalign-0").exists()
    low, high = points[-2], points[-1]
    # The one test question (raj-1): only the LLM summary makes the answer right.
    assert low.f1 == 0.0 and low.extraction_usd == 0.0 and high.f1 == 1.0 and high.extraction_usd > 0.0
    assert high.tier_ratios["summary"]["HIGH"] == 1.0 and low.tier_ratios["filter"]["LOW"] == 1.0
    for name in ("frontier.md", "frontier.csv", "frontier.png", "tiers.png", "alignment.png"):
        assert (cfg.out / name).stat().st_size > 100, name
    rows = (cfg.out / "frontier.csv").read_text().splitlines()
    assert len(rows) == 1 + len(points)
    # The frontier directory is one knob: the router nearest the query's cost weight routes it.
    from budgetmem.encoder import Encoder
    from budgetmem.router import RouterFamily, load_routers

    family = load_routers(cfg.out, Encoder(settings.encoder))
    assert isinstance(family, RouterFamily) and list(family.routers) == [0.0, 0.5]  # no-alignment ones left out
    assert family.pick(None).meta["cost_weight"] == 0.0 and family.pick(0.2).meta["cost_weight"] == 0.0
    assert family.pick(0.4).meta["cost_weight"] == 0.5 and family.pick(9).meta["cost_weight"] == 0.5
    with BudgetMem(cfg.store_path(), "jsonl/raj", settings=settings, llms=llms, policy=f"router:{cfg.out}") as mem:
        result = mem.query("What does Raj grow?", cost_weight=0.5)
    assert result.policy == "routers(lambda=0,0.5)" and set(result.tiers) == set(MODULES)
    # Re-running loads the finished routers and evaluations: nothing is recomputed.
    n_calls = len(llms[ANSWER].prompts)
    again = run_frontier(cfg, settings, llms=llms, progress=False, log=lambda m: None)
    assert [p.f1 for p in again] == [p.f1 for p in points] and len(llms[ANSWER].prompts) == n_calls


def test_cli_errors_are_one_line(tmp_path, capsys):
    from budgetmem.cli.main import main

    cases = [
        (["train", "--dataset", "locomo", "--data", str(tmp_path / "missing.json"), "--out", str(tmp_path / "t")],
         "missing.json"),
        (["frontier", "--dataset", "jsonl", "--data", str(tmp_path / "x.jsonl"), "--out", str(tmp_path / "f"),
          "--cost-weights", "0,abc"], "--cost-weights"),
        (["eval", "--dataset", "jsonl", "--data", str(write_jsonl(tmp_path / "q.jsonl")), "--out", str(tmp_path / "e"),
          "--policy", f"router:{tmp_path / 'no.pt'}"], "router checkpoint"),
    ]  # fmt: skip
    for argv, says in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("budgetmem: error:") and "\n" not in err and says in err, err


def test_frontier_refuses_a_bad_dataset_before_announcing_a_router(tmp_path, capsys):
    # Found by the CLI fuzz campaign: `frontier --data EMPTY.json` printed "frontier:
    # router-0" and then the error: two lines on stderr for one refused input.
    from budgetmem.cli.main import main

    empty = tmp_path / "empty.json"
    empty.write_text("")
    code = main(["frontier", "--dataset", "locomo", "--data", str(empty), "--out", str(tmp_path / "out"),
                 "--cost-weights", "0", "--no-progress"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err == f"budgetmem: error: malformed JSON in {empty}: Expecting value at line 1 column 1\n"
    assert not (tmp_path / "out").exists()
