"""Episodic and semantic memory, packed into one answer context under a token budget.

Selective-write paper §III-F and §III-H3:

- *episodic memory* (§III-F1, Eq. 9) is the window of the namespace's most recent chunks, in
  time order; it is always in the context (§III-G3, Eq. 19), so an agent never loses what
  was just said;
- *semantic memory* (§III-F2, Eq. 10) is every older chunk; the retrieved ones are packed
  after the episodic window, best first, until the budget B_context is reached (§III-H3);
- a semantic chunk whose raw text no longer fits is replaced by its LLM-compressed version
  (§III-F3, Eq. 11) when one exists and fits; otherwise it is skipped and the next one tried,
  so one long chunk does not shut out shorter relevant ones behind it.

Tokens are counted with a counter the caller names (the answer model's tokenizer where it
has one, else the encoder's), and, when a ``header`` function is given, a memory's header
line is counted with its text: the budget then bounds what the model actually reads.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from budgetmem.chunk import Chunk
from budgetmem.pipeline.types import ScoredChunk
from budgetmem.settings import ContextSettings
from budgetmem.store import Store

__all__ = ["MemoryKind", "PackedItem", "DroppedChunk", "PackedContext", "episodic_window", "pack_context", "pack_namespace"]

MemoryKind = Literal["episodic", "semantic"]
TokenCount = Callable[[str], int]
Header = Callable[[Chunk, bool], str]
"""(chunk, compressed?) -> the line shown above the memory's text."""


@dataclass(frozen=True)
class PackedItem:
    """One memory in the context."""

    chunk: Chunk
    memory: MemoryKind
    compressed: bool
    """True when the chunk's compressed version stands in for its raw text."""
    tokens: int
    """Tokens it takes in the context (header included when the packer was given one)."""
    score: float | None = None
    """The retrieval score of a semantic memory; None for an episodic one."""

    @property
    def chunk_id(self) -> int:
        return int(self.chunk.id or 0)

    @property
    def text(self) -> str:
        """What the model reads: the compressed version or the raw text."""
        return (self.chunk.compressed or "") if self.compressed else self.chunk.text


@dataclass(frozen=True)
class DroppedChunk:
    """A chunk that was a candidate for the context but is not in it."""

    chunk_id: int
    memory: MemoryKind
    tokens: int
    """Tokens its raw text would have taken."""
    reason: str
    """``over budget`` (raw text does not fit, and no compressed version does)."""


@dataclass(frozen=True)
class PackedContext:
    items: tuple[PackedItem, ...]
    """Episodic memories oldest first, then semantic memories best first."""
    budget: int
    used_tokens: int
    window: tuple[int, ...]
    """Ids of the whole episodic window (kept or not), oldest first."""
    dropped: tuple[DroppedChunk, ...]
    duplicates: tuple[int, ...]
    """Retrieved ids already in the episodic window: shown once, as episodic memory."""
    episodic_truncated: bool
    """True when the episodic window alone exceeded the budget and only its newest
    chunks that fit were kept (§III-H3 step 3: truncate)."""
    counted_with: str = ""

    @property
    def ids(self) -> tuple[int, ...]:
        return tuple(i.chunk_id for i in self.items)

    @property
    def episodic(self) -> tuple[PackedItem, ...]:
        return tuple(i for i in self.items if i.memory == "episodic")

    @property
    def semantic(self) -> tuple[PackedItem, ...]:
        return tuple(i for i in self.items if i.memory == "semantic")

    @property
    def n_compressed(self) -> int:
        return sum(1 for i in self.items if i.compressed)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, for traces: ids and token counts, not the texts."""
        return {
            "budget": self.budget,
            "used_tokens": self.used_tokens,
            "counted_with": self.counted_with,
            "items": [
                {"chunk_id": i.chunk_id, "memory": i.memory, "compressed": i.compressed, "tokens": i.tokens}
                for i in self.items
            ],
            "n_episodic": len(self.episodic),
            "n_semantic": len(self.semantic),
            "n_compressed": self.n_compressed,
            "window": list(self.window),
            "episodic_truncated": self.episodic_truncated,
            "dropped": [
                {"chunk_id": d.chunk_id, "memory": d.memory, "tokens": d.tokens, "reason": d.reason} for d in self.dropped
            ],
            "duplicates": list(self.duplicates),
        }


def episodic_window(store: Store, namespace: str, size: int) -> list[Chunk]:
    """The ``size`` most recent live chunks (highest ids = latest arrivals), oldest first.

    Ids come from the light write-state read, so only the window's texts are loaded."""
    if size <= 0:
        return []
    ids = [s.id for s in store.write_state(namespace)][-size:]
    return store.chunks(namespace, ids=ids) if ids else []


def pack_context(
    episodic: Sequence[Chunk],
    ranked: Sequence[ScoredChunk],
    budget: int,
    count: TokenCount,
    *,
    header: Header | None = None,
    counted_with: str = "",
) -> PackedContext:
    """Pack the episodic window (oldest first; always, as far as the budget allows), then the
    ranked semantic chunks (best first) until ``budget`` tokens are used."""

    def cost(chunk: Chunk, compressed: bool) -> int:
        text = (chunk.compressed or "") if compressed else chunk.text
        shown = f"{header(chunk, compressed)}\n{text}" if header is not None else text
        return int(count(shown))

    window = tuple(int(c.id or 0) for c in episodic)
    dropped: list[DroppedChunk] = []

    # Episodic: keep the newest chunks that fit, walking back in time, and stop at the first
    # that does not, so what is kept is an unbroken recent stretch of the conversation.
    kept_epi: list[PackedItem] = []
    used = 0
    truncated = False
    for chunk in reversed(episodic):
        tokens = cost(chunk, False)
        if truncated or used + tokens > budget:
            truncated = True
            dropped.append(DroppedChunk(int(chunk.id or 0), "episodic", tokens, "over budget"))
            continue
        kept_epi.append(PackedItem(chunk, "episodic", False, tokens))
        used += tokens
    kept_epi.reverse()
    dropped.reverse()

    # Semantic: best first; raw text if it fits, else the compressed version if that fits.
    seen = set(window)
    duplicates: list[int] = []
    kept_sem: list[PackedItem] = []
    for sc in ranked:
        chunk = sc.chunk
        cid = int(chunk.id or 0)
        if cid in seen:
            if cid in window and cid not in duplicates:
                duplicates.append(cid)
            continue
        seen.add(cid)
        raw = cost(chunk, False)
        if used + raw <= budget:
            kept_sem.append(PackedItem(chunk, "semantic", False, raw, sc.score))
            used += raw
            continue
        if chunk.compressed:
            small = cost(chunk, True)
            if used + small <= budget:
                kept_sem.append(PackedItem(chunk, "semantic", True, small, sc.score))
                used += small
                continue
        dropped.append(DroppedChunk(cid, "semantic", raw, "over budget"))

    return PackedContext(
        items=(*kept_epi, *kept_sem), budget=budget, used_tokens=used, window=window, dropped=tuple(dropped),
        duplicates=tuple(duplicates), episodic_truncated=truncated, counted_with=counted_with,
    )  # fmt: skip


def pack_namespace(
    store: Store,
    namespace: str,
    ranked: Sequence[ScoredChunk],
    settings: ContextSettings,
    count: TokenCount,
    *,
    header: Header | None = None,
    counted_with: str = "",
) -> PackedContext:
    """:func:`pack_context` over the namespace's current episodic window."""
    episodic = episodic_window(store, namespace, settings.episodic_window)
    return pack_context(episodic, ranked, settings.context_tokens, count, header=header, counted_with=counted_with)
