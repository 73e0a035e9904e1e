"""A bounded worker pool: N threads, at most Q more tasks waiting, and a refusal past that.

The library's work is blocking (encoders, llama.cpp, SQLite), so it runs in threads while the
event loop keeps accepting requests. An unbounded queue would turn overload into ever longer
waits that end in timeouts; refusing at once with a Retry-After tells clients when to come
back, and costs nothing.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from budgetmem.errors import BusyError

__all__ = ["WorkPool"]

T = TypeVar("T")


class WorkPool:
    def __init__(self, name: str, workers: int, queue: int) -> None:
        self.name = name
        self.workers = workers
        self.capacity = workers + queue
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix=f"budgetmem-{name}")
        self._held = 0
        self._lock = threading.Lock()
        self._durations: deque[float] = deque(maxlen=32)
        self.on_change: Callable[[int], None] = lambda _: None
        """Called with :attr:`in_flight` whenever it changes (the metrics' gauge)."""

    @property
    def in_flight(self) -> int:
        """Tasks running or waiting."""
        return self._held

    def retry_after(self) -> int:
        """Seconds until a slot is likely free: the recent mean task time, times the tasks
        queued ahead per worker (at least 1 s)."""
        mean = sum(self._durations) / len(self._durations) if self._durations else 1.0
        ahead = max(1, self._held - self.workers + 1) / self.workers
        return max(1, min(300, math.ceil(mean * ahead)))

    def submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
        """Queue ``fn``, or raise :class:`BusyError` when ``capacity`` tasks are already in."""
        with self._lock:
            if self._held >= self.capacity:
                raise BusyError(
                    f"the {self.name} queue is full ({self._held} in progress or waiting)",
                    hint=f"retry in {self.retry_after()} s",
                    retry_after=self.retry_after(),
                )
            self._held += 1
            self.on_change(self._held)

        def timed() -> T:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self._durations.append(time.perf_counter() - started)

        future = self._executor.submit(timed)
        # The slot is given back when the work ends, not when a request stops waiting for it
        # (a timed-out request's thread still runs): the bound is on threads actually busy.
        future.add_done_callback(self._release)
        return future

    def _release(self, _: Future[Any]) -> None:
        with self._lock:
            self._held -= 1
            self.on_change(self._held)

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Await ``fn`` in the pool. Cancelling the await (a request timeout) stops waiting at
        once; the thread finishes its task in the background."""
        return await asyncio.wrap_future(self.submit(fn, *args, **kwargs))

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
