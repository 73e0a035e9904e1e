"""The PostgreSQL + pgvector store: one memory shared by many servers and workers.

Same contract as the SQLite file (:mod:`budgetmem.store.sqlite_store`): namespaces bound to
an encoder, sessions added idempotently, the archive of chunks a write budget set aside,
and forgetting. Differences that matter:

- **Concurrency.** Connections come from a pool (psycopg 3), so threads do not queue on
  one connection, and any number of processes on any number of machines share the
  database. Every write is one transaction. Writes to a namespace take that namespace's
  advisory lock first, so two servers adding the same session never both store it, and
  an acknowledged add is present exactly once.
- **Search in the database.** ``ranks_in_database``: dense search is pgvector's HNSW
  (cosine) over the namespace's dimension, with iterative index scans so a filter on the
  namespace still yields ``depth`` rows; lexical search is full-text search (``tsvector``
  ranked by ``ts_rank``), the query's stemmed terms OR-ed together so a question matches
  chunks sharing any term. No index files are written beside anything.
- **Forgetting.** Rows are deleted in one transaction and the tables vacuumed, so their
  space is reused; PostgreSQL does not overwrite freed tuples, and WAL archives or
  replicas keep their own copies, so a forget here reports ``wiped=False``.
"""

from __future__ import annotations

import json
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from budgetmem.chunk import Chunk
from budgetmem.errors import NotFoundError, StoreError
from budgetmem.store import pg_bulk, pg_schema
from budgetmem.store.base import Store, describe
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

__all__ = ["PostgresStore"]

_CHUNK_COLUMNS = "id, source, history, session_id, session_date, position, kind, text, n_tokens, dia_ids, speakers, meta"
_READ_COLUMNS = _CHUNK_COLUMNS + ", compressed, compressed_tokens"
_ALL_COLUMNS = _CHUNK_COLUMNS + ", namespace, score, access_count, last_access, compressed, compressed_tokens, compress_meta"
_ALL = _ALL_COLUMNS.split(", ")

_EF_SEARCH = 100
"""HNSW candidate list per search (pgvector's ``hnsw.ef_search``; its default is 40)."""
_RANK = "ts_rank(c.tsv, q.q, 0)"
"""The lexical score. Measured on LoCoMo dev evidence recall@5 (MiniLM-tokenised 256-token
chunks, the question's terms OR-ed): ts_rank without length normalisation 0.750, with
normalisation 1 (1 + log length) 0.731; ts_rank_cd (cover density) 0.566 and 0.587; bm25s
0.745 on the same chunks. Cover density rewards query terms that sit close together, which
an OR of a question's words rarely gives, so term frequency ranks better here."""


def _pool(address: str, size: int) -> Any:
    try:
        from psycopg_pool import ConnectionPool
    except ImportError:  # pragma: no cover - the postgres extra installs it
        raise StoreError("the PostgreSQL store needs psycopg", hint="pip install 'budgetmem[postgres]'") from None
    return ConnectionPool(
        _libpq(address),
        min_size=1,
        max_size=size,
        configure=pg_schema.configure,
        open=False,
        kwargs={"connect_timeout": 10},
    )


def _libpq(address: str) -> str:
    """libpq takes ``postgresql://`` and ``postgres://`` alike; normalise for messages' sake."""
    return "postgresql://" + address.split("://", 1)[1]


class PostgresStore(Store):
    """A budgetmem store in a PostgreSQL database (needs the pgvector extension)."""

    backend = "postgresql"
    ranks_in_database = True

    def __init__(self, address: str, *, create: bool = True, pool_size: int = 8) -> None:
        import psycopg

        self._address = address
        self._where = describe(address)
        self._forget_hooks: list[Callable[[], Callable[[str], None] | None]] = []
        self._lock = threading.Lock()
        self._pool = _pool(address, pool_size)
        try:
            # One plain connection first: the schema (and the vector extension the pooled
            # connections register) must exist before the pool opens.
            with psycopg.connect(_libpq(address), connect_timeout=10) as conn:
                self.schema_version = pg_schema.migrate(conn, self._where)
            self._pool.open(wait=True, timeout=15)
        except psycopg.Error as exc:
            self._pool.close()
            raise StoreError(f"cannot open the PostgreSQL store at {self._where}: {_first_line(exc)}",
                             hint="check the address, that the server runs, and that pgvector is installed") from None
        except Exception as exc:
            self._pool.close()
            if isinstance(exc, StoreError):
                raise
            raise StoreError(f"cannot reach the PostgreSQL store at {self._where}: {_first_line(exc)}",
                             hint="check the address and that the server runs") from None
        del create  # a database exists before anyone names it; the schema is created on open

    # ------------------------------------------------------------------ plumbing
    @property
    def address(self) -> str:
        return self._address

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        """A connection inside one transaction (committed at the end, rolled back on error)."""
        with self._pool.connection() as conn, conn.transaction():
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Any]:
        with self._pool.connection() as conn:
            yield conn

    def side_query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._read() as conn:
            return conn.execute(sql.replace("?", "%s"), params).fetchall()  # type: ignore[no-any-return]

    def side_write(self, sql: str, params: Sequence[Any] = (), *, many: bool = False, wait: bool = True) -> int | None:
        import psycopg

        try:
            with self._tx() as conn, conn.cursor() as cur:
                if not wait:
                    cur.execute("SET LOCAL lock_timeout = '50ms'")
                if many:
                    cur.executemany(sql.replace("?", "%s"), params)
                else:
                    cur.execute(sql.replace("?", "%s"), params)
                return int(cur.rowcount)
        except psycopg.errors.LockNotAvailable:
            if wait:
                raise
            return None

    def close(self) -> None:
        self._pool.close()

    def _lock_namespaces(self, conn: Any, names: Sequence[str]) -> None:
        """Serialise writers of these namespaces across every process (sorted: no deadlock)."""
        for name in sorted(set(names)):
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", ("budgetmem/ns/" + name,))

    # ------------------------------------------------------------------ namespaces
    _NAMESPACE_INFO = """SELECT n.name, n.encoder, n.dim, n.chunk_tokens, n.created_at,
                          (SELECT COUNT(*) FROM chunks c WHERE c.namespace = n.name),
                          (SELECT COALESCE(SUM(n_tokens), 0)::bigint FROM chunks c WHERE c.namespace = n.name),
                          (SELECT COUNT(*) FROM sessions s WHERE s.namespace = n.name),
                          n.write_policy, n.write_budget, n.seen_chunks, n.seen_tokens,
                          (SELECT COUNT(*) FROM archive a WHERE a.namespace = n.name),
                          (SELECT COALESCE(SUM((a.row->>'n_tokens')::bigint), 0)::bigint FROM archive a
                           WHERE a.namespace = n.name),
                          n.revision
                   FROM namespaces n"""

    def namespaces(self) -> list[NamespaceInfo]:
        with self._read() as conn:
            rows = conn.execute(self._NAMESPACE_INFO + " ORDER BY n.name").fetchall()
        return [_info(r) for r in rows]

    _NAMESPACE_SETTINGS = """SELECT n.name, n.encoder, n.dim, n.chunk_tokens, n.created_at, 0, 0, 0,
                                    n.write_policy, n.write_budget, n.seen_chunks, n.seen_tokens, 0, 0, n.revision
                             FROM namespaces n"""

    def namespace(self, name: str, *, counts: bool = True) -> NamespaceInfo | None:
        sql = self._NAMESPACE_INFO if counts else self._NAMESPACE_SETTINGS
        with self._read() as conn:
            row = conn.execute(sql + " WHERE n.name = %s", (name,)).fetchone()
        return _info(row) if row else None

    def require_namespace(self, name: str, *, counts: bool = True) -> NamespaceInfo:
        info = self.namespace(name, counts=counts)
        if info is None:
            with self._read() as conn:
                names = [r[0] for r in conn.execute("SELECT name FROM namespaces ORDER BY name LIMIT 11")]
            known = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "") if names else "none"
            raise NotFoundError(f"namespace {name!r} not found in {self._where}", hint=f"namespaces here: {known}")
        return info

    def check_encoder(self, namespace: str, encoder: str, dim: int) -> bool:
        with self._read() as conn:
            return _check_encoder(conn, namespace, encoder, dim)

    def known_sessions(self, namespace: str) -> set[str]:
        with self._read() as conn:
            return {r[0] for r in conn.execute("SELECT key FROM sessions WHERE namespace=%s", (namespace,))}

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
        """As :meth:`SQLiteStore.add`: sessions already stored are skipped; everything
        (rejections, evictions, the write policy) commits together or not at all."""
        ids: list[int] = []
        names = list(dict.fromkeys([b.namespace for b in batches] + list(evict or {}) + list(write_policy or {})))
        with self._tx() as conn:
            self._lock_namespaces(conn, names)
            known: dict[str, set[str]] = {}
            for ns in dict.fromkeys(b.namespace for b in batches):
                if not _check_encoder(conn, ns, encoder, dim):
                    pg_schema.ensure_dim_index(conn, dim)
                    conn.execute(
                        "INSERT INTO namespaces (name, encoder, dim, chunk_tokens, created_at) VALUES (%s, %s, %s, %s, %s)",
                        (ns, encoder, dim, chunk_tokens, time.time()),
                    )
                known[ns] = {r[0] for r in conn.execute("SELECT key FROM sessions WHERE namespace=%s", (ns,))}
            for ns, (policy, budget) in (write_policy or {}).items():
                conn.execute("UPDATE namespaces SET write_policy=%s, write_budget=%s WHERE name=%s", (policy, budget, ns))
            for b in batches:
                if b.key in known[b.namespace]:
                    if skipped is not None:
                        skipped.append(b.key)
                    continue
                ids += self._add_batch(conn, b, dim)
                known[b.namespace].add(b.key)
            for ns, victims in (evict or {}).items():
                _move_to_archive(conn, ns, victims, "evicted")
        return ids

    def _add_batch(self, conn: Any, b: SessionBatch, dim: int) -> list[int]:
        if b.embeddings.shape != (len(b.chunks), dim):
            raise StoreError(f"session {b.session_id}: {b.embeddings.shape} embeddings for {len(b.chunks)} chunks")
        scores = list(b.scores) if b.scores is not None else [None] * len(b.chunks)
        admitted = list(b.admitted) if b.admitted is not None else [True] * len(b.chunks)
        if not (len(scores) == len(admitted) == len(b.chunks)):
            raise StoreError(f"session {b.session_id}: scores / admitted flags do not match its chunks")
        ids: list[int] = []
        if b.chunks:
            # One round trip for the session's ids, then one batched insert.
            ids = [int(r[0]) for r in conn.execute(
                "SELECT nextval(pg_get_serial_sequence('budgetmem.chunks', 'id')) FROM generate_series(1, %s)",
                (len(b.chunks),),
            ).fetchall()]  # fmt: skip
            rows = [
                (cid, c.source, c.history, c.session_id, c.session_date, c.position, c.kind, c.text, c.n_tokens,
                 json.dumps(list(c.dia_ids)), json.dumps(list(c.speakers)), json.dumps(c.meta), b.namespace,
                 None if s is None else float(s), dim, np.asarray(v, dtype=np.float32))
                for cid, c, v, s in zip(ids, b.chunks, b.embeddings, scores)
            ]  # fmt: skip
            with conn.cursor() as cur:
                cur.executemany(
                    f"INSERT INTO chunks ({_CHUNK_COLUMNS}, namespace, score, dim, embedding) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    rows,
                )
        conn.execute(
            "INSERT INTO sessions VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (b.namespace, b.key, b.source, b.history, b.session_id, len(b.chunks), time.time()),
        )
        conn.execute(
            "UPDATE namespaces SET seen_chunks = seen_chunks + %s, seen_tokens = seen_tokens + %s, "
            "revision = revision + 1 WHERE name=%s",
            (len(b.chunks), sum(c.n_tokens for c in b.chunks), b.namespace),
        )
        _move_to_archive(conn, b.namespace, [i for i, keep in zip(ids, admitted) if not keep], "rejected")
        return ids

    def bulk_add(
        self,
        namespace: str,
        batches: Iterable[SessionBatch],
        *,
        encoder: str,
        dim: int,
        chunk_tokens: int,
        maintenance_work_mem: str = "1GB",
    ) -> pg_bulk.BulkReport:
        """A large first load of a new namespace, in one transaction: the rows by ``COPY``
        and, when the table holds no chunks yet, the HNSW and full-text indexes built once
        after them rather than kept up to date row by row (:mod:`budgetmem.store.pg_bulk`).
        ``batches`` may be a generator (nothing is held in memory); every chunk is admitted.
        Sessions are not checked against earlier ones (the namespace is new); a session key
        given twice makes the whole load fail and roll back."""

        def checked() -> Iterator[SessionBatch]:
            for b in batches:
                if b.namespace != namespace:
                    raise StoreError(f"bulk_add into {namespace!r} was given a session of {b.namespace!r}")
                yield b

        report = pg_bulk.BulkReport()
        with self._tx() as conn:
            self._lock_namespaces(conn, [namespace])
            if conn.execute("SELECT 1 FROM namespaces WHERE name=%s", (namespace,)).fetchone():
                raise StoreError(f"namespace {namespace!r} already exists in {self._where}",
                                 hint="bulk_add loads a new namespace; add() writes to an existing one")  # fmt: skip
            conn.execute(
                "INSERT INTO namespaces (name, encoder, dim, chunk_tokens, created_at) VALUES (%s, %s, %s, %s, %s)",
                (namespace, encoder, dim, chunk_tokens, time.time()),
            )
            with pg_bulk.indexes_after_load(conn, dim, maintenance_work_mem, report):
                n_chunks, n_sessions, n_tokens = pg_bulk.copy_batches(conn, checked(), dim)
            conn.execute("UPDATE namespaces SET seen_chunks=%s, seen_tokens=%s, revision = revision + %s WHERE name=%s",
                         (n_chunks, n_tokens, n_sessions, namespace))  # fmt: skip
        report.update(chunks=n_chunks, sessions=n_sessions)
        return report

    def archive(self, namespace: str, ids: Sequence[int], reason: str = "evicted") -> int:
        with self._tx() as conn:
            self._lock_namespaces(conn, [namespace])
            return _move_to_archive(conn, namespace, ids, reason)

    def restore(self, namespace: str, ids: Sequence[int] | None = None) -> int:
        with self._tx() as conn:
            self._lock_namespaces(conn, [namespace])
            rows = conn.execute(
                "SELECT id, row, vector FROM archive WHERE namespace=%s ORDER BY id", (namespace,)
            ).fetchall()
            if ids is not None:
                wanted = {int(i) for i in ids}
                rows = [r for r in rows if int(r[0]) in wanted]
            for chunk_id, record, vector in rows:
                values = [record[c] for c in _ALL]
                conn.execute(
                    f"INSERT INTO chunks ({_ALL_COLUMNS}, dim, embedding) VALUES ({', '.join(['%s'] * (len(_ALL) + 2))})",
                    [*values, int(_array(vector).shape[0]), vector],
                )
                conn.execute("DELETE FROM archive WHERE id=%s", (chunk_id,))
            if rows:
                conn.execute("UPDATE namespaces SET revision = revision + 1 WHERE name=%s", (namespace,))
        return len(rows)

    def purge(self, namespace: str | None = None, ids: Sequence[int] | None = None) -> int:
        where, params = ("WHERE namespace=%s", [namespace]) if namespace else ("", [])
        if ids is not None:
            where = (where + " AND " if where else "WHERE ") + "id = ANY(%s)"
            params.append([int(i) for i in ids])
        with self._tx() as conn:
            return int(conn.execute(f"DELETE FROM archive {where}", params).rowcount)

    def touch(self, namespace: str, ids: Sequence[int]) -> None:
        if not ids:
            return
        with self._tx() as conn:
            conn.execute(
                "UPDATE chunks SET access_count = access_count + 1, last_access=%s WHERE namespace=%s AND id = ANY(%s)",
                (time.time(), namespace, [int(i) for i in ids]),
            )

    def set_compressed(self, namespace: str, chunk_id: int, text: str, n_tokens: int, meta: Mapping[str, object]) -> None:
        with self._tx() as conn:
            cur = conn.execute(
                "UPDATE chunks SET compressed=%s, compressed_tokens=%s, compress_meta=%s WHERE namespace=%s AND id=%s",
                (text, int(n_tokens), json.dumps(dict(meta)), namespace, int(chunk_id)),
            )
            if cur.rowcount != 1:
                raise StoreError(f"chunk {chunk_id} is not stored in namespace {namespace!r}")

    # ------------------------------------------------------------------ forgetting
    def delete(self, namespace: str, chunk_id: int, *, vacuum: bool = True) -> Removed:
        self.require_namespace(namespace)
        with self._tx() as conn:
            self._lock_namespaces(conn, [namespace])
            taken = _remove(conn, namespace, "id=%s", "id=%s", [int(chunk_id)])
            if not taken.live + taken.archived:
                raise NotFoundError(
                    f"chunk {chunk_id} not found in namespace {namespace!r}",
                    hint="chunk ids are in budgetmem search --json output",
                )
            sessions = _drop_from_sessions(conn, namespace, taken.sessions)
        return self._removed(namespace, taken, sessions, vacuum=vacuum)

    def forget_session(self, namespace: str, session_id: str, *, vacuum: bool = True) -> Removed:
        self.require_namespace(namespace)
        with self._tx() as conn:
            self._lock_namespaces(conn, [namespace])
            taken = _remove(conn, namespace, "session_id=%s", "row->>'session_id'=%s", [session_id])
            cur = conn.execute("DELETE FROM sessions WHERE namespace=%s AND session_id=%s", (namespace, session_id))
            if not taken.live + taken.archived + cur.rowcount:
                raise NotFoundError(f"session {session_id!r} not found in namespace {namespace!r}")
        return self._removed(namespace, taken, int(cur.rowcount), vacuum=vacuum)

    def forget_namespace(self, namespace: str, *, vacuum: bool = True) -> Removed:
        self.require_namespace(namespace)
        with self._tx() as conn:
            self._lock_namespaces(conn, [namespace])
            taken = _remove(conn, namespace, "TRUE", "TRUE", [])
            cur = conn.execute("DELETE FROM sessions WHERE namespace=%s", (namespace,))
            conn.execute("DELETE FROM namespaces WHERE name=%s", (namespace,))
        return self._removed(namespace, taken, int(cur.rowcount), vacuum=vacuum, namespace_removed=True)

    def wipe(self, *, vacuum: bool = True) -> bool:
        """VACUUM the tables forgetting touches, so the deleted rows' space is reused. False:
        PostgreSQL does not overwrite freed tuples, and WAL archives or replicas keep copies."""
        if vacuum:
            self.vacuum()
        return False

    def vacuum(self) -> None:
        with self._read() as conn:
            conn.commit()
            conn.autocommit = True  # VACUUM cannot run inside a transaction
            try:
                conn.execute("VACUUM chunks, archive, sessions")
            finally:
                conn.autocommit = False

    def _removed(self, namespace: str, taken: Taken, sessions: int, *, vacuum: bool,
                 namespace_removed: bool = False) -> Removed:  # fmt: skip
        wiped = self.wipe(vacuum=vacuum)
        with self._lock:
            hooks = [h() for h in self._forget_hooks]
        for hook in hooks:
            if hook is not None:
                hook(namespace)
        return Removed(namespace=namespace, chunks=taken.live, archived=taken.archived, sessions=sessions,
                       namespace_removed=namespace_removed, wiped=wiped, texts=taken.texts)  # fmt: skip

    def on_forget(self, hook: Callable[[str], None]) -> None:
        ref = weakref.WeakMethod(hook) if hasattr(hook, "__self__") else (lambda: hook)
        with self._lock:
            self._forget_hooks = [h for h in self._forget_hooks if h() is not None] + [ref]

    # ------------------------------------------------------------------ whole namespaces (migrate)
    def dump_namespace(self, namespace: str) -> NamespaceDump:
        info = self.require_namespace(namespace)
        with self._pool.connection() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")  # one snapshot for every table
            ns = conn.execute(f"SELECT {', '.join(NAMESPACE_FIELDS)} FROM namespaces WHERE name=%s", (namespace,)).fetchone()
            sessions = conn.execute(f"SELECT {', '.join(SESSION_FIELDS)} FROM sessions WHERE namespace=%s", (namespace,)).fetchall()
            chunks = conn.execute(f"SELECT {', '.join(CHUNK_FIELDS)}, embedding FROM chunks WHERE namespace=%s ORDER BY id",
                                  (namespace,)).fetchall()  # fmt: skip
            archive = conn.execute(
                "SELECT id, row, reason, archived_at, vector FROM archive WHERE namespace=%s ORDER BY id", (namespace,)
            ).fetchall()

        def matrix(vectors: list[Any]) -> np.ndarray:
            if not vectors:
                return np.zeros((0, info.dim), dtype=np.float32)
            return np.stack([_array(v) for v in vectors])

        return NamespaceDump(
            namespace={k: (int(v) if k in ("seen_chunks", "seen_tokens", "revision") else v) for k, v in zip(NAMESPACE_FIELDS, ns)},
            sessions=[dict(zip(SESSION_FIELDS, r)) for r in sessions],
            chunks=[dict(zip(CHUNK_FIELDS, r[:-1])) for r in chunks],
            embeddings=matrix([r[-1] for r in chunks]),
            archive=[{"id": r[0], "row": r[1], "reason": r[2], "archived_at": r[3]} for r in archive],
            archive_vectors=matrix([r[-1] for r in archive]),
        )

    def load_namespace(self, dump: NamespaceDump) -> None:
        from psycopg.types.json import Jsonb

        name = str(dump.namespace["name"])
        dim = int(dump.namespace["dim"])  # type: ignore[call-overload]
        with self._tx() as conn:
            self._lock_namespaces(conn, [name])
            if conn.execute("SELECT 1 FROM namespaces WHERE name=%s", (name,)).fetchone():
                raise StoreError(f"namespace {name!r} already exists in {self._where}")
            ids = [int(c["id"]) for c in dump.chunks] + [int(a["id"]) for a in dump.archive]  # type: ignore[call-overload]
            taken = conn.execute(
                "SELECT id FROM chunks WHERE id = ANY(%s) UNION SELECT id FROM archive WHERE id = ANY(%s) LIMIT 1", (ids, ids)
            ).fetchone()
            if taken:
                raise StoreError(f"chunk id {taken[0]} of namespace {name!r} is already used in {self._where}",
                                 hint="migrate into an empty database")  # fmt: skip
            conn.execute(f"INSERT INTO namespaces ({', '.join(NAMESPACE_FIELDS)}) VALUES ({', '.join(['%s'] * len(NAMESPACE_FIELDS))})",
                         [dump.namespace[k] for k in NAMESPACE_FIELDS])  # fmt: skip
            # Into an empty database (a first `budgetmem migrate`) the indexes are built after the rows.
            with pg_bulk.indexes_after_load(conn, dim, "1GB", pg_bulk.BulkReport()), conn.cursor() as cur:
                cur.executemany(f"INSERT INTO sessions (namespace, {', '.join(SESSION_FIELDS)}) VALUES (%s, {', '.join(['%s'] * len(SESSION_FIELDS))})",
                                [[name, *(r[k] for k in SESSION_FIELDS)] for r in dump.sessions])  # fmt: skip
                cur.executemany(
                    f"INSERT INTO chunks (namespace, {', '.join(CHUNK_FIELDS)}, dim, embedding) "
                    f"VALUES (%s, {', '.join(['%s'] * len(CHUNK_FIELDS))}, %s, %s)",
                    [[name, *(c[k] for k in CHUNK_FIELDS), dim, np.asarray(v, dtype=np.float32)]
                     for c, v in zip(dump.chunks, dump.embeddings)],
                )  # fmt: skip
                cur.executemany("INSERT INTO archive VALUES (%s, %s, %s, %s, %s, %s)",
                                [(a["id"], name, Jsonb(a["row"]), np.asarray(v, dtype=np.float32), a["reason"], a["archived_at"])
                                 for a, v in zip(dump.archive, dump.archive_vectors)])  # fmt: skip
            # New chunks must not take a copied id.
            conn.execute("SELECT setval(pg_get_serial_sequence('budgetmem.chunks', 'id'), "
                         "GREATEST((SELECT last_value FROM budgetmem.chunks_id_seq), %s))", (max(ids, default=1),))  # fmt: skip

    # ------------------------------------------------------------------ reads
    def version(self, namespace: str) -> tuple[int, int, int]:
        """As the SQLite store's: (creation time in µs, max chunk id, revision), index reads only."""
        with self._read() as conn:
            row = conn.execute(
                "SELECT (n.created_at * 1000000)::bigint, "
                "(SELECT COALESCE(MAX(c.id), 0) FROM chunks c WHERE c.namespace = n.name), n.revision "
                "FROM namespaces n WHERE n.name=%s",
                (namespace,),
            ).fetchone()
        return (int(row[0]), int(row[1]), int(row[2])) if row else (0, 0, 0)

    def write_state(self, namespace: str) -> list[WriteState]:
        with self._read() as conn:
            rows = conn.execute(
                "SELECT id, score, access_count, n_tokens FROM chunks WHERE namespace=%s ORDER BY id", (namespace,)
            ).fetchall()
        return [WriteState(int(r[0]), None if r[1] is None else float(r[1]), int(r[2]), int(r[3])) for r in rows]

    def archived(self, namespace: str) -> list[ArchivedChunk]:
        with self._read() as conn:
            rows = conn.execute(
                "SELECT row, reason, archived_at FROM archive WHERE namespace=%s ORDER BY id", (namespace,)
            ).fetchall()
        return [
            ArchivedChunk(row_to_chunk([r[c] for c in _READ_COLUMNS.split(", ")]), str(reason), float(at), r.get("score"))
            for r, reason, at in rows
        ]

    def seen(self, namespace: str) -> tuple[list[str], np.ndarray]:
        info = self.require_namespace(namespace)
        with self._read() as conn:
            live = conn.execute("SELECT id, text, embedding FROM chunks WHERE namespace=%s", (namespace,)).fetchall()
            gone = conn.execute("SELECT id, row->>'text', vector FROM archive WHERE namespace=%s", (namespace,)).fetchall()
        rows = sorted([(int(i), t, v) for i, t, v in live + gone], key=lambda r: r[0])
        if not rows:
            return [], np.zeros((0, info.dim), dtype=np.float32)
        return [r[1] for r in rows], np.stack([_array(r[2]) for r in rows])

    def session_dates(self, namespace: str, ids: Sequence[int]) -> dict[int, str | None]:
        if not ids:
            return {}
        with self._read() as conn:
            rows = conn.execute(
                "SELECT id, session_date FROM chunks WHERE namespace=%s AND id = ANY(%s)", (namespace, [int(i) for i in ids])
            ).fetchall()
        return {int(r[0]): r[1] for r in rows}

    def chunks(self, namespace: str, ids: Sequence[int] | None = None) -> list[Chunk]:
        with self._read() as conn:
            if ids is None:
                rows = conn.execute(
                    f"SELECT {_READ_COLUMNS} FROM chunks WHERE namespace=%s ORDER BY id", (namespace,)
                ).fetchall()
            else:
                found = {r[0]: r for r in conn.execute(
                    f"SELECT {_READ_COLUMNS} FROM chunks WHERE namespace=%s AND id = ANY(%s)",
                    (namespace, [int(i) for i in ids]),
                )}  # fmt: skip
                rows = [found[int(i)] for i in ids if int(i) in found]
        return [row_to_chunk(r) for r in rows]

    def chunk_page(self, namespace: str, *, after: int = 0, limit: int = 100, session_id: str | None = None) -> list[Chunk]:
        where, params = "namespace=%s AND id>%s", [namespace, int(after)]
        if session_id is not None:
            where, params = where + " AND session_id=%s", [*params, session_id]
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {_READ_COLUMNS} FROM chunks WHERE {where} ORDER BY id LIMIT %s", (*params, int(limit))
            ).fetchall()
        return [row_to_chunk(r) for r in rows]

    def ids(self, namespace: str) -> np.ndarray:
        with self._read() as conn:
            rows = conn.execute("SELECT id FROM chunks WHERE namespace=%s ORDER BY id", (namespace,)).fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def _by_ids(self, columns: str, namespace: str, ids: Sequence[int] | np.ndarray | None) -> list[tuple]:
        with self._read() as conn:
            if ids is None:
                return conn.execute(f"SELECT {columns} FROM chunks WHERE namespace=%s ORDER BY id", (namespace,)).fetchall()
            return conn.execute(
                f"SELECT {columns} FROM chunks WHERE namespace=%s AND id = ANY(%s) ORDER BY id",
                (namespace, sorted({int(i) for i in ids})),
            ).fetchall()

    def texts(self, namespace: str, ids: Sequence[int] | np.ndarray | None = None) -> tuple[np.ndarray, list[str]]:
        rows = self._by_ids("id, text", namespace, ids)
        return np.array([r[0] for r in rows], dtype=np.int64), [r[1] for r in rows]

    def embeddings(self, namespace: str, ids: Sequence[int] | np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        info = self.require_namespace(namespace)
        rows = self._by_ids("id, embedding", namespace, ids)
        out = np.array([r[0] for r in rows], dtype=np.int64)
        if not rows:
            return out, np.zeros((0, info.dim), dtype=np.float32)
        return out, np.stack([_array(r[1]) for r in rows])

    # ------------------------------------------------------------------ ranking in the database
    def dense_ranking(self, namespace: str, vector: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
        """Nearest chunks by cosine through the dimension's HNSW index. Iterative scans keep
        reading the graph until ``depth`` rows of this namespace are found (a plain filtered
        HNSW scan can return fewer when the namespace is a small part of the table)."""
        with self._read() as conn:
            row = conn.execute("SELECT dim FROM namespaces WHERE name=%s", (namespace,)).fetchone()
        if row is None:
            self.require_namespace(namespace)  # raises, naming the namespaces that exist
        d = int(row[0])
        q = np.asarray(vector, dtype=np.float32).reshape(-1)
        if q.shape[0] != d:
            raise StoreError(f"query vector has {q.shape[0]} dimensions, namespace {namespace!r} has {d}")
        with self._tx() as conn:
            conn.execute(f"SET LOCAL hnsw.ef_search = {max(_EF_SEARCH, int(depth))}")
            conn.execute("SET LOCAL hnsw.iterative_scan = strict_order")
            rows = conn.execute(
                f"SELECT id, embedding::public.vector({d}) <=> %s::public.vector({d}) AS distance FROM chunks "
                f"WHERE dim = {d} AND namespace = %s ORDER BY distance LIMIT %s",
                (q, namespace, int(depth)),
            ).fetchall()
        return (np.array([r[0] for r in rows], dtype=np.int64),
                np.array([1.0 - float(r[1]) for r in rows], dtype=np.float32))  # fmt: skip

    def lexical_ranking(self, namespace: str, query: str, depth: int) -> tuple[np.ndarray, np.ndarray]:
        """Chunks sharing any stemmed term of the query, by ``ts_rank``. The query's terms are
        OR-ed: ``plainto_tsquery`` would AND them, and a question rarely has every word of
        its answer."""
        with self._read() as conn:
            rows = conn.execute(
                "WITH q AS (SELECT to_tsquery('simple', COALESCE(string_agg(quote_literal(lexeme), ' | '), '')) AS q "
                "FROM unnest(to_tsvector('english', %s))) "
                f"SELECT c.id, {_RANK} AS r FROM chunks c, q "
                "WHERE c.namespace = %s AND c.tsv @@ q.q ORDER BY r DESC, c.id LIMIT %s",
                (query, namespace, int(depth)),
            ).fetchall()
        return (np.array([r[0] for r in rows], dtype=np.int64),
                np.array([float(r[1]) for r in rows], dtype=np.float32))  # fmt: skip


# ---------------------------------------------------------------------- helpers (inside a transaction)
def _check_encoder(conn: Any, namespace: str, encoder: str, dim: int) -> bool:
    row = conn.execute("SELECT encoder, dim FROM namespaces WHERE name=%s", (namespace,)).fetchone()
    if row is None:
        return False
    if (row[0], row[1]) != (encoder, dim):
        raise StoreError(
            f"namespace {namespace!r} was embedded with {row[0]} ({row[1]}-d), not {encoder} ({dim}-d)",
            hint=f"use --encoder {row[0]} or another namespace",
        )
    return True


def _move_to_archive(conn: Any, namespace: str, ids: Sequence[int], reason: str) -> int:
    """Copy whole rows and vectors to the archive, then delete them."""
    ids = [int(i) for i in ids]
    if not ids:
        return 0
    rows = conn.execute(
        f"SELECT {_ALL_COLUMNS}, embedding FROM chunks WHERE namespace=%s AND id = ANY(%s)", (namespace, ids)
    ).fetchall()
    found = {int(r[0]) for r in rows}
    missing = [i for i in ids if i not in found]
    if missing:
        raise StoreError(f"chunk {missing[0]} is not stored in namespace {namespace!r}")
    from psycopg.types.json import Jsonb

    now = time.time()
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO archive VALUES (%s, %s, %s, %s, %s, %s)",
            [(r[0], namespace, Jsonb(dict(zip(_ALL, r[:-1]))), r[-1], reason, now) for r in rows],
        )
    conn.execute("DELETE FROM chunks WHERE id = ANY(%s)", (ids,))
    conn.execute("UPDATE namespaces SET revision = revision + 1 WHERE name=%s", (namespace,))
    return len(rows)


def _remove(conn: Any, namespace: str, live_where: str, archived_where: str, params: Sequence[object]) -> Taken:
    live = conn.execute(
        f"DELETE FROM chunks WHERE namespace=%s AND {live_where} RETURNING source, history, session_id, text, n_tokens",
        (namespace, *params),
    ).fetchall()
    gone = conn.execute(
        f"DELETE FROM archive WHERE namespace=%s AND {archived_where} RETURNING "
        "row->>'source', row->>'history', row->>'session_id', row->>'text', (row->>'n_tokens')::int",
        (namespace, *params),
    ).fetchall()
    rows = list(live) + list(gone)
    if rows:
        conn.execute(
            "UPDATE namespaces SET revision = revision + 1, seen_chunks = GREATEST(0, seen_chunks - %s), "
            "seen_tokens = GREATEST(0, seen_tokens - %s) WHERE name=%s",
            (len(rows), sum(int(r[4]) for r in rows), namespace),
        )
    return Taken(
        live=len(live),
        archived=len(gone),
        sessions=Counter((str(r[0]), str(r[1]), str(r[2])) for r in rows),
        texts=tuple(str(r[3]) for r in rows),
    )


def _drop_from_sessions(conn: Any, namespace: str, removed: Counter[tuple[str, str, str]]) -> int:
    """As the SQLite store: take removed chunks off their sessions' counts, newest first."""
    dropped = 0
    for (source, history, session_id), n_removed in removed.items():
        group = (namespace, source, history, session_id)
        match = "namespace=%s AND source=%s AND history=%s AND session_id=%s"
        left = conn.execute(
            f"SELECT (SELECT COUNT(*) FROM chunks WHERE {match}) + (SELECT COUNT(*) FROM archive WHERE namespace=%s "
            "AND row->>'source'=%s AND row->>'history'=%s AND row->>'session_id'=%s)",
            (*group, *group),
        ).fetchone()[0]
        rows = conn.execute(f"SELECT key, n_chunks FROM sessions WHERE {match} ORDER BY added_at DESC", group).fetchall()
        for key, n_chunks in rows:
            take = min(n_removed, int(n_chunks))
            n_removed -= take
            if not left or n_chunks - take <= 0:
                conn.execute("DELETE FROM sessions WHERE namespace=%s AND key=%s", (namespace, key))
                dropped += 1
            elif take:
                conn.execute("UPDATE sessions SET n_chunks=%s WHERE namespace=%s AND key=%s",
                             (n_chunks - take, namespace, key))  # fmt: skip
    return dropped


def _info(r: Sequence[Any]) -> NamespaceInfo:
    return NamespaceInfo(*(int(v) if isinstance(v, int) else v for v in r))


def _array(v: Any) -> np.ndarray:
    return np.asarray(v.to_numpy() if hasattr(v, "to_numpy") else v, dtype=np.float32)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
