"""Every error leaves the service as ``{"error": {"type", "message", "hint"}}``, with a status
taken from the library's error tree (:mod:`budgetmem.errors`) in this one place.

``type`` is the library's class name, so :class:`budgetmem.client.Client` raises the same
class on its side. Messages are the library's one-liners; none repeats a request header.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from budgetmem import errors as e
from budgetmem.server.models import ErrorBody

__all__ = ["STATUS", "ERROR_RESPONSES", "status_for", "error_response", "install_handlers"]

log = logging.getLogger("budgetmem.server")

STATUS: tuple[tuple[type[e.BudgetMemError], int], ...] = (
    # Most specific first: the first class an error is an instance of decides.
    (e.TooLargeError, 413),
    (e.InputError, 400),
    (e.NoCostKnobError, 409),
    (e.ConfigError, 400),
    (e.NotFoundError, 404),
    (e.StoreError, 409),
    (e.LLMTimeoutError, 504),
    (e.LLMError, 502),
    (e.ModelError, 503),
    (e.ForbiddenError, 403),
    (e.AuthError, 401),
    (e.BusyError, 429),
    (e.DeadlineError, 504),
    (e.ServiceError, 500),
)

_TYPE_BY_STATUS = {400: "InputError", 404: "NotFoundError", 405: "InputError", 413: "TooLargeError", 401: "AuthError"}

_DESCRIPTIONS = {
    400: "Bad input or settings (InputError, ConfigError)",
    405: "Not a method of this resource (InputError)",
    401: "No valid API key (AuthError)",
    403: "The key is for another namespace or lacks the scope (ForbiddenError)",
    404: "No such namespace, memory, session or job (NotFoundError)",
    409: "The store cannot do this (StoreError), e.g. another encoder's namespace; or a target cost asked of a policy "
    "with no cost knob (NoCostKnobError)",
    413: "Request body over the server's --max-body (TooLargeError)",
    422: "The request does not match its schema (InputError with details)",
    429: "Work queue full (BusyError); retry after Retry-After seconds",
    500: "Internal error (ServiceError)",
    502: "An LLM call failed (LLMError)",
    503: "An embedded model is missing or broken (ModelError)",
    504: "Past the server's --timeout (DeadlineError) or an LLM's (LLMTimeoutError)",
}
_HEADERS = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer"}},
    405: {"Allow": {"schema": {"type": "string"}, "description": "The methods the resource has"}},
    429: {"Retry-After": {"schema": {"type": "string"}, "description": "Seconds to wait"}},
}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text, **({"headers": _HEADERS[status]} if status in _HEADERS else {})}
    for status, text in _DESCRIPTIONS.items()
}
"""Declared on every route: any request may be refused, time out or fail, and a response
the schema does not declare would break clients generated from it."""


def status_for(exc: e.BudgetMemError) -> int:
    return next((status for cls, status in STATUS if isinstance(exc, cls)), 500)


def error_response(
    status: int,
    type_: str,
    message: str,
    hint: str | None = None,
    *,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"type": type_, "message": message, "hint": hint}
    if details is not None:
        body["details"] = details
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def from_library(exc: e.BudgetMemError) -> JSONResponse:
    status = status_for(exc)
    headers: dict[str, str] = {}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="budgetmem"'
    if isinstance(exc, e.BusyError):
        headers["Retry-After"] = str(max(1, round(exc.retry_after)))
    return error_response(status, type(exc).__name__, exc.message, exc.hint, headers=headers or None)


def allowed_methods(request: Request) -> list[str]:
    """Every method of the resource at this path. Starlette's own 405 names those of the first
    route that matched the path only, and the path's GET and POST are separate routes. The
    forget-namespace route matches every path below a namespace: it counts only where no
    other route does (a path that is the namespace itself)."""
    found: dict[str, list[str]] = {}
    for route in request.app.router.routes:
        match, _ = route.matches({**request.scope, "method": "\x00"})  # no method matches: PARTIAL or NONE
        if match != Match.NONE and getattr(route, "methods", None):
            found.setdefault(route.path_format, []).extend(route.methods)
    if len(found) > 1:
        found.pop("/v1/namespaces/{ns}", None)
    return sorted({m for methods in found.values() for m in methods})


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(p) for p in loc)


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(e.BudgetMemError)
    async def library_error(_: Request, exc: e.BudgetMemError) -> JSONResponse:
        return from_library(exc)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        # Only where and what: pydantic's 'input' would echo the request back.
        problems = [{"field": _field(p.get("loc", ())), "problem": str(p.get("msg", ""))} for p in exc.errors()]
        first = problems[0] if problems else {"field": "request", "problem": "invalid"}
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        return error_response(
            422, "InputError", f"{first['field']}: {first['problem']}{more}",
            "see the request schema at /openapi.json", details=problems,
        )  # fmt: skip

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        type_ = _TYPE_BY_STATUS.get(exc.status_code, "InputError" if exc.status_code < 500 else "ServiceError")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(request))
        if exc.status_code == 401:
            headers.setdefault("WWW-Authenticate", 'Bearer realm="budgetmem"')
        return error_response(exc.status_code, type_, str(exc.detail), headers=headers or None)

    @app.exception_handler(Exception)
    async def internal_error(_: Request, exc: Exception) -> JSONResponse:
        log.error("internal error: %s", type(exc).__name__, exc_info=exc)
        return error_response(500, "ServiceError", "internal error", "see the server log")
