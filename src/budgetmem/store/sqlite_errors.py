"""What a failed SQLite call on a store file means, as one line the user can act on.

SQLite reports a full disk, a file size limit, a read-only file, another writer holding the
lock and a file that is no database each with its own result code; all of them reach Python
as ``sqlite3.OperationalError`` or ``DatabaseError``. Left as they are they surface as a
traceback (a full disk during an ingest) or under the wrong name (a read-only or locked store
was called "not a budgetmem store"). :func:`store_error` names the condition and the fix.
Every one of them leaves the file as it was: writes are transactions, rolled back on error.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from budgetmem.errors import StoreError

__all__ = ["store_error"]


def store_error(path: Path, exc: sqlite3.Error, *, busy_timeout_s: float) -> StoreError:
    """The StoreError for ``exc``, raised by SQLite while using the store at ``path``."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc)
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "database is locked" in text:
        return StoreError(
            f"{path} is locked by another writer (waited {busy_timeout_s:g} s)",
            hint="try again when the other ingest, forget or service is done; nothing was changed",
        )
    if name.startswith("SQLITE_READONLY") or "readonly database" in text:
        return StoreError(
            f"{path} is read-only ({text})", hint="make the file and its folder writable, or copy the store; nothing was changed"
        )
    if name == "SQLITE_FULL" or name.startswith("SQLITE_IOERR") or "disk is full" in text or "disk I/O error" in text:
        return StoreError(
            f"could not write {path}: {text}",
            hint="the disk is full or a file size limit was reached; free space and retry, the store keeps what it had",
        )
    if name.startswith(("SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_AUTH")):
        return StoreError(f"cannot open {path} ({text})", hint="check the permissions of the file and its folder")
    return StoreError(f"{path} is not a budgetmem store ({text})", hint="choose another --store file")
