"""The child side of the kill campaigns: the budgetmem CLI run in this process, logging the
phases it passes and, when asked, sending itself a SIGKILL at one named point.

    BM_KILL_LOG=events.log BM_KILL_AT=store.evict:3 python bench/campaigns/killpoints.py ingest ...

The arguments are those of ``python -m budgetmem``, and this file does what that module does
(``raise SystemExit(main())``) after wrapping a few functions. Nothing here changes what a
wrapped function does. It exists for two reasons: the log says where each kill landed (the
parent's timer only knows when), and a timer aimed at a whole run rarely lands inside its
shortest phases; the one store transaction of an ingest is a few per cent of the run, and
the gap between a file's truncation and its write is microseconds.

Events (``$BM_KILL_LOG``): one line per wrapped call, ``<unix time> <name>>`` on entry and
``<name><`` on return, written with ``os.write`` on an O_APPEND descriptor, so everything
logged before a kill is in the file.

Points (``$BM_KILL_AT``): the process kills itself with SIGKILL, so no ``finally``, atexit
handler or buffered write runs after it, exactly as with a kill -9 from outside:

- ``store.batch:N``: inside an ingest's store transaction, after the N-th session's rows;
- ``store.evict:N``: inside the transaction, after N of the evicted chunks moved to the archive;
- ``store.committed``: right after the transaction committed, before the command reports it;
- ``write_text:N:U``: inside the N-th ``Path.write_text`` of the run: the file truncated and
  then a prefix of its bytes written, whole 8 KiB buffers only (U in [0, 1) picks how many),
  the state a kill between open(O_TRUNC) and the last write() leaves.

A point the run never reaches lets the command finish; the parent sees exit status 0 and
counts it as a kill that could not be aimed.
"""

from __future__ import annotations

import functools
import importlib
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

# What to log, per subcommand: (event name, module, attribute). The module is where the
# function is looked up when called, which for a name imported with ``from x import f`` is
# the importing module, not the defining one.
HOOKS: dict[str, list[tuple[str, str, str]]] = {
    "ingest": [
        ("encoder.load", "budgetmem.encoder", "Encoder.load"),
        ("encode", "budgetmem.encoder", "Encoder.encode"),
        ("write_policy", "budgetmem.ingest.ingest", "apply_write_policy"),
        ("store.add", "budgetmem.store.sqlite_store", "SQLiteStore.add"),
    ],
    "eval": [
        ("claim", "budgetmem.harness.rundir", "RunDir.claim"),
        ("ingest", "budgetmem.harness.harness", "Harness.ingest"),
        ("llm", "budgetmem.llm.openai_compat", "OpenAICompatLLM.complete"),
        ("row", "budgetmem.eval.results", "ResultsFile.append"),
        ("summary", "budgetmem.harness.evaluate", "summary_markdown"),
        ("write_text", "pathlib", "Path.write_text"),
    ],
    "train": [
        ("claim", "budgetmem.harness.rundir", "RunDir.claim"),
        ("ingest", "budgetmem.harness.harness", "Harness.ingest"),
        ("llm", "budgetmem.llm.openai_compat", "OpenAICompatLLM.complete"),
        ("update", "budgetmem.training.train", "ppo_update"),
        ("log", "budgetmem.training.train", "append_csv"),
        ("save", "torch", "save"),
        ("plot", "budgetmem.training.train", "plot_training"),
        ("write_text", "pathlib", "Path.write_text"),
    ],
    "compress": [
        ("encoder.load", "budgetmem.encoder", "Encoder.load"),
        ("llm", "budgetmem.llm.llamacpp", "LlamaCppLLM.complete"),
        ("set_compressed", "budgetmem.store.sqlite_store", "SQLiteStore.set_compressed"),
    ],
}

_fd: int | None = None


def event(name: str) -> None:
    if _fd is not None:
        os.write(_fd, f"{time.time():.6f} {name}\n".encode())


def die(where: str) -> None:
    event(f"kill@{where}")
    os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(60)  # the signal is delivered on the way out of the syscall; never reached


def _wrap(owner: Any, attr: str, name: str) -> None:
    inner = getattr(owner, attr)

    @functools.wraps(inner)
    def logged(*args: Any, **kwargs: Any) -> Any:
        event(f"{name}>")
        out = inner(*args, **kwargs)
        event(f"{name}<")
        return out

    setattr(owner, attr, logged)


def _resolve(module: str, attr: str) -> tuple[Any, str]:
    owner: Any = importlib.import_module(module)
    *path, last = attr.split(".")
    for part in path:
        owner = getattr(owner, part)
    return owner, last


def arm_store(kind: str, n: int) -> None:
    from budgetmem.store.sqlite_store import SQLiteStore

    move, add = SQLiteStore._move_to_archive, SQLiteStore.add
    batches = 0

    # add() writes each session's rows and then moves its rejected chunks to the archive (an
    # empty move for a session with none), and ends with the evictions: so a call with
    # reason "rejected" marks the end of a session, and "evicted" the eviction itself.
    def moving(self: Any, namespace: str, ids: Any, reason: str) -> int:
        nonlocal batches
        if kind == "evict" and reason == "evicted":
            move(self, namespace, list(ids)[:n], reason)
            die(f"store.evict:{n}/{len(ids)}")
        moved = move(self, namespace, ids, reason)
        if kind == "batch" and reason == "rejected":
            batches += 1
            if batches == n:
                die(f"store.batch:{n}")
        return moved

    def adding(self: Any, *args: Any, **kwargs: Any) -> Any:
        out = add(self, *args, **kwargs)
        if kind == "committed":
            die("store.committed")
        return out

    SQLiteStore._move_to_archive = moving  # type: ignore[method-assign]
    SQLiteStore.add = adding  # type: ignore[method-assign]


def arm_write_text(n: int, u: float) -> None:
    real = Path.write_text
    calls = 0

    def write_text(self: Path, data: str, encoding: str | None = None, errors: str | None = None, newline: str | None = None) -> int:
        nonlocal calls
        calls += 1
        if calls != n:
            return real(self, data, encoding=encoding, errors=errors, newline=newline)
        raw = data.encode(encoding or "utf-8")
        keep = 8192 * int(u * (len(raw) // 8192 + 1))
        with open(self, "wb") as fh:  # open(O_TRUNC): the old content is gone from here on
            fh.write(raw[:keep])
            fh.flush()
        die(f"write_text:{n}:{self.name}:{keep}/{len(raw)}")
        return 0

    Path.write_text = write_text  # type: ignore[method-assign]


def main() -> None:
    global _fd
    argv = sys.argv[1:]
    log = os.environ.get("BM_KILL_LOG")
    if log:
        _fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    event("start")
    command = next((a for a in argv if not a.startswith("-") and a in HOOKS), None)
    for name, module, attr in HOOKS.get(command or "", []):
        _wrap(*_resolve(module, attr), name)
    point = os.environ.get("BM_KILL_AT", "")
    if point.startswith("store."):
        kind, _, n = point[len("store.") :].partition(":")
        arm_store(kind, int(n or 0))
    elif point.startswith("write_text:"):
        _, n, u = point.split(":")
        arm_write_text(int(n), float(u))
    elif point:
        raise SystemExit(f"killpoints: unknown point {point!r}")
    from budgetmem.cli.main import main as cli

    code = cli(argv)
    event(f"exit {code}")
    raise SystemExit(code)


if __name__ == "__main__":
    main()
