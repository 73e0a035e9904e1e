"""The CLI as a user runs it: JSON for scripts, one-line errors with exit status 2,
and a store left untouched by a failed command."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import pytest
from conftest import EXAMPLE

from budgetmem.cli.main import main


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _dump(path) -> list[str]:
    db = sqlite3.connect(path)
    try:
        return list(db.iterdump())
    finally:
        db.close()


@pytest.fixture
def store(tmp_path, capsys):
    db = tmp_path / "mem.db"
    code, out, _ = _run(
        capsys, "ingest", str(EXAMPLE), "--store", str(db), "--namespace", "demo",
        "--encoder", "all-minilm-l6-v2", "--chunk-tokens", "64", "--json",
    )  # fmt: skip
    assert code == 0
    report = json.loads(out)
    assert report["encoder"] == "all-minilm-l6-v2"
    assert report["namespaces"][0]["namespace"] == "demo"
    assert report["chunks_added"] == report["namespaces"][0]["chunks_added"] > 4
    return db


def test_search_json(store, capsys):
    code, out, _ = _run(capsys, "search", "What is the bakery called?", "--store", str(store), "--namespace", "demo", "-k", "3", "--json")
    assert code == 0
    result = json.loads(out)
    assert len(result["hits"]) == 3
    top = result["hits"][0]
    assert {"rank", "score", "chunk_id", "session_id", "session_date", "dia_ids", "text"} <= set(top)
    assert any("D4:4" in h["dia_ids"] for h in result["hits"])


def test_search_human_output_and_namespaces(store, capsys):
    code, out, _ = _run(capsys, "search", "Pixel the cat", "--store", str(store), "--namespace", "demo", "--retriever", "bm25", "-k", "2")
    assert code == 0 and out.startswith("#1  score") and "Pixel" in out
    code, out, _ = _run(capsys, "namespaces", "--store", str(store), "--json")
    (ns,) = json.loads(out)
    assert (ns["name"], ns["encoder"], ns["dim"], ns["chunk_tokens"], ns["n_sessions"]) == ("demo", "all-minilm-l6-v2", 384, 64, 4)


def test_models_json(capsys):
    code, out, _ = _run(capsys, "models", "--json")
    assert code == 0
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["smollm2-135m"]["status"] == "ready"
    assert rows["qwen2.5-coder-1.5b"]["ladder"] == "large"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ingest", "{tmp}/missing.json"], "file not found"),
        (["ingest", "{tmp}/bad.json"], "malformed JSON"),
        (["ingest", "{tmp}/data.csv"], "unknown file type .csv"),
        (["ingest", "{tmp}/empty.txt"], "empty history"),
        (["ingest", str(EXAMPLE), "--format", "yaml"], "invalid choice: 'yaml'"),
        (["ingest", str(EXAMPLE), "--encoder", "bert-huge"], "invalid choice: 'bert-huge'"),
        (["ingest", str(EXAMPLE), "--encoder", "all-mpnet-base-v2"], "was embedded with all-minilm-l6-v2"),
        (["search", "q", "--namespace", "nobody"], "namespace 'nobody' not found"),
    ],
)
def test_errors_are_one_line_exit_2_and_store_unchanged(store, tmp_path, capsys, args, message):
    (tmp_path / "bad.json").write_text('[{"conversation": {', encoding="utf-8")
    (tmp_path / "data.csv").write_text("a,b", encoding="utf-8")
    (tmp_path / "empty.txt").write_text("", encoding="utf-8")
    argv = [a.format(tmp=tmp_path) for a in args]
    if "--namespace" not in argv:
        argv += ["--namespace", "demo"]
    argv += ["--store", str(store)]
    before = _dump(store)
    code, out, err = _run(capsys, *argv)
    assert code == 2
    assert message in err
    assert err.strip().count("\n") == 0, err
    assert err.startswith("budgetmem")
    assert _dump(store) == before


def test_search_never_creates_a_store(tmp_path, capsys):
    code, _, err = _run(capsys, "search", "q", "--store", str(tmp_path / "absent.db"), "--namespace", "x")
    assert code == 2 and "store not found" in err
    assert not (tmp_path / "absent.db").exists()


def test_unknown_model_prepare(capsys):
    code, _, err = _run(capsys, "models", "prepare", "gpt-9")
    assert code == 2 and "unknown model 'gpt-9'" in err


def test_console_script_runs_as_a_process(tmp_path):
    exe = os.path.join(os.path.dirname(sys.executable), "budgetmem")
    proc = subprocess.run([exe, "ingest", str(tmp_path / "nope.json"), "--store", str(tmp_path / "s.db"), "--namespace", "n"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"budgetmem: error: file not found: {tmp_path / 'nope.json'} (check the path)"
    assert not (tmp_path / "s.db").exists()  # bad input fails before the store is created


def test_complete_reports_tokens_price_and_cost(capsys):
    code, out, _ = _run(capsys, "complete", "Say hello.", "--max-tokens", "8", "--json")
    assert code == 0
    call = json.loads(out)
    assert call["model"] == "llamacpp:smollm2-135m"
    assert call["prompt_tokens"] > 0 and 1 <= call["completion_tokens"] <= 8
    assert call["usd"] == pytest.approx((call["prompt_tokens"] + call["completion_tokens"]) * 0.06 / 1e6)
    assert "paper-equivalent" in call["price"]["source"]


def test_complete_errors(tmp_path, capsys):
    cfg = tmp_path / "fast.toml"
    cfg.write_text("[llm]\nmax_retries = 1\nbackoff_s = 0.01\ntimeout_s = 2\n", encoding="utf-8")
    code, _, err = _run(capsys, "complete", "hi", "--provider", "openai:mystery@http://127.0.0.1:9/v1")
    assert code == 2 and "no price for model 'mystery'" in err
    code, _, err = _run(capsys, "--config", str(cfg), "complete", "hi", "--provider", "openai:llama-3.3-70b@http://127.0.0.1:9/v1")
    assert code == 2 and "no server at http://127.0.0.1:9/v1" in err and err.count("\n") == 1
    code, _, err = _run(capsys, "complete", "hi", "--provider", "vllm:foo")
    assert code == 2 and "unknown provider" in err


def test_an_option_whose_value_is_a_double_dash_gets_that_string(tmp_path, capsys):
    # Found by the CLI fuzz campaign: argparse turned `--from=--` into an empty list, and
    # migrate's Path(args.source) ended in a TypeError traceback.
    code, _, err = _run(capsys, "migrate", "--from=--", "--to", "postgresql://x@127.0.0.1:9/y")
    assert code == 2 and err == "budgetmem: error: source store not found: -- (--from names an existing store file)\n"
    code, _, err = _run(capsys, "search", "q", "--store", str(tmp_path / "s.db"), "--namespace", "n", "--retriever=--")
    assert code == 2 and err.count("\n") == 1 and "invalid choice: '--'" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["migrate", "--from", "a" * 3000, "--to", "postgresql://x@127.0.0.1:9/y"],
        ["stats", "--store", "a" * 3000],
        ["ingest", "a" * 3000, "--store", "s.db", "--namespace", "n"],
        ["report", "a" * 3000],
        ["eval", "--dataset", "jsonl", "--data", "a" * 3000, "--out", "o"],
    ],
)
def test_a_path_longer_than_the_filesystem_allows_is_one_line(argv, tmp_path, monkeypatch, capsys):
    # Found by the CLI fuzz campaign: on Python 3.11 even Path.exists() raises OSError
    # (ENAMETOOLONG) for a 3,000-character name, so every command that looked at such a path
    # ended in a traceback.
    monkeypatch.chdir(tmp_path)
    code, _, err = _run(capsys, *argv)
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith("budgetmem: error: File name too long: aaa") and len(err) < 250


def test_complete_refuses_a_grammar_file_that_is_not_text(tmp_path, capsys):
    # Found by the CLI fuzz campaign: a binary --grammar file was a UnicodeDecodeError
    # traceback (only OSError was caught), before any model was touched.
    binary = tmp_path / "g.gbnf"
    binary.write_bytes(bytes(range(256)))
    code, _, err = _run(capsys, "complete", "hi", "--grammar", str(binary), "--provider", "nonsense")
    assert code == 2 and err.count("\n") == 1 and "is not UTF-8 text" in err


def test_ask_json_with_ledger(store, tmp_path, capsys):
    cfg = tmp_path / "ask.toml"
    cfg.write_text(
        f'[pipeline]\nanswer_llm = "llamacpp:smollm2-135m"\ncache_path = "{tmp_path / "cache.sqlite"}"\n', encoding="utf-8"
    )
    argv = ["--config", str(cfg), "ask", "Who is Priya's Portuguese tutor?", "--store", str(store),
            "--namespace", "demo", "--policy", "low,summary=mid", "--json"]  # fmt: skip
    code, out, err = _run(capsys, *argv)
    assert code == 0, err
    r = json.loads(out)
    assert r["tiers"] == {"filter": "LOW", "entity": "LOW", "temporal": "LOW", "topic": "LOW", "summary": "MID"}
    assert [s["module"] for s in r["steps"]] == ["filter", "entity", "temporal", "topic", "summary"]
    assert r["totals"]["extraction_usd"] == 0 and all(s["usd"] == 0 and s["cpu_s"] >= 0 for s in r["steps"])
    a = r["answer_step"]
    assert a["model"] == "llamacpp:smollm2-135m" and a["prompt_tokens"] > 0
    assert a["usd"] == pytest.approx((a["prompt_tokens"] + a["completion_tokens"]) * 0.06 / 1e6)
    assert r["memory"] and r["answer"]
    assert r["cache"] == {"hits": 0, "misses": 6}  # five modules and the answer
    code, out, _ = _run(capsys, *argv)
    assert json.loads(out)["cache"] == {"hits": 6, "misses": 0}  # asked again: nothing recomputed


def test_ask_errors(store, capsys):
    code, _, err = _run(capsys, "ask", "q", "--store", str(store), "--namespace", "demo", "--policy", "medium")
    assert code == 2 and "unknown policy 'medium'" in err and err.count("\n") == 1
    code, _, err = _run(capsys, "ask", "q", "--store", str(store), "--namespace", "demo", "--ladder", "a,b")
    assert code == 2 and "--ladder needs three providers" in err
