"""Running the memory service for tests: as a real ``budgetmem serve`` process, or as
uvicorn in a thread around an app built with injected test doubles."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from budgetmem.cli.main import main

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, timeout_s: float = 90.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"no /healthz from {url} in {timeout_s} s")


def make_key(store: Path, namespace: str, scope: str) -> str:
    """A key made the way a user makes one (``keys create --json``), without a subprocess."""
    import contextlib
    import io
    import json

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["keys", "create", "--store", str(store), "--namespace", namespace, "--scope", scope, "--json"]) == 0
    return str(json.loads(out.getvalue())["key"])


class ServerProcess:
    """``python -m budgetmem [--config C] serve --store S --port P ...`` with its output in a
    log file; ``kill()`` is a kill -9."""

    def __init__(self, store: Path, log: Path, *args: str, config: Path | None = None, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
        argv = [sys.executable, "-m", "budgetmem"] + (["--config", str(config)] if config else [])
        argv += ["serve", "--store", str(store), "--port", str(self.port), *args]
        self.log = log
        self._out = open(log, "ab")
        self.proc = subprocess.Popen(argv, stdout=self._out, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        try:
            wait_healthy(self.url, proc=self.proc)
        except Exception:
            self.stop()
            raise

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self._out.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        self._out.close()


class ThreadServer:
    """uvicorn serving ``app`` from a thread of this process (so the app can hold fakes)."""

    def __init__(self, app) -> None:  # type: ignore[no-untyped-def]
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = app
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        wait_healthy(self.url, timeout_s=30)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)
