"""The Ray executor: ``workers`` Ray actors, each building its own worker (store, encoder,
LLM clients or embedded models) once and keeping it for every task sent to it.

``pip install 'budgetmem[ray]'``. By default a local Ray is started with
``ray.init(num_cpus=...)``; ``address`` joins a running cluster instead. A Ray that is
already initialised in this process (a notebook, a test) is used as it is and left running.

Each item is one actor call (a Ray task); an actor runs one at a time, and the next item
goes to whichever actor is free. Results are handed back in item order. ``shared`` is put
in Ray's object store once per :meth:`map` and passed to every call by reference, so the
router's weights travel once per batch rather than once per episode. Paths in the worker
set-up (the store, the module cache) must be readable by every actor: on one machine they
are; on a cluster they must be on a shared filesystem.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from budgetmem.errors import BudgetMemError, ConfigError
from budgetmem.executors.base import Executor, Task

__all__ = ["RayExecutor"]


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("the ray executor needs Ray", hint="pip install 'budgetmem[ray]'") from None
    return ray


class _Actor:
    """The actor body: one worker, built on arrival, then tasks one at a time."""

    def __init__(self, make_worker: Callable[[], Any]) -> None:
        self.worker = make_worker()

    def ready(self) -> bool:
        return True

    def run(self, task: Task, item: Any, shared: Any) -> Any:
        return task(self.worker, item, shared)

    def close(self) -> None:
        close = getattr(self.worker, "close", None)
        if callable(close):
            close()


class RayExecutor(Executor):
    def __init__(self, workers: int, *, address: str | None = None, num_cpus: int | None = None) -> None:
        self.workers = workers
        self.address = address
        self.num_cpus = num_cpus
        self._actors: list[Any] = []
        self._started_ray = False

    def start(self, make_worker: Callable[[], Any]) -> None:
        ray = _ray()
        import cloudpickle

        try:
            cloudpickle.dumps(make_worker)
        except Exception as exc:  # noqa: BLE001 - whatever pickling raises, the fix is the same
            raise ConfigError(
                f"the ray executor sends the worker set-up to other processes, and it cannot be pickled ({exc})",
                hint="pass LLMs as a picklable factory (provider -> LLM or None), not as LLM objects",
            ) from None
        if not ray.is_initialized():
            if self.address:
                ray.init(address=self.address, logging_level="warning", log_to_driver=True)
            else:
                cpus = self.num_cpus or os.cpu_count() or 1
                ray.init(num_cpus=cpus, include_dashboard=False, logging_level="warning", log_to_driver=True)
            self._started_ray = True
        # Every actor fits at once, even with more workers than CPUs (API backends mostly
        # wait): each asks for its share of the CPUs, at most one.
        total = float(ray.cluster_resources().get("CPU", 1.0))
        share = min(1.0, total / self.workers)
        actor = ray.remote(num_cpus=share, max_restarts=0)(_Actor)
        self._actors = [actor.remote(make_worker) for _ in range(self.workers)]
        # Wait for every worker to be built: a set-up error surfaces here, once, as itself.
        for a in self._actors:
            _get(ray, a.ready.remote())

    def map(self, task: Task, items: Iterable[Any], shared: Any = None) -> Iterator[Any]:
        ray = _ray()
        ref = ray.put(shared)
        idle = list(range(len(self._actors)))
        running: dict[Any, tuple[int, int]] = {}  # object ref -> (item index, actor index)
        done: dict[int, Any] = {}
        it = enumerate(items)
        exhausted = False
        nxt = 0
        try:
            while True:
                while idle and not exhausted:
                    try:
                        i, item = next(it)
                    except StopIteration:
                        exhausted = True
                        break
                    a = idle.pop()
                    running[self._actors[a].run.remote(task, item, ref)] = (i, a)
                if not running:
                    break
                ready, _ = ray.wait(list(running), num_returns=1)
                for r in ready:
                    i, a = running.pop(r)
                    idle.append(a)
                    done[i] = r
                while nxt in done:
                    yield _get(ray, done.pop(nxt))
                    nxt += 1
            while nxt in done:
                yield _get(ray, done.pop(nxt))
                nxt += 1
        finally:
            for r in running:
                ray.cancel(r, force=False)

    def close(self) -> None:
        if not self._actors:
            return
        ray = _ray()
        try:
            ray.get([a.close.remote() for a in self._actors], timeout=60)
        except Exception:  # noqa: BLE001 - a dead actor has nothing left to close
            pass
        for a in self._actors:
            ray.kill(a)
        self._actors = []
        if self._started_ray:
            ray.shutdown()
            self._started_ray = False


def _get(ray: Any, ref: Any) -> Any:
    """The task's result; a library error raised in an actor comes back as itself (one line
    with its hint), not wrapped in Ray's traceback."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, (BudgetMemError, KeyboardInterrupt)):
            raise cause from None
        raise
