"""A content-addressed, on-disk cache of module results (SQLite, WAL).

Key: sha256 of what a step computes (module, method, reasoning behaviour, model, prompt
version, settings, exact input), not of the tier label that chose it, so strategies that
share a computation share its entry. Repeated evaluation and router training never pay
twice for the same call. A cached entry keeps
the cost the computation had, so a ledger can show both what it is worth and what was
paid now (nothing).

Forgetting: a key cannot be reversed, so each entry is written with the *source tags* of
the chunks it was computed from (:func:`source_tag`: sha256 of the chunk's text).
:meth:`ModuleCache.forget` drops every entry tagged with a forgotten chunk's text, in any
store or namespace that shares this cache file, and then wipes the file. Tagging by content
rather than by chunk id needs no store identity, and over-matching (the same text stored
twice) only costs a recomputation. Files from before tagging upgrade in place; their
untagged entries cannot be traced to a chunk, so the first forget drops them all.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Collection, Iterable
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any

from budgetmem.store.wipe import secure_connection, wipe

if TYPE_CHECKING:
    from budgetmem.chunk import Chunk
    from budgetmem.store import Store

__all__ = ["ModuleCache", "open_module_cache", "cache_key", "source_tag", "source_tags"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL);
CREATE TABLE IF NOT EXISTS sources (tag TEXT NOT NULL, key TEXT NOT NULL, PRIMARY KEY (tag, key)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sources_by_key ON sources(key);
"""


def cache_key(parts: list[Any]) -> str:
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def source_tag(text: str) -> str:
    """The tag an entry computed from a chunk with this text carries."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def source_tags(chunks: Iterable[Chunk]) -> set[str]:
    return {source_tag(c.text) for c in chunks}


class ModuleCache:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        secure_connection(self._db)
        for stmt in filter(str.strip, _SCHEMA.split(";")):
            self._db.execute(stmt)
        self._lock = threading.Lock()
        self._forgotten: set[str] = set()
        """Tags forgotten through this object: a query that was already running when its
        chunk was forgotten must not write its results back afterwards."""
        self.hits = 0
        self.misses = 0

    def get(self, key: str, older: Iterable[str] = ()) -> dict[str, Any] | None:
        """The entry under ``key``, else under the first of ``older`` (keys an earlier
        version wrote the same computation under; drawn only while nothing is found, so a
        generator costs nothing on a hit); one hit or miss either way."""
        with self._lock:
            row = None
            for k in chain((key,), older):
                row = self._db.execute("SELECT value FROM results WHERE key=?", (k,)).fetchone()
                if row is not None:
                    break
            if row is None:
                self.misses += 1
                return None
            self.hits += 1
        return json.loads(row[0])

    def put(self, key: str, value: dict[str, Any], sources: Collection[str] = ()) -> None:
        """Store a result with the source tags of the chunks it was computed from. An entry
        with no sources is dropped by every forget (nothing shows it is unrelated)."""
        blob = json.dumps(value, ensure_ascii=False)
        with self._lock:
            if self._forgotten.intersection(sources):
                return
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("INSERT OR REPLACE INTO results VALUES (?, ?, ?)", (key, blob, time.time()))
                self._db.executemany("INSERT OR IGNORE INTO sources VALUES (?, ?)", [(t, key) for t in sources])
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def forget(self, tags: Collection[str], *, vacuum: bool = True) -> tuple[int, bool]:
        """Delete every entry computed from any of these sources, and every untagged entry,
        then wipe the file (see :mod:`budgetmem.store.wipe`).

        Returns (entries deleted, wiped): ``wiped`` is False when another connection's
        older snapshot kept the WAL from being emptied."""
        with self._lock:
            self._forgotten.update(tags)
            self._db.execute("BEGIN IMMEDIATE")
            try:
                n = sum(
                    self._db.execute(
                        "DELETE FROM results WHERE key IN (SELECT key FROM sources WHERE tag=?)", (t,)
                    ).rowcount
                    for t in set(tags)
                )
                n += self._db.execute("DELETE FROM results WHERE key NOT IN (SELECT key FROM sources)").rowcount
                self._db.execute("DELETE FROM sources WHERE key NOT IN (SELECT key FROM results)")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return int(n), wipe(self._db, vacuum=vacuum)

    def export_rows(self) -> tuple[list[tuple[str, str, float | None]], list[tuple[str, str]]]:
        """(entries as (key, value, created), source tags as (tag, key)): what ``migrate`` copies."""
        with self._lock:
            return (self._db.execute("SELECT key, value, created FROM results ORDER BY key").fetchall(),
                    self._db.execute("SELECT tag, key FROM sources ORDER BY tag, key").fetchall())  # fmt: skip

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM results").fetchone()[0])

    def stats(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses, "entries": len(self)}

    def close(self) -> None:
        with self._lock:
            self._db.close()


def open_module_cache(path: str | Path | None, store: Store | None = None) -> Any:
    """The module cache a memory uses: in the database when the store is PostgreSQL (every
    server and worker on it shares one cache), else the file at ``path``; None if ``path``
    is None (caching switched off)."""
    if path is None:
        return None
    if store is not None and store.backend == "postgresql":
        from budgetmem.store.pg_cache import PostgresModuleCache

        return PostgresModuleCache(store)
    return ModuleCache(path)
