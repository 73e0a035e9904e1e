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

__all__ = ["ENV", "app", "build", "handover"]

ENV = "BUDGETMEM_SERVE_WORKER"


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


def app() -> Any:
    """Build this worker's app (uvicorn calls it: ``factory=True``)."""
    store, settings = pickle.loads(base64.b64decode(os.environ[ENV]))  # noqa: S301 - set by our own parent
    built = build(store, settings)
    atexit.register(built.state.service.close)
    return built
