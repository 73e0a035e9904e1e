"""Errors that budgetmem raises on purpose.

Every error a user can cause or fix is a :class:`BudgetMemError`. Its message is one
line that names the problem and the fix; the CLI prints it and exits with status 2.

    BudgetMemError
    ├── InputError            missing / unreadable file, malformed JSON, unknown format,
    │                         empty history
    ├── ConfigError           bad settings, unknown provider or model
    │   ├── UnknownPriceError a model with no price and no explicit user price
    │   └── NoCostKnobError   a target cost asked of a policy with nothing to adapt (a service
    │                         answers 409: the request conflicts with the policy in force)
    ├── ModelError            a model that is not prepared or cannot be assembled
    │   ├── ChecksumError     an assembled file whose sha256 is not the pinned one
    │   └── NativeCrashError  llama.cpp crashes on this machine (seen in a child process)
    ├── StoreError            a store file that cannot be used as asked
    │   └── NotFoundError     no such namespace, chunk or session (a service answers 404)
    ├── LLMError              an LLM call that did not produce a usable answer
    │   ├── ServerUnavailableError  nothing listens at the endpoint
    │   ├── LLMTimeoutError         the endpoint did not answer in time (after retries)
    │   └── LLMResponseError        the endpoint answered with an error or garbage
    ├── AuthError             no valid API key: missing, malformed, unknown or revoked (401)
    │   └── ForbiddenError    a valid key that may not do this: another namespace or a
    │                         scope it lacks (403)
    └── ServiceError          the memory service could not serve the request (5xx)
        ├── BusyError         its work queue is full; retry after ``retry_after`` s (429)
        └── DeadlineError     the request ran past the service's time limit (504)

``InputError`` has one service-only child, ``TooLargeError``: a request body over the
service's limit (413). The service sends each error as ``{"error": {"type", "message",
"hint"}}`` and :class:`budgetmem.client.Client` raises the same class again.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol


class Paid(Protocol):
    """What an error needs of a paid call: a backend's Completion or a ledger CallRecord.
    A protocol, so this bottom layer imports nothing above it."""

    @property
    def prompt_tokens(self) -> int: ...
    @property
    def completion_tokens(self) -> int: ...
    @property
    def usd(self) -> float: ...

__all__ = [
    "BudgetMemError",
    "InputError",
    "ConfigError",
    "NoCostKnobError",
    "UnknownPriceError",
    "ModelError",
    "ChecksumError",
    "NativeCrashError",
    "StoreError",
    "NotFoundError",
    "LLMError",
    "ServerUnavailableError",
    "LLMTimeoutError",
    "LLMResponseError",
    "TooLargeError",
    "AuthError",
    "ForbiddenError",
    "ServiceError",
    "BusyError",
    "DeadlineError",
]


class BudgetMemError(Exception):
    """Base class: a one-line, user-facing message; the CLI exits with status 2."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = " ".join(message.split())
        self.hint = " ".join(hint.split()) if hint else None
        super().__init__(self.one_line())

    def one_line(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class InputError(BudgetMemError):
    """The input the user gave cannot be read or has the wrong shape."""


class ConfigError(BudgetMemError):
    """A setting, provider string or model name is not valid."""


class UnknownPriceError(ConfigError):
    """A model has no entry in the price table and the user set none."""


class NoCostKnobError(ConfigError):
    """Target-cost mode was asked of a policy with no cost knob to adapt (a fixed map, random,
    the rule router, a single router): it needs a router family or an escalation policy."""


class ModelError(BudgetMemError):
    """An embedded model is missing or cannot be prepared."""


class ChecksumError(ModelError):
    """An assembled model file does not match its pinned sha256."""


class NativeCrashError(ModelError):
    """llama.cpp died from a signal in a child-process check; the message names the likely cause."""


class StoreError(BudgetMemError):
    """The store cannot do what was asked (e.g. encoder mismatch in a namespace)."""


class NotFoundError(StoreError):
    """The namespace, chunk or session asked for is not stored (in that namespace)."""


class LLMError(BudgetMemError):
    """An LLM call failed.

    A failure can still cost money, and the error says how much, so no paid token goes
    unreported. ``paid``: the failing reply itself when it came with token usage but could
    not be used (a body of the wrong shape still bills its tokens); set by the backend.
    ``spent``: the ledger lines of every call the failed operation (one query) paid for,
    the failing reply included; filled in by the pipeline as the error passes through it,
    so it is empty for a lone ``complete``. The message ends with their total.
    """

    def __init__(
        self, message: str, *, hint: str | None = None, paid: Paid | None = None,
        spent: Iterable[Paid] = (),
    ) -> None:  # fmt: skip
        self.paid = paid
        self.spent: list[Paid] = list(spent)
        super().__init__(message, hint=hint)

    @property
    def message(self) -> str:
        return self._message + self._paid_clause()

    @message.setter
    def message(self, value: str) -> None:
        self._message = value

    def charge(self, calls: Iterable[Paid]) -> None:
        """Add calls paid before the failing one (earlier steps of the same operation)."""
        self.spent[:0] = list(calls)

    def _paid_clause(self) -> str:
        calls: list[Paid] = self.spent or ([self.paid] if self.paid is not None else [])
        if not calls:
            return ""
        p, c = sum(x.prompt_tokens for x in calls), sum(x.completion_tokens for x in calls)
        usd = sum(x.usd for x in calls)
        return f"; paid: {len(calls)} call{'' if len(calls) == 1 else 's'}, {p} prompt + {c} completion tokens, ${usd:.6f}"

    def __str__(self) -> str:
        return self.one_line()  # the clause grows as the pipeline charges earlier calls


class ServerUnavailableError(LLMError):
    """No server answers at the configured endpoint."""


class LLMTimeoutError(LLMError):
    """The endpoint did not answer within the timeout, after all retries."""


class LLMResponseError(LLMError):
    """The endpoint answered, but with an error status or an unusable body."""


class TooLargeError(InputError):
    """A request body larger than the memory service accepts."""


class AuthError(BudgetMemError):
    """No valid API key came with a request to the memory service."""


class ForbiddenError(AuthError):
    """The API key is valid but not for this namespace, or lacks the scope asked for."""


class ServiceError(BudgetMemError):
    """The memory service failed to serve a request (an internal error, or a status the
    client does not know)."""


class BusyError(ServiceError):
    """The service's work queue is full: nothing was done, the same request may be retried."""

    def __init__(self, message: str, *, hint: str | None = None, retry_after: float = 1.0) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after


class DeadlineError(ServiceError):
    """The request took longer than the service allows. Work already under way may still
    finish (an add then is stored: adds are idempotent, so retrying is safe)."""
