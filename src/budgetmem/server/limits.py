"""The outermost layer of the app: body size limit, time limit, request metrics.

A plain ASGI middleware rather than Starlette's BaseHTTPMiddleware, because it has to see
the body as it streams in and to answer in place of the app when a limit is hit.

- Body: a Content-Length over ``max_body`` is refused before anything is read; a body sent
  without one (chunked) is counted as it arrives, and once past the limit whatever the app
  was about to answer becomes a 413.
- Time: past ``timeout_s`` the request is cancelled and answered 504. Blocking work runs in
  pools (:mod:`budgetmem.server.pool`), so cancelling stops the wait, not the thread.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from budgetmem.server.metrics import Metrics

__all__ = ["Guard"]


class _TooLarge(Exception):
    pass


def envelope(status: int, type_: str, message: str, hint: str) -> tuple[dict[str, Any], dict[str, Any]]:
    body = json.dumps({"error": {"type": type_, "message": message, "hint": hint}}).encode()
    start = {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    }
    return start, {"type": "http.response.body", "body": body}


class Guard:
    def __init__(self, app: ASGIApp, *, max_body: int, timeout_s: float, metrics: Metrics) -> None:
        self.app = app
        self.max_body = max_body
        self.timeout_s = timeout_s
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        state = {"status": 0, "sent": False, "too_large": False}

        async def reply(status: int, type_: str, message: str, hint: str) -> None:
            head, body = envelope(status, type_, message, hint)
            await send(head)
            await send(body)
            state["status"], state["sent"] = status, True

        too_large = ("request body over the server's limit of", f"{self.max_body} bytes")
        try:
            declared = int(dict(scope["headers"]).get(b"content-length", b"0") or 0)
        except ValueError:
            declared = 0
        if declared > self.max_body:
            await reply(413, "TooLargeError", f"{too_large[0]} {too_large[1]}", "send less, or split it into several adds")
            self._record(scope, state["status"], started)
            return

        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    state["too_large"] = True
                    raise _TooLarge
            return message

        async def watched(message: Message) -> None:
            if state["too_large"]:
                # The app turned the interrupted read into some error of its own; answer 413.
                if not state["sent"]:
                    await reply(413, "TooLargeError", f"{too_large[0]} {too_large[1]}", "send less, or split it")
                return
            if message["type"] == "http.response.start":
                state["status"], state["sent"] = message["status"], True
            await send(message)

        try:
            async with asyncio.timeout(self.timeout_s):
                await self.app(scope, counted, watched)
        except TimeoutError:
            if not state["sent"]:
                await reply(
                    504, "DeadlineError", f"the request took longer than the server's limit of {self.timeout_s:g} s",
                    "an add may still complete: adds are idempotent, so retrying is safe",
                )  # fmt: skip
        except _TooLarge:
            if not state["sent"]:
                await reply(413, "TooLargeError", f"{too_large[0]} {too_large[1]}", "send less, or split it")
        except Exception:
            state["status"] = state["status"] or 500
            raise
        finally:
            self._record(scope, state["status"] or 500, started)

    def _record(self, scope: Scope, status: int, started: float) -> None:
        route = scope.get("route")
        template = getattr(route, "path_format", None) or "<unrouted>"
        self.metrics.request(template, scope.get("method", "GET"), status, time.perf_counter() - started)
