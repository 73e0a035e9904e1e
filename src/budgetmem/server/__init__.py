"""The memory service: budgetmem over HTTP (``budgetmem serve``).

    server/
        app.py        create_app(): the FastAPI app, its routers, error handlers and limits
        service.py    what a running service holds: keys, a BudgetMem per namespace, pools
        auth.py       the bearer-key dependency every route declares
        routes/       one APIRouter per resource (memories, search, namespaces, jobs, ops)
        models.py     request and response bodies: the OpenAPI schema
        errors.py     library error -> HTTP status, in one table
        limits.py     body size and time limits, request metrics (plain ASGI)
        pool.py       bounded worker pools (429 when full)
        jobs.py       background ingests of large bodies
        metrics.py    Prometheus metrics in a per-app registry

Keys live in :mod:`budgetmem.store.keys`. FastAPI is imported only when the app is built.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from budgetmem.server.app import create_app

        return create_app
    raise AttributeError(name)
