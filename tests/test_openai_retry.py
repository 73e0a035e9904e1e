"""OpenAICompatLLM against a scripted stub server: retries, backoff, errors, exact usage."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from budgetmem.errors import ConfigError, LLMResponseError, LLMTimeoutError, ServerUnavailableError
from budgetmem.llm import make_llm
from budgetmem.llm import openai_compat
from budgetmem.llm.openai_compat import OpenAICompatLLM
from budgetmem.settings import LLMSettings, Settings


@dataclass(frozen=True)
class Reply:
    """One scripted answer of the stub."""

    status: int = 200
    body: Any = None
    """dict -> JSON, str -> sent as is, None -> a valid chat completion."""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


def chat_json(text: str = "hello", prompt: int = 123, completion: int = 45) -> dict[str, Any]:
    return {
        "id": "cmpl-1",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
    }


class ScriptedStubServer:
    """A scripted stub of an OpenAI-compatible server (NOT a model): it answers the scripted
    replies in order, repeating the last one, and records every request it receives."""

    def __init__(self, replies: list[Reply]) -> None:
        self.replies = replies
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.times: list[float] = []
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                payload = json.loads(self.rfile.read(length) or b"{}")
                with stub._lock:
                    index = len(stub.requests)
                    stub.requests.append(payload)
                    stub.headers.append(dict(self.headers))
                    stub.times.append(time.monotonic())
                reply = stub.replies[min(index, len(stub.replies) - 1)]
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                body = reply.body if reply.body is not None else chat_json()
                raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                try:
                    self.send_response(reply.status)
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(raw)))
                    self.end_headers()
                    self.wfile.write(raw)
                except OSError:
                    pass  # the client gave up (timeout test)

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def __enter__(self) -> ScriptedStubServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def client(url: str, model: str = "gpt-oss-120b", **llm: Any) -> OpenAICompatLLM:
    settings = Settings(llm=LLMSettings(**{"backoff_s": 0.01, "max_retries": 3, "timeout_s": 5.0, **llm}))
    out = make_llm(f"openai:{model}@{url}", settings=settings)
    assert isinstance(out, OpenAICompatLLM)
    return out


@pytest.fixture
def free_port() -> Iterator[int]:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    yield port


def test_retries_429_then_exact_usage_and_usd() -> None:
    slow_down = Reply(429, {"error": "slow down"})
    replies = [slow_down, slow_down, Reply(200, chat_json("ok", 123, 45))]
    with ScriptedStubServer(replies) as stub:
        llm = client(stub.url)
        c = llm.complete("hi", max_tokens=7)
    assert len(stub.requests) == 3
    gaps = [b - a for a, b in zip(stub.times, stub.times[1:])]
    assert gaps[0] >= 0.01 and gaps[1] >= 0.02  # backoff 0.01 s, doubling
    assert (c.text, c.prompt_tokens, c.completion_tokens, c.finish_reason) == ("ok", 123, 45, "stop")
    assert c.usd == pytest.approx(123 * 0.15 / 1e6 + 45 * 0.60 / 1e6, rel=1e-12)
    assert c.model == f"openai:gpt-oss-120b@{stub.url}" and c.latency_s >= 0.03
    sent = stub.requests[-1]
    assert sent["model"] == "gpt-oss-120b" and sent["max_tokens"] == 7 and sent["temperature"] == 0.0
    assert sent["messages"] == [{"role": "user", "content": "hi"}]


def test_retry_after_header_is_honoured_and_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    with ScriptedStubServer([Reply(503, "busy", {"Retry-After": "1"}), Reply()]) as stub:
        client(stub.url).complete("hi")
    assert len(stub.requests) == 2 and stub.times[1] - stub.times[0] >= 0.95
    monkeypatch.setattr(openai_compat, "MAX_BACKOFF_S", 0.05)
    with ScriptedStubServer([Reply(429, "busy", {"Retry-After": "100"}), Reply()]) as stub:
        client(stub.url).complete("hi")
    assert len(stub.requests) == 2 and stub.times[1] - stub.times[0] < 1.0


def test_500_forever_gives_up_after_max_retries() -> None:
    with ScriptedStubServer([Reply(500, {"error": {"message": "model crashed"}})]) as stub:
        with pytest.raises(LLMResponseError) as info:
            client(stub.url, max_retries=2).complete("hi")
    assert len(stub.requests) == 3
    assert "HTTP 500" in str(info.value) and "model crashed" in str(info.value) and "3 attempts" in str(info.value)


@pytest.mark.parametrize("status", [400, 401, 404])
def test_client_errors_are_not_retried(status: int) -> None:
    with ScriptedStubServer([Reply(status, {"error": "bad request: max_tokens"})]) as stub:
        with pytest.raises(LLMResponseError, match=f"HTTP {status}: .*bad request: max_tokens"):
            client(stub.url).complete("hi")
    assert len(stub.requests) == 1


def test_timeout_after_retries() -> None:
    with ScriptedStubServer([Reply(delay_s=0.6)]) as stub:
        start = time.monotonic()
        with pytest.raises(LLMTimeoutError, match="did not answer within 0.1 s"):
            client(stub.url, timeout_s=0.1, max_retries=1).complete("hi")
        assert time.monotonic() - start < 0.6
    assert len(stub.requests) == 2


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("<html>gateway</html>", "not JSON"),
        ({"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}, "without choices"),
        ({"choices": [{"message": {"content": "x"}}]}, "no token usage"),
        ({"choices": [{"message": {"content": "x"}}], "usage": {"prompt_tokens": 3}}, "usage.completion_tokens"),
        ({"choices": [{"message": {"content": None}}], "usage": {"prompt_tokens": 1, "completion_tokens": 2}}, "content"),
    ],
)
def test_garbage_bodies(body: Any, fragment: str) -> None:
    with ScriptedStubServer([Reply(200, body)]) as stub:
        with pytest.raises(LLMResponseError, match=fragment):
            client(stub.url).complete("hi")
    assert len(stub.requests) == 1  # a malformed answer is not retried


def test_nothing_listening(free_port: int) -> None:
    url = f"http://127.0.0.1:{free_port}/v1"
    with pytest.raises(ServerUnavailableError) as info:
        client(url, max_retries=1).complete("hi")
    assert str(info.value).startswith(f"no server at {url}; start it or fix the base URL")
    assert "\n" not in str(info.value)


def test_request_options_and_key() -> None:
    with ScriptedStubServer([Reply()]) as stub:
        llm = OpenAICompatLLM(
            "gpt-oss-120b",
            price=make_llm("openai:gpt-oss-120b@http://x:1/v1").price,
            base_url=stub.url,
            settings=LLMSettings(backoff_s=0.01),
            api_key="sk-test",
            grammar_field=True,
        )
        llm.complete("a", json_mode=True, stop=["\n"])
        llm.complete("b", grammar='root ::= "x"')
    assert stub.requests[0]["response_format"] == {"type": "json_object"} and stub.requests[0]["stop"] == ["\n"]
    assert stub.requests[1]["grammar"] == 'root ::= "x"' and "response_format" not in stub.requests[1]
    assert stub.headers[0]["Authorization"] == "Bearer sk-test"


def test_grammar_refused_without_grammar_field() -> None:
    with ScriptedStubServer([Reply()]) as stub:
        with pytest.raises(ConfigError, match="does not support grammars"):
            client(stub.url).complete("hi", grammar='root ::= "x"')
    assert stub.requests == []
