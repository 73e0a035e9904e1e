"""One process of ``budgetmem serve --processes N``: the app factory uvicorn's workers call.

uvicorn starts each worker as a fresh interpreter and builds the app from an import string,
so ``serve`` hands the store and the resolved settings over in an environment variable
(pickled by the parent process itself, never read from anywhere else).

A worker leaves with its parent. uvicorn's supervisor stops its workers when it is asked to,
but a supervisor killed with SIGKILL cannot ask: its workers went on answering on the port,
and the next ``budgetmem serve`` on that port failed with "address already in use".
"""

from __future__ import annotations

import atexit
import base64
import os
import pickle
import signal
import threading
import time
from pathlib import Path
from typing import Any

from budgetmem.settings import Settings

__all__ = ["ENV", "app", "build", "handover", "leave_with_parent"]

ENV = "BUDGETMEM_SERVE_WORKER"
PARENT_POLL_S = 0.5
"""How often a worker checks that its supervisor is still there."""
GRACE_S = 10.0
"""How long a worker whose supervisor died may take to finish its requests and close the store."""


def handover(store: str | Path, settings: Settings) -> str:
    """What the parent puts in :data:`ENV` for its workers."""
    return base64.b64encode(pickle.dumps((str(store), settings))).decode("ascii")


def build(store: str | Path, settings: Settings) -> Any:
    """The app of one server process, torch set to the service's threads per forward pass
    (``ServerSettings.torch_threads``). The caller closes ``app.state.service``."""
    from budgetmem.server.app import create_app

    if settings.server.torch_threads:
        import torch

        torch.set_num_threads(settings.server.torch_threads)
    return create_app(store, settings)


def leave_with_parent(parent: int, poll_s: float = PARENT_POLL_S, grace_s: float = GRACE_S) -> threading.Thread:
    """Watch ``parent`` from a daemon thread; once this process has another parent (the
    supervisor is gone and the process was adopted), stop the way a supervisor would:
    SIGTERM, which uvicorn answers by finishing what is in flight and closing the app, and
    after ``grace_s`` an exit regardless. Polling the parent id works wherever POSIX does
    (Linux's PR_SET_PDEATHSIG would not on macOS)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(grace_s)
        os._exit(1)

    thread = threading.Thread(target=watch, name="budgetmem-parent-watch", daemon=True)
    thread.start()
    return thread


def app() -> Any:
    """Build this worker's app (uvicorn calls it: ``factory=True``)."""
    leave_with_parent(os.getppid())
    store, settings = pickle.loads(base64.b64decode(os.environ[ENV]))  # noqa: S301 - set by our own parent
    built = build(store, settings)
    atexit.register(built.state.service.close)
    return built
