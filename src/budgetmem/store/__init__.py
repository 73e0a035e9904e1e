"""Persistent chunk store."""

from budgetmem.store.sqlite_store import SCHEMA_VERSION, NamespaceInfo, SessionBatch, Store

__all__ = ["SCHEMA_VERSION", "NamespaceInfo", "SessionBatch", "Store"]
