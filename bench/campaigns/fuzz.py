"""Fuzzing campaigns: the property tests at scale, and 10,000 generated CLI invocations.

``fuzz_properties`` runs every property of tests/fuzz_props.py (loaders, chunker, date
resolver, output parsers) on ``PROPERTY_EXAMPLES`` fresh cases each per trial, seeded from
the trial's random source, so a failure found here replays with its seed.

``fuzz_cli`` runs ``CLI_PER_TRIAL`` command lines per trial (campaigns/cli_cases.py makes
them). Each is a real process: the parent imports budgetmem once and forks per
invocation, the child runs the console script's entry point with its stdin from
/dev/null and stdout / stderr to files, and the parent reads the exit status from
waitpid. A fresh interpreter per invocation would spend ~4 s importing torch and spaCy
each time (11 hours for 10,000 on two cores); a fork costs milliseconds and still gives
every invocation its own memory, file descriptors, exit status and process group. The
child behaves as the ``budgetmem`` script would: ``sys.exit(main())``, an uncaught
exception printed as a traceback with status 1, stdout flushed at exit (a failed flush
is status 120, as in CPython).
"""

from __future__ import annotations

import locale
import os
import random
import select
import shlex
import signal
import sys
import time
import traceback
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from campaigns.common import Campaign, Trial

__all__ = ["CAMPAIGNS", "Outcome", "run_invocation", "classify"]

PROPERTY_EXAMPLES = 250
"""Cases per property per trial (the suite runs 200-300 per property in total)."""
PROPERTY_TRIALS = 20
CLI_PER_TRIAL = 100
CLI_TRIALS = 100
CHILD_TIMEOUT_S = 20.0
"""An invocation still running after this is killed and counted as a failure: nothing
generated should take long (no LLM is reachable; long commands get a refused input)."""
MAX_FAILURE_LINES = 10
"""Failures written out per trial (all are counted)."""


# --------------------------------------------------------------------------- properties
def run_properties(index: int, workdir: Path, rng: random.Random, shared: Any) -> Trial:
    from fuzz_props import PROPERTIES, run_property

    trial = Trial(index=index, cases=0)
    for prop in PROPERTIES:
        seed = rng.getrandbits(32)
        run = run_property(prop, PROPERTY_EXAMPLES, seed=seed)
        trial.cases += run.cases
        trial.detail[prop.name] = {"cases": run.cases, "seed": seed, "seconds": round(run.seconds, 2),
                                   "slowest_s": round(run.slowest_s, 3)}  # fmt: skip
        if run.failure:
            trial.failures.append(f"{prop.name} (seed {seed}): {run.failure}")
    return trial


# --------------------------------------------------------------------------- one invocation
@dataclass(frozen=True)
class Outcome:
    argv: tuple[str, ...]
    status: int | None
    """Exit status; None when the child was killed (by the timeout or a signal)."""
    signal: int | None
    timed_out: bool
    stdout: str
    stderr: str
    seconds: float

    @property
    def label(self) -> str:
        return classify(self)

    @property
    def ok(self) -> bool:
        return self.label in ("exit 0", "exit 2, one line")


def classify(o: Outcome) -> str:
    """The outcome's class: ``exit 0`` and ``exit 2, one line`` keep the CLI's promise."""
    if o.timed_out:
        return "timeout"
    if o.status is None:
        return f"killed by signal {o.signal}"
    if "Traceback (most recent call last)" in o.stderr:
        return "traceback"
    if o.status == 0:
        return "exit 0"
    if o.status == 2:
        lines = o.stderr.rstrip("\n").split("\n")
        if not o.stderr.strip():
            return "exit 2, silent"
        return "exit 2, one line" if len(lines) == 1 else "exit 2, several lines"
    return f"exit {o.status}"


def run_invocation(argv: list[str], cwd: Path, env: dict[str, str], timeout_s: float = CHILD_TIMEOUT_S) -> Outcome:
    """Run ``budgetmem ARGV`` in a forked child in ``cwd`` and collect what it did."""
    out_path, err_path = cwd / ".stdout", cwd / ".stderr"
    sys.stdout.flush()
    sys.stderr.flush()
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        _child(argv, cwd, env, out_path, err_path)
    timed_out = False
    fd = os.pidfd_open(pid)
    try:
        ready, _, _ = select.select([fd], [], [], timeout_s)
        if not ready:
            timed_out = True
            _kill_group(pid)
        _, wait_status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    _kill_group(pid)  # anything the child started and left behind (a server, a worker)
    seconds = time.perf_counter() - t0
    status = os.waitstatus_to_exitcode(wait_status)
    return Outcome(
        argv=tuple(argv), status=None if status < 0 else status, signal=-status if status < 0 else None, timed_out=timed_out,
        stdout=_read(out_path), stderr=_read(err_path), seconds=seconds,
    )  # fmt: skip


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _read(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def _child(argv: list[str], cwd: Path, env: dict[str, str], out_path: Path, err_path: Path) -> None:
    status = 1
    try:
        os.setpgid(0, 0)  # its own process group: the parent can kill all it starts
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        for fd, path, flags in ((0, os.devnull, os.O_RDONLY), (1, out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
                                (2, err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)):  # fmt: skip
            new = os.open(path, flags, 0o644)
            os.dup2(new, fd)
            os.close(new)
        # Fresh text streams on the redirected descriptors, as a process started with its
        # output in files gets them (the parent's may be line-buffered terminals).
        encoding = locale.getpreferredencoding(False)
        sys.stdin = open(0, encoding=encoding, closefd=False)  # noqa: SIM115
        sys.stdout = open(1, "w", encoding=encoding, closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", encoding=encoding, errors="backslashreplace", closefd=False)  # noqa: SIM115
        sys.argv = ["budgetmem", *argv]
        status = _as_script(argv)
    except BaseException:  # noqa: BLE001 - the child must reach os._exit whatever happens
        try:
            traceback.print_exc()
            sys.stderr.flush()
        except BaseException:  # noqa: BLE001
            pass
    finally:
        os._exit(status)


def _as_script(argv: list[str]) -> int:
    """What ``budgetmem ARGV`` exits with: the console script is ``sys.exit(main())``."""
    from budgetmem.cli.main import main

    try:
        code: Any = main(argv)
    except SystemExit as exc:
        code = exc.code
    except BaseException:  # noqa: BLE001 - an uncaught exception: the interpreter prints it and exits 1
        traceback.print_exc()
        code = 1
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code & 0xFF
    else:  # sys.exit("message"): printed to stderr, status 1
        print(code, file=sys.stderr)
        status = 1
    try:
        sys.stdout.flush()
    except BaseException:  # noqa: BLE001 - CPython reports a failed flush at exit and exits 120
        traceback.print_exc()
        status = status or 120
    sys.stderr.flush()
    return status


# --------------------------------------------------------------------------- the CLI campaign
@dataclass
class CliShared:
    pool: Path
    commands: list[Any]
    env: dict[str, str]


def setup_cli(workdir: Path) -> CliShared:
    from campaigns import cli_cases

    # Set before anything forks: Hugging Face tokenizers warn on stderr in a forked child
    # unless told parallelism is off, and that warning is not the CLI's.
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    import importlib

    # Imported once here, so every fork starts with them loaded: torch and spaCy come with
    # budgetmem.memory, the MCP SDK, FastAPI, psycopg and the training code with the others.
    # (Not sentence-transformers: few invocations load an encoder, and every fork would
    # copy its pages.)
    for name in ("budgetmem.cli.main", "budgetmem.memory", "budgetmem.mcp", "budgetmem.server", "budgetmem.harness",
                 "budgetmem.training.frontier", "budgetmem.training.writer", "budgetmem.doctor", "budgetmem.eval.report",
                 "budgetmem.store.pg_store", "psycopg", "psycopg_pool"):  # fmt: skip
        try:
            importlib.import_module(name)
        except ImportError:  # an optional extra that is not installed: the child reports it
            pass

    pool = cli_cases.make_pool(workdir / "pool")
    env = cli_cases.child_env()
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2] / "src")
    return CliShared(pool, cli_cases.commands(), env)


def run_cli(index: int, workdir: Path, rng: random.Random, shared: CliShared) -> Trial:
    from campaigns import cli_cases

    cli_cases.copy_pool(shared.pool, workdir)
    trial = Trial(index=index, cases=0)
    outcomes: Counter[str] = Counter()
    commands: Counter[str] = Counter()
    slowest = (0.0, "")
    for _ in range(CLI_PER_TRIAL):
        command, argv = cli_cases.invocation(shared.commands, rng)
        o = run_invocation(argv, workdir, shared.env)
        trial.cases += 1
        outcomes[o.label] += 1
        commands[command] += 1
        if o.seconds > slowest[0]:
            slowest = (o.seconds, shlex.join(["budgetmem", *argv])[:300])
        if not o.ok:
            if len(trial.failures) < MAX_FAILURE_LINES:
                last = (o.stderr.strip().splitlines() or [""])[-1][:300]
                trial.failures.append(f"{o.label} ({o.seconds:.1f} s): {shlex.join(['budgetmem', *argv])[:400]} -> {last}")
            else:
                trial.detail["unlisted_failures"] = trial.detail.get("unlisted_failures", 0) + 1
    trial.detail["outcomes"] = dict(sorted(outcomes.items()))
    trial.detail["commands"] = dict(sorted(commands.items()))
    trial.detail["slowest"] = {"seconds": round(slowest[0], 2), "argv": slowest[1]}
    return trial


CAMPAIGNS = [
    Campaign(
        name="fuzz_properties", title="Property fuzzing (hypothesis)", trials=PROPERTY_TRIALS, run=run_properties,
        what=f"each trial runs every property of tests/fuzz_props.py on {PROPERTY_EXAMPLES} fresh seeded cases: the "
        "LoCoMo, LongMemEval, HotpotQA, JSONL, text and Markdown loaders load or raise a one-line InputError; joined "
        "chunks give back their session; the date resolver never raises; the output parsers return a parse or a "
        "ParseError",
    ),
    Campaign(
        name="fuzz_cli", title="CLI fuzzing (generated invocations)", trials=CLI_TRIALS, run=run_cli, setup=setup_cli,
        what=f"each trial runs {CLI_PER_TRIAL} generated `budgetmem` command lines (every subcommand and flag, wrong "
        "types and choices, dropped or repeated arguments, empty, binary, truncated, deeply nested and missing files), "
        f"each a forked process with a {CHILD_TIMEOUT_S:.0f} s limit; each must exit 0, or 2 with one line on stderr, "
        "never with a traceback. The 2026-12-01 run's two failed trials: trial 0 found a traceback on a "
        "3,000-character path (fixed: an OSError on a path the user gave is one line, exit 2); trial 3 was the "
        "harness (a child spent its limit importing psycopg at load 18; the parent now imports it before forking)",
    ),
]  # fmt: skip
