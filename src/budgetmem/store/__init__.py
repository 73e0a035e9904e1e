"""Persistent chunk store: one :class:`Store` interface, a SQLite file or PostgreSQL + pgvector
behind it, chosen by address (:func:`open_store`)."""

from budgetmem.store.base import ENV_STORE, Store, describe, is_postgres, open_store
from budgetmem.store.records import ArchivedChunk, NamespaceInfo, Removed, SessionBatch, WriteState
from budgetmem.store.sqlite_store import SCHEMA_VERSION, SQLiteStore

__all__ = [
    "ENV_STORE",
    "SCHEMA_VERSION",
    "ArchivedChunk",
    "NamespaceInfo",
    "Removed",
    "SQLiteStore",
    "SessionBatch",
    "Store",
    "WriteState",
    "describe",
    "is_postgres",
    "open_store",
]
