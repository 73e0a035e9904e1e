"""Evaluation runs end to end on a small JSONL set, with the real MiniLM encoder and store and
a scripted fake LLM (ScriptedFakeLLM) as answer model: rows, metrics, costs, resume after
an interruption or a torn line, baselines, summaries and the report."""

from __future__ import annotations

import json

import pytest
from evaldata import write_jsonl
from fakes import TEST_PRICE, ScriptedFakeLLM

from budgetmem import Settings
from budgetmem.errors import InputError
from budgetmem.eval import dataset_settings, load_run
from budgetmem.harness import EvalConfig, run_eval
from budgetmem.eval.report import compare_table, plot_runs

ANSWER = "fake:answer"
# Replies keyed by a word of each question; F1 against the gold worked out by hand below.
REPLIES = {"name of": "Miso", "find": "a shelter in Lisbon", "studio": "Barro", "grow": "tomatoes", "August": "his sister Priya"}
# ana-1 exact (1); ana-2 "a shelter in Lisbon" vs "the shelter on Rua Augusta": normalised
# tokens [shelter, in, lisbon] vs [shelter, on, rua, augusta]: 1 shared, P 1/3, R 1/4 -> 2/7;
# ana-3 "Barro" matches the second gold exactly (1); raj-1 "tomatoes" vs "tomatoes, basil
# and chillies" -> [tomato] vs [tomato, basil, chilli]: P 1, R 1/3 -> 1/2; raj-2 "his sister
# Priya" vs "Priya": P 1/3, R 1 -> 1/2.
EXPECTED_F1 = {"ana-1": 1.0, "ana-2": 2 / 7, "ana-3": 1.0, "raj-1": 0.5, "raj-2": 0.5}


def answer_script(prompt: str) -> str:
    question = prompt.rsplit("Question:", 1)[1]
    return next(reply for key, reply in REPLIES.items() if key in question)


@pytest.fixture
def data(tmp_path):
    return write_jsonl(tmp_path / "mine.jsonl")


@pytest.fixture
def settings(tmp_path):
    base = Settings().replace(encoder__name="all-minilm-l6-v2", pipeline__answer_llm=ANSWER, retrieval__top_k=2)
    base = base.replace(pipeline__cache_path=tmp_path / "cache.sqlite")
    return dataset_settings(base, "jsonl", chunk_tokens=32)


def _run(data, out, settings, llm, **kw):
    cfg = EvalConfig(dataset="jsonl", data=data, out=out, split="all", **{"policy": "low", **kw})
    return run_eval(cfg, settings, llms={ANSWER: llm}, progress=False, log=lambda m: None)


def test_rows_metrics_and_costs(data, tmp_path, settings):
    llm = ScriptedFakeLLM(ANSWER, answer_script, tokens=(200, 5))
    run = _run(data, tmp_path / "run", settings, llm)
    rows = [json.loads(x) for x in (tmp_path / "run" / "results.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == list(EXPECTED_F1)
    for r in rows:
        assert r["metrics"]["f1"] == pytest.approx(EXPECTED_F1[r["id"]]), r["id"]
        assert r["split"] == "all" and r["system"] == "implementation:low"
        assert r["tiers"] == {m: "LOW" for m in ("filter", "entity", "temporal", "topic", "summary")}
        # LOW tiers are rules: the only paid call is the answer, 200 + 5 tokens at the test price.
        assert r["cost"]["extraction_usd"] == 0.0
        assert r["cost"]["answer_usd"] == pytest.approx(200 * 1.0 / 1e6 + 5 * 2.0 / 1e6)
        assert r["trace"]["answer_step"]["calls"][0]["price_source"] == TEST_PRICE.source
        assert r["memory"] and r["gold"]
    assert run.summary["overall"]["n"] == 5
    assert run.summary["overall"]["f1"] == pytest.approx(sum(EXPECTED_F1.values()) / 5)
    assert run.summary["categories"]["pets"]["f1"] == pytest.approx((1 + 2 / 7) / 2)
    assert run.summary["overall"]["em"] == pytest.approx(2 / 5)
    md = (tmp_path / "run" / "summary.md").read_text()
    assert "| overall | 5 |" in md and "split **all**" in md
    csv_lines = (tmp_path / "run" / "summary.csv").read_text().splitlines()
    assert csv_lines[0].startswith("category,n,f1") and csv_lines[-1].startswith("overall,5,")
    ident = json.loads((tmp_path / "run" / "run.json").read_text())["identity"]
    assert ident["split"]["part"] == "all" and ident["answer_llm"] == ANSWER and ident["chunk_tokens"] == 32


def test_resume_after_interruption_and_torn_line(data, tmp_path, settings):
    calls = {"n": 0}

    def dies_on_third(prompt: str) -> str:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return answer_script(prompt)

    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        _run(data, out, settings, ScriptedFakeLLM(ANSWER, dies_on_third))
    results = out / "results.jsonl"
    assert len(results.read_text().splitlines()) == 2
    # A process killed mid-write leaves half a line: it is dropped and that question redone.
    with results.open("a") as fh:
        fh.write('{"id": "ana-3", "metr')
    again = ScriptedFakeLLM(ANSWER, answer_script)
    run = _run(data, out, settings, again)
    assert len(again.received) == 3  # ana-3, raj-1, raj-2: nothing asked twice
    ids = [json.loads(x)["id"] for x in results.read_text().splitlines()]
    assert ids == list(EXPECTED_F1) and run.resumed == 2
    # Running the finished command again asks nothing.
    idle = ScriptedFakeLLM(ANSWER, [])
    assert _run(data, out, settings, idle).resumed == 5 and idle.received == []


def test_limit_extends_and_other_runs_are_refused(data, tmp_path, settings):
    out = tmp_path / "run"
    _run(data, out, settings, ScriptedFakeLLM(ANSWER, answer_script), limit=2)
    assert len((out / "results.jsonl").read_text().splitlines()) == 2
    more = ScriptedFakeLLM(ANSWER, answer_script)
    _run(data, out, settings, more, limit=4)
    assert len(more.received) == 2
    with pytest.raises(InputError, match="holds a different run .*policy"):
        _run(data, out, settings, ScriptedFakeLLM(ANSWER, []), policy="mid")


@pytest.mark.parametrize(("constant", "field"), [("IMPLEMENTATION_VERSION", "implementation"), ("ANSWER_PROMPT_VERSION", "answer_prompt")])
def test_rows_of_an_older_implementation_are_not_resumed(data, tmp_path, settings, monkeypatch, constant, field):
    out = tmp_path / "run"
    _run(data, out, settings, ScriptedFakeLLM(ANSWER, answer_script), limit=2)
    monkeypatch.setattr(f"budgetmem.harness.evaluate.{constant}", "next")
    with pytest.raises(InputError, match=f"holds a different run .*{field}"):
        _run(data, out, settings, ScriptedFakeLLM(ANSWER, []), limit=4)


def test_naive_rag_and_full_context(data, tmp_path, settings):
    llm = ScriptedFakeLLM(ANSWER, answer_script)
    rag = _run(data, tmp_path / "rag", settings, llm, policy="naive-rag")
    row = rag.rows[0]
    assert row["system"] == "naive-rag" and row["trace"]["steps"] == [] and row["cost"]["extraction_usd"] == 0.0
    assert len(row["trace"]["candidates"]) == 2  # top_k chunks, straight to the answer model
    assert "<memory index=\"1\"" in row["memory"] and "<memory index=\"3\"" not in row["memory"]

    # A window of 300 tokens holds only the newest chunks of Ana's history; the fake LLM has
    # no tokenizer, so the encoder's counts are used and the trace says so.
    from budgetmem.eval.systems import FullContext

    full_llm = ScriptedFakeLLM(ANSWER, answer_script)
    full = _run(data, tmp_path / "full", settings, full_llm, policy="full-context")
    ctx = full.rows[0]["trace"]["context"]
    assert ctx["truncated"] is False and ctx["kept_chunks"] == ctx["history_chunks"]
    assert "Miso" in full_llm.prompts[0] and "Barro Studio" in full_llm.prompts[0]
    assert "encoder tokenizer" in ctx["counted_with"]

    from budgetmem import BudgetMem
    from budgetmem.eval.datasets import load_eval_set

    item = load_eval_set("jsonl", data).items[0]
    small = FullContext(max_context_tokens=260)
    with BudgetMem(tmp_path / "full" / "store.db", "jsonl/ana", settings=settings, llms={ANSWER: full_llm}) as mem:
        r = small.answer(mem, item)
        all_chunks = mem.store.chunks("jsonl/ana")
    assert r.context["truncated"] is True and 0 < r.context["kept_chunks"] < len(all_chunks)
    kept_ids = [c.chunk.id for c in r.candidates]
    assert kept_ids == [c.id for c in all_chunks[-len(kept_ids):]]  # the most recent ones
    assert r.context["kept_tokens"] < r.context["history_tokens"]


def test_judge_scores_are_kept_apart_from_system_cost(data, tmp_path, settings):
    judge = ScriptedFakeLLM("fake:judge", lambda p: '{"explanation": "x", "score": 0.5}', tokens=(50, 8))
    cfg = EvalConfig(dataset="jsonl", data=data, out=tmp_path / "j", split="all", policy="low", judge="fake:judge", limit=3)
    run = run_eval(cfg, settings, llms={ANSWER: ScriptedFakeLLM(ANSWER, answer_script, tokens=(10, 1)), "fake:judge": judge},
                   progress=False, log=lambda m: None)  # fmt: skip
    o = run.summary["overall"]
    assert o["judge"] == 0.5 and o["judged"] == 3
    assert o["judge_usd"] == pytest.approx(50 / 1e6 + 8 * 2 / 1e6)
    assert o["total_usd"] == pytest.approx(10 / 1e6 + 2 / 1e6)  # the judge is not in the system's cost


def test_report_table_and_plot(data, tmp_path, settings):
    _run(data, tmp_path / "low", settings, ScriptedFakeLLM(ANSWER, answer_script))
    _run(data, tmp_path / "rag", settings, ScriptedFakeLLM(ANSWER, answer_script, tokens=(900, 5)), policy="naive-rag",
         limit=3)  # fmt: skip
    runs = [load_run(tmp_path / "low"), load_run(tmp_path / "rag")]
    assert runs[1].partial is False and runs[1].n == 3
    text = compare_table(runs)
    assert "implementation:low" in text and "naive-rag" in text
    png = plot_runs(runs, tmp_path / "cmp.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(InputError, match="not an evaluation run"):
        load_run(tmp_path)
