"""One SQLite file (WAL mode) holding chunks, their metadata and embeddings, by namespace.

A namespace is one memory (a user, an agent, a LoCoMo conversation). It is bound to the
encoder that embedded it, so vectors from different encoders never mix. Every write is
one transaction: an ingest that fails half-way leaves the file as it was.

Budgeted writes (selective-write paper §III-E) add three things: each chunk's write score
and access count; the namespace's write policy, budget and how much it has *seen*; and an
``archive`` table. A chunk the write policy rejects or evicts moves there whole (text,
metadata, embedding), out of the searchable index but recoverable with
:meth:`Store.restore`; only :meth:`Store.purge` (``budgetmem gc``) deletes for real.
Schema version 1 files are upgraded in place, in one transaction, on open.

Forgetting (:meth:`Store.delete`, :meth:`Store.forget_session`, :meth:`Store.forget_namespace`)
removes chunks wherever the file keeps them (live rows, embeddings, archive, session counts)
and then wipes the file, so the bytes cannot be read back from it or its WAL; see
:mod:`budgetmem.store.wipe` for what that guarantees and when.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from budgetmem.errors import NotFoundError, StoreError
from budgetmem.chunk import Chunk
from budgetmem.store import index_files
from budgetmem.store.base import Store
from budgetmem.store.records import (
    CHUNK_FIELDS,
    NAMESPACE_FIELDS,
    SESSION_FIELDS,
    ArchivedChunk,
    NamespaceDump,
    NamespaceInfo,
    Removed,
    SessionBatch,
    Taken,
    WriteState,
    row_to_chunk,
)
from budgetmem.store.sqlite_errors import store_error
from budgetmem.store.wipe import secure_connection, wipe

__all__ = ["SQLiteStore", "NamespaceInfo", "SessionBatch", "ArchivedChunk", "WriteState", "Removed", "SCHEMA_VERSION"]

SCHEMA_VERSION = 2
BUSY_TIMEOUT_S = 30.0
"""How long a write waits for another writer's transaction before it gives up."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS namespaces (
    name TEXT PRIMARY KEY,
    encoder TEXT NOT NULL,
    dim INTEGER NOT NULL,
    chunk_tokens INTEGER NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    namespace TEXT NOT NULL REFERENCES namespaces(name),
    key TEXT NOT NULL,
    source TEXT NOT NULL,
    history TEXT NOT NULL,
    session_id TEXT NOT NULL,
    n_chunks INTEGER NOT NULL,
    added_at REAL NOT NULL,
    PRIMARY KEY (namespace, key)
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    namespace TEXT NOT NULL REFERENCES namespaces(name),
    source TEXT NOT NULL,
    history TEXT NOT NULL,
    session_id TEXT NOT NULL,
    session_date TEXT,
    position INTEGER NOT NULL,
    kind TEXT NOT NULL,
    text TEXT NOT NULL,
    n_tokens INTEGER NOT NULL,
    dia_ids TEXT NOT NULL,
    speakers TEXT NOT NULL,
    meta TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_by_namespace ON chunks(namespace, id);
CREATE TABLE IF NOT EXISTS embeddings (
    chunk_id INTEGER PRIMARY KEY REFERENCES chunks(id),
    vector BLOB NOT NULL
);
"""

# Version 2: budgeted writes. Added with ALTER TABLE so a version-1 file upgrades in place.
_V2_COLUMNS = {
    "chunks": [
        ("score", "REAL"),
        ("access_count", "INTEGER NOT NULL DEFAULT 0"),
        ("last_access", "REAL"),
        ("compressed", "TEXT"),
        ("compressed_tokens", "INTEGER"),
        ("compress_meta", "TEXT"),
    ],
    "namespaces": [
        ("write_policy", "TEXT"),
        ("write_budget", "TEXT"),
        ("seen_chunks", "INTEGER NOT NULL DEFAULT 0"),
        ("seen_tokens", "INTEGER NOT NULL DEFAULT 0"),
        ("revision", "INTEGER NOT NULL DEFAULT 0"),
    ],
}
_V2_TABLES = """
CREATE TABLE IF NOT EXISTS archive (
    id INTEGER PRIMARY KEY,
    namespace TEXT NOT NULL REFERENCES namespaces(name),
    row TEXT NOT NULL,
    vector BLOB NOT NULL,
    reason TEXT NOT NULL,
    archived_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS archive_by_namespace ON archive(namespace, id);
"""

_CHUNK_COLUMNS = "id, source, history, session_id, session_date, position, kind, text, n_tokens, dia_ids, speakers, meta"
# Every column of a chunk row, as archived (the v1 columns plus the v2 write-policy ones).
_READ_COLUMNS = _CHUNK_COLUMNS + ", compressed, compressed_tokens"
_ALL_COLUMNS = _CHUNK_COLUMNS + ", namespace, score, access_count, last_access, compressed, compressed_tokens, compress_meta"


class SQLiteStore(Store):
    """A budgetmem store file. Thread-safe; use as a context manager or call ``close()``."""

    backend = "sqlite"

    def __init__(self, path: str | Path, *, create: bool = True) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise StoreError(f"store path {self.path} is a directory", hint="give a file name, e.g. memory.db")
        if not self.path.exists():
            if not create:
                raise StoreError(f"store not found: {self.path}", hint="ingest something first, or check --store")
            if not self.path.parent.exists():
                raise StoreError(f"folder {self.path.parent} does not exist", hint="create it first")
        self._lock = threading.RLock()
        self._forget_hooks: list[Callable[[], Callable[[str], None] | None]] = []
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_S)
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        try:
            # The version is read before anything is written: a store from a newer budgetmem,
            # a read-only file or one another writer holds is refused with its bytes untouched.
            version = self._schema_version()
            if self.journal_mode != "wal":  # a new file, or one an older tool left in rollback mode
                self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute("PRAGMA synchronous=NORMAL")
            secure_connection(self._db)  # deleted rows are zeroed, not just unlinked
            if version != SCHEMA_VERSION:
                self._init_schema()
        except BaseException as exc:
            self._db.close()
            if isinstance(exc, sqlite3.Error):
                raise self._error(exc) from None
            raise

    def _error(self, exc: sqlite3.Error) -> StoreError:
        return store_error(self.path, exc, busy_timeout_s=BUSY_TIMEOUT_S)

    def _schema_version(self) -> int | None:
        """The file's schema version, read without writing (None: a new or empty file)."""
        if not self._db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone():
            return None
        row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        version = None if row is None else int(row[0])
        if version is not None and version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has schema version {version}, this budgetmem reads up to {SCHEMA_VERSION}",
                hint="upgrade budgetmem; the file was not changed",
            )
        return version

    def _init_schema(self) -> None:
        """Create the tables of a new file, or upgrade an older one, in one transaction."""
        with self._tx():
            for stmt in filter(str.strip, _SCHEMA.split(";")):
                self._db.execute(stmt)
            self._schema_version()  # again inside the lock: another process may have written it meanwhile
            self._upgrade_to_v2()
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    def _upgrade_to_v2(self) -> None:
        """Add the write-policy columns and the archive table where missing (idempotent)."""
        for table, columns in _V2_COLUMNS.items():
            have = {r[1] for r in self._db.execute(f"PRAGMA table_info({table})")}
            for name, decl in columns:
                if name not in have:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")
        for stmt in filter(str.strip, _V2_TABLES.split(";")):
            self._db.execute(stmt)

    # ------------------------------------------------------------------ plumbing
    @contextmanager
    def _tx(self) -> Iterator[None]:
        """One write transaction. Any failure, the COMMIT's own included (a full disk shows
        there), rolls it back and leaves the file as it was; SQLite's errors become a
        one-line StoreError."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self._error(exc) from None
            try:
                yield
                self._db.execute("COMMIT")
            except BaseException as exc:
                if self._db.in_transaction:  # SQLite already rolled back after some I/O errors
                    try:
                        self._db.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
                if isinstance(exc, sqlite3.Error):
                    raise self._error(exc) from None
                raise

    def side_query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def side_write(self, sql: str, params: Sequence[Any] = (), *, many: bool = False, wait: bool = True) -> int | None:
        if wait:
            with self._tx():
                cur = self._db.executemany(sql, params) if many else self._db.execute(sql, params)
            return int(cur.rowcount)
        with self._lock:
            (busy_ms,) = self._db.execute("PRAGMA busy_timeout").fetchone()
            self._db.execute("PRAGMA busy_timeout=50")
            try:
                cur = self._db.executemany(sql, params) if many else self._db.execute(sql, params)
                return int(cur.rowcount)
            except sqlite3.OperationalError:
                return None  # another connection is writing
            finally:
                self._db.execute(f"PRAGMA busy_timeout={int(busy_ms)}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @property
    def address(self) -> str:
        return str(self.path)

    @property
    def journal_mode(self) -> str:
        return str(self._db.execute("PRAGMA journal_mode").fetchone()[0])

    # ------------------------------------------------------------------ namespaces
    _NAMESPACE_INFO = """SELECT n.name, n.encoder, n.dim, n.chunk_tokens, n.created_at,
                          (SELECT COUNT(*) FROM chunks c WHERE c.namespace = n.name),
                          (SELECT COALESCE(SUM(n_tokens), 0) FROM chunks c WHERE c.namespace = n.name),
                          (SELECT COUNT(*) FROM sessions s WHERE s.namespace = n.name),
                          n.write_policy, n.write_budget, n.seen_chunks, n.seen_tokens,
                          (SELECT COUNT(*) FROM archive a WHERE a.namespace = n.name),
                          (SELECT COALESCE(SUM(json_extract(a.row, '$.n_tokens')), 0) FROM archive a
                           WHERE a.namespace = n.name),
                          n.revision
                   FROM namespaces n"""

    def namespaces(self) -> list[NamespaceInfo]:
        with self._lock:
            rows = self._db.execute(self._NAMESPACE_INFO + " ORDER BY n.name").fetchall()
        return [NamespaceInfo(*r) for r in rows]

    # Without the counts: what each search needs (encoder, write policy) in one indexed read.
    # The counts above sum over every chunk of the namespace, which at a million chunks takes
    # longer than the search itself.
    _NAMESPACE_SETTINGS = """SELECT n.name, n.encoder, n.dim, n.chunk_tokens, n.created_at, 0, 0, 0,
                                    n.write_policy, n.write_budget, n.seen_chunks, n.seen_tokens, 0, 0, n.revision
                             FROM namespaces n"""

    def namespace(self, name: str, *, counts: bool = True) -> NamespaceInfo | None:
        """One namespace's info; only its own rows are counted. ``counts=False`` skips the
        counting and leaves ``n_chunks``, ``n_tokens``, ``n_sessions`` and the archive's
        counts at 0: for callers that need only its settings, on every search."""
        sql = self._NAMESPACE_INFO if counts else self._NAMESPACE_SETTINGS
        with self._lock:
            row = self._db.execute(sql + " WHERE n.name = ?", (name,)).fetchone()
        return NamespaceInfo(*row) if row else None

    def require_namespace(self, name: str, *, counts: bool = True) -> NamespaceInfo:
        info = self.namespace(name, counts=counts)
        if info is None:
            # Name a few, not every namespace: a store may hold thousands (this must not scan them).
            with self._lock:
                names = [r[0] for r in self._db.execute("SELECT name FROM namespaces ORDER BY name LIMIT 11")]
            known = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "") if names else "none"
            raise NotFoundError(f"namespace {name!r} not found in {self.path}", hint=f"namespaces here: {known}")
        return info

    def check_encoder(self, namespace: str, encoder: str, dim: int) -> bool:
        """True if the namespace exists with this encoder, False if it does not exist;
        a StoreError if it was embedded with another encoder (vectors must never mix)."""
        with self._lock:
            row = self._db.execute("SELECT encoder, dim FROM namespaces WHERE name=?", (namespace,)).fetchone()
        if row is None:
            return False
        if (row[0], row[1]) != (encoder, dim):
            raise StoreError(
                f"namespace {namespace!r} was embedded with {row[0]} ({row[1]}-d), not {encoder} ({dim}-d)",
                hint=f"use --encoder {row[0]} or another namespace",
            )
        return True

    def known_sessions(self, namespace: str) -> set[str]:
        with self._lock:
            return {r[0] for r in self._db.execute("SELECT key FROM sessions WHERE namespace=?", (namespace,))}

    # ------------------------------------------------------------------ writes
    def add(
        self,
        batches: Sequence[SessionBatch],
        *,
        encoder: str,
        dim: int,
        chunk_tokens: int,
        evict: Mapping[str, Sequence[int]] | None = None,
        write_policy: Mapping[str, tuple[str, str | None]] | None = None,
        skipped: list[str] | None = None,
    ) -> list[int]:
        """Append sessions (to one or more namespaces) in one transaction; returns the new
        chunk ids (admitted or not).

        Sessions whose key is already stored in their namespace are skipped, so re-running
        an interrupted or repeated ingest never duplicates anything. A batch's ``admitted``
        flags send rejected chunks straight to the archive; ``evict`` names live chunks, per
        namespace, to move to the archive; ``write_policy`` records (policy, budget) per
        namespace. All of it commits together or not at all. ``skipped`` (if given) receives
        the keys of batches skipped as already stored: another writer may have stored one
        after the caller looked.
        """
        ids: list[int] = []
        with self._tx():
            known: dict[str, set[str]] = {}
            for ns in dict.fromkeys(b.namespace for b in batches):
                if not self.check_encoder(ns, encoder, dim):
                    self._db.execute(
                        "INSERT INTO namespaces (name, encoder, dim, chunk_tokens, created_at) VALUES (?, ?, ?, ?, ?)",
                        (ns, encoder, dim, chunk_tokens, time.time()),
                    )
                known[ns] = {r[0] for r in self._db.execute("SELECT key FROM sessions WHERE namespace=?", (ns,))}
            for ns, (policy, budget) in (write_policy or {}).items():
                self._db.execute("UPDATE namespaces SET write_policy=?, write_budget=? WHERE name=?", (policy, budget, ns))
            for b in batches:
                namespace = b.namespace
                if b.key in known[namespace]:
                    if skipped is not None:
                        skipped.append(b.key)
                    continue
                if b.embeddings.shape != (len(b.chunks), dim):
                    raise StoreError(f"session {b.session_id}: {b.embeddings.shape} embeddings for {len(b.chunks)} chunks")
                scores = list(b.scores) if b.scores is not None else [None] * len(b.chunks)
                admitted = list(b.admitted) if b.admitted is not None else [True] * len(b.chunks)
                if not (len(scores) == len(admitted) == len(b.chunks)):
                    raise StoreError(f"session {b.session_id}: scores / admitted flags do not match its chunks")
                rejected: list[int] = []
                for chunk, vec, score, keep in zip(b.chunks, b.embeddings, scores, admitted):
                    cur = self._db.execute(
                        f"INSERT INTO chunks ({_CHUNK_COLUMNS.replace('id, ', '', 1)}, namespace, score) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            chunk.source,
                            chunk.history,
                            chunk.session_id,
                            chunk.session_date,
                            chunk.position,
                            chunk.kind,
                            chunk.text,
                            chunk.n_tokens,
                            json.dumps(list(chunk.dia_ids)),
                            json.dumps(list(chunk.speakers)),
                            json.dumps(chunk.meta),
                            namespace,
                            score,
                        ),
                    )
                    chunk_id = int(cur.lastrowid or 0)
                    self._db.execute(
                        "INSERT INTO embeddings VALUES (?, ?)", (chunk_id, np.asarray(vec, dtype="<f4").tobytes())
                    )
                    ids.append(chunk_id)
                    if not keep:
                        rejected.append(chunk_id)
                self._db.execute(
                    "INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (namespace, b.key, b.source, b.history, b.session_id, len(b.chunks), time.time()),
                )
                self._db.execute(
                    "UPDATE namespaces SET seen_chunks = seen_chunks + ?, seen_tokens = seen_tokens + ?, "
                    "revision = revision + 1 WHERE name=?",
                    (len(b.chunks), sum(c.n_tokens for c in b.chunks), namespace),
                )
                self._move_to_archive(namespace, rejected, "rejected")
                known[namespace].add(b.key)
            for ns, victims in (evict or {}).items():
                self._move_to_archive(ns, victims, "evicted")
        return ids

    def _move_to_archive(self, namespace: str, ids: Sequence[int], reason: str) -> int:
        """Inside a transaction: copy whole rows and vectors to the archive, then delete them."""
        moved = 0
        for chunk_id in ids:
            row = self._db.execute(
                f"SELECT {_ALL_COLUMNS}, e.vector FROM chunks c JOIN embeddings e ON e.chunk_id = c.id "
                "WHERE c.namespace=? AND c.id=?",
                (namespace, int(chunk_id)),
            ).fetchone()
            if row is None:
                raise StoreError(f"chunk {chunk_id} is not stored in namespace {namespace!r}")
            record = dict(zip(_ALL_COLUMNS.split(", "), row[:-1]))
            self._db.execute(
                "INSERT INTO archive VALUES (?, ?, ?, ?, ?, ?)",
                (record["id"], namespace, json.dumps(record), row[-1], reason, time.time()),
            )
            self._db.execute("DELETE FROM embeddings WHERE chunk_id=?", (int(chunk_id),))
            self._db.execute("DELETE FROM chunks WHERE id=?", (int(chunk_id),))
            moved += 1
        if moved:
            self._db.execute("UPDATE namespaces SET revision = revision + 1 WHERE name=?", (namespace,))
        return moved

    def archive(self, namespace: str, ids: Sequence[int], reason: str = "evicted") -> int:
        """Move live chunks out of the index into the archive (recoverable)."""
        with self._tx():
            return self._move_to_archive(namespace, ids, reason)

    def restore(self, namespace: str, ids: Sequence[int] | None = None) -> int:
        """Put archived chunks (all of the namespace's, or these ids) back into the index,
        with their original ids, metadata and embeddings."""
        with self._tx():
            query = "SELECT id, row, vector FROM archive WHERE namespace=?"
            rows = self._db.execute(query + " ORDER BY id", (namespace,)).fetchall()
            if ids is not None:
                wanted = {int(i) for i in ids}
                rows = [r for r in rows if int(r[0]) in wanted]
            cols = _ALL_COLUMNS.split(", ")
            for chunk_id, row, vector in rows:
                record = json.loads(row)
                self._db.execute(
                    f"INSERT INTO chunks ({_ALL_COLUMNS}) VALUES ({', '.join('?' * len(cols))})",
                    [record[c] for c in cols],
                )
                self._db.execute("INSERT INTO embeddings VALUES (?, ?)", (chunk_id, vector))
                self._db.execute("DELETE FROM archive WHERE id=?", (chunk_id,))
            if rows:
                self._db.execute("UPDATE namespaces SET revision = revision + 1 WHERE name=?", (namespace,))
        return len(rows)

    def purge(self, namespace: str | None = None, ids: Sequence[int] | None = None) -> int:
        """Delete archived chunks for good (all, one namespace's, or these ids)."""
        with self._tx():
            where, params = ("WHERE namespace=?", [namespace]) if namespace else ("", [])
            if ids is not None:
                marks = ",".join("?" * len(ids))
                where = (where + " AND " if where else "WHERE ") + f"id IN ({marks})"
                params += [int(i) for i in ids]
            cur = self._db.execute(f"DELETE FROM archive {where}", params)
            return int(cur.rowcount)

    # ------------------------------------------------------------------ forgetting
    def delete(self, namespace: str, chunk_id: int, *, vacuum: bool = True) -> Removed:
        """Delete one chunk of the namespace for good, live or archived, then wipe the file.

        A chunk id of another namespace is not found here (ids are unique per file, but a
        namespace must never reach another's memory). ``vacuum=False`` skips rebuilding the
        file: faster, but copies a past page rebalance left behind may survive (see
        :mod:`budgetmem.store.wipe`) until the next wipe."""
        self.require_namespace(namespace)
        with self._tx():
            taken = self._remove(namespace, "id=?", "id=?", [int(chunk_id)])
            if not taken.live + taken.archived:
                raise NotFoundError(
                    f"chunk {chunk_id} not found in namespace {namespace!r}",
                    hint="chunk ids are in budgetmem search --json output",
                )
            sessions = self._drop_from_sessions(namespace, taken.sessions)
        return self._removed(namespace, taken, sessions, vacuum=vacuum)

    def forget_session(self, namespace: str, session_id: str, *, vacuum: bool = True) -> Removed:
        """Delete every chunk (live or archived) of a session id and its session rows, then
        wipe the file. Sessions from different sources that share the id go together."""
        self.require_namespace(namespace)
        with self._tx():
            taken = self._remove(namespace, "session_id=?", "json_extract(row, '$.session_id')=?", [session_id])
            cur = self._db.execute("DELETE FROM sessions WHERE namespace=? AND session_id=?", (namespace, session_id))
            if not taken.live + taken.archived + cur.rowcount:
                raise NotFoundError(f"session {session_id!r} not found in namespace {namespace!r}")
        return self._removed(namespace, taken, int(cur.rowcount), vacuum=vacuum)

    def forget_namespace(self, namespace: str, *, vacuum: bool = True) -> Removed:
        """Delete the whole namespace: chunks, archive, sessions, and the namespace itself (its
        encoder binding and write policy), then wipe the file."""
        self.require_namespace(namespace)
        with self._tx():
            taken = self._remove(namespace, "1", "1", [])
            cur = self._db.execute("DELETE FROM sessions WHERE namespace=?", (namespace,))
            self._db.execute("DELETE FROM namespaces WHERE name=?", (namespace,))
        return self._removed(namespace, taken, int(cur.rowcount), vacuum=vacuum, namespace_removed=True)

    def wipe(self, *, vacuum: bool = True) -> bool:
        """Rebuild the file and empty its WAL, so deleted rows cannot be read back from either;
        False when a reader's older snapshot blocked the WAL (call again once it is done)."""
        with self._lock:
            try:
                return wipe(self._db, vacuum=vacuum)
            except sqlite3.Error as exc:  # a VACUUM needs room for a copy of the file
                raise self._error(exc) from None

    def _remove(self, namespace: str, live_where: str, archived_where: str, params: Sequence[object]) -> Taken:
        """Inside a transaction: delete the namespace's live and archived chunks that match."""
        live = self._db.execute(
            f"SELECT id, source, history, session_id, text, n_tokens FROM chunks WHERE namespace=? AND {live_where}",
            (namespace, *params),
        ).fetchall()
        gone = self._db.execute(
            f"SELECT id, row FROM archive WHERE namespace=? AND {archived_where}", (namespace, *params)
        ).fetchall()
        rows = [r[1:] for r in live] + [
            tuple(rec[k] for k in ("source", "history", "session_id", "text", "n_tokens"))
            for rec in (json.loads(r[1]) for r in gone)
        ]
        self._db.executemany("DELETE FROM embeddings WHERE chunk_id=?", [(r[0],) for r in live])
        self._db.executemany("DELETE FROM chunks WHERE id=?", [(r[0],) for r in live])
        self._db.executemany("DELETE FROM archive WHERE id=?", [(r[0],) for r in gone])
        if rows:
            # The revision tells every Searcher (any process) that its indexes are stale. What
            # was forgotten no longer counts as seen, so a write budget's ratio ignores it too.
            self._db.execute(
                "UPDATE namespaces SET revision = revision + 1, seen_chunks = MAX(0, seen_chunks - ?), "
                "seen_tokens = MAX(0, seen_tokens - ?) WHERE name=?",
                (len(rows), sum(int(r[4]) for r in rows), namespace),
            )
        return Taken(
            live=len(live),
            archived=len(gone),
            sessions=Counter((str(r[0]), str(r[1]), str(r[2])) for r in rows),
            texts=tuple(str(r[3]) for r in rows),
        )

    def _drop_from_sessions(self, namespace: str, removed: Counter[tuple[str, str, str]]) -> int:
        """Inside a transaction: take removed chunks off their sessions' counts; a session row
        goes when its count reaches zero or nothing of its session id is left. Chunks do not
        record which ingest (session key) brought them, so an id ingested twice is counted
        down newest row first."""
        dropped = 0
        for (source, history, session_id), n_removed in removed.items():
            group = (namespace, source, history, session_id)
            match = "namespace=? AND source=? AND history=? AND session_id=?"
            left = self._db.execute(
                f"SELECT (SELECT COUNT(*) FROM chunks WHERE {match}) + (SELECT COUNT(*) FROM archive WHERE namespace=? "
                "AND json_extract(row, '$.source')=? AND json_extract(row, '$.history')=? "
                "AND json_extract(row, '$.session_id')=?)",
                (*group, *group),
            ).fetchone()[0]
            rows = self._db.execute(f"SELECT key, n_chunks FROM sessions WHERE {match} ORDER BY added_at DESC", group)
            for key, n_chunks in rows.fetchall():
                take = min(n_removed, int(n_chunks))
                n_removed -= take
                if not left or n_chunks - take <= 0:
                    self._db.execute("DELETE FROM sessions WHERE namespace=? AND key=?", (namespace, key))
                    dropped += 1
                elif take:
                    self._db.execute(
                        "UPDATE sessions SET n_chunks=? WHERE namespace=? AND key=?", (n_chunks - take, namespace, key)
                    )
        return dropped

    def _removed(
        self, namespace: str, taken: Taken, sessions: int, *, vacuum: bool, namespace_removed: bool = False
    ) -> Removed:
        """After the delete committed: wipe the file, clear the namespace's persisted search
        indexes of what was removed, then report."""
        wiped = self.wipe(vacuum=vacuum)
        self._forget_indexes(namespace)
        return Removed(
            namespace=namespace,
            chunks=taken.live,
            archived=taken.archived,
            sessions=sessions,
            namespace_removed=namespace_removed,
            wiped=wiped,
            texts=taken.texts,
        )

    # ------------------------------------------------------------------ search-index files
    @property
    def index_dir(self) -> Path | None:
        """Where searchers persist this store's indexes (see :mod:`budgetmem.store.index_files`)."""
        return index_files.index_dir(self.path)

    def on_forget(self, hook: Callable[[str], None]) -> None:
        """Call ``hook(namespace)`` after every delete or forget has committed (a searcher drops
        the removed chunks from its loaded indexes and rewrites their files). A bound method is
        held weakly: a searcher that is gone is not kept alive, and its hook is dropped."""
        ref = weakref.WeakMethod(hook) if hasattr(hook, "__self__") else (lambda: hook)
        with self._lock:
            self._forget_hooks = [h for h in self._forget_hooks if h() is not None] + [ref]

    def _forget_indexes(self, namespace: str) -> None:
        """Hooks first; then any index file of the namespace that does not match its current
        version (no hook rewrote it: no searcher had it loaded) is shredded, so no persisted
        index keeps a removed chunk's vector or terms. The next search rebuilds it."""
        with self._lock:
            hooks = [h() for h in self._forget_hooks]
        for hook in hooks:
            if hook is not None:
                hook(namespace)
        header = index_files.read_header(self.path, namespace)
        current = list(self.version(namespace)) if self.namespace(namespace, counts=False) is not None else None
        if header is not None and current is not None and header.get("version") == current:
            return
        index_files.drop_namespace(self.path, namespace)

    def vacuum(self) -> None:
        """Give the space of purged rows back to the file system."""
        with self._lock:
            try:
                self._db.execute("VACUUM")
            except sqlite3.Error as exc:
                raise self._error(exc) from None

    def touch(self, namespace: str, ids: Sequence[int]) -> None:
        """Count a retrieval of these chunks (eviction priority mixes access counts in)."""
        if not ids:
            return
        marks = ",".join("?" * len(ids))
        with self._tx():
            self._db.execute(
                f"UPDATE chunks SET access_count = access_count + 1, last_access=? WHERE namespace=? AND id IN ({marks})",
                (time.time(), namespace, *[int(i) for i in ids]),
            )

    def set_compressed(self, namespace: str, chunk_id: int, text: str, n_tokens: int, meta: Mapping[str, object]) -> None:
        """Store an LLM-compressed version beside a chunk's raw text (semantic memory)."""
        with self._tx():
            cur = self._db.execute(
                "UPDATE chunks SET compressed=?, compressed_tokens=?, compress_meta=? WHERE namespace=? AND id=?",
                (text, int(n_tokens), json.dumps(dict(meta)), namespace, int(chunk_id)),
            )
            if cur.rowcount != 1:
                raise StoreError(f"chunk {chunk_id} is not stored in namespace {namespace!r}")

    # ------------------------------------------------------------------ whole namespaces (migrate)
    def dump_namespace(self, namespace: str) -> NamespaceDump:
        info = self.require_namespace(namespace)
        with self._lock:
            self._db.execute("BEGIN")  # one snapshot for every table
            try:
                ns = self._db.execute(f"SELECT {', '.join(NAMESPACE_FIELDS)} FROM namespaces WHERE name=?", (namespace,)).fetchone()
                sessions = self._db.execute(f"SELECT {', '.join(SESSION_FIELDS)} FROM sessions WHERE namespace=?", (namespace,)).fetchall()
                chunks = self._db.execute(
                    f"SELECT {', '.join('c.' + f for f in CHUNK_FIELDS)}, e.vector FROM chunks c "
                    "JOIN embeddings e ON e.chunk_id = c.id WHERE c.namespace=? ORDER BY c.id", (namespace,)
                ).fetchall()
                archive = self._db.execute(
                    "SELECT id, row, reason, archived_at, vector FROM archive WHERE namespace=? ORDER BY id", (namespace,)
                ).fetchall()
            finally:
                self._db.execute("COMMIT")

        def matrix(blobs: list[bytes]) -> np.ndarray:
            if not blobs:
                return np.zeros((0, info.dim), dtype=np.float32)
            return np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), info.dim).astype(np.float32)

        return NamespaceDump(
            namespace=dict(zip(NAMESPACE_FIELDS, ns)),
            sessions=[dict(zip(SESSION_FIELDS, r)) for r in sessions],
            chunks=[dict(zip(CHUNK_FIELDS, r[:-1])) for r in chunks],
            embeddings=matrix([r[-1] for r in chunks]),
            archive=[{"id": r[0], "row": json.loads(r[1]), "reason": r[2], "archived_at": r[3]} for r in archive],
            archive_vectors=matrix([r[-1] for r in archive]),
        )

    def load_namespace(self, dump: NamespaceDump) -> None:
        name = str(dump.namespace["name"])
        with self._tx():
            if self._db.execute("SELECT 1 FROM namespaces WHERE name=?", (name,)).fetchone():
                raise StoreError(f"namespace {name!r} already exists in {self.path}")
            self._db.execute(f"INSERT INTO namespaces ({', '.join(NAMESPACE_FIELDS)}) VALUES ({', '.join('?' * len(NAMESPACE_FIELDS))})",
                             [dump.namespace[k] for k in NAMESPACE_FIELDS])  # fmt: skip
            self._db.executemany(f"INSERT INTO sessions (namespace, {', '.join(SESSION_FIELDS)}) VALUES (?, {', '.join('?' * len(SESSION_FIELDS))})",
                                 [[name, *(r[k] for k in SESSION_FIELDS)] for r in dump.sessions])  # fmt: skip
            self._db.executemany(f"INSERT INTO chunks (namespace, {', '.join(CHUNK_FIELDS)}) VALUES (?, {', '.join('?' * len(CHUNK_FIELDS))})",
                                 [[name, *(c[k] for k in CHUNK_FIELDS)] for c in dump.chunks])  # fmt: skip
            self._db.executemany("INSERT INTO embeddings VALUES (?, ?)",
                                 [(c["id"], np.asarray(v, dtype="<f4").tobytes()) for c, v in zip(dump.chunks, dump.embeddings)])  # fmt: skip
            self._db.executemany("INSERT INTO archive VALUES (?, ?, ?, ?, ?, ?)",
                                 [(a["id"], name, json.dumps(a["row"]), np.asarray(v, dtype="<f4").tobytes(), a["reason"], a["archived_at"])
                                  for a, v in zip(dump.archive, dump.archive_vectors)])  # fmt: skip

    # ------------------------------------------------------------------ reads
    def version(self, namespace: str) -> tuple[int, int, int]:
        """(creation time in µs, max chunk id, revision): changes whenever the namespace's
        chunks do. Every write that adds, archives, restores or removes chunks bumps the
        revision in its transaction; the creation time tells a namespace forgotten and made
        again from the old one. Index reads only (no count over the chunks): every search
        asks, in every process."""
        with self._lock:
            row = self._db.execute(
                "SELECT CAST(n.created_at * 1000000 AS INTEGER), "
                "(SELECT COALESCE(MAX(c.id), 0) FROM chunks c WHERE c.namespace = n.name), n.revision "
                "FROM namespaces n WHERE n.name=?",
                (namespace,),
            ).fetchone()
        return (int(row[0]), int(row[1]), int(row[2])) if row else (0, 0, 0)

    def write_state(self, namespace: str) -> list[WriteState]:
        """Live chunks with what eviction weighs: write score, access count, tokens (id order)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, score, access_count, n_tokens FROM chunks WHERE namespace=? ORDER BY id", (namespace,)
            ).fetchall()
        return [WriteState(int(r[0]), None if r[1] is None else float(r[1]), int(r[2]), int(r[3])) for r in rows]

    def archived(self, namespace: str) -> list[ArchivedChunk]:
        with self._lock:
            rows = self._db.execute(
                "SELECT row, reason, archived_at FROM archive WHERE namespace=? ORDER BY id", (namespace,)
            ).fetchall()
        out = []
        for row, reason, at in rows:
            r = json.loads(row)
            chunk = row_to_chunk([r[c] for c in _READ_COLUMNS.split(", ")])
            out.append(ArchivedChunk(chunk, str(reason), float(at), r.get("score")))
        return out

    def seen(self, namespace: str) -> tuple[list[str], np.ndarray]:
        """Texts and embeddings of every chunk the namespace has seen, live or archived, in
        arrival (id) order: what a write policy compares a new chunk against."""
        info = self.require_namespace(namespace)
        with self._lock:
            live = self._db.execute(
                "SELECT c.id, c.text, e.vector FROM chunks c JOIN embeddings e ON e.chunk_id = c.id WHERE c.namespace=?",
                (namespace,),
            ).fetchall()
            gone = self._db.execute("SELECT id, row, vector FROM archive WHERE namespace=?", (namespace,)).fetchall()
        rows = sorted([(int(i), t, v) for i, t, v in live] + [(int(i), json.loads(r)["text"], v) for i, r, v in gone])
        if not rows:
            return [], np.zeros((0, info.dim), dtype=np.float32)
        matrix = np.frombuffer(b"".join(r[2] for r in rows), dtype="<f4").reshape(len(rows), info.dim)
        return [r[1] for r in rows], matrix.astype(np.float32, copy=True)

    def chunks(self, namespace: str, ids: Sequence[int] | None = None) -> list[Chunk]:
        """Chunks of a namespace in id order, or the given ids in the given order."""
        with self._lock:
            if ids is None:
                rows = self._db.execute(
                    f"SELECT {_READ_COLUMNS} FROM chunks WHERE namespace=? ORDER BY id", (namespace,)
                ).fetchall()
            else:
                marks = ",".join("?" * len(ids))
                found = {
                    r[0]: r
                    for r in self._db.execute(
                        f"SELECT {_READ_COLUMNS} FROM chunks WHERE namespace=? AND id IN ({marks})", (namespace, *ids)
                    )
                }
                rows = [found[i] for i in ids if i in found]
        return [row_to_chunk(r) for r in rows]

    def session_dates(self, namespace: str, ids: Sequence[int]) -> dict[int, str | None]:
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        with self._lock:
            rows = self._db.execute(
                f"SELECT id, session_date FROM chunks WHERE namespace=? AND id IN ({marks})", (namespace, *map(int, ids))
            ).fetchall()
        return dict(rows)

    def chunk_page(
        self, namespace: str, *, after: int = 0, limit: int = 100, session_id: str | None = None
    ) -> list[Chunk]:
        """Up to ``limit`` live chunks with ids above ``after``, in id order (keyset paging:
        a page never shifts when chunks are added or forgotten meanwhile)."""
        where, params = "namespace=? AND id>?", [namespace, int(after)]
        if session_id is not None:
            where, params = where + " AND session_id=?", [*params, session_id]
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_READ_COLUMNS} FROM chunks WHERE {where} ORDER BY id LIMIT ?", (*params, int(limit))
            ).fetchall()
        return [row_to_chunk(r) for r in rows]

    def ids(self, namespace: str) -> np.ndarray:
        """Live chunk ids of a namespace, ascending (an index-only scan of chunks_by_namespace)."""
        with self._lock:
            cur = self._db.execute("SELECT id FROM chunks WHERE namespace=? ORDER BY id", (namespace,))
            return np.fromiter((r[0] for r in cur), dtype=np.int64)

    def _select_by_ids(self, sql: str, namespace: str, ids: Sequence[int] | np.ndarray | None) -> list[tuple]:
        """Run ``sql`` (ending in a WHERE on ``c.namespace=?``) for the namespace, or for these
        chunk ids in batches of 500 (each batch one index lookup per id), sorted by id."""
        with self._lock:
            if ids is None:
                return self._db.execute(sql + " ORDER BY c.id", (namespace,)).fetchall()
            wanted = sorted({int(i) for i in ids})
            rows: list[tuple] = []
            for a in range(0, len(wanted), 500):
                part = wanted[a : a + 500]
                rows += self._db.execute(sql + f" AND c.id IN ({','.join('?' * len(part))})", (namespace, *part)).fetchall()
        return sorted(rows)

    def texts(self, namespace: str, ids: Sequence[int] | np.ndarray | None = None) -> tuple[np.ndarray, list[str]]:
        """(ids, texts) of a namespace's live chunks (or of these ids), in id order."""
        rows = self._select_by_ids("SELECT c.id, c.text FROM chunks c WHERE c.namespace=?", namespace, ids)
        return np.array([r[0] for r in rows], dtype=np.int64), [r[1] for r in rows]

    def embeddings(self, namespace: str, ids: Sequence[int] | np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(ids, matrix) of a namespace (or of these ids), in id order; the matrix is float32,
        one unit row per chunk."""
        info = self.require_namespace(namespace)
        rows = self._select_by_ids(
            "SELECT c.id, e.vector FROM chunks c JOIN embeddings e ON e.chunk_id = c.id WHERE c.namespace=?", namespace, ids
        )
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        if not rows:
            return ids, np.zeros((0, info.dim), dtype=np.float32)
        matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), info.dim)
        return ids, matrix.astype(np.float32, copy=True)
