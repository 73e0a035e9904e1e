"""``create_app``: the REST service as an ASGI app (``budgetmem serve`` runs it on uvicorn).

The MCP tools are mounted at ``/mcp`` behind the same keys (:mod:`budgetmem.server.mcp_mount`).
``app.state.service`` holds the store, keys and per-namespace BudgetMems, and
:func:`budgetmem.store.keys.authenticate` checks the same bearer keys outside FastAPI.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from fastapi import FastAPI

from budgetmem.encoder import Encoder
from budgetmem.llm import LLM
from budgetmem.server.errors import install_handlers
from budgetmem.server.limits import Guard
from budgetmem.server.routes import jobs, memories, namespaces, ops, search
from budgetmem.server.service import Service
from budgetmem.settings import Settings

__all__ = ["create_app"]

_DESCRIPTION = """Memory for LLM agents: add sessions, search, answer with a cost ledger, forget.

Every endpoint but `/healthz` needs `Authorization: Bearer <key>` (`budgetmem keys create`).
A key opens its namespace and the namespaces below it (`alice` opens `alice/work`); its
scopes say what it may do there: `read`, `query`, `write`, `metrics`. Errors are
`{"error": {"type", "message", "hint"}}`."""


def create_app(
    store: str | Path,
    settings: Settings | None = None,
    *,
    llms: Mapping[str, LLM] | None = None,
    encoder: Encoder | None = None,
) -> FastAPI:
    """The service over one store file. ``settings.server`` sets its limits; ``llms`` and
    ``encoder`` replace what the settings would build (custom clients, test doubles).

    The caller closes ``app.state.service`` when done with the app (``serve`` does after
    uvicorn returns); a lifespan hook would close it at the first ASGI shutdown, and test
    clients start and stop an app many times."""
    from budgetmem import __version__

    service = Service(store, settings, llms=llms, encoder=encoder)
    app = FastAPI(
        title="budgetmem",
        version=__version__,
        description=_DESCRIPTION,
        openapi_url=None,  # served by ops.openapi, behind a key like every other route
        docs_url=None,
        redoc_url=None,
    )
    app.state.service = service
    install_handlers(app)
    app.include_router(ops.router)
    app.include_router(search.router)
    app.include_router(memories.router)
    app.include_router(jobs.router)
    app.include_router(namespaces.router)  # last: DELETE /v1/namespaces/{ns} matches every longer path
    s = service.settings.server
    _mount_mcp(app, service, s.host)
    app.add_middleware(Guard, max_body=s.max_body, timeout_s=s.timeout_s, metrics=service.metrics)
    return app


def _mount_mcp(app: FastAPI, service: Service, host: str) -> None:
    """The MCP tools at /mcp with the same keys (:mod:`budgetmem.server.mcp_mount`), when the
    ``mcp`` SDK is installed; its session manager runs in the app's lifespan."""
    try:
        import mcp.server.mcpserver  # noqa: F401
    except ImportError:
        return
    from starlette.routing import Route

    from budgetmem.server.mcp_mount import McpEndpoint

    endpoint = McpEndpoint(service, host)
    app.router.routes.append(Route("/mcp", endpoint=endpoint, methods=["POST", "GET", "DELETE"], include_in_schema=False))
    app.router.lifespan_context = lambda _app: endpoint.running()
