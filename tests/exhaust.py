"""Exhausted resources for a store file: a full disk, a read-only file, a second writer holding
the lock, a store written by a newer budgetmem. Shared by tests/test_store_resources.py and
the ``resources`` reliability campaign (bench/campaigns/resources.py).

A full disk is a file size limit (``RLIMIT_FSIZE``) in a child process, with SIGXFSZ ignored
so a write past the limit fails with EFBIG instead of killing the child, or a real small
filesystem (:func:`small_filesystem`, a tmpfs, where the machine lets us mount one: ENOSPC).
A read-only file is ``chmod 444``; root ignores file modes, so a child run as root first
drops the capabilities that let it (:func:`without_root_override`). The lock is held by
another process inside ``BEGIN IMMEDIATE`` (:class:`Locker`).

What "nothing changed" means is read without budgetmem: :func:`content` digests every row
of every table through a read-only SQLite connection, :func:`file_digest` the bytes.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import resource
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "content", "chunk_keys", "integrity", "file_digest", "file_size_limit", "without_root_override", "can_write", "Locker",
    "make_future", "small_filesystem", "cli", "one_line_error",
]  # fmt: skip

_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH = 1, 2


def _ro(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def content(path: Path) -> str:
    """A digest of every row of every table, in rowid order: equal digests, equal stores."""
    h = hashlib.sha256()
    db = _ro(path)
    try:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        for t in tables:
            h.update(f"\x00table {t}\x00".encode())
            for row in db.execute(f'SELECT * FROM "{t}" ORDER BY rowid'):
                h.update(repr(row).encode())
    finally:
        db.close()
    return h.hexdigest()


def chunk_keys(path: Path) -> Counter[tuple[str, str, str, int, str]]:
    """Every stored chunk, live or archived, as (namespace, source, session, position, text),
    counted: a count above 1 is a duplicate."""
    db = _ro(path)
    try:
        keys: Counter[tuple[str, str, str, int, str]] = Counter(
            db.execute("SELECT namespace, source, session_id, position, text FROM chunks").fetchall()
        )
        for ns, row in db.execute("SELECT namespace, row FROM archive"):
            r = json.loads(row)
            keys[(ns, r["source"], r["session_id"], r["position"], r["text"])] += 1
    finally:
        db.close()
    return keys


def integrity(path: Path) -> str:
    db = _ro(path)
    try:
        return "; ".join(r[0] for r in db.execute("PRAGMA integrity_check"))
    finally:
        db.close()


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def file_size_limit(nbytes: int) -> Callable[[], None]:
    """A ``preexec_fn``: no file of the child may grow past ``nbytes`` (a full disk, as the
    child sees it). SIGXFSZ is ignored so the write fails with EFBIG and the child goes on."""

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))

    return apply


def without_root_override() -> None:
    """A ``preexec_fn``: a child of root loses the capabilities that ignore file modes, so a
    ``chmod 444`` store is read-only to it as to anyone else (a no-op for other users)."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def can_write(path: Path, preexec: Callable[[], None] | None = without_root_override) -> bool:
    """Whether a child started with ``preexec`` may open ``path`` for writing."""
    probe = "import sys\ntry:\n    open(sys.argv[1], 'r+b').close()\nexcept OSError:\n    sys.exit(1)"
    return subprocess.run([sys.executable, "-c", probe, str(path)], preexec_fn=preexec).returncode == 0


_LOCKER = """
import select, sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
hold = float(sys.argv[2])
select.select([sys.stdin], [], [], None if hold < 0 else hold)  # until told (stdin closes) or the time is up
db.execute("ROLLBACK")
db.close()
"""


class Locker:
    """Another process holding the store's write lock (``BEGIN IMMEDIATE``, writing nothing)
    for ``hold_s`` seconds, or until :meth:`release` (``hold_s < 0``)."""

    def __init__(self, path: Path, hold_s: float = -1.0) -> None:
        self.path, self.hold_s = path, hold_s
        self.proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> Locker:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _LOCKER, str(self.path), str(self.hold_s)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )  # fmt: skip
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "locked":
            self.release()
            raise RuntimeError(f"the locker could not lock {self.path}")
        return self

    def release(self) -> None:
        if self.proc is None:
            return
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        self.proc.wait(timeout=60)

    def __exit__(self, *exc: object) -> None:
        self.release()


def make_future(path: Path, version: int, *, journal: str = "wal", extra_table: bool = True) -> None:
    """Turn a store into one a newer budgetmem wrote: a higher schema version, maybe a table
    this one does not know, maybe another journal mode."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(version),))
        if extra_table:
            db.execute("CREATE TABLE IF NOT EXISTS future_feature (id INTEGER PRIMARY KEY, payload TEXT)")
            db.execute("INSERT INTO future_feature (payload) VALUES ('from the future')")
        db.execute(f"PRAGMA journal_mode={journal}")
    finally:
        db.close()


@contextmanager
def small_filesystem(folder: Path, size_bytes: int) -> Iterator[Path]:
    """A tmpfs of ``size_bytes`` mounted on ``folder`` (root only; raises OSError where the
    machine does not allow it)."""
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(folder)], capture_output=True, text=True)
    if done.returncode != 0:
        raise OSError(f"cannot mount a tmpfs: {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def cli(args: list[str], *, preexec: Callable[[], None] | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """``budgetmem ARGS`` in a child process with this checkout's sources."""
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH", "")) if p)}
    return subprocess.run([sys.executable, "-m", "budgetmem", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, preexec_fn=preexec)  # fmt: skip


def one_line_error(done: subprocess.CompletedProcess[str]) -> str | None:
    """What is wrong with a command that should have failed cleanly (None: exit 2 and one
    ``budgetmem: error:`` line on stderr, no traceback)."""
    err = done.stderr.strip()
    if done.returncode != 2:
        return f"exit {done.returncode}: {err[-300:]!r}"
    lines = err.splitlines()
    if "Traceback" in err or len(lines) != 1 or not lines[0].startswith("budgetmem: error: "):
        return f"not one error line: {err[-300:]!r}"
    return None
