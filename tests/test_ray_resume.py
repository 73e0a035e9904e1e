"""A Ray evaluation killed midway (SIGKILL, as an out-of-memory kill or a lost node would)
resumes on re-run: every question once, in order, none missing. The answer model is a real
OpenAI-compatible HTTP server on 127.0.0.1 (tests/fake_openai.py) that replies after a
delay, so the run is slow enough to be killed after a few rows."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from evaldata import write_jsonl
from fake_openai import FakeOpenAIServer

SRC = Path(__file__).resolve().parents[1] / "src"


def _command(data: Path, out: Path, provider: str) -> list[str]:
    return [sys.executable, "-m", "budgetmem", "eval", "--dataset", "jsonl", "--data", str(data), "--split", "all",
            "--out", str(out), "--answer-llm", provider, "--encoder", "all-minilm-l6-v2", "--policy", "low",
            "--chunk-tokens", "32", "--no-cache", "--no-progress", "--json", "--executor", "ray", "--workers", "2"]  # fmt: skip


def test_killed_ray_eval_resumes_without_duplicates(tmp_path):
    import ray  # noqa: F401  (the ray extra; make test installs it: a missing one fails here)

    data = write_jsonl(tmp_path / "q.jsonl")
    lines = [json.loads(x) for x in data.read_text().splitlines()]
    for i in range(7):  # 12 questions: enough left to kill the run in the middle
        lines[i % 2]["questions"].append({"id": f"extra-{i}", "question": f"What happened in session {i}?", "answer": "x"})
    data.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    ids = [q["id"] for h in lines for q in h["questions"]]
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    env.pop("RAY_ADDRESS", None)  # a Ray of its own, as a user's command would start
    env["RAY_memory_monitor_refresh_ms"] = "0"  # other people's jobs on a shared machine are not ours to pay for
    results = out / "results.jsonl"
    with FakeOpenAIServer(delay_s=1.0) as srv:
        proc = subprocess.Popen(_command(data, out, srv.provider), env=env, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline and proc.poll() is None:
                if results.exists() and len(results.read_text().splitlines()) >= 3:
                    break
                time.sleep(0.2)
        finally:
            # The whole process group: the command, and the local Ray it started.
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:  # it ended on its own; the assertion below says how far it got
                pass
            proc.wait(timeout=60)
        killed_with = len(results.read_text().splitlines())
        assert 3 <= killed_with < len(ids), "the run was not killed midway"

        done = subprocess.run(_command(data, out, srv.provider), env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [json.loads(x) for x in results.read_text().splitlines()]
    assert [r["id"] for r in rows] == ids  # each question once, in order: nothing lost, nothing repeated
    assert json.loads(done.stdout)["summary"]["overall"]["n"] == len(ids)
