"""One SQLite file (WAL mode) holding chunks, their metadata and embeddings, by namespace.

A namespace is one memory (a user, an agent, a LoCoMo conversation). It is bound to the
encoder that embedded it, so vectors from different encoders never mix. Every write is
one transaction: an ingest that fails half-way leaves the file as it was.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from budgetmem.errors import StoreError
from budgetmem.ingest.chunker import Chunk

__all__ = ["Store", "NamespaceInfo", "SessionBatch", "SCHEMA_VERSION"]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS namespaces (
    name TEXT PRIMARY KEY,
    encoder TEXT NOT NULL,
    dim INTEGER NOT NULL,
    chunk_tokens INTEGER NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    namespace TEXT NOT NULL REFERENCES namespaces(name),
    key TEXT NOT NULL,
    source TEXT NOT NULL,
    history TEXT NOT NULL,
    session_id TEXT NOT NULL,
    n_chunks INTEGER NOT NULL,
    added_at REAL NOT NULL,
    PRIMARY KEY (namespace, key)
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    namespace TEXT NOT NULL REFERENCES namespaces(name),
    source TEXT NOT NULL,
    history TEXT NOT NULL,
    session_id TEXT NOT NULL,
    session_date TEXT,
    position INTEGER NOT NULL,
    kind TEXT NOT NULL,
    text TEXT NOT NULL,
    n_tokens INTEGER NOT NULL,
    dia_ids TEXT NOT NULL,
    speakers TEXT NOT NULL,
    meta TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_by_namespace ON chunks(namespace, id);
CREATE TABLE IF NOT EXISTS embeddings (
    chunk_id INTEGER PRIMARY KEY REFERENCES chunks(id),
    vector BLOB NOT NULL
);
"""

_CHUNK_COLUMNS = "id, source, history, session_id, session_date, position, kind, text, n_tokens, dia_ids, speakers, meta"


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


class Store:
    """A budgetmem store file. Thread-safe; use as a context manager or call ``close()``."""

    def __init__(self, path: str | Path, *, create: bool = True) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise StoreError(f"store path {self.path} is a directory", hint="give a file name, e.g. memory.db")
        if not self.path.exists():
            if not create:
                raise StoreError(f"store not found: {self.path}", hint="ingest something first, or check --store")
            if not self.path.parent.exists():
                raise StoreError(f"folder {self.path.parent} does not exist", hint="create it first")
        self._lock = threading.RLock()
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._init_schema()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path} is not a budgetmem store ({exc})", hint="choose another --store file") from None

    def _init_schema(self) -> None:
        with self._tx():
            for stmt in filter(str.strip, _SCHEMA.split(";")):
                self._db.execute(stmt)
            row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is None:
                self._db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif int(row[0]) != SCHEMA_VERSION:
                raise StoreError(f"{self.path} has schema version {row[0]}, this budgetmem reads {SCHEMA_VERSION}")

    # ------------------------------------------------------------------ plumbing
    @contextmanager
    def _tx(self) -> Iterator[None]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def journal_mode(self) -> str:
        return str(self._db.execute("PRAGMA journal_mode").fetchone()[0])

    # ------------------------------------------------------------------ namespaces
    _NAMESPACE_INFO = """SELECT n.name, n.encoder, n.dim, n.chunk_tokens, n.created_at,
                          (SELECT COUNT(*) FROM chunks c WHERE c.namespace = n.name),
                          (SELECT COALESCE(SUM(n_tokens), 0) FROM chunks c WHERE c.namespace = n.name),
                          (SELECT COUNT(*) FROM sessions s WHERE s.namespace = n.name)
                   FROM namespaces n"""

    def namespaces(self) -> list[NamespaceInfo]:
        with self._lock:
            rows = self._db.execute(self._NAMESPACE_INFO + " ORDER BY n.name").fetchall()
        return [NamespaceInfo(*r) for r in rows]

    def namespace(self, name: str) -> NamespaceInfo | None:
        """One namespace's info; only its own rows are counted (this runs on every search)."""
        with self._lock:
            row = self._db.execute(self._NAMESPACE_INFO + " WHERE n.name = ?", (name,)).fetchone()
        return NamespaceInfo(*row) if row else None

    def require_namespace(self, name: str) -> NamespaceInfo:
        info = self.namespace(name)
        if info is None:
            known = ", ".join(n.name for n in self.namespaces()) or "none"
            raise StoreError(f"namespace {name!r} not found in {self.path}", hint=f"namespaces here: {known}")
        return info

    def check_encoder(self, namespace: str, encoder: str, dim: int) -> bool:
        """True if the namespace exists with this encoder, False if it does not exist;
        a StoreError if it was embedded with another encoder (vectors must never mix)."""
        with self._lock:
            row = self._db.execute("SELECT encoder, dim FROM namespaces WHERE name=?", (namespace,)).fetchone()
        if row is None:
            return False
        if (row[0], row[1]) != (encoder, dim):
            raise StoreError(
                f"namespace {namespace!r} was embedded with {row[0]} ({row[1]}-d), not {encoder} ({dim}-d)",
                hint=f"use --encoder {row[0]} or another namespace",
            )
        return True

    def known_sessions(self, namespace: str) -> set[str]:
        with self._lock:
            return {r[0] for r in self._db.execute("SELECT key FROM sessions WHERE namespace=?", (namespace,))}

    # ------------------------------------------------------------------ writes
    def add(self, batches: Sequence[SessionBatch], *, encoder: str, dim: int, chunk_tokens: int) -> list[int]:
        """Append sessions (to one or more namespaces) in one transaction; returns new chunk ids.

        Sessions whose key is already stored in their namespace are skipped, so re-running
        an interrupted or repeated ingest never duplicates anything.
        """
        ids: list[int] = []
        with self._tx():
            known: dict[str, set[str]] = {}
            for ns in dict.fromkeys(b.namespace for b in batches):
                if not self.check_encoder(ns, encoder, dim):
                    self._db.execute(
                        "INSERT INTO namespaces VALUES (?, ?, ?, ?, ?)", (ns, encoder, dim, chunk_tokens, time.time())
                    )
                known[ns] = {r[0] for r in self._db.execute("SELECT key FROM sessions WHERE namespace=?", (ns,))}
            for b in batches:
                namespace = b.namespace
                if b.key in known[namespace]:
                    continue
                if b.embeddings.shape != (len(b.chunks), dim):
                    raise StoreError(f"session {b.session_id}: {b.embeddings.shape} embeddings for {len(b.chunks)} chunks")
                for chunk, vec in zip(b.chunks, b.embeddings):
                    cur = self._db.execute(
                        f"INSERT INTO chunks ({_CHUNK_COLUMNS.replace('id, ', '', 1)}, namespace) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            chunk.source,
                            chunk.history,
                            chunk.session_id,
                            chunk.session_date,
                            chunk.position,
                            chunk.kind,
                            chunk.text,
                            chunk.n_tokens,
                            json.dumps(list(chunk.dia_ids)),
                            json.dumps(list(chunk.speakers)),
                            json.dumps(chunk.meta),
                            namespace,
                        ),
                    )
                    chunk_id = int(cur.lastrowid or 0)
                    self._db.execute(
                        "INSERT INTO embeddings VALUES (?, ?)", (chunk_id, np.asarray(vec, dtype="<f4").tobytes())
                    )
                    ids.append(chunk_id)
                self._db.execute(
                    "INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (namespace, b.key, b.source, b.history, b.session_id, len(b.chunks), time.time()),
                )
                known[namespace].add(b.key)
        return ids

    # ------------------------------------------------------------------ reads
    def version(self, namespace: str) -> tuple[int, int]:
        """(chunk count, max chunk id): changes whenever the namespace changes."""
        with self._lock:
            row = self._db.execute(
                "SELECT COUNT(*), COALESCE(MAX(id), 0) FROM chunks WHERE namespace=?", (namespace,)
            ).fetchone()
        return int(row[0]), int(row[1])

    def chunks(self, namespace: str, ids: Sequence[int] | None = None) -> list[Chunk]:
        """Chunks of a namespace in id order, or the given ids in the given order."""
        with self._lock:
            if ids is None:
                rows = self._db.execute(
                    f"SELECT {_CHUNK_COLUMNS} FROM chunks WHERE namespace=? ORDER BY id", (namespace,)
                ).fetchall()
            else:
                marks = ",".join("?" * len(ids))
                found = {
                    r[0]: r
                    for r in self._db.execute(
                        f"SELECT {_CHUNK_COLUMNS} FROM chunks WHERE namespace=? AND id IN ({marks})", (namespace, *ids)
                    )
                }
                rows = [found[i] for i in ids if i in found]
        return [_row_to_chunk(r) for r in rows]

    def texts(self, namespace: str) -> tuple[np.ndarray, list[str]]:
        with self._lock:
            rows = self._db.execute("SELECT id, text FROM chunks WHERE namespace=? ORDER BY id", (namespace,)).fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64), [r[1] for r in rows]

    def embeddings(self, namespace: str) -> tuple[np.ndarray, np.ndarray]:
        """(ids, matrix) of a namespace, in id order; the matrix is float32, one unit row per chunk."""
        info = self.require_namespace(namespace)
        with self._lock:
            rows = self._db.execute(
                "SELECT c.id, e.vector FROM chunks c JOIN embeddings e ON e.chunk_id = c.id "
                "WHERE c.namespace=? ORDER BY c.id",
                (namespace,),
            ).fetchall()
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        if not rows:
            return ids, np.zeros((0, info.dim), dtype=np.float32)
        matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), info.dim)
        return ids, matrix.astype(np.float32, copy=True)


def _row_to_chunk(r: Sequence[object]) -> Chunk:
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
    )
