"""The parent side of the kill campaigns: run a budgetmem command, kill -9 it, read what it left.

A command runs as its own process (``killpoints.py``, which is ``python -m budgetmem`` plus
an event log) in a new session, so that after the kill any process it started and left
behind can be found, reported and cleaned up.
"""

from __future__ import annotations

import json
import os
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
    with open(work / f"{name}.out", "wb") as out, open(work / f"{name}.err", "wb") as err:
        t0 = time.time()
        proc = subprocess.Popen([sys.executable, str(CHILD), *argv], cwd=work, stdout=out, stderr=err,
                                env=child_env(extra), start_new_session=True)  # fmt: skip
        try:
            proc.wait(kill_after if kill_after is not None else timeout_s)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)  # kill -9, from outside
            proc.wait()
            if kill_after is None:
                raise TimeoutError(f"budgetmem {' '.join(argv[:1])} ran past {timeout_s:.0f} s") from None
        seconds = time.time() - t0
    orphans = reap_session(proc.pid)
    events = []
    if log.exists():
        for line in log.read_text(encoding="utf-8").splitlines():
            stamp, _, what = line.partition(" ")
            events.append((float(stamp) - t0, what))
    return Run(argv, proc.returncode, seconds, events, (work / f"{name}.out").read_text(errors="replace"),
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
