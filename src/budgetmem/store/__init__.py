"""Persistent chunk store."""

from budgetmem.store.sqlite_store import (
    SCHEMA_VERSION,
    ArchivedChunk,
    NamespaceInfo,
    Removed,
    SessionBatch,
    Store,
    WriteState,
)

__all__ = ["SCHEMA_VERSION", "ArchivedChunk", "NamespaceInfo", "Removed", "SessionBatch", "Store", "WriteState"]
