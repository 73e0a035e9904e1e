"""OpenAICompatLLM against a scripted stub server: retries, backoff, errors, exact usage."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import fake_openai
import pytest
from fake_openai import FakeOpenAIServer, Reply

from budgetmem.errors import ConfigError, LLMResponseError, LLMTimeoutError, ServerUnavailableError
from budgetmem.llm import make_llm
from budgetmem.llm import openai_compat
from budgetmem.llm.openai_compat import OpenAICompatLLM
from budgetmem.settings import LLMSettings, Settings


def chat_json(text: str = "hello", prompt: int = 123, completion: int = 45) -> dict[str, Any]:
    return fake_openai.completion(text, tokens={"prompt_tokens": prompt, "completion_tokens": completion,
                                                "total_tokens": prompt + completion})  # fmt: skip


class ScriptedStubServer(FakeOpenAIServer):
    """The shared fake server (tests/fake_openai.py) answering the scripted replies in order,
    repeating the last one, with no latency of its own; ``requests``, ``headers`` and
    ``times`` are the request bodies, headers and arrival times it saw."""

    def __init__(self, replies: list[Reply]) -> None:
        replies = [r if r.body is not None else replace(r, body=chat_json()) for r in replies]
        super().__init__(delay_s=0.0, script=replies[:-1], default=replies[-1])

    @property
    def requests(self) -> list[dict[str, Any]]:  # type: ignore[override]
        return [s.body for s in self.served]

    @property
    def headers(self) -> list[dict[str, str]]:
        return [s.headers for s in self.served]

    @property
    def times(self) -> list[float]:
        return [s.at for s in self.served]


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
