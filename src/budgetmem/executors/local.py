"""The local executor: one worker in this process, one task at a time (the behaviour every
command had before executors existed, and the reference the others are tested against)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from budgetmem.executors.base import Executor, Task

__all__ = ["LocalExecutor"]


class LocalExecutor(Executor):
    def __init__(self) -> None:
        self.workers = 1
        self._worker: Any = None

    def start(self, make_worker: Callable[[], Any]) -> None:
        self._worker = make_worker()

    def map(self, task: Task, items: Iterable[Any], shared: Any = None) -> Iterator[Any]:
        for item in items:
            yield task(self._worker, item, shared)

    def close(self) -> None:
        _close(self._worker)
        self._worker = None


def _close(worker: Any) -> None:
    close = getattr(worker, "close", None)
    if callable(close):
        close()
