"""kill -9 of the commands that fill a run directory: ``budgetmem eval`` and ``budgetmem train``.

Both resume when the same command is run again in the same ``--out``: eval keeps every
complete line of ``results.jsonl`` and answers the rest; train restores ``last.pt`` (written
after every PPO update) and trims the CSV logs to it. A trial kills the command at a random
time over its run, or inside a ``Path.write_text`` (the file truncated, its new bytes not yet
written, which a timer almost never hits), checks what the kill left, re-runs to completion
and compares with an uninterrupted reference run made once in ``setup``.

The runs are deterministic and cheap on purpose: the real MiniLM encoder and store on a
LoCoMo dev conversation, and for every LLM call the deterministic OpenAI-compatible server
of the tests (``tests/fake_openai.py``, real HTTP on 127.0.0.1), so that an uninterrupted run
and a killed-and-resumed one must agree on every row, log line and weight. What may differ
is listed in :data:`killing.VOLATILE`: clocks, and what the module cache saved.
"""

from __future__ import annotations

import csv
import json
import random
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from campaigns import killing
from campaigns.common import Campaign, Trial

ENCODER = "all-minilm-l6-v2"
SAMPLE = "conv-30"


def _canon(value: Any) -> str:
    """Comparable text of a value without its volatile parts (NaN equals NaN here)."""
    return json.dumps(killing.stable(value), sort_keys=True)


def _conversation_file(path: Path, sessions: int | None) -> Path:
    from campaigns.kill import locomo_file

    sample = next(s for s in json.loads(locomo_file().read_text(encoding="utf-8")) if s["sample_id"] == SAMPLE)
    if sessions is not None:
        conv = {k: v for k, v in sample["conversation"].items()
                if not k.startswith("session_") or int(k.split("_")[1]) <= sessions}  # fmt: skip
        sample = {**sample, "conversation": conv}
    path.write_text(json.dumps([sample]), encoding="utf-8")
    return path


@dataclass
class RunsContext:
    """What eval and train trials share: the data, the template store, the LLM server."""

    data: Path
    template: Path
    server: Any
    seconds: float = 0.0
    writes: int = 0
    """``Path.write_text`` calls of the uninterrupted run (the torn-write kill's range)."""
    reference: Path | None = None
    """The reference run's directory."""
    steps: dict[str, int] = field(default_factory=dict)
    """How many times each aimed-at event happened in the reference run (``row<``: 16)."""

    def common(self, work: Path, store: Path) -> list[str]:
        llm = self.server.provider
        return ["--store", str(store), "--encoder", ENCODER, "--chunk-tokens", "128", "-k", "3",
                "--answer-llm", llm, "--module-llm", llm, "--no-progress"]  # fmt: skip


def _config(work: Path) -> Path:
    """A config whose module cache lives in the trial's folder (never the user's)."""
    cfg = work / "budgetmem.toml"
    cfg.write_text(f'[pipeline]\ncache_path = "{work / "cache.sqlite"}"\n', encoding="utf-8")
    return cfg


def _store_copy(ctx: RunsContext, store: Path) -> None:
    killing.copy_db(ctx.template, store)
    indexes = ctx.template.with_name(ctx.template.name + ".indexes")
    if indexes.is_dir():
        shutil.copytree(indexes, store.with_name(store.name + ".indexes"))


def _setup(root: Path, sessions: int | None, delay_s: float) -> RunsContext:
    from fake_openai import FakeOpenAIServer

    root.mkdir(parents=True, exist_ok=True)
    server = FakeOpenAIServer(delay_s=delay_s).__enter__()
    return RunsContext(_conversation_file(root / "conv.json", sessions), root / "reference" / "memory.db", server)


def _teardown(ctx: RunsContext) -> None:
    ctx.server.__exit__(None, None, None)


def _integrity(t: Trial, work: Path, when: str) -> None:
    for name in ("memory.db", "cache.sqlite"):
        ok = killing.integrity(work / name)
        if ok != "ok":
            t.failures.append(f"integrity_check of {name} {when}: {ok}")


def _aimed(ref: killing.Run, kinds: tuple[str, ...]) -> dict[str, int]:
    return {k: ref.count(k) for k in kinds if ref.count(k)}


def _kill(argv: list[str], work: Path, rng: random.Random, ctx: RunsContext, torn: float, aimed: float) -> tuple[str, killing.Run]:
    """A kill inside a file write (share ``torn``), at one step of the run (share ``aimed``: a
    kind of step drawn first, then which of them, so rare steps such as a checkpoint save get
    their share), or by a timer over the whole run."""
    draw = rng.random()
    if draw < torn:
        n = rng.randint(1, ctx.writes)
        return "torn write", killing.run(argv, work, "killed", point=f"write_text:{n}:{rng.random():.3f}")
    if draw < torn + aimed:
        kind = rng.choice(sorted(ctx.steps))
        return f"at {kind}", killing.run(argv, work, "killed", point=f"event:{kind}:{rng.randint(1, ctx.steps[kind])}")
    return "timer", killing.run(argv, work, "killed", kill_after=rng.uniform(0.0, ctx.seconds))


# ============================================================================ eval


@dataclass(frozen=True)
class EvalPlan:
    trials: int = 20
    questions: int = 16
    sessions: int | None = None
    """Sessions of the conversation stored (None: all 19)."""
    fresh_store: float = 0.3
    """Share of trials that start without the store, so the kill may land in eval's own ingest."""
    torn_write: float = 0.2
    """Share of trials killed inside a ``Path.write_text``..."""
    aimed: float = 0.5
    """...or as an LLM call starts or just after a results row was appended (else by a timer)."""
    delay_s: float = 0.02
    """Latency of the LLM server: time spent waiting on HTTP, as with an API."""


def eval_argv(ctx: RunsContext, plan: EvalPlan, work: Path) -> list[str]:
    return ["--config", str(_config(work)), "eval", "--dataset", "locomo", "--data", str(ctx.data), "--split", "all",
            "--limit", str(plan.questions), "--out", str(work / "run"), "--policy", "high",
            *ctx.common(work, work / "memory.db")]  # fmt: skip


def eval_setup(root: Path, plan: EvalPlan) -> RunsContext:
    ctx = _setup(root, plan.sessions, plan.delay_s)
    work = root / "reference"
    work.mkdir()
    ref = killing.run(eval_argv(ctx, plan, work), work, "reference")
    if ref.failure():
        _teardown(ctx)
        raise RuntimeError(f"reference eval: {ref.failure()}")
    ctx.seconds, ctx.writes, ctx.reference = ref.seconds, ref.count("write_text<"), work
    ctx.steps = _aimed(ref, ("llm>", "row<"))
    return ctx


def _resumed(stdout: str) -> int | None:
    m = re.search(r"\((\d+) questions, (\d+) from an earlier run\)", stdout)
    return int(m.group(2)) if m else None


def eval_trial(index: int, work: Path, rng: random.Random, ctx: RunsContext, plan: EvalPlan) -> Trial:
    t = Trial(index)
    assert ctx.reference is not None
    want, _ = killing.jsonl(ctx.reference / "run" / "results.jsonl")
    ids = [r["id"] for r in want]
    fresh = rng.random() < plan.fresh_store
    if not fresh:
        _store_copy(ctx, work / "memory.db")
    argv = eval_argv(ctx, plan, work)
    mode, r = _kill(argv, work, rng, ctx, plan.torn_write, plan.aimed)
    t.detail = {"mode": mode, "fresh_store": fresh, "phase": r.phase if r.killed else "finished first",
                "at_s": round(r.seconds, 2), "rc": r.rc}  # fmt: skip
    if not r.killed and (mode != "timer" or r.failure()):
        t.failures.append(r.failure() or f"the kill point was never reached (exit {r.rc})")
    if r.orphans:
        t.failures.append(f"{r.orphans} process(es) of the killed eval were still running")
    _integrity(t, work, "after the kill")

    rows, torn = killing.jsonl(work / "run" / "results.jsonl")
    t.detail.update(rows_before_rerun=len(rows), torn_line=torn)
    if [r_["id"] for r_ in rows] != ids[: len(rows)]:
        t.failures.append("the rows the kill left are not a prefix of the reference's, in order")
    elif [_canon(x) for x in rows] != [_canon(x) for x in want[: len(rows)]]:
        t.failures.append("rows the kill left differ from the reference's")

    again = killing.run(argv, work, "again")
    if again.failure():
        t.failures.append(f"re-run: {again.failure()}")
    elif _resumed(again.stdout) != len(rows):
        t.failures.append(f"the re-run kept {_resumed(again.stdout)} earlier rows; {len(rows)} were complete")
    _integrity(t, work, "after the re-run")
    final, torn = killing.jsonl(work / "run" / "results.jsonl")
    got = [r_["id"] for r_ in final]
    t.lost = len(set(ids) - set(got))
    t.duplicates = killing.duplicates(got)
    if torn or got != ids:
        t.failures.append(f"after the re-run {len(got)} rows ({len(set(got))} distinct){', a torn line' if torn else ''}; "
                          f"expected the reference's {len(ids)} in order")  # fmt: skip
    elif [_canon(x) for x in final] != [_canon(x) for x in want]:
        bad = [a["id"] for a, b in zip(final, want) if _canon(a) != _canon(b)]
        t.failures.append(f"{len(bad)} row(s) differ from the uninterrupted run's, first {bad[0]}")
    summary = work / "run" / "summary.json"
    ref_summary = json.loads((ctx.reference / "run" / "summary.json").read_text(encoding="utf-8"))
    if not summary.exists() or _canon(json.loads(summary.read_text(encoding="utf-8"))["summary"]) != _canon(ref_summary["summary"]):
        t.failures.append("summary.json after the re-run differs from the reference's")
    return t


def make_eval(plan: EvalPlan | None = None) -> Campaign:
    plan = plan or EvalPlan()
    return Campaign(
        name="kill_eval", title="kill -9 of eval", trials=plan.trials,
        setup=lambda root: eval_setup(root, plan), teardown=_teardown,
        run=lambda i, work, rng, ctx: eval_trial(i, work, rng, ctx, plan),
        what=f"kill -9 of `budgetmem eval` ({plan.questions} LoCoMo dev questions, MiniLM, policy high, a deterministic "
        "OpenAI-compatible server on loopback for the LLM calls) at a random time, as an LLM call starts, after a "
        "row is written or inside a file write; the rows left are a prefix of the uninterrupted run's, and the "
        "re-run keeps them and ends with exactly its rows and summary.",
    )  # fmt: skip


EVAL = make_eval()


# ============================================================================ train


@dataclass(frozen=True)
class TrainPlan:
    trials: int = 20
    steps: int = 4
    batch_size: int = 2
    eval_every: int = 2
    train_questions: int = 6
    val_questions: int = 2
    sessions: int | None = 6
    """Sessions of the conversation stored: a short store keeps each episode, so each trial, a
    few seconds of work per update on a loaded two-core machine."""
    torn_write: float = 0.2
    aimed: float = 0.5
    """Share of trials killed at a step: a PPO update done, a checkpoint save begun, a log line
    written, an LLM call begun."""
    delay_s: float = 0.02


def train_argv(ctx: RunsContext, plan: TrainPlan, work: Path) -> list[str]:
    return ["--config", str(_config(work)), "train", "--dataset", "locomo", "--data", str(ctx.data),
            "--split-file", str(ctx.data.with_name("split.json")), "--out", str(work / "run"), "--strategy", "reasoning",
            "--steps", str(plan.steps), "--batch-size", str(plan.batch_size), "--eval-every", str(plan.eval_every),
            "--cost-weight", "0.2", *ctx.common(work, work / "memory.db")]  # fmt: skip


def train_setup(root: Path, plan: TrainPlan) -> RunsContext:
    ctx = _setup(root, plan.sessions, plan.delay_s)
    ids = [f"{SAMPLE}:q{i}" for i in range(plan.train_questions + plan.val_questions)]
    split = {"train": ids[: plan.train_questions], "val": ids[plan.train_questions :]}
    ctx.data.with_name("split.json").write_text(json.dumps(split), encoding="utf-8")
    work = root / "reference"
    work.mkdir()
    ref = killing.run(train_argv(ctx, plan, work), work, "reference")
    if ref.failure():
        _teardown(ctx)
        raise RuntimeError(f"reference train: {ref.failure()}")
    ctx.seconds, ctx.writes, ctx.reference = ref.seconds, ref.count("write_text<"), work
    ctx.steps = _aimed(ref, ("update<", "save>", "log<", "llm>"))
    return ctx


def _csv(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _steps(rows: list[dict[str, str]]) -> list[int]:
    return [int(r["step"]) for r in rows]


def _checkpoint(path: Path) -> dict[str, Any] | None:
    import torch

    return torch.load(path, map_location="cpu", weights_only=False) if path.exists() else None


def _same_tensors(a: Any, b: Any) -> bool:
    """Equal nested state (tensors compared exactly)."""
    import torch

    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape and bool(torch.equal(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_tensors(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same_tensors(x, y) for x, y in zip(a, b))
    return _canon(a) == _canon(b)


def train_trial(index: int, work: Path, rng: random.Random, ctx: RunsContext, plan: TrainPlan) -> Trial:
    t = Trial(index)
    assert ctx.reference is not None
    ref = ctx.reference / "run"
    _store_copy(ctx, work / "memory.db")
    argv = train_argv(ctx, plan, work)
    mode, r = _kill(argv, work, rng, ctx, plan.torn_write, plan.aimed)
    t.detail = {"mode": mode, "phase": r.phase if r.killed else "finished first", "at_s": round(r.seconds, 2),
                "rc": r.rc, "updates_before_kill": r.count("update<")}  # fmt: skip
    if not r.killed and (mode != "timer" or r.failure()):
        t.failures.append(r.failure() or f"the kill point was never reached (exit {r.rc})")
    if r.orphans:
        t.failures.append(f"{r.orphans} process(es) of the killed train were still running")
    _integrity(t, work, "after the kill")

    # The checkpoint is the last completed update: every log line up to it must be there once,
    # and past it at most the next update's lines, which a resume trims.
    out = work / "run"
    last = _checkpoint(out / "last.pt")
    k = int(last["step"]) if last else 0
    t.detail["checkpoint_step"] = k
    epochs = len(_csv(ref / "ppo.csv")) // plan.steps
    log, ppo, val = _steps(_csv(out / "log.csv")), _steps(_csv(out / "ppo.csv")), _steps(_csv(out / "val.csv"))
    want_val = [s for s in _steps(_csv(ref / "val.csv")) if s <= k]
    if [s for s in log if s <= k] != list(range(1, k + 1)) or not set(s for s in log if s > k) <= {k + 1}:
        t.failures.append(f"log.csv steps {log} do not match checkpoint step {k}")
    if sorted(s for s in ppo if s <= k) != sorted(list(range(1, k + 1)) * epochs) or not set(s for s in ppo if s > k) <= {k + 1}:
        t.failures.append(f"ppo.csv steps do not match checkpoint step {k}")
    if [s for s in val if s <= k] != want_val:
        t.failures.append(f"val.csv steps {val} do not match checkpoint step {k}")

    again = killing.run(argv, work, "again")
    if again.failure():
        t.failures.append(f"re-run: {again.failure()}")
    elif k and f"resuming after step {k}" not in again.stderr:
        t.failures.append(f"the re-run did not resume after step {k}")
    _integrity(t, work, "after the re-run")
    got, want = _csv(out / "log.csv"), _csv(ref / "log.csv")
    steps = _steps(got)
    t.lost = len(set(_steps(want)) - set(steps))
    t.duplicates = killing.duplicates(steps)
    if steps != _steps(want):
        t.failures.append(f"log.csv after the re-run has steps {steps}")
    elif [_canon(x) for x in got] != [_canon(x) for x in want]:
        t.failures.append("log.csv after the re-run differs from the uninterrupted run's")
    for name in ("ppo.csv", "val.csv"):
        if _canon(_csv(out / name)) != _canon(_csv(ref / name)):
            t.failures.append(f"{name} after the re-run differs from the uninterrupted run's")
    final, want_last = _checkpoint(out / "last.pt"), _checkpoint(ref / "last.pt")
    if final is None or not _same_tensors(final, want_last):
        t.failures.append("last.pt after the re-run differs from the uninterrupted run's")
    best, want_best = _checkpoint(out / "best.pt"), _checkpoint(ref / "best.pt")
    if best is None or not _same_tensors(best, want_best):
        t.failures.append("best.pt after the re-run differs from the uninterrupted run's")
    return t


def make_train(plan: TrainPlan | None = None) -> Campaign:
    plan = plan or TrainPlan()
    return Campaign(
        name="kill_train", title="kill -9 of train", trials=plan.trials,
        setup=lambda root: train_setup(root, plan), teardown=_teardown,
        run=lambda i, work, rng, ctx: train_trial(i, work, rng, ctx, plan),
        what=f"kill -9 of `budgetmem train` ({plan.steps} PPO updates of {plan.batch_size} LoCoMo dev episodes, "
        "reasoning strategy, MiniLM, the deterministic loopback LLM server) at a random time, at a step (an "
        "update done, a checkpoint save begun, a log line written, an LLM call begun) or inside a file write; the "
        "logs hold every update up to the checkpoint once, and the re-run resumes there and ends with the "
        "uninterrupted run's logs and weights, bit for bit. Found: a kill inside the write of `train.json` left it "
        "empty and every re-run stopped with a traceback; identity files are now written atomically (trials 2 "
        "and 3 re-run after the fix).",
    )  # fmt: skip


TRAIN = make_train()
