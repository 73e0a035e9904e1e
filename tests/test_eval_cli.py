"""``budgetmem eval`` and ``budgetmem report`` as a user runs them, on the real small model
(SmolLM2-135M) and the real encoder; bad input gives one line and exit 2."""

from __future__ import annotations

import json

import pytest
from evaldata import write_jsonl

from budgetmem.cli.main import main

pytestmark = pytest.mark.models

SMALL = "llamacpp:smollm2-135m"


@pytest.fixture
def data(tmp_path):
    return write_jsonl(tmp_path / "mine.jsonl")


def _eval(data, out, *extra):
    return main(["eval", "--dataset", "jsonl", "--data", str(data), "--split", "all", "--out", str(out),
                 "--answer-llm", SMALL, "--encoder", "all-minilm-l6-v2", "--no-progress", "--no-cache", *extra])  # fmt: skip


def test_eval_resume_and_report(data, tmp_path, capsys):
    store = tmp_path / "shared.db"
    assert _eval(data, tmp_path / "rag", "--policy", "naive-rag", "--limit", "2", "--store", str(store)) == 0
    out = capsys.readouterr().out
    assert "# jsonl all: naive-rag" in out and "| overall | 2 |" in out
    # Extending the limit resumes: the two done questions are not asked again.
    assert _eval(data, tmp_path / "rag", "--policy", "naive-rag", "--limit", "3", "--store", str(store), "--json") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["summary"]["overall"]["n"] == 3 and summary["split"]["part"] == "all"
    rows = [json.loads(x) for x in (tmp_path / "rag" / "results.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["ana-1", "ana-2", "ana-3"]
    call = rows[0]["trace"]["answer_step"]["calls"][0]
    assert call["model"] == SMALL and call["prompt_tokens"] > 0 and "paper-equivalent" in call["price_source"]

    # Full context with the answer model's own tokenizer, in a window small enough to truncate.
    cfg = tmp_path / "small.toml"
    cfg.write_text("[llm]\nn_ctx = 320\n", encoding="utf-8")
    assert main(["--config", str(cfg), "eval", "--dataset", "jsonl", "--data", str(data), "--split", "all",
                 "--out", str(tmp_path / "full"), "--answer-llm", SMALL, "--encoder", "all-minilm-l6-v2",
                 "--policy", "full-context", "--chunk-tokens", "32", "--limit", "1", "--no-progress"]) == 0  # fmt: skip
    capsys.readouterr()
    ctx = json.loads((tmp_path / "full" / "results.jsonl").read_text().splitlines()[0])["trace"]["context"]
    assert ctx["counted_with"] == "answer model tokenizer" and ctx["truncated"] is True
    assert 0 < ctx["kept_chunks"] < ctx["history_chunks"] and ctx["window"] == 320

    png = tmp_path / "cmp.png"
    assert main(["report", str(tmp_path / "rag"), str(tmp_path / "full"), "--png", str(png)]) == 0
    text = capsys.readouterr().out
    assert "naive-rag" in text and "full-context" in text and "1/1" not in text
    assert png.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--data", "/nonexistent/x.jsonl"], "file not found"),
        (["--policy", "sideways"], "unknown policy"),
        (["--limit", "0"], "--limit must be >= 1"),
    ],
)
def test_eval_errors_are_one_line(data, tmp_path, capsys, extra, message):
    args = ["eval", "--dataset", "jsonl", "--data", str(data), "--split", "all", "--out", str(tmp_path / "o"),
            "--answer-llm", SMALL, "--no-progress"]  # fmt: skip
    if extra[0] == "--data":
        args[4] = extra[1]
        extra = []
    assert main([*args, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_report_errors(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "not an evaluation run directory" in capsys.readouterr().err
    assert main(["eval", "--dataset", "squad", "--data", "x", "--out", "o"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_eval_with_a_real_judge_keeps_its_cost_apart(data, tmp_path, capsys):
    # SmolLM2 as the judge: its reply is grammar-constrained, so every judgement parses.
    assert _eval(data, tmp_path / "j", "--policy", "low", "--limit", "2", "--judge", SMALL, "--json") == 0
    overall = json.loads(capsys.readouterr().out)["summary"]["overall"]
    rows = [json.loads(x) for x in (tmp_path / "j" / "results.jsonl").read_text().splitlines()]
    for r in rows:
        j = r["judge"]
        assert j["score"] in (0.0, 0.5, 1.0) and j["explanation"] and j["usd"] > 0
        assert r["metrics"]["judge"] == j["score"]
        # The judge's dollars are not part of what the system cost.
        assert r["cost"]["total_usd"] == pytest.approx(r["cost"]["extraction_usd"] + r["cost"]["answer_usd"])
    assert overall["judged"] == 2 and overall["judge_usd"] == pytest.approx(sum(r["judge"]["usd"] for r in rows) / 2)
