"""The run harness: what evaluation, router training, the frontier and the benchmarks share.

A :class:`Harness` owns one run directory (identity, resume, rows, logs), the store its
questions are asked of (histories ingested before any worker starts), progress and
logging, and the executor the work runs on. A driver tells it what to run:

    h = Harness(out, executor=ExecutorSettings("ray", workers=4), progress=True)
    h.run_dir.claim(identity, file="run.json", extra={...})
    h.ingest(store, data, items, settings)
    with h.workers(spec) as pool:                  # spec() builds a worker, in each worker
        for row in pool.map(task, items):          # in item order, whatever the executor
            ...

The harness never asks which executor it holds (STYLE point 11): local, threads and Ray
give the same rows in the same order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from budgetmem.eval.datasets import EvalItem, EvalSet
from budgetmem.executors import Executor, ExecutorSettings, make_executor
from budgetmem.harness.progress import Log, Progress, stderr_log
from budgetmem.harness.rundir import RunDir
from budgetmem.harness.workspace import ingest_needed
from budgetmem.settings import Settings

__all__ = ["Harness"]


class Harness:
    def __init__(self, out: Path, *, executor: ExecutorSettings | None = None, progress: bool = True, log: Log | None = None) -> None:
        self.run_dir = RunDir(out)
        self.executor_settings = executor or ExecutorSettings()
        self.show_progress = progress
        self.say: Log = log or stderr_log

    @property
    def out(self) -> Path:
        return self.run_dir.out

    def ingest(self, store: str | Path, data: EvalSet, items: Iterable[EvalItem], settings: Settings) -> None:
        ingest_needed(store, data, items, settings, self.say)

    @contextmanager
    def workers(self, make_worker: Callable[[], Any]) -> Iterator[Executor]:
        """The executor, its workers started (each builds ``make_worker()``), closed after."""
        ex = make_executor(self.executor_settings)
        try:
            ex.start(make_worker)
            yield ex
        finally:
            ex.close()

    def progress(self, total: int, initial: int = 0, *, unit: str, desc: str) -> Progress:
        return Progress(self.show_progress, total, initial, unit=unit, desc=desc)
