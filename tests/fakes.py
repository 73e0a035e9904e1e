"""Test doubles. ``ScriptedFakeLLM`` is a scripted fake LLM for unit tests of pipeline
logic: it answers from a script, counts tokens as words, and records every prompt."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from budgetmem.llm.base import LLM, Completion, Message, Price, as_messages

TEST_PRICE = Price(1.0, 2.0, "test price (scripted fake)")


class ScriptedFakeLLM(LLM):
    """Replies with ``script(prompt)`` (a function) or the next item of a list."""

    def __init__(self, name: str, script: Callable[[str], str] | Sequence[str], *, supports_grammar: bool = False) -> None:
        self.name = name
        self.price = TEST_PRICE
        self.supports_grammar = supports_grammar
        self._script = script
        self._queue = list(script) if not callable(script) else []
        self.prompts: list[str] = []
        self.grammars: list[str | None] = []
        self._lock = threading.Lock()

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
        prompt = "\n".join(m.content for m in as_messages(messages))
        with self._lock:
            self.prompts.append(prompt)
            self.grammars.append(grammar)
            text = self._script(prompt) if callable(self._script) else self._queue.pop(0)
        return self._completion(text, len(prompt.split()), len(text.split()), 0.001, "stop")
