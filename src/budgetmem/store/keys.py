"""API keys of the memory service, kept in the store file they open (table ``api_keys``).

A key is ``bm_<id>_<secret>``: the id is public (``keys list`` shows it, ``keys revoke``
takes it), the secret is 32 random bytes. Only the SHA-256 of the whole key is stored, so
a copy of the store file does not hand out working keys. A plain hash is enough here (no
salt, no slow KDF): those defend low-entropy passwords against guessing, and a 256-bit
random secret cannot be guessed; a slow hash would only add latency to every request.

A key is bound to one namespace and its children: a key for ``alice`` opens ``alice`` and
``alice/work``, never ``alice2``. Scopes say what it may do there:

    read     search, list and get memories, stats, job status
    query    the answer pipeline (it calls LLMs, so it costs money: a scope of its own)
    write    add, delete, forget
    metrics  the service's Prometheus metrics (every namespace's counters: for operators)

:func:`authenticate` turns an ``Authorization`` header into a :class:`KeyInfo`, so any
front end (the REST routes, an MCP app mounted beside them) checks keys the same way. No
error message ever repeats the header or the key.

The table is created on first use (older store files are upgraded in place); older
budgetmem versions ignore it, so the store's schema version does not change.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass

from budgetmem.errors import AuthError, ForbiddenError, InputError, NotFoundError
from budgetmem.store.base import Store, describe

__all__ = [
    "SCOPES",
    "NAMESPACE_PATTERN",
    "KeyInfo",
    "KeyStore",
    "authenticate",
    "check_namespace",
    "parse_scopes",
]

SCOPES = ("read", "query", "write", "metrics")
PREFIX = "bm"

NAMESPACE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}(/[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}){0,7}$"
"""Namespaces a service reaches: up to 8 ``/``-separated segments of letters, digits and
``. _ @ + -`` (not leading), so a namespace is a URL path without escaping and never
``.`` or ``..``."""
_NAMESPACE = re.compile(NAMESPACE_PATTERN)

_TABLE = """
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    hash TEXT NOT NULL,
    namespace TEXT NOT NULL,
    scopes TEXT NOT NULL,
    name TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    last_used DOUBLE PRECISION,
    revoked_at DOUBLE PRECISION
)
"""
_COLUMNS = "id, namespace, scopes, name, created_at, last_used, revoked_at"
_EXPORT = _COLUMNS + ", hash"
_TOUCH_EVERY_S = 60.0
"""``last_used`` is a hint for humans: writing it on every request would make each request
a write transaction, contending with ingests for the store's one writer."""


def check_namespace(name: str) -> str:
    if not _NAMESPACE.match(name):
        raise InputError(
            f"namespace {name!r} cannot be served",
            hint="use up to 8 '/'-separated parts of letters, digits and . _ @ + - (starting with a letter or digit)",
        )
    return name


def parse_scopes(text: str | Iterable[str]) -> frozenset[str]:
    parts = [p.strip().lower() for p in (text.split(",") if isinstance(text, str) else text)]
    scopes = frozenset(p for p in parts if p)
    unknown = sorted(scopes - set(SCOPES))
    if unknown or not scopes:
        raise InputError(f"unknown scope(s): {', '.join(unknown) or '(none given)'}", hint=f"use {','.join(SCOPES)}")
    return scopes


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class KeyInfo:
    """A stored key, without its secret."""

    id: str
    namespace: str
    scopes: frozenset[str]
    name: str | None
    created_at: float
    last_used: float | None = None
    revoked_at: float | None = None

    @property
    def prefix(self) -> str:
        """The public start of the key, enough to tell keys apart in a list."""
        return f"{PREFIX}_{self.id}"

    def covers(self, namespace: str) -> bool:
        """The key's own namespace or one below it (``alice/work`` for ``alice``, not ``alice2``)."""
        return namespace == self.namespace or namespace.startswith(self.namespace + "/")

    def allows(self, namespace: str | None, scope: str) -> bool:
        """May this key use ``scope`` in ``namespace`` (None: a request with no namespace)?"""
        return scope in self.scopes and (namespace is None or self.covers(namespace))

    def require(self, namespace: str | None, scope: str) -> KeyInfo:
        """``self`` if :meth:`allows`, else a :class:`ForbiddenError` naming what is missing."""
        if namespace is not None and not self.covers(namespace):
            raise ForbiddenError(
                f"key {self.prefix} is for namespace {self.namespace!r} and its children, not {namespace!r}",
                hint="use a key created for that namespace",
            )
        if scope not in self.scopes:
            raise ForbiddenError(
                f"key {self.prefix} lacks the {scope!r} scope (it has {','.join(sorted(self.scopes))})",
                hint=f"create a key with --scope {scope}",
            )
        return self

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "prefix": self.prefix,
            "namespace": self.namespace,
            "scopes": sorted(self.scopes),
            "name": self.name,
            "created_at": self.created_at,
            "last_used": self.last_used,
            "revoked": self.revoked_at is not None,
            "revoked_at": self.revoked_at,
        }


class KeyStore:
    """The ``api_keys`` table of a store, on either backend (through the store's side-table
    methods, so no second connection): every server on a shared database sees a key the
    moment it is created, and a revoked key fails everywhere at the next request."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._touched: dict[str, float] = {}
        store.side_write(_TABLE)

    def create(self, namespace: str, scopes: str | Iterable[str], *, name: str | None = None) -> tuple[str, KeyInfo]:
        """A new key: (the key itself, shown once and never again, and its stored info)."""
        check_namespace(namespace)
        chosen = parse_scopes(scopes)
        key_id = secrets.token_hex(6)
        token = f"{PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
        info = KeyInfo(key_id, namespace, chosen, name, time.time())
        self.store.side_write(
            "INSERT INTO api_keys (id, hash, namespace, scopes, name, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (key_id, _digest(token), namespace, ",".join(sorted(chosen)), name, info.created_at),
        )
        return token, info

    def list(self) -> list[KeyInfo]:
        return [_info(r) for r in self.store.side_query(f"SELECT {_COLUMNS} FROM api_keys ORDER BY created_at")]

    def active(self) -> int:
        return int(self.store.side_query("SELECT COUNT(*) FROM api_keys WHERE revoked_at IS NULL")[0][0])

    def revoke(self, key_id: str) -> KeyInfo:
        """Revoke by id (or by the ``bm_<id>`` prefix); requests with it get 401 from now on."""
        key_id = key_id.strip().removeprefix(f"{PREFIX}_")
        self.store.side_write("UPDATE api_keys SET revoked_at=? WHERE id=? AND revoked_at IS NULL", (time.time(), key_id))
        rows = self.store.side_query(f"SELECT {_COLUMNS} FROM api_keys WHERE id=?", (key_id,))
        if not rows:
            raise NotFoundError(f"no key with id {key_id!r} in {describe(self.store.address)}", hint="see budgetmem keys list")
        return _info(rows[0])

    def lookup(self, token: str) -> KeyInfo | None:
        """The live key ``token`` is, or None (unknown, wrong secret, revoked)."""
        parts = token.split("_", 2)
        if len(parts) != 3 or parts[0] != PREFIX or not parts[1] or not parts[2]:
            return None
        rows = self.store.side_query(f"SELECT {_COLUMNS}, hash FROM api_keys WHERE id=?", (parts[1],))
        # Compare digests in constant time, so response timing says nothing about how much of
        # a guessed secret was right.
        if not rows or not hmac.compare_digest(str(rows[0][-1]), _digest(token)):
            return None
        info = _info(rows[0][:-1])
        if info.revoked_at is not None:
            return None
        self._touch(info.id)
        return info

    def export_rows(self) -> list[dict[str, object]]:
        """Every key as stored (the hash, never a key): what ``budgetmem migrate`` copies."""
        rows = self.store.side_query(f"SELECT {_EXPORT} FROM api_keys ORDER BY id")
        return [dict(zip(_EXPORT.split(", "), r)) for r in rows]

    def import_rows(self, rows: list[dict[str, object]]) -> int:
        """Add keys exported from another store (a key id already here is left as it is)."""
        cols = _EXPORT.split(", ")
        self.store.side_write(
            f"INSERT INTO api_keys ({_EXPORT}) VALUES ({', '.join(['?'] * len(cols))}) ON CONFLICT (id) DO NOTHING",
            [[r[c] for c in cols] for r in rows], many=True,
        )  # fmt: skip
        return len(rows)

    def _touch(self, key_id: str) -> None:
        now = time.time()
        if now - self._touched.get(key_id, 0.0) < _TOUCH_EVERY_S:
            return
        self._touched[key_id] = now
        # Never make a request wait on a writer for this: if one holds the store, the hint is
        # simply older.
        self.store.side_write("UPDATE api_keys SET last_used=? WHERE id=?", (now, key_id), wait=False)


def _info(row: tuple[object, ...]) -> KeyInfo:
    return KeyInfo(
        id=str(row[0]),
        namespace=str(row[1]),
        scopes=frozenset(str(row[2]).split(",")),
        name=None if row[3] is None else str(row[3]),
        created_at=float(row[4]),  # type: ignore[arg-type]
        last_used=None if row[5] is None else float(row[5]),  # type: ignore[arg-type]
        revoked_at=None if row[6] is None else float(row[6]),  # type: ignore[arg-type]
    )


def authenticate(keys: KeyStore, authorization: str | None) -> KeyInfo:
    """The key of an ``Authorization: Bearer <key>`` header, or an :class:`AuthError`.

    The messages never include the header: they end up in responses and logs."""
    if not authorization:
        raise AuthError("no API key", hint="send 'Authorization: Bearer <key>' (budgetmem keys create)")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("malformed Authorization header", hint="send 'Authorization: Bearer <key>'")
    info = keys.lookup(token.strip())
    if info is None:
        raise AuthError("unknown or revoked API key", hint="check the key, or create one: budgetmem keys create")
    return info
