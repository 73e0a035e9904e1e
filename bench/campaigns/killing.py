"""The parent side of the kill campaigns: run a budgetmem command, kill -9 it, read what it left.

A command runs as its own process (forked by ``killpoints.py --forks``, and then what
``python -m budgetmem`` does plus an event log) in a new session, so that after the kill any
process it started and left behind can be found, reported and cleaned up.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).with_name("killpoints.py")
TRACEBACK = "Traceback (most recent call last)"


@dataclass
class Run:
    """One command: how it ended and the events it logged (seconds since it was started)."""

    argv: list[str]
    rc: int
    seconds: float
    events: list[tuple[float, str]] = field(default_factory=list)
    stdout: str = ""
    stderr: str = ""
    orphans: int = 0
    """Processes of its session still alive after it died (killed by us, counted here)."""

    @property
    def killed(self) -> bool:
        return self.rc == -signal.SIGKILL

    @property
    def traceback(self) -> bool:
        return TRACEBACK in self.stderr

    def count(self, name: str) -> int:
        """How many times the event happened (``row<``: rows written)."""
        return sum(1 for _, e in self.events if e == name)

    @property
    def phase(self) -> str:
        """Where the process was when it died, from its last event."""
        if not self.events:
            return "interpreter start"
        last = self.events[-1][1]
        if last.startswith("kill@"):
            return last[len("kill@") :]
        if last == "start":
            return "imports"
        if last.endswith(">"):
            return f"in {last[:-1]}"
        if last.endswith("<"):
            return f"after {last[:-1]}"
        return last

    def failure(self) -> str | None:
        """Why a run that should have completed did not, in one line; None when it did."""
        if self.rc == 0 and not self.traceback:
            return None
        tail = self.stderr.strip().splitlines()[-1:] or ["(no output)"]
        return f"{' '.join(self.argv[:1])} exited {self.rc}{' with a traceback' if self.traceback else ''}: {tail[0][:200]}"


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    # This tree's code, also when the venv's editable install points at another checkout.
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(ROOT / "src"), env.get("PYTHONPATH", "")] if p)
    env.pop("BM_KILL_AT", None)
    env.update(extra or {})
    return env


class Forks:
    """The fork server of :mod:`killpoints` (``killpoints.py --forks``): one process that has
    imported budgetmem and its libraries, and forks a child per command."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, str(CHILD), "--forks"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     env=child_env(), cwd=ROOT, bufsize=0)  # fmt: skip
        self._buffer = b""
        """Bytes read from its output and not yet taken as a reply (read by hand, so that
        select() sees every byte not yet read)."""

    def start(self, argv: list[str], cwd: Path, env: dict[str, str], out: Path, err: Path) -> int:
        assert self.proc.stdin is not None
        request = {"argv": argv, "cwd": str(cwd), "env": env, "out": str(out), "err": str(err)}
        self.proc.stdin.write(json.dumps(request).encode() + b"\n")
        return int(self._reply()["pid"])

    def wait(self, timeout_s: float | None) -> int | None:
        """The child's status, or None when it has not ended within ``timeout_s``."""
        assert self.proc.stdout is not None
        if b"\n" not in self._buffer and timeout_s is not None:
            if not select.select([self.proc.stdout], [], [], max(0.0, timeout_s))[0]:
                return None
        return int(self._reply()["status"])

    def _reply(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        while b"\n" not in self._buffer:
            data = os.read(self.proc.stdout.fileno(), 65536)
            if not data:
                raise RuntimeError(f"the fork server ended (exit {self.proc.wait()})")
            self._buffer += data
        line, _, self._buffer = self._buffer.partition(b"\n")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()  # end of input: it exits
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


_forks: Forks | None = None


def forks() -> Forks:
    """The fork server, started on first use and ended with this process."""
    global _forks
    if _forks is None or _forks.proc.poll() is not None:
        _forks = Forks()
        atexit.register(_forks.close)
    return _forks


def run(
    argv: list[str], work: Path, name: str, *, kill_after: float | None = None, point: str | None = None,
    timeout_s: float = 900.0,
) -> Run:
    """``budgetmem ARGV`` in ``work``; kill -9 it ``kill_after`` seconds after the start, or
    let the armed ``point`` kill it, or (neither) let it finish."""
    log = work / f"{name}.events"
    extra = {"BM_KILL_LOG": str(log)}
    if point:
        extra["BM_KILL_AT"] = point
    server = forks()
    t0 = time.time()
    pid = server.start(argv, work, child_env(extra), work / f"{name}.out", work / f"{name}.err")
    rc = server.wait(kill_after if kill_after is not None else timeout_s)
    if rc is None:
        try:
            os.kill(pid, signal.SIGKILL)  # kill -9, from outside
        except ProcessLookupError:
            pass  # it ended as the timer fired; its status says how
        rc = server.wait(None)
        if kill_after is None:
            raise TimeoutError(f"budgetmem {' '.join(argv[:1])} ran past {timeout_s:.0f} s")
    seconds = time.time() - t0
    orphans = reap_session(pid)
    events = []
    if log.exists():
        for line in log.read_text(encoding="utf-8").splitlines():
            stamp, _, what = line.partition(" ")
            events.append((float(stamp) - t0, what))
    return Run(argv, rc, seconds, events, (work / f"{name}.out").read_text(errors="replace"),
               (work / f"{name}.err").read_text(errors="replace"), orphans)  # fmt: skip


def session_pids(sid: int) -> list[int]:
    """Live processes whose session is ``sid`` (the command's own, from start_new_session)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 4 and int(fields[4]) == sid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def reap_session(sid: int) -> int:
    """Kill what the dead command left running (children it started), one pid at a time."""
    left = session_pids(sid)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return len(left)


# ----------------------------------------------------------------------------- files


def copy_db(src: Path, dst: Path) -> None:
    """A SQLite file with its WAL and shared-memory sidecars, as a crash would leave them."""
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{src}{suffix}").exists():
            shutil.copyfile(f"{src}{suffix}", f"{dst}{suffix}")


def integrity(path: Path) -> str:
    """``PRAGMA integrity_check`` of a SQLite file ("ok" when sound). Opening it runs SQLite's
    own recovery of the WAL, as the next budgetmem command would."""
    if not path.exists():
        return "ok"
    db = sqlite3.connect(path)
    try:
        rows = db.execute("PRAGMA integrity_check").fetchall()
    except sqlite3.DatabaseError as exc:
        return f"unreadable: {exc}"
    finally:
        db.close()
    return "; ".join(str(r[0]) for r in rows)[:300]


def duplicates(keys: list[Any]) -> int:
    """Items beyond the first of each key."""
    return sum(n - 1 for n in Counter(keys).values() if n > 1)


def jsonl(path: Path) -> tuple[list[dict[str, Any]], bool]:
    """The complete lines of a JSONL file and whether a torn last line followed them."""
    if not path.exists():
        return [], False
    data = path.read_bytes()
    lines = data.split(b"\n")
    torn = lines[-1] != b""
    return [json.loads(x) for x in lines[:-1] if x.strip()], torn


VOLATILE = frozenset({"wall_s", "cpu_s", "llm_s", "retrieval_s", "latency_s", "seconds", "usd_paid", "cache_hit", "cache",
                      "created_at", "decision_ms", "cache_hit_rate"})  # fmt: skip
"""What two runs of the same deterministic work may differ in: clocks, and what the module
cache saved (a question computed before a kill is a cache hit after it)."""


def stable(value: Any) -> Any:
    """``value`` without its volatile keys, at any depth."""
    if isinstance(value, dict):
        return {k: stable(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [stable(v) for v in value]
    return value
