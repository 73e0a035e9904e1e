"""The fuzz campaigns of bench/reliability.py, a few short trials each.

The full runs (tens of thousands of cases) are benchmarks; this checks that the campaigns
run, count their cases, classify CLI outcomes correctly and report a broken promise.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from campaigns import cli_cases, fuzz  # noqa: E402


def test_both_campaigns_are_declared() -> None:
    names = {c.name: c for c in fuzz.CAMPAIGNS}
    assert set(names) == {"fuzz_properties", "fuzz_cli"}
    assert names["fuzz_cli"].trials * fuzz.CLI_PER_TRIAL == 10_000


def test_a_property_trial_counts_its_examples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fuzz, "PROPERTY_EXAMPLES", 15)
    trials = [fuzz.run_properties(i, tmp_path, random.Random(i), None) for i in range(2)]
    for t in trials:
        assert t.ok, t.failures
        assert set(t.detail) == {"loaders", "chunker", "dates", "parsers"}
        assert t.cases == sum(d["cases"] for d in t.detail.values()) >= 4 * 10
    assert trials[0].detail["dates"]["seed"] != trials[1].detail["dates"]["seed"]


def test_a_property_trial_reports_a_broken_promise(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from budgetmem.pipeline.modules import dates

    def fragile(*args: object, **kwargs: object) -> None:
        raise IndexError("list index out of range")

    monkeypatch.setattr(fuzz, "PROPERTY_EXAMPLES", 15)
    monkeypatch.setattr(dates, "resolve", fragile)
    t = fuzz.run_properties(0, tmp_path, random.Random(0), None)
    assert not t.ok and len(t.failures) == 1 and t.failures[0].startswith("dates (seed ")
    assert "IndexError" in t.failures[0]


# ---------------------------------------------------------------- one forked invocation
ENV = {**cli_cases.child_env(), "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}


def test_a_clean_usage_error_is_exit_2_with_one_line(tmp_path: Path) -> None:
    o = fuzz.run_invocation(["stats", "--bogus"], tmp_path, ENV)
    assert (o.status, o.label, o.ok) == (2, "exit 2, one line", True)
    assert o.stderr == "budgetmem: error: unrecognized arguments: --bogus (see: budgetmem --help)\n"


def test_help_is_exit_0_on_stdout(tmp_path: Path) -> None:
    o = fuzz.run_invocation(["--help"], tmp_path, ENV)
    assert (o.status, o.label) == (0, "exit 0") and "usage: budgetmem" in o.stdout and o.stderr == ""


def test_an_uncaught_exception_is_a_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import budgetmem.cli.main as cli_main

    def crash(argv: object = None) -> int:
        raise ValueError("boom")

    monkeypatch.setattr(cli_main, "main", crash)  # the fork inherits the patched module
    o = fuzz.run_invocation(["stats"], tmp_path, ENV)
    assert (o.status, o.label, o.ok) == (1, "traceback", False)
    assert o.stderr.rstrip().endswith("ValueError: boom")


def test_a_hung_invocation_is_killed_and_counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    import budgetmem.cli.main as cli_main

    monkeypatch.setattr(cli_main, "main", lambda argv=None: time.sleep(60))
    o = fuzz.run_invocation(["stats"], tmp_path, ENV, timeout_s=0.5)
    assert o.timed_out and o.label == "timeout" and not o.ok and o.seconds < 10


def test_classify_the_other_ways_to_break_the_promise() -> None:
    def out(status: int | None, stderr: str, sig: int | None = None) -> str:
        return fuzz.classify(fuzz.Outcome((), status, sig, False, "", stderr, 0.0))

    assert out(2, "budgetmem: error: a\nand b\n") == "exit 2, several lines"
    assert out(2, "") == "exit 2, silent"
    assert out(1, "budgetmem: error: x\n") == "exit 1"
    assert out(0, "Traceback (most recent call last):\n  ...\nKeyError: 1\n") == "traceback"
    assert out(None, "", 9) == "killed by signal 9"
    assert out(0, "progress on stderr\n") == "exit 0"


# ---------------------------------------------------------------- generated command lines
def test_generated_command_lines_reach_every_subcommand() -> None:
    cmds = cli_cases.commands()
    rng = random.Random(3)
    drawn = [cli_cases.invocation(cmds, rng) for _ in range(2000)]
    assert {c for c, _ in drawn} >= {" ".join(c.words) for c in cmds}
    # nothing may download or run an LLM: a settings file is always given, and prepare never
    # gets a name that is not ready or the empty list that means every model
    assert all(argv[:1] == ["--config"] for c, argv in drawn if c != "(none)")
    for c, argv in drawn:
        if c == "models prepare":
            assert "--models-dir" not in argv
            names = argv[argv.index("prepare") + 1 :]
            assert names and names[0] in ("all-minilm-l6-v2", "smollm2-135m", "no-such-model", "", "x")
        if c == "complete":
            assert "--provider" in argv or any(w.startswith("--provider=") for w in argv)


@pytest.mark.models
def test_a_few_cli_trials_run_and_count_by_outcome(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fuzz, "CLI_PER_TRIAL", 12)
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")  # setup sets it; restored afterwards
    shared = fuzz.setup_cli(tmp_path / "setup")
    for i in range(2):
        work = tmp_path / f"trial{i}"
        work.mkdir()
        t = fuzz.run_cli(i, work, random.Random(100 + i), shared)
        assert t.cases == 12 == sum(t.detail["outcomes"].values()) == sum(t.detail["commands"].values())
        assert t.ok, t.failures
