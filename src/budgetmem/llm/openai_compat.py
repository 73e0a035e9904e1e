"""Any OpenAI-compatible ``/v1/chat/completions`` endpoint (OpenAI, Together, vLLM, llama.cpp's server).

Transient failures (429, 5xx gateways, timeouts, refused or broken connections) are retried
with exponential backoff; everything else fails at once with a one-line error, so a wrong
URL or key is reported, not retried into a long hang. ``llm.timeout_s`` bounds each attempt
from the request to the last byte of the reply, so a server that dribbles its body out
slowly times out like one that says nothing.
"""

from __future__ import annotations

import dataclasses
import email.utils
import json
import os
import time
from collections.abc import Sequence
from typing import Any

import httpx

from budgetmem.errors import LLMResponseError, LLMTimeoutError, ServerUnavailableError
from budgetmem.llm.base import LLM, Completion, Message, Price, as_messages, usage_counts
from budgetmem.llm.pricing import PriceTable
from budgetmem.settings import LLMSettings, Settings

__all__ = ["OpenAICompatLLM", "DEFAULT_BASE_URL", "RETRY_STATUSES", "MAX_BACKOFF_S"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_BACKOFF_S = 30.0
"""Upper bound on one wait, whatever Retry-After asks for."""
_SNIPPET = 200


def _snippet(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _SNIPPET else flat[:_SNIPPET] + "..."


def _attempts(n: int) -> str:
    return f"{n} attempt" + ("" if n == 1 else "s")


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date), if any."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _failed_attempt(failure: Exception | httpx.Response) -> str:
    """One retried attempt, as the trace names it."""
    if isinstance(failure, httpx.Response):
        return f"HTTP {failure.status_code}"
    if isinstance(failure, httpx.ConnectError):
        return "connection refused"
    if isinstance(failure, httpx.TimeoutException):
        return "timeout"
    return "connection broken"


class OpenAICompatLLM(LLM):
    """Chat completions over HTTP. ``name`` is ``openai:<model>[@<base_url>]``."""

    def __init__(
        self,
        model: str,
        *,
        price: Price,
        base_url: str | None = None,
        settings: LLMSettings | None = None,
        api_key: str | None = None,
        grammar_field: bool = False,
        name: str | None = None,
    ) -> None:
        self.settings = settings or LLMSettings()
        self.model = model
        self.price = price
        # The provider string names the URL only when the user wrote one there.
        self.name = name or (f"openai:{model}@{base_url}" if base_url else f"openai:{model}")
        self.base_url = (
            base_url or self.settings.openai_base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        ).rstrip("/")
        self.api_key = api_key or self.settings.openai_api_key or os.environ.get("OPENAI_API_KEY") or None
        self.supports_grammar = grammar_field
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        self._client = httpx.Client(timeout=httpx.Timeout(self.settings.timeout_s), headers=headers)

    @classmethod
    def from_provider(
        cls,
        model: str,
        base_url: str | None,
        *,
        prices: PriceTable,
        settings: Settings,
        models_dir: str | os.PathLike[str] | None = None,
        name: str | None = None,
        **options: Any,
    ) -> OpenAICompatLLM:
        """Build from a parsed provider string; the price is looked up first so it fails early."""
        del models_dir  # hosted models need no local files
        price = prices.lookup(model)
        return cls(model, price=price, base_url=base_url, settings=settings.llm, name=name, **options)

    @property
    def url(self) -> str:
        return f"{self.base_url}/chat/completions"

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> OpenAICompatLLM:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def complete(
        self,
        messages: str | Sequence[Message],
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
        stop: Sequence[str] | None = None,
        grammar: str | None = None,
        json_mode: bool = False,
    ) -> Completion:
        self._check_request(max_tokens, grammar, json_mode)
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in as_messages(messages)],
            "max_tokens": max_tokens,
            "temperature": temperature,
        }
        if stop:
            body["stop"] = list(stop)
        if json_mode:
            body["response_format"] = {"type": "json_object"}
        if grammar is not None:
            body["grammar"] = grammar  # llama.cpp's server extension
        start = time.perf_counter()
        response, retries = self._post(body)
        latency = time.perf_counter() - start
        return dataclasses.replace(self._parse(response, latency), retries=retries)

    def _post(self, body: dict[str, Any]) -> tuple[httpx.Response, tuple[str, ...]]:
        """POST with retries; returns a 2xx response and what each failed attempt before it
        got, or raises the matching LLMError."""
        attempts = self.settings.max_retries + 1
        failure: Exception | httpx.Response | None = None
        retries: list[str] = []
        for attempt in range(attempts):
            wait = self.settings.backoff_s * (2**attempt)
            try:
                response = self._send(body)
            except (httpx.ConnectError, httpx.TimeoutException, httpx.RemoteProtocolError, httpx.ReadError) as exc:
                failure = exc
            else:
                if response.status_code < 400:
                    return response, tuple(retries)
                if response.status_code not in RETRY_STATUSES:
                    raise self._status_error(response, attempt + 1)
                failure = response
                after = _retry_after(response)
                if after is not None:
                    wait = max(wait, after)
            retries.append(_failed_attempt(failure))
            if attempt + 1 < attempts:
                time.sleep(min(wait, MAX_BACKOFF_S))
        raise self._final_error(failure, attempts)

    def _send(self, body: dict[str, Any]) -> httpx.Response:
        """One attempt, read in full before ``timeout_s`` has passed since it started.

        httpx's own timeout bounds each network read, not the whole reply: a server that
        sends a few bytes just inside every read timeout would hold the call for as long as
        it likes. Reading the raw stream here and checking the clock between pieces keeps
        the attempt to about ``timeout_s`` (one more read timeout at most)."""
        deadline = time.monotonic() + self.settings.timeout_s
        with self._client.stream("POST", self.url, json=body) as streamed:
            pieces = []
            for piece in streamed.iter_raw():
                pieces.append(piece)
                if time.monotonic() > deadline:
                    raise httpx.ReadTimeout("the reply outlasted the timeout", request=streamed.request)
            # A fresh response over the raw bytes decodes them once (gzip included).
            return httpx.Response(
                streamed.status_code, headers=streamed.headers, content=b"".join(pieces), request=streamed.request
            )

    def _status_error(self, response: httpx.Response, attempts: int) -> LLMResponseError:
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        return LLMResponseError(
            f"{self.name} answered HTTP {response.status_code}{tries}: {_snippet(response.text) or '(empty body)'}"
        )

    def _final_error(self, failure: Exception | httpx.Response | None, attempts: int) -> Exception:
        if isinstance(failure, httpx.Response):
            return self._status_error(failure, attempts)
        if isinstance(failure, httpx.ConnectError):
            return ServerUnavailableError(
                f"no server at {self.base_url}; start it or fix the base URL",
                hint=f"{_attempts(attempts)} refused",
            )
        if isinstance(failure, httpx.TimeoutException):
            return LLMTimeoutError(
                f"{self.name} did not answer within {self.settings.timeout_s:g} s ({_attempts(attempts)})",
                hint="raise llm.timeout_s or use a faster model",
            )
        return LLMResponseError(f"{self.name} broke the connection ({_attempts(attempts)}): {failure}")

    def _parse(self, response: httpx.Response, latency: float) -> Completion:
        try:
            data = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise LLMResponseError(
                f"{self.name} answered with a body that is not JSON: {_snippet(response.text) or '(empty body)'}"
            ) from None
        if not isinstance(data, dict):
            raise LLMResponseError(f"{self.name} answered with JSON that is not an object: {_snippet(response.text)}")
        # Usage first: a reply that reports it was generated and billed, even when the rest of
        # it is unusable, and the error carries that cost (nothing paid goes unreported).
        try:
            prompt_tokens, completion_tokens = usage_counts(data.get("usage"), self.name)
            paid: Completion | None = self._completion("", prompt_tokens, completion_tokens, latency, None)
        except LLMResponseError:
            paid = None
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise LLMResponseError(f"{self.name} answered without choices: {_snippet(response.text)}", paid=paid)
        message = choices[0].get("message")
        text = message.get("content") if isinstance(message, dict) else None
        if not isinstance(text, str):
            raise LLMResponseError(
                f"{self.name} answered without message content: {_snippet(response.text)}", paid=paid
            )
        prompt_tokens, completion_tokens = usage_counts(data.get("usage"), self.name)
        finish = choices[0].get("finish_reason")
        finish_reason = finish if isinstance(finish, str) else None
        return self._completion(text, prompt_tokens, completion_tokens, latency, finish_reason)
