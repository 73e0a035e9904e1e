"""Background ingests: an add with a large body answers 202 at once and runs here.

Jobs live in memory (the last ``keep`` of them): a restart forgets their status, not their
data, and since adds are idempotent a client that lost track of a job can simply add again.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from budgetmem.errors import BudgetMemError
from budgetmem.server.pool import WorkPool

__all__ = ["Job", "JobBoard"]

log = logging.getLogger("budgetmem.server")


@dataclass
class Job:
    job_id: str
    namespace: str
    status: str
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class JobBoard:
    def __init__(self, pool: WorkPool, keep: int = 1000) -> None:
        self.pool = pool
        self.keep = keep
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()

    def submit(self, namespace: str, work: Callable[[], dict[str, Any]]) -> Job:
        """Queue ``work`` (a BusyError if the pool is full: then no job exists)."""
        job = Job(secrets.token_hex(12), namespace, "queued", time.time())

        def run() -> None:
            job.started_at, job.status = time.time(), "running"
            try:
                job.result = work()
                job.status = "done"
            except BudgetMemError as exc:
                job.error = {"type": type(exc).__name__, "message": exc.message, "hint": exc.hint}
                job.status = "failed"
            except Exception:  # a bug: keep the traceback in the log, not in the job
                log.exception("background job %s failed", job.job_id)
                job.error = {"type": "ServiceError", "message": "internal error", "hint": "see the server log"}
                job.status = "failed"
            finally:
                job.finished_at = time.time()

        with self._lock:
            self._jobs[job.job_id] = job
            while len(self._jobs) > self.keep:
                oldest = next(iter(self._jobs.values()))
                if oldest.finished_at is None:
                    break  # never drop a job that is still to report
                self._jobs.popitem(last=False)
        try:
            self.pool.submit(run)
        except BudgetMemError:
            with self._lock:
                self._jobs.pop(job.job_id, None)
            raise
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)
