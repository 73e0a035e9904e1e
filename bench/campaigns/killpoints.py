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
- ``event:NAME:N``: at the N-th logged event NAME (``row<``: right after the N-th results row
  was appended; ``llm>``: as the N-th LLM call starts), for kills aimed at one step of a run;
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
        ("llm", "budgetmem.llm.openai_compat", "OpenAICompatLLM.complete"),
        ("set_compressed", "budgetmem.store.sqlite_store", "SQLiteStore.set_compressed"),
    ],
}

_fd: int | None = None
_target: tuple[str, int] | None = None
"""The event to die at and at which of its occurrences (``event:NAME:N``)."""
_count = 0


def event(name: str) -> None:
    global _count
    if _fd is not None:
        os.write(_fd, f"{time.time():.6f} {name}\n".encode())
    if _target is not None and name == _target[0]:
        _count += 1
        if _count == _target[1]:
            die(f"{name}#{_count}")


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


def run_cli(argv: list[str]) -> int:
    """The CLI on ``argv`` with the hooks of its subcommand and the point of ``$BM_KILL_AT``."""
    global _fd, _target
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
    elif point.startswith("event:"):
        _, name, n = point.split(":")
        _target = (name, int(n))
    elif point.startswith("write_text:"):
        _, n, u = point.split(":")
        arm_write_text(int(n), float(u))
    elif point:
        raise SystemExit(f"killpoints: unknown point {point!r}")
    from budgetmem.cli.main import main as cli

    code = cli(argv)
    event(f"exit {code}")
    return int(code or 0)


# ----------------------------------------------------------------------------- fork server
# A budgetmem command spends most of its CPU importing torch, transformers and budgetmem
# (7 of 11 CPU seconds for a small ingest), the same in every run. With ``--forks`` this
# process imports them once and then forks one child per command it reads on stdin: the
# child is a fresh process with its own pid and session that runs the CLI from the top
# (settings, encoder load, store, files) and is killed with SIGKILL like any other; only the
# import of already-imported modules is skipped. Nothing has run torch in this process when
# it forks, so no thread pool is copied half-alive into a child.


def _preload() -> None:
    import budgetmem.cli.main  # noqa: F401
    import budgetmem.encoder  # noqa: F401  (sets MKL_CBWR before torch starts MKL)

    # What Encoder._model sets before its import, so the import here sees the same.
    for key, value in (("HF_HUB_OFFLINE", "1"), ("TOKENIZERS_PARALLELISM", "false"), ("HF_HUB_DISABLE_PROGRESS_BARS", "1"),
                       ("TRANSFORMERS_VERBOSITY", "error")):  # fmt: skip
        os.environ.setdefault(key, value)
    for name in ("torch", "sentence_transformers", "transformers", "httpx", "fastapi", "uvicorn", "budgetmem.server.worker"):
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    for hooks in HOOKS.values():
        for _, module, _ in hooks:
            importlib.import_module(module)


def _child(request: dict[str, Any]) -> None:
    """In the forked child: become the command (its own session, folder, output and
    environment), run it, and leave without running the parent's exit handlers. (Skipping
    them skips budgetmem's too; it registers none on the paths run here: only the service's
    multi-process workers and the llama.cpp model cache do.)"""
    code = 1
    try:
        os.setsid()
        os.chdir(request["cwd"])
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        for fd, path in ((1, request["out"]), (2, request["err"])):
            target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(target, fd)
            os.close(target)
        os.environ.clear()
        os.environ.update(request["env"])
        code = run_cli(request["argv"])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if not isinstance(exc.code, int) and exc.code is not None:
            print(exc.code, file=sys.stderr)
    except BaseException:  # noqa: BLE001 - reported the way the interpreter would, then exit 1
        import traceback

        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def forks() -> None:
    """Read one JSON request per line (argv, cwd, env, out, err); answer ``{"pid": P}`` when
    the child is started and ``{"status": S}`` when it has ended (S as subprocess reports it:
    the exit code, or minus the signal that killed it). Ends at end of input."""
    import json

    _preload()
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            _child(request)
        print(json.dumps({"pid": pid}), flush=True)
        _, status = os.waitpid(pid, 0)
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        print(json.dumps({"status": code}), flush=True)


def main() -> None:
    if sys.argv[1:] == ["--forks"]:
        forks()
        return
    raise SystemExit(run_cli(sys.argv[1:]))


if __name__ == "__main__":
    main()
