"""The MCP server over streamable HTTP, as an ASGI app to run alone or mount in the REST service.

How the caller's namespace reaches a tool: the service's auth middleware checks the bearer
key and sets :data:`~budgetmem.mcp.context.current_namespace` around the request. The SDK
serves the messages of a stateful session from one long-lived task, but runs each message's
handler in the context of the HTTP request that carried it (its own ``get_access_token``
works the same way), so a tool sees the namespace of the key on *its* request: a session id
presented with another key acts for that key, and a request with no key reaches no memory.
``tests/test_mcp.py`` checks exactly that, so an SDK upgrade that changed it would fail there.
"""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette

__all__ = ["streamable_http_app"]


def streamable_http_app(
    server: MCPServer,
    *,
    path: str = "/mcp",
    stateless: bool = False,
    json_response: bool = False,
    host: str = "127.0.0.1",
    transport_security: TransportSecuritySettings | None = None,
) -> Starlette:
    """The streamable-HTTP ASGI app of ``server``, answering POST / GET / DELETE at ``path``.

    Alone, it runs as it is (``uvicorn.run(app)``): its lifespan starts the SDK's session
    manager. Mounted in a FastAPI or Starlette app, its lifespan does *not* run (Starlette
    runs only the outer app's), so the outer app must run the session manager itself::

        server = build_server(context_provider(pool))
        mcp_app = streamable_http_app(server, host="0.0.0.0")

        @contextlib.asynccontextmanager
        async def lifespan(app):
            async with server.session_manager.run():  # once per process, after streamable_http_app()
                yield

        api = FastAPI(lifespan=lifespan)
        api.add_middleware(AuthMiddleware)  # checks the key; sets current_namespace around call_next
        ...                                 # the REST routers
        api.mount("/", mcp_app)             # last: it answers only ``path``; routes added before win

    The auth must be a middleware (ASGI, or ``@app.middleware("http")``), not a route
    dependency: a mounted app runs no dependencies. Mounting at "/" keeps the endpoint at
    exactly ``/mcp``; ``api.mount("/mcp", streamable_http_app(server, path="/"))`` works too,
    but its endpoint is then ``/mcp/`` and ``/mcp`` answers with a redirect (the SDK's client
    follows it; not every client does).

    ``stateless`` answers each request on its own (no session id, no server-to-client
    requests): simpler behind a load balancer. ``host`` is the address the service binds:
    for 127.0.0.1 / localhost the SDK turns on DNS-rebinding protection (only local Host
    headers pass); any other host leaves it off unless ``transport_security`` sets it.
    """
    return server.streamable_http_app(
        streamable_http_path=path,
        stateless_http=stateless,
        json_response=json_response,
        host=host,
        transport_security=transport_security,
    )
