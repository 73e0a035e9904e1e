"""Small per-namespace control state kept in the store file (e.g. the target-cost controller's
lambda and spend), so a server that restarts keeps its budget where it was.

A row is (namespace, name) -> a JSON object. It lives beside the namespace's memories but is
not one: it holds no text from the history, only numbers the service derived from its own
spending. Like :class:`~budgetmem.store.keys.KeyStore`, it goes through the store's
side-table methods, so it works on either backend without a connection of its own.
"""

from __future__ import annotations

import json
import time
from typing import Any

from budgetmem.errors import StoreError
from budgetmem.store.base import Store

__all__ = ["ControlStore"]

_TABLE = """
CREATE TABLE IF NOT EXISTS controls (
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (namespace, name)
)
"""


class ControlStore:
    """The ``controls`` table of a store (SQLite file or PostgreSQL database)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        store.side_write(_TABLE)

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        rows = self.store.side_query("SELECT value FROM controls WHERE namespace=? AND name=?", (namespace, name))
        if not rows:
            return None
        try:
            value = json.loads(rows[0][0])
        except json.JSONDecodeError:
            raise StoreError(f"control state {name!r} of namespace {namespace!r} is corrupt",
                             hint="reset it with BudgetMem.reset_budget(), or ask with --reset-budget") from None  # fmt: skip
        if not isinstance(value, dict):
            raise StoreError(f"control state {name!r} of namespace {namespace!r} is not an object")
        return value

    def put(self, namespace: str, name: str, value: dict[str, Any]) -> None:
        """Replace the state in one transaction: a crash leaves the old value or the new, never half."""
        self.store.side_write(
            "INSERT INTO controls VALUES (?, ?, ?, ?) ON CONFLICT (namespace, name) "
            "DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            (namespace, name, json.dumps(value, sort_keys=True), time.time()),
        )

    def delete(self, namespace: str, name: str) -> bool:
        return bool(self.store.side_write("DELETE FROM controls WHERE namespace=? AND name=?", (namespace, name)))
