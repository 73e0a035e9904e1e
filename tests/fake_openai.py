"""A real OpenAI-compatible HTTP server on 127.0.0.1: the stand-in for an API backend in the
executor tests, the retry tests, ``bench/executors.py`` and the hostile-server campaign.

By default every request gets a good reply after a fixed delay. Good replies are a
deterministic function of the prompt and follow each module's contract (scores for the
filter, a fact list for the extractors, text for the summary), so the pipeline parses them
without repair calls; any other prompt (the answer) gets a short phrase. Usage is the words
of prompt and reply. A compression prompt gets a prefix of its excerpt as the note, or an
empty reply for some excerpts.

A test can script what the next requests get instead (:meth:`FakeOpenAIServer.push`): any
status, body, headers and delay (:class:`Reply`), or one of the hostile behaviours of
:data:`HOSTILE` (:func:`hostile`): malformed JSON, an empty body, a huge reply, 429 with and
without Retry-After, 500, a reply slower than the client's timeout, a connection dropped in
the middle of the body, an HTML page, JSON of the wrong shape, a reply the module's parser
cannot read. Every request is logged (:class:`Served`) with what it got and the tokens it
billed, so a test can count retries and check the client's ledger against the server's.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL = "llama-3.1-8b"
"""A model the default price table knows (a paper price), so no prices file is needed."""


def reply_for(prompt: str) -> str:
    if "Condense the conversation excerpt" in prompt:
        # A note of the excerpt's first quarter; every fourth excerpt (by content) gets an
        # empty reply, which compress rejects and tries again on its next run.
        excerpt = prompt.split("Excerpt:\n", 1)[-1].rsplit("\n\nNote:", 1)[0]
        words = excerpt.split()
        return "" if zlib.crc32(excerpt.encode()) % 4 == 0 else " ".join(words[: max(3, len(words) // 4)])
    if "rate how useful each memory is" in prompt:
        n = len(set(re.findall(r'<memory index="(\d+)"', prompt)))
        return "<answer>" + json.dumps([(7 * i + 3) % 11 for i in range(n)]) + "</answer>"
    if "write a short summary" in prompt:
        return "<answer>The memories mention a few facts about the question.</answer>"
    if "Answer format: a JSON array of strings" in prompt:
        return '<answer>["one fact from the memories"]</answer>'
    words = re.findall(r"[A-Za-z]+", prompt.rsplit("Question:", 1)[-1])
    return " ".join(words[-2:]) or "unknown"


def usage(prompt: str, text: str) -> dict[str, int]:
    """What the fake bills: one token per whitespace-separated word."""
    p, c = len(prompt.split()), len(text.split())
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def completion(text: str, prompt: str = "", model: str = MODEL, tokens: dict[str, int] | None = None) -> dict[str, Any]:
    """A well-formed chat completion carrying ``text``."""
    return {
        "id": "fake", "object": "chat.completion", "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": tokens if tokens is not None else usage(prompt, text),
    }  # fmt: skip


Body = Callable[[str, str], Any]
"""(prompt, model) -> the body to send: a dict or list (sent as JSON), str or bytes (as is)."""


@dataclass(frozen=True)
class Reply:
    """What one request gets."""

    status: int = 200
    body: Any = None
    """None: the good completion for the prompt; dict/list -> JSON; str/bytes -> sent as is; a
    callable (prompt, model) -> one of those."""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float | None = None
    """Seconds before answering (None: the server's own delay)."""
    content_type: str = "application/json"
    cut: float | None = None
    """Send only this share of the body (Content-Length promises all of it), then close."""
    drip_s: float | None = None
    """Send the body in 64-byte pieces this many seconds apart (a server that stalls mid-reply)."""
    kind: str = "scripted"
    """A name for the log (the hostile behaviour, or 'ok')."""
    delivered: bool = True
    """False for a reply meant to come after the client gave up (slower than its timeout):
    the socket may still take the bytes, but no client reads them, so nothing is billed."""


@dataclass(frozen=True)
class Served:
    """One request as the server saw it."""

    at: float
    """time.monotonic() when the request arrived."""
    kind: str
    status: int
    prompt: str
    body: dict[str, Any]
    headers: dict[str, str]
    billed: tuple[int, int] | None
    """(prompt, completion) tokens of the usage the client received in full, else None."""


class FakeOpenAIServer:
    """``with FakeOpenAIServer(delay_s=0.2) as srv: srv.provider`` -> ``openai:llama-3.1-8b@http://...``.

    ``srv.push(r1, r2)`` queues replies for the next requests, in arrival order; when the
    queue is empty every request gets ``default`` (a good completion unless set). ``srv.rule``,
    when set, picks the reply from the prompt first (None: go on to the queue): what calls
    running side by side get cannot depend on which arrives first."""

    def __init__(self, delay_s: float = 0.1, script: Iterable[Reply] = (), default: Reply | None = None) -> None:
        self.delay_s = delay_s
        self.default = default or Reply(kind="ok")
        self.served: list[Served] = []
        self.rule: Callable[[str], Reply | None] | None = None
        self._script: deque[Reply] = deque(script)
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                outer._answer(self)

            def log_message(self, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False  # a reply still sleeping past a client's timeout must not hold up close

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that hung up on a slow reply is part of the test, not an error

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-openai", daemon=True
        )

    # ------------------------------------------------------------------ scripting
    def push(self, *replies: Reply) -> None:
        with self._lock:
            self._script.extend(replies)

    def reset(self, default: Reply | None = None) -> None:
        """Forget the log and the queued replies (one server, many trials)."""
        with self._lock:
            self.served = []  # a new list: a reply of the last trial still being sent books into the old one
            self._script.clear()
            self.rule = None
            if default is not None:
                self.default = default

    @property
    def requests(self) -> int:
        return len(self.served)

    # ------------------------------------------------------------------ serving
    def _answer(self, h: BaseHTTPRequestHandler) -> None:
        raw = h.rfile.read(int(h.headers.get("Content-Length", 0)))
        request = json.loads(raw or b"{}")
        prompt = "\n".join(m.get("content", "") for m in request.get("messages", []))
        with self._lock:
            reply = self.rule(prompt) if self.rule is not None else None
            if reply is None:
                reply = self._script.popleft() if self._script else self.default
            log, index = self.served, len(self.served)
            log.append(Served(time.monotonic(), reply.kind, reply.status, prompt, request, dict(h.headers), None))
        time.sleep(self.delay_s if reply.delay_s is None else reply.delay_s)  # latency: the thread waits, not the CPU
        body = reply.body(prompt, request.get("model", MODEL)) if callable(reply.body) else reply.body
        if body is None:
            body = completion(reply_for(prompt), prompt, request.get("model", MODEL))
        data = body if isinstance(body, bytes) else body.encode() if isinstance(body, str) else json.dumps(body).encode()
        sent = data if reply.cut is None else data[: int(len(data) * reply.cut)]
        # Booked before the bytes go out: a client may read them and move on before this
        # thread runs again. A reply cut short or sent after the client gave up bills nothing.
        billed = _billed(body) if reply.delivered and reply.cut is None else None
        self._bill(log, index, billed)
        try:
            h.send_response(reply.status)
            for k, v in reply.headers.items():
                h.send_header(k, v)
            h.send_header("Content-Type", reply.content_type)
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            step = 64 if reply.drip_s else max(1, len(sent))
            for i in range(0, len(sent), step):
                if i and reply.drip_s:
                    time.sleep(reply.drip_s)
                h.wfile.write(sent[i : i + step])
                h.wfile.flush()
        except OSError:
            self._bill(log, index, None)  # the client hung up first: it never read a usage
            return
        if reply.cut is not None:
            h.close_connection = True
            try:
                h.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _bill(self, log: list[Served], index: int, billed: tuple[int, int] | None) -> None:
        with self._lock:
            s = log[index]
            log[index] = Served(s.at, s.kind, s.status, s.prompt, s.body, s.headers, billed)

    # ------------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    @property
    def provider(self) -> str:
        return f"openai:{MODEL}@{self.url}"

    def __enter__(self) -> FakeOpenAIServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def _billed(body: Any) -> tuple[int, int] | None:
    """The usage a delivered body reports, as a client reading it would find it."""
    if isinstance(body, (bytes, str)):
        try:
            body = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None
    u = body.get("usage") if isinstance(body, dict) else None
    if not isinstance(u, dict):
        return None
    p, c = u.get("prompt_tokens"), u.get("completion_tokens")
    ok = all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in (p, c))
    return (p, c) if ok else None  # type: ignore[return-value]


# --------------------------------------------------------------------------- hostile replies
HOSTILE = (
    "malformed", "empty", "huge", "429", "429-retry-after", "500", "timeout", "slow-body", "drop", "html",
    "wrong-shape", "garbage",
)  # fmt: skip
"""The hostile behaviours :func:`hostile` builds."""

TRANSIENT = frozenset({"429", "429-retry-after", "500", "timeout", "slow-body", "drop"})
"""Behaviours the client's policy retries (statuses 429 / 5xx, timeouts, broken connections)."""
PAID = frozenset({"ok", "huge", "wrong-shape", "garbage"})
"""Behaviours whose reply carries usage the client receives: it was paid for."""

HUGE_WORDS = 200_000
"""Words in a huge reply (~1.4 MB of text): far beyond any max_tokens a client asks for."""


def _wrong_shape(prompt: str, model: str) -> dict[str, Any]:
    # Valid JSON, usage included (the tokens were generated and paid), but the text is not
    # where the API puts it: the legacy completions shape.
    text = reply_for(prompt)
    return {"id": "fake", "object": "text_completion", "model": model,
            "choices": [{"index": 0, "text": text, "finish_reason": "stop"}], "usage": usage(prompt, text)}  # fmt: skip


def _garbage(prompt: str, model: str) -> dict[str, Any]:
    # A well-formed completion whose text no module parser accepts (no <answer> tag) and
    # which holds no answer either: only tags and whitespace.
    text = "<thinking>\n\n</thinking>"
    return completion(text, prompt, model)


def _huge(prompt: str, model: str) -> dict[str, Any]:
    text = " ".join(["blah"] * HUGE_WORDS)
    return completion(text, prompt, model)


def hostile(kind: str, *, retry_after: float | str = 0.2, sleep_s: float = 1.0) -> Reply:
    """The reply of one hostile behaviour. ``retry_after``: the 429's header, seconds (a
    number) or sent as given (a string, e.g. an HTTP date); ``sleep_s``: how
    long a 'timeout' reply sleeps before answering, and how long a 'slow-body' reply takes to
    dribble its body out (make both longer than the client's timeout)."""
    if kind == "ok":
        return Reply(kind="ok")
    if kind == "malformed":
        return Reply(body='{"id": "fake", "choices": [{"message": {"content": "<answer>[1, 2', kind=kind)
    if kind == "empty":
        return Reply(body=b"", kind=kind)
    if kind == "huge":
        return Reply(body=_huge, kind=kind)
    if kind == "429":
        return Reply(429, {"error": {"message": "rate limited"}}, kind=kind)
    if kind == "429-retry-after":
        return Reply(429, {"error": {"message": "rate limited"}}, {"Retry-After": retry_after if isinstance(retry_after, str) else f"{retry_after:g}"}, kind=kind)
    if kind == "500":
        return Reply(500, {"error": {"message": "the model crashed"}}, kind=kind)
    if kind == "timeout":
        return Reply(delay_s=sleep_s, kind=kind, delivered=False)
    if kind == "slow-body":
        # Headers at once, then the body a piece at a time, each piece well inside any read
        # timeout: only a deadline on the whole reply stops it.
        return Reply(body=completion("x " * 200), drip_s=sleep_s / 8, kind=kind, delivered=False)
    if kind == "drop":
        return Reply(cut=0.5, kind=kind)
    if kind == "html":
        return Reply(body="<html><body><h1>502 Bad Gateway</h1></body></html>", content_type="text/html", kind=kind)
    if kind == "wrong-shape":
        return Reply(body=_wrong_shape, kind=kind)
    if kind == "garbage":
        return Reply(body=_garbage, kind=kind)
    raise ValueError(f"unknown hostile behaviour {kind!r}; known: {', '.join(HOSTILE)}")
