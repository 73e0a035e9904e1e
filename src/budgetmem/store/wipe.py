"""Making deleted bytes unreadable in an SQLite file in WAL mode (the store, the module cache).

A committed DELETE leaves a row's bytes on disk in three places, each with its own remedy:

1. the cell's space inside its page and any page freed whole: ``PRAGMA secure_delete=ON``
   (set on every connection by :func:`secure_connection`) zeroes them as they are freed;
2. copies that earlier b-tree rebalances and growing updates (access counts, compressed
   versions) left in the unused middle of pages, which secure_delete never sees: in a
   store-like workload about 1 deleted row in 80 was still readable with secure_delete alone.
   ``VACUUM`` rewrites every page from the live rows, so nothing else survives;
3. the write-ahead log, which keeps older page images until a checkpoint copies the newest
   ones into the file: ``PRAGMA wal_checkpoint(TRUNCATE)`` then empties it.

A checkpoint cannot pass a reader that still holds a snapshot from before the delete (that
reader may legitimately read the old rows). :func:`truncate_wal` retries briefly and says
whether it got through; the next successful checkpoint (any later delete, ``Store.wipe()``,
or the last connection closing, which checkpoints and removes the WAL) finishes the job.
"""

from __future__ import annotations

import sqlite3
import time

__all__ = ["secure_connection", "truncate_wal", "wipe"]


def secure_connection(db: sqlite3.Connection) -> None:
    """Zero deleted content as it is freed, on this connection (a per-connection setting)."""
    db.execute("PRAGMA secure_delete=ON")


def truncate_wal(db: sqlite3.Connection, *, tries: int = 5, wait_s: float = 0.1) -> bool:
    """Copy the WAL into the file and truncate it to zero bytes; True if that completed.

    A reader on an older snapshot blocks it: wait ``wait_s`` per try (the connection's own
    busy timeout, often 30 s, would stall the caller instead) and give up after ``tries``."""
    (timeout_ms,) = db.execute("PRAGMA busy_timeout").fetchone()
    db.execute(f"PRAGMA busy_timeout={max(1, int(wait_s * 1000))}")
    try:
        for attempt in range(tries):
            busy = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            if busy == 0:
                return True
            if attempt + 1 < tries:
                time.sleep(wait_s)
        return False
    finally:
        db.execute(f"PRAGMA busy_timeout={int(timeout_ms)}")


def wipe(db: sqlite3.Connection, *, vacuum: bool = True) -> bool:
    """After deletes have committed: rebuild the file (``vacuum``) and empty the WAL.

    Returns True when no byte of the deleted rows is left in the file or its WAL; False when
    a reader's snapshot kept the WAL from being emptied (see the module docstring)."""
    if vacuum:
        db.execute("VACUUM")
    return truncate_wal(db)
