"""The thread executor: ``workers`` tasks in flight in this process, all on one shared worker.

For backends behind an API, where a task spends its time waiting on the network: one set
of models (and one store connection) serves every thread, and N requests overlap. The
worker must be thread-safe (``BudgetMem`` is). For CPU-bound embedded models this adds
nothing: their calls take turns on one model instance.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from budgetmem.executors.base import Executor, Task
from budgetmem.executors.local import _close

__all__ = ["ThreadExecutor"]


class ThreadExecutor(Executor):
    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._worker: Any = None
        self._pool: ThreadPoolExecutor | None = None

    def start(self, make_worker: Callable[[], Any]) -> None:
        self._worker = make_worker()
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="budgetmem-task")

    def map(self, task: Task, items: Iterable[Any], shared: Any = None) -> Iterator[Any]:
        assert self._pool is not None, "start() first"
        pending: deque[Future[Any]] = deque()
        it = iter(items)
        # A window of twice the workers keeps every thread busy without submitting a whole
        # dataset up front (abandoned work stays small when a task fails or the caller stops).
        try:
            for item in it:
                pending.append(self._pool.submit(task, self._worker, item, shared))
                if len(pending) >= 2 * self.workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for f in pending:
                f.cancel()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        _close(self._worker)
        self._worker = None
