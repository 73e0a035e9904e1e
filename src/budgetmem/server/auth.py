"""The one auth dependency every route declares: ``Depends(need("read"))``.

It runs before the body is validated, so a request without a valid key gets 401 whatever
it carries, and one for another namespace gets 403 (not a 404 or 422 that would tell it
what exists or what the schema wants). The check itself is :func:`budgetmem.store.keys.
authenticate` plus :meth:`KeyInfo.require`, usable outside FastAPI as well (an MCP app
mounted beside these routes calls the same two).
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from budgetmem.server.service import Service
from budgetmem.store.keys import KeyInfo, authenticate

__all__ = ["need", "service_of", "bearer"]

bearer = HTTPBearer(auto_error=False, description="An API key from `budgetmem keys create`")
"""Declares the scheme in the OpenAPI schema; the header itself is read by :func:`authenticate`."""


def service_of(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def need(scope: str | None) -> Callable[..., KeyInfo]:
    """A dependency: the caller's key, checked for ``scope`` on the path's namespace (if the
    route has one). ``None`` asks only for a valid key."""

    def check(request: Request, _: HTTPAuthorizationCredentials | None = Security(bearer)) -> KeyInfo:
        # A plain def: FastAPI runs it in a thread, so the key lookup never blocks the loop.
        key = authenticate(service_of(request).keys, request.headers.get("authorization"))
        if scope is not None:
            key.require(request.path_params.get("ns"), scope)
        return key

    return check
