"""The shape every input format is read into: histories of sessions of turns.

A *history* is one memory's worth of raw material (a LoCoMo conversation, a LongMemEval
question's haystack, a document collection). It is split into *sessions* (a chat session,
or one document); chunks never cross a session boundary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from budgetmem.errors import InputError

__all__ = ["Turn", "Session", "History", "optional_text"]


def optional_text(value: Any, what: str) -> str | None:
    """A speaker, date or id read from an input file: a string, a number (written as one) or
    absent. Anything else is an :class:`InputError` here, not a crash later in the chunker or
    the store (a list speaker cannot be hashed, a dict date cannot be bound to SQL)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise InputError(f"{what} must be a string, got {type(value).__name__}")


@dataclass(frozen=True)
class Turn:
    """One utterance of a chat, or one paragraph of a document, kept verbatim."""

    text: str
    speaker: str | None = None
    dia_id: str | None = None
    """Dialogue id from the source (LoCoMo ``D1:3``), used to check evidence recall."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Source fields worth keeping (e.g. LongMemEval ``has_answer``, LoCoMo image caption)."""

    def render(self) -> str:
        """The line stored in a chunk. Chat turns are prefixed by their speaker."""
        return f"{self.speaker}: {self.text}" if self.speaker else self.text


@dataclass(frozen=True)
class Session:
    session_id: str
    date_time: str | None
    turns: tuple[Turn, ...]
    kind: Literal["chat", "document"] = "chat"


@dataclass(frozen=True)
class History:
    name: str
    """Identifier within its source file (LoCoMo sample_id, LongMemEval question_id, file stem)."""
    source: str
    """Where it was read from (a path)."""
    format: str
    sessions: tuple[Session, ...]

    @property
    def n_turns(self) -> int:
        return sum(len(s.turns) for s in self.sessions)
