"""The stored unit of memory: a leaf type that the store, ingest, retrieval, the pipeline and
the context packer all share (it imports nothing from budgetmem, so none of them has to
import another layer to name it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Chunk"]


@dataclass(frozen=True)
class Chunk:
    text: str
    n_tokens: int
    source: str
    history: str
    session_id: str
    session_date: str | None
    position: int
    """Index of this chunk within its session."""
    dia_ids: tuple[str, ...]
    speakers: tuple[str, ...]
    kind: str = "chat"
    meta: dict[str, Any] = field(default_factory=dict)
    """turns: [[turn index, char start, char end], ...] of the rendered turns this chunk covers."""
    id: int | None = None
    """Row id once stored."""
    compressed: str | None = None
    """An LLM-compressed version (~100 tokens) kept beside the raw text, if one was made."""
    compressed_tokens: int | None = None
