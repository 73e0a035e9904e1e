"""The MCP tools at ``/mcp``, behind the service's bearer keys.

The same seven tools as ``budgetmem mcp`` (:mod:`budgetmem.mcp`), over streamable HTTP, on
the same per-namespace BudgetMems as the REST routes. Each request's ``Authorization:
Bearer`` key is checked here, before the SDK sees the request; the key's namespace and
scopes then travel to the tools in :data:`~budgetmem.mcp.current_namespace` and
:data:`~budgetmem.mcp.current_scopes` (a tool needs read, query or write, as its REST
route does). No key or a bad one: 401 in the service's error envelope.

The endpoint is stateless and answers in JSON (no server-sent-event streams): every POST
is one whole exchange, so the service's timeout and body limit apply to it like any other
request, and any process behind a load balancer can answer it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.types import ASGIApp, Receive, Scope, Send

from budgetmem.errors import AuthError
from budgetmem.server.limits import envelope
from budgetmem.server.service import Service
from budgetmem.store.keys import authenticate

__all__ = ["McpEndpoint"]


class McpEndpoint:
    """An ASGI endpoint: check the key, bind its namespace and scopes, hand over to the SDK."""

    def __init__(self, service: Service, host: str) -> None:
        self.service = service
        self.host = host
        self._app: ASGIApp | None = None

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Run the SDK's session manager for one start of the service (the app's lifespan).

        A session manager runs once in its life, and test clients start an app many times,
        so each start builds its own MCP server (tools only: cheap)."""
        from budgetmem.mcp import build_server, context_provider, streamable_http_app

        root = logging.getLogger()
        handlers, level = list(root.handlers), root.level
        server = build_server(context_provider(lambda ns: self.service.memory(ns, create=True)))
        # The SDK configures the root logger on construction (basicConfig with its own handler),
        # which would print every library's debug chatter into the service's log: put it back.
        root.handlers[:], root.level = handlers, level
        app = streamable_http_app(server, stateless=True, json_response=True, host=self.host)
        async with server.session_manager.run():
            self._app = app
            try:
                yield
            finally:
                self._app = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        from budgetmem.mcp import current_namespace, current_scopes

        if self._app is None:
            await _reply(send, 503, "ServiceError", "the MCP endpoint is not running", "retry once the service has started")
            return
        raw = dict(scope.get("headers") or []).get(b"authorization")
        try:
            key = authenticate(self.service.keys, raw.decode("latin-1") if raw else None)
        except AuthError as exc:
            await _reply(send, 401, "AuthError", exc.message, exc.hint or "", challenge=True)
            return
        ns_token = current_namespace.set(key.namespace)
        scope_token = current_scopes.set(key.scopes)
        try:
            await self._app(scope, receive, send)
        finally:
            current_scopes.reset(scope_token)
            current_namespace.reset(ns_token)


async def _reply(send: Send, status: int, type_: str, message: str, hint: str, *, challenge: bool = False) -> None:
    head, body = envelope(status, type_, message, hint)
    if challenge:
        head = {**head, "headers": [*head["headers"], (b"www-authenticate", b"Bearer")]}
    await send(head)
    await send(body)
