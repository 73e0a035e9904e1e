"""The module-result cache in a PostgreSQL store (tables ``module_cache`` and
``module_cache_sources`` of its schema), shared by every server and worker on the database.

Same contract as :class:`budgetmem.pipeline.cache.ModuleCache` (content-addressed entries,
source tags for forgetting); see that module for the why. Evaluation and training workers,
local, threads or Ray, that open the same store address share one cache: a module call
computed by one worker is a hit for every other.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Collection, Iterable
from itertools import chain
from typing import Any

from budgetmem.store.base import Store

__all__ = ["PostgresModuleCache"]


class PostgresModuleCache:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._pg: Any = store
        self._lock = threading.Lock()
        self._forgotten: set[str] = set()
        self.hits = 0
        self.misses = 0

    def get(self, key: str, older: Iterable[str] = ()) -> dict[str, Any] | None:
        """The entry under ``key``, else under the first of ``older`` (keys an earlier
        version wrote the same computation under; drawn only while nothing is found, so a
        generator costs nothing on a hit); one hit or miss either way."""
        with self._pg._read() as conn:
            row = None
            for k in chain((key,), older):
                row = conn.execute("SELECT value FROM module_cache WHERE key=%s", (k,)).fetchone()
                if row is not None:
                    break
        with self._lock:
            if row is None:
                self.misses += 1
                return None
            self.hits += 1
        return json.loads(row[0])

    def put(self, key: str, value: dict[str, Any], sources: Collection[str] = ()) -> None:
        with self._lock:
            if self._forgotten.intersection(sources):
                return
        blob = json.dumps(value, ensure_ascii=False)
        with self._pg._tx() as conn:
            # Two workers computing the same call is harmless: the last write wins, as in SQLite.
            conn.execute(
                "INSERT INTO module_cache VALUES (%s, %s, %s) ON CONFLICT (key) DO UPDATE "
                "SET value = EXCLUDED.value, created = EXCLUDED.created",
                (key, blob, time.time()),
            )
            if sources:
                with conn.cursor() as cur:
                    cur.executemany("INSERT INTO module_cache_sources VALUES (%s, %s) ON CONFLICT DO NOTHING",
                                    [(t, key) for t in sorted(sources)])  # fmt: skip

    def forget(self, tags: Collection[str], *, vacuum: bool = True) -> tuple[int, bool]:
        """Delete every entry computed from any of these sources, and every untagged entry.
        ``wiped`` is False: PostgreSQL does not overwrite the freed rows (see pg_store)."""
        with self._lock:
            self._forgotten.update(tags)
        with self._pg._tx() as conn:
            n = conn.execute(
                "DELETE FROM module_cache WHERE key IN (SELECT key FROM module_cache_sources WHERE tag = ANY(%s))",
                (sorted(set(tags)),),
            ).rowcount
            n += conn.execute(
                "DELETE FROM module_cache m WHERE NOT EXISTS (SELECT 1 FROM module_cache_sources s WHERE s.key = m.key)"
            ).rowcount
            conn.execute(
                "DELETE FROM module_cache_sources s WHERE NOT EXISTS (SELECT 1 FROM module_cache m WHERE m.key = s.key)"
            )
        return int(n), False

    def export_rows(self) -> tuple[list[tuple[str, str, float | None]], list[tuple[str, str]]]:
        with self._pg._read() as conn:
            return (conn.execute("SELECT key, value, created FROM module_cache ORDER BY key").fetchall(),
                    conn.execute("SELECT tag, key FROM module_cache_sources ORDER BY tag, key").fetchall())  # fmt: skip

    def import_rows(self, entries: list[tuple[str, str, float | None]], sources: list[tuple[str, str]]) -> None:
        """Add entries exported from another cache, in one transaction (present keys kept)."""
        with self._pg._tx() as conn, conn.cursor() as cur:
            cur.executemany("INSERT INTO module_cache VALUES (%s, %s, %s) ON CONFLICT (key) DO NOTHING", entries)
            cur.executemany("INSERT INTO module_cache_sources VALUES (%s, %s) ON CONFLICT DO NOTHING", sources)

    def __len__(self) -> int:
        with self._pg._read() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM module_cache").fetchone()[0])

    def stats(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses, "entries": len(self)}

    def close(self) -> None:
        """The store owns the connections."""
