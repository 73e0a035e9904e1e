"""The executor interface: start workers that keep state between tasks, submit tasks, gather
their results in submission order.

A *worker* is whatever ``make_worker()`` returns: typically a store with its namespaces
and the models they use, loaded once and kept for every task that worker runs. A *task*
is a plain function ``task(worker, item, shared) -> result``; ``shared`` is one value sent
with a batch of tasks (the router's weights for a batch of training episodes), which an
executor may ship once per worker rather than once per task.

Results come back in the order the items were given, whatever order they finished in, so
a caller that appends each result as it arrives writes the same file whichever executor
ran it, and a run killed midway has written a prefix of its work (resume skips it).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from budgetmem.errors import ConfigError

__all__ = ["Executor", "ExecutorSettings", "Task", "KINDS"]

Task = Callable[[Any, Any, Any], Any]
"""``task(worker, item, shared) -> result``; a module-level function (Ray pickles it by name)."""

KINDS: tuple[str, ...] = ("local", "threads", "ray")


@dataclass(frozen=True)
class ExecutorSettings:
    kind: Literal["local", "threads", "ray"] = "local"
    """local: one task at a time in this process (the default); threads: ``workers`` tasks in
    flight in this process, sharing one worker (for API backends, where time is spent
    waiting); ray: ``workers`` Ray actors, each with its own worker (its own models)."""
    workers: int = 1
    """Tasks in flight at once (threads) or actors (ray); local runs one."""
    ray_address: str | None = None
    """Ray: the cluster to join (``ray.init(address=...)``); None starts a local Ray."""
    ray_cpus: int | None = None
    """Ray, local only: the CPUs the local Ray may schedule on (default: the machine's)."""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"unknown executor {self.kind!r}", hint=f"use one of: {', '.join(KINDS)}")
        if self.workers < 1:
            raise ConfigError(f"workers must be >= 1, got {self.workers}")
        if self.ray_address is not None and self.kind != "ray":
            raise ConfigError("--ray-address needs --executor ray")

    def describe(self) -> str:
        if self.kind == "local":
            return "local (one task at a time)"
        where = f" at {self.ray_address}" if self.ray_address else ""
        return f"{self.kind} ({self.workers} worker{'s' if self.workers != 1 else ''}{where})"


class Executor(ABC):
    """Submit tasks, gather results in order. The run harness holds one of these and never
    asks which kind it is."""

    workers: int = 1

    @abstractmethod
    def start(self, make_worker: Callable[[], Any]) -> None:
        """Build the worker state(s) once; they are kept until :meth:`close`."""

    @abstractmethod
    def map(self, task: Task, items: Iterable[Any], shared: Any = None) -> Iterator[Any]:
        """Submit ``task(worker, item, shared)`` for every item; yield the results in item
        order as soon as each one and all before it are done. A task's exception is raised
        when its turn comes; the tasks after it are abandoned."""

    @abstractmethod
    def close(self) -> None:
        """Drop the workers (and what they loaded)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
