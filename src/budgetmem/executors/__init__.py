"""Executors: where a run's tasks (questions, training episodes) execute. One interface,
submit tasks and gather results in order (:class:`Executor`), with three implementations:

- ``local``: one task at a time in this process;
- ``threads``: N tasks in flight in this process (API backends);
- ``ray``: N Ray actors, each keeping its own models loaded (``pip install 'budgetmem[ray]'``).

Ray is imported only by :mod:`budgetmem.executors.ray`, and only when that executor is made.
"""

from __future__ import annotations

from budgetmem.executors.base import KINDS, Executor, ExecutorSettings, Task

__all__ = ["KINDS", "Executor", "ExecutorSettings", "Task", "make_executor"]


def make_executor(settings: ExecutorSettings) -> Executor:
    if settings.kind == "threads":
        from budgetmem.executors.threads import ThreadExecutor

        return ThreadExecutor(settings.workers)
    if settings.kind == "ray":
        from budgetmem.executors.ray import RayExecutor

        return RayExecutor(settings.workers, address=settings.ray_address, num_cpus=settings.ray_cpus)
    from budgetmem.executors.local import LocalExecutor

    return LocalExecutor()
