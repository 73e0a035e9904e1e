"""Small per-namespace control state kept in the store file (e.g. the target-cost controller's
lambda and spend), so a server that restarts keeps its budget where it was.

A row is (namespace, name) -> a JSON object. It lives beside the namespace's memories but is
not one: it holds no text from the history, only numbers the service derived from its own
spending. Like :class:`~budgetmem.store.keys.KeyStore`, it shares the store's connection and
lock rather than opening the file a second time.
"""

from __future__ import annotations

import json
import time
from typing import Any

from budgetmem.errors import StoreError
from budgetmem.store.sqlite_store import Store

__all__ = ["ControlStore"]

_TABLE = """
CREATE TABLE IF NOT EXISTS controls (
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (namespace, name)
)
"""


class ControlStore:
    """The ``controls`` table of a store file. Thread-safe (the store's lock guards it)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._db = store._db
        self._lock = store._lock
        with store._tx():
            self._db.execute(_TABLE)

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM controls WHERE namespace=? AND name=?", (namespace, name)).fetchone()
        if row is None:
            return None
        try:
            value = json.loads(row[0])
        except json.JSONDecodeError:
            raise StoreError(f"control state {name!r} of namespace {namespace!r} is corrupt",
                             hint="reset it with BudgetMem.reset_budget(), or ask with --reset-budget") from None  # fmt: skip
        if not isinstance(value, dict):
            raise StoreError(f"control state {name!r} of namespace {namespace!r} is not an object")
        return value

    def put(self, namespace: str, name: str, value: dict[str, Any]) -> None:
        """Replace the state in one transaction: a crash leaves the old value or the new, never half."""
        blob = json.dumps(value, sort_keys=True)
        with self.store._tx():
            self._db.execute("INSERT OR REPLACE INTO controls VALUES (?, ?, ?, ?)", (namespace, name, blob, time.time()))

    def delete(self, namespace: str, name: str) -> bool:
        with self.store._tx():
            cur = self._db.execute("DELETE FROM controls WHERE namespace=? AND name=?", (namespace, name))
        return cur.rowcount > 0
