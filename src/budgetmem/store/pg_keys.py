"""API keys in a PostgreSQL store (the ``api_keys`` table of its schema).

The same keys as :mod:`budgetmem.store.keys` (format, hashing, scopes, namespace binding);
only the SQL differs. Every server on the database sees a key the moment it is created,
and a revoked key fails on all of them at the next request: nothing is cached per process
except the ``last_used`` throttle.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Iterable
from typing import Any

from budgetmem.errors import NotFoundError
from budgetmem.store.base import Store, describe
from budgetmem.store.keys import _COLUMNS, _EXPORT, _TOUCH_EVERY_S, PREFIX, KeyInfo, KeyStore, _digest, _info, check_namespace, parse_scopes

__all__ = ["PostgresKeyStore"]


class PostgresKeyStore(KeyStore):
    def __init__(self, store: Store) -> None:
        self.store = store
        self._pg: Any = store
        self._touched: dict[str, float] = {}

    def create(self, namespace: str, scopes: str | Iterable[str], *, name: str | None = None) -> tuple[str, KeyInfo]:
        check_namespace(namespace)
        chosen = parse_scopes(scopes)
        key_id = secrets.token_hex(6)
        token = f"{PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
        info = KeyInfo(key_id, namespace, chosen, name, time.time())
        with self._pg._tx() as conn:
            conn.execute(
                "INSERT INTO api_keys (id, hash, namespace, scopes, name, created_at) VALUES (%s, %s, %s, %s, %s, %s)",
                (key_id, _digest(token), namespace, ",".join(sorted(chosen)), name, info.created_at),
            )
        return token, info

    def list(self) -> list[KeyInfo]:
        with self._pg._read() as conn:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM api_keys ORDER BY created_at").fetchall()
        return [_info(r) for r in rows]

    def active(self) -> int:
        with self._pg._read() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM api_keys WHERE revoked_at IS NULL").fetchone()[0])

    def revoke(self, key_id: str) -> KeyInfo:
        key_id = key_id.strip().removeprefix(f"{PREFIX}_")
        with self._pg._tx() as conn:
            conn.execute("UPDATE api_keys SET revoked_at=%s WHERE id=%s AND revoked_at IS NULL", (time.time(), key_id))
            row = conn.execute(f"SELECT {_COLUMNS} FROM api_keys WHERE id=%s", (key_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no key with id {key_id!r} in {describe(self.store.address)}", hint="see budgetmem keys list")
        return _info(row)

    def lookup(self, token: str) -> KeyInfo | None:
        parts = token.split("_", 2)
        if len(parts) != 3 or parts[0] != PREFIX or not parts[1] or not parts[2]:
            return None
        with self._pg._read() as conn:
            row = conn.execute(f"SELECT {_COLUMNS}, hash FROM api_keys WHERE id=%s", (parts[1],)).fetchone()
        if row is None or not hmac.compare_digest(str(row[-1]), _digest(token)):
            return None
        info = _info(row[:-1])
        if info.revoked_at is not None:
            return None
        self._touch(info.id)
        return info

    def export_rows(self) -> list[dict[str, object]]:
        with self._pg._read() as conn:
            rows = conn.execute(f"SELECT {_EXPORT} FROM api_keys ORDER BY id").fetchall()
        return [dict(zip(_EXPORT.split(", "), r)) for r in rows]

    def import_rows(self, rows: list[dict[str, object]]) -> int:
        """Add keys exported from another store (a key id already here is left as it is)."""
        cols = _EXPORT.split(", ")
        with self._pg._tx() as conn, conn.cursor() as cur:
            cur.executemany(f"INSERT INTO api_keys ({_EXPORT}) VALUES ({', '.join(['%s'] * len(cols))}) ON CONFLICT (id) DO NOTHING",
                            [[r[c] for c in cols] for r in rows])  # fmt: skip
        return len(rows)

    def _touch(self, key_id: str) -> None:
        now = time.time()
        if now - self._touched.get(key_id, 0.0) < _TOUCH_EVERY_S:
            return
        self._touched[key_id] = now
        # Row-level locks only: this never waits on an ingest, just on another touch of the key.
        with self._pg._tx() as conn:
            conn.execute("UPDATE api_keys SET last_used=%s WHERE id=%s", (now, key_id))
