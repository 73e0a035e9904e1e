"""Background ingests: an add with a large body answers 202 at once and runs here.

A job's status lives in the store file (table ``service_jobs``), not in the process that
runs it: with ``budgetmem serve --processes N`` the client's next request, ``GET
/v1/jobs/{id}``, may reach another process, and after a restart a client still learns what
became of its add. A job left ``queued`` or ``running`` by a process that is gone (killed,
restarted) is reported ``failed`` with an ``InterruptedError``: adds are idempotent, so the
client adds again and nothing is stored twice. The last ``keep`` finished jobs are kept.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from budgetmem.errors import BudgetMemError
from budgetmem.server.pool import WorkPool
from budgetmem.store import Store

__all__ = ["Job", "JobBoard"]

log = logging.getLogger("budgetmem.server")

_TABLE = """
CREATE TABLE IF NOT EXISTS service_jobs (
    job_id TEXT PRIMARY KEY,
    namespace TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    started_at DOUBLE PRECISION,
    finished_at DOUBLE PRECISION,
    result TEXT,
    error TEXT,
    pid INTEGER NOT NULL,
    boot TEXT NOT NULL
)
"""
_COLUMNS = "job_id, namespace, status, created_at, started_at, finished_at, result, error"
_INTERRUPTED = {
    "type": "InterruptedError",
    "message": "the server stopped before this add finished",
    "hint": "add the same body again: adds are idempotent, nothing is stored twice",
}


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


def _alive(pid: int, boot: str) -> bool:
    """Whether the process that took a job may still run. ``boot`` is ``host/boot id``: on
    this host a different boot id means a reboot since (and tells a reused pid); a job on
    another host (servers sharing a PostgreSQL database) cannot be checked from here."""
    host, _, _ = boot.partition("/")
    if host != _BOOT.partition("/")[0]:
        return True
    if boot != _BOOT:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
    except OSError:
        boot = "unknown"
    return f"{socket.gethostname()}/{boot}"


_BOOT = _boot_id()


class JobBoard:
    """Jobs in the store's database (through its side-table methods: a table of the SQLite
    file, or of the PostgreSQL schema), so every server on it sees every job."""

    def __init__(self, pool: WorkPool, store: Store, keep: int = 1000) -> None:
        self.pool = pool
        self.keep = keep
        self.store = store
        store.side_write(_TABLE)

    def submit(self, namespace: str, work: Callable[[], dict[str, Any]]) -> Job:
        """Queue ``work`` (a BusyError if the pool is full: then no job exists)."""
        job = Job(secrets.token_hex(12), namespace, "queued", time.time())

        def run() -> None:
            job.started_at, job.status = time.time(), "running"
            self.store.side_write("UPDATE service_jobs SET status=?, started_at=? WHERE job_id=?", ("running", job.started_at, job.job_id))
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
                self.store.side_write(
                    "UPDATE service_jobs SET status=?, finished_at=?, result=?, error=? WHERE job_id=?",
                    (job.status, job.finished_at, _dump(job.result), _dump(job.error), job.job_id),
                )

        self.store.side_write(
            f"INSERT INTO service_jobs ({_COLUMNS}, pid, boot) VALUES (?, ?, ?, ?, NULL, NULL, NULL, NULL, ?, ?)",
            (job.job_id, namespace, job.status, job.created_at, os.getpid(), _BOOT),
        )
        try:
            self.pool.submit(run)
        except BudgetMemError:
            self.store.side_write("DELETE FROM service_jobs WHERE job_id=?", (job.job_id,))
            raise
        self._trim()
        return job

    def get(self, job_id: str) -> Job | None:
        rows = self.store.side_query(f"SELECT {_COLUMNS}, pid, boot FROM service_jobs WHERE job_id=?", (job_id,))
        if not rows:
            return None
        row = rows[0]
        job = Job(*row[:6], result=_load(row[6]), error=_load(row[7]))  # type: ignore[arg-type]
        if job.status in ("queued", "running") and not _alive(int(row[8]), str(row[9])):
            job.status, job.error, job.finished_at = "failed", dict(_INTERRUPTED), job.finished_at or time.time()
            self.store.side_write(
                "UPDATE service_jobs SET status=?, error=?, finished_at=? WHERE job_id=? AND status IN ('queued', 'running')",
                (job.status, _dump(job.error), job.finished_at, job_id),
            )
        return job

    def _trim(self) -> None:
        """Keep the newest ``keep`` finished jobs (unfinished ones always stay)."""
        self.store.side_write(
            "DELETE FROM service_jobs WHERE finished_at IS NOT NULL AND job_id NOT IN "
            "(SELECT job_id FROM service_jobs WHERE finished_at IS NOT NULL ORDER BY finished_at DESC LIMIT ?)",
            (self.keep,),
        )


def _dump(value: dict[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value)


def _load(text: str | None) -> dict[str, Any] | None:
    return None if text is None else json.loads(text)
