"""The LLM interface every backend implements, and the records a call returns.

Costs are part of the answer, never an afterthought: a :class:`Completion` carries the
exact token counts the backend reported and the dollars they cost at a stated price.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from budgetmem.errors import ConfigError, LLMResponseError

__all__ = ["Message", "Price", "Completion", "LLM", "usd_cost", "as_messages", "usage_counts"]


@dataclass(frozen=True)
class Message:
    """One chat message."""

    role: str
    """'system', 'user' or 'assistant'."""
    content: str


@dataclass(frozen=True)
class Price:
    """USD per one million tokens, with where that number comes from."""

    input_per_m: float
    output_per_m: float
    source: str
    """Human-readable origin, e.g. 'Together AI list price used by the routing paper'."""


def usd_cost(price: Price, prompt_tokens: int, completion_tokens: int) -> float:
    """Dollars for one call: tokens times the per-million price, input and output apart."""
    return prompt_tokens * price.input_per_m / 1e6 + completion_tokens * price.output_per_m / 1e6


@dataclass(frozen=True)
class Completion:
    """What one call produced and what it cost."""

    text: str
    prompt_tokens: int
    """Exactly as the backend reported it."""
    completion_tokens: int
    """Exactly as the backend reported it."""
    latency_s: float
    model: str
    """The provider string, e.g. 'llamacpp:smollm2-135m'."""
    usd: float
    price: Price
    finish_reason: str | None = None
    mean_logprob: float | None = None
    """Mean log-probability of the generated tokens under the model, when the call asked for
    it (``logprobs=True``) and the backend can tell; a confidence signal for escalation."""
    retries: tuple[str, ...] = ()
    """The failed attempts this reply came after, oldest first ('HTTP 429', 'timeout',
    'connection broken', ...): transient failures the backend retried, shown in the trace."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the price nested with its source)."""
        return {
            "text": self.text,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "latency_s": self.latency_s,
            "model": self.model,
            "usd": self.usd,
            "price": {
                "input_per_m": self.price.input_per_m,
                "output_per_m": self.price.output_per_m,
                "source": self.price.source,
            },
            "finish_reason": self.finish_reason,
            "mean_logprob": self.mean_logprob,
            "retries": list(self.retries),
        }


def as_messages(messages: str | Sequence[Message]) -> list[Message]:
    """A plain string is one user message; an empty conversation is a caller bug."""
    if isinstance(messages, str):
        return [Message("user", messages)]
    out = list(messages)
    if not out:
        raise ConfigError("no messages to send", hint="pass a prompt string or at least one Message")
    for m in out:
        if not isinstance(m, Message):
            raise ConfigError(f"expected Message, got {type(m).__name__}")
    return out


def usage_counts(usage: object, who: str) -> tuple[int, int]:
    """(prompt_tokens, completion_tokens) from an OpenAI-style usage dict.

    A backend that does not report usage is an error: we never estimate, so costs are
    never silently wrong.
    """
    if not isinstance(usage, Mapping):
        raise LLMResponseError(f"{who} returned no token usage", hint="costs are never estimated")
    counts = []
    for key in ("prompt_tokens", "completion_tokens"):
        value = usage.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise LLMResponseError(f"{who} returned no valid usage.{key} (got {value!r})")
        counts.append(value)
    return counts[0], counts[1]


class LLM(ABC):
    """A chat model with a price. Subclasses set ``name``, ``price`` and ``supports_grammar``."""

    name: str
    """Provider string, e.g. 'llamacpp:smollm2-135m' or 'openai:gpt-oss-120b@http://host/v1'."""
    price: Price
    supports_grammar: bool = False
    supports_logprobs: bool = False
    """Whether ``complete(..., logprobs=True)`` fills :attr:`Completion.mean_logprob`. Callers
    pass ``logprobs`` only to backends that say so, so older backends need not accept it."""

    @abstractmethod
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
        """Run one chat completion; a plain string is one user message."""

    def count_tokens(self, text: str) -> int | None:
        """Tokens of ``text`` in this model's own tokenizer, or None when the backend has no
        local tokenizer (hosted APIs): callers then say which count they used instead."""
        return None

    def _check_request(self, max_tokens: int, grammar: str | None, json_mode: bool) -> None:
        """Reject requests the backend cannot honour before spending anything."""
        if max_tokens < 1:
            raise ConfigError(f"max_tokens must be >= 1, got {max_tokens}")
        if grammar is not None and not self.supports_grammar:
            raise ConfigError(
                f"{self.name} does not support grammars",
                hint="use a llamacpp: provider or an openai: provider built with grammar_field=True",
            )
        if grammar is not None and json_mode:
            raise ConfigError("grammar and json_mode are exclusive", hint="pass one of them")

    def _completion(
        self,
        text: str,
        prompt_tokens: int,
        completion_tokens: int,
        latency_s: float,
        finish_reason: str | None,
        mean_logprob: float | None = None,
    ) -> Completion:
        return Completion(
            text=text,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            latency_s=latency_s,
            model=self.name,
            usd=usd_cost(self.price, prompt_tokens, completion_tokens),
            price=self.price,
            finish_reason=finish_reason,
            mean_logprob=mean_logprob,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"
