"""Test doubles. ``ScriptedFakeLLM`` is a scripted fake LLM for unit tests of pipeline
logic: it answers from a script, records every request, and reports token counts that are
fixed or (by default) the words of prompt and reply."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from budgetmem.llm.base import LLM, Completion, Message, Price, as_messages

TEST_PRICE = Price(1.0, 2.0, "test price (scripted fake)")


@dataclass(frozen=True)
class Received:
    prompt: str
    max_tokens: int
    stop: tuple[str, ...] | None
    grammar: str | None
    temperature: float
    roles: tuple[str, ...]


class ScriptedFakeLLM(LLM):
    """Replies with ``script(prompt)`` (a function) or the next item of a list; a scripted
    exception is raised instead of answering."""

    def __init__(
        self,
        name: str,
        script: Callable[[str], str] | Sequence[str | Exception],
        *,
        supports_grammar: bool = False,
        price: Price = TEST_PRICE,
        tokens: tuple[int, int] | None = None,
        latency_s: float = 0.001,
    ) -> None:
        self.name = name
        self.price = price
        self.supports_grammar = supports_grammar
        self._script = script if callable(script) else None
        self._queue = [] if callable(script) else list(script)
        self._tokens = tokens
        self._latency_s = latency_s
        self.received: list[Received] = []
        self._lock = threading.Lock()

    @property
    def prompts(self) -> list[str]:
        return [r.prompt for r in self.received]

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
        msgs = as_messages(messages)
        prompt = "\n".join(m.content for m in msgs)
        with self._lock:
            self.received.append(
                Received(prompt, max_tokens, tuple(stop) if stop else None, grammar, temperature, tuple(m.role for m in msgs))
            )
            if self._script is not None:
                item: str | Exception = self._script(prompt)
            elif self._queue:
                item = self._queue.pop(0)
            else:
                raise AssertionError(f"{self.name} ran out of scripted replies")
        if isinstance(item, Exception):
            raise item
        p, c = self._tokens or (len(prompt.split()), len(item.split()))
        return self._completion(item, p, c, self._latency_s, "stop")


@dataclass(frozen=True)
class FakeLLMFactory:
    """Builds a ScriptedFakeLLM per provider from module-level script functions: picklable,
    so the Ray executor can send it to its workers, each of which builds its own fakes."""

    scripts: tuple[tuple[str, Callable[[str], str]], ...]
    """(provider, script) pairs; other providers are left to the registry."""
    tokens: tuple[int, int] | None = None

    def __call__(self, provider: str) -> LLM | None:
        script = dict(self.scripts).get(provider)
        return ScriptedFakeLLM(provider, script, tokens=self.tokens) if script is not None else None
