"""The records a store hands out and takes in, shared by every backend."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from budgetmem.chunk import Chunk

__all__ = ["NamespaceInfo", "WriteState", "ArchivedChunk", "Removed", "SessionBatch", "Taken", "row_to_chunk", "NamespaceDump"]


@dataclass(frozen=True)
class NamespaceInfo:
    name: str
    encoder: str
    dim: int
    chunk_tokens: int
    created_at: float
    n_chunks: int
    n_tokens: int
    n_sessions: int
    write_policy: str | None = None
    """The write policy's spec (JSON) if the namespace is budgeted, else None (store all)."""
    write_budget: str | None = None
    seen_chunks: int = 0
    """Chunks ever offered to the namespace (stored, rejected or evicted)."""
    seen_tokens: int = 0
    n_archived: int = 0
    archived_tokens: int = 0
    revision: int = 0


@dataclass(frozen=True)
class WriteState:
    id: int
    score: float | None
    access_count: int
    n_tokens: int


@dataclass(frozen=True)
class ArchivedChunk:
    chunk: Chunk
    reason: str
    """``rejected`` (never admitted) or ``evicted`` (admitted, later pushed out)."""
    archived_at: float
    score: float | None


@dataclass(frozen=True)
class Removed:
    """What a delete or forget took out of a namespace, for good."""

    namespace: str
    chunks: int
    """Live chunks removed, with their embeddings."""
    archived: int
    """Archived (rejected or evicted) chunks removed."""
    sessions: int
    """Session rows dropped (a session's row goes when none of its chunks is left)."""
    namespace_removed: bool
    """True after :meth:`Store.forget_namespace`: its name, encoder binding and write policy too."""
    wiped: bool
    """True when the removed bytes are gone from the file and its WAL as well; False when a
    reader's older snapshot kept the WAL from being emptied (``Store.wipe()`` retries)."""
    texts: tuple[str, ...] = field(default=(), repr=False)
    """The removed chunks' raw texts, held in memory only: derived data kept elsewhere (the
    module cache) is found by content."""


@dataclass(frozen=True)
class SessionBatch:
    """One session's chunks and their embeddings, written together or not at all."""

    namespace: str
    key: str
    """Content hash of the session: re-ingesting the same session is a no-op."""
    source: str
    history: str
    session_id: str
    chunks: Sequence[Chunk]
    embeddings: np.ndarray
    scores: Sequence[float] | None = None
    """The write policy's score per chunk (None: stored without a policy)."""
    admitted: Sequence[bool] | None = None
    """Per chunk: False sends it straight to the archive as ``rejected`` (None: all admitted)."""



@dataclass(frozen=True)
class Taken:
    """What a store's ``_remove`` deleted, before the session rows are settled."""

    live: int
    archived: int
    sessions: Counter[tuple[str, str, str]]
    """(source, history, session id) -> chunks removed from it."""
    texts: tuple[str, ...]


def row_to_chunk(r: Sequence[object]) -> Chunk:
    return Chunk(
        id=int(r[0]),  # type: ignore[arg-type]
        source=str(r[1]),
        history=str(r[2]),
        session_id=str(r[3]),
        session_date=r[4],  # type: ignore[arg-type]
        position=int(r[5]),  # type: ignore[arg-type]
        kind=str(r[6]),
        text=str(r[7]),
        n_tokens=int(r[8]),  # type: ignore[arg-type]
        dia_ids=tuple(json.loads(str(r[9]))),
        speakers=tuple(json.loads(str(r[10]))),
        meta=json.loads(str(r[11])),
        compressed=None if len(r) < 13 or r[12] is None else str(r[12]),
        compressed_tokens=None if len(r) < 14 or r[13] is None else int(r[13]),  # type: ignore[arg-type]
    )


NAMESPACE_FIELDS = ("name", "encoder", "dim", "chunk_tokens", "created_at", "write_policy", "write_budget",
                    "seen_chunks", "seen_tokens", "revision")  # fmt: skip
SESSION_FIELDS = ("key", "source", "history", "session_id", "n_chunks", "added_at")
CHUNK_FIELDS = ("id", "source", "history", "session_id", "session_date", "position", "kind", "text", "n_tokens",
                "dia_ids", "speakers", "meta", "score", "access_count", "last_access", "compressed",
                "compressed_tokens", "compress_meta")  # fmt: skip


@dataclass(frozen=True)
class NamespaceDump:
    """Every stored row of one namespace, backend-neutral: what ``budgetmem migrate`` copies.

    Chunk ids are kept (clients hold them). JSON columns stay the strings they were stored
    as; an archived row is a dict of the chunk's columns."""

    namespace: dict[str, object]
    sessions: list[dict[str, object]]
    chunks: list[dict[str, object]]
    embeddings: np.ndarray
    """float32, one row per entry of ``chunks``."""
    archive: list[dict[str, object]]
    """``id``, ``row`` (the chunk's columns), ``reason``, ``archived_at``."""
    archive_vectors: np.ndarray

    def counts(self) -> dict[str, int]:
        return {"chunks": len(self.chunks), "archived": len(self.archive), "sessions": len(self.sessions)}

    def checksum(self) -> str:
        """SHA-256 over every row in a canonical order and form (floats by repr, vectors as
        little-endian float32): equal on two backends only if every value survived the copy."""
        import hashlib

        h = hashlib.sha256()

        def put(obj: object) -> None:
            h.update(json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8"))
            h.update(b"\n")

        put({k: self.namespace[k] for k in NAMESPACE_FIELDS})
        for s in sorted(self.sessions, key=lambda r: str(r["key"])):
            put({k: s[k] for k in SESSION_FIELDS})
        for c, v in sorted(zip(self.chunks, self.embeddings), key=lambda p: int(p[0]["id"])):  # type: ignore[arg-type]
            put({k: c[k] for k in CHUNK_FIELDS})
            h.update(np.asarray(v, dtype="<f4").tobytes())
        for a, v in sorted(zip(self.archive, self.archive_vectors), key=lambda p: int(p[0]["id"])):  # type: ignore[arg-type]
            row = a["row"]
            put({"id": a["id"], "reason": a["reason"], "archived_at": a["archived_at"],
                 "row": {k: row.get(k) for k in CHUNK_FIELDS} if isinstance(row, dict) else row})  # fmt: skip
            h.update(np.asarray(v, dtype="<f4").tobytes())
        return h.hexdigest()
