"""One process of ``budgetmem serve --processes N``: the app factory uvicorn's workers call.

uvicorn starts each worker as a fresh interpreter and builds the app from an import string,
so ``serve`` hands the store and the resolved settings over in an environment variable
(pickled by the parent process itself, never read from anywhere else).
"""

from __future__ import annotations

import atexit
import base64
import os
import pickle
from pathlib import Path
from typing import Any

from budgetmem.settings import Settings

__all__ = ["ENV", "app", "handover"]

ENV = "BUDGETMEM_SERVE_WORKER"


def handover(store: str | Path, settings: Settings) -> str:
    """What the parent puts in :data:`ENV` for its workers."""
    return base64.b64encode(pickle.dumps((str(store), settings))).decode("ascii")


def app() -> Any:
    """Build this worker's app (uvicorn calls it: ``factory=True``)."""
    from budgetmem.server.app import create_app

    store, settings = pickle.loads(base64.b64decode(os.environ[ENV]))  # noqa: S301 - set by our own parent
    threads = settings.server.torch_threads
    if threads:
        import torch

        torch.set_num_threads(threads)  # see ServerSettings.torch_threads
    built = create_app(store, settings)
    atexit.register(built.state.service.close)
    return built
