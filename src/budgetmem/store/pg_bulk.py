"""A large first load into PostgreSQL: rows by ``COPY``, indexes built once afterwards.

Keeping pgvector's HNSW graph and the GIN full-text index up to date row by row is what
makes inserts slow: on a 20k-chunk load (384-d, 150-word texts, this project's 2-core test
machine) ``PostgresStore.add`` stored 131 chunks/s with both indexes, 866/s without the
HNSW index, 1,023/s without either, while the client spent 0.7 s of CPU in all: the time is
the server's, maintaining the HNSW graph. Building an index over rows already there is much
cheaper than inserting them one by one. pgvector's README (Performance, Loading) says to
load with ``COPY ... (FORMAT BINARY)`` and to "add any indexes *after* loading the initial
data", and that HNSW builds "significantly faster when the graph fits into
maintenance_work_mem"; PostgreSQL's manual (Populating a Database, Remove Indexes) gives the
same advice for every index.

So a load into a table that holds no chunks yet drops the full-text index and the
dimension's HNSW index, copies the rows, and builds both again, all in one transaction:
on any error nothing is written and the indexes are as they were. The table is locked
for the whole load (``ACCESS EXCLUSIVE``), which costs nothing while it is empty and
keeps another writer from adding rows the check did not see. Into a table that already
holds chunks the rows are copied with the indexes kept (they serve other namespaces).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from budgetmem.errors import StoreError
from budgetmem.store import pg_schema
from budgetmem.store.records import SessionBatch

__all__ = ["BulkReport", "indexes_after_load", "copy_batches"]

_COPY_COLUMNS = ("source", "history", "session_id", "session_date", "position", "kind", "text", "n_tokens",
                 "dia_ids", "speakers", "meta", "namespace", "score", "dim", "embedding")  # fmt: skip
_COPY_TYPES = ("text", "text", "text", "text", "int4", "text", "text", "int4",
               "text", "text", "text", "text", "float8", "int4", "vector")  # fmt: skip


class BulkReport(dict[str, Any]):
    """What a bulk load did: ``chunks``, ``sessions``, ``deferred`` (indexes built after the
    rows), and seconds spent in ``copy_s`` and ``index_s``."""


@contextmanager
def indexes_after_load(conn: Any, dim: int, maintenance_work_mem: str, report: BulkReport) -> Iterator[None]:
    """Inside a transaction: if ``chunks`` is empty, drop its full-text index and this
    dimension's HNSW index for the body, then build them (with ``maintenance_work_mem``)."""
    # The dimension's lock first, as ensure_dim_index takes it before touching the table:
    # the same order in every writer, so none waits on another in a cycle.
    conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (pg_schema.LOCK_KEY, int(dim)))
    conn.execute("LOCK TABLE chunks IN ACCESS EXCLUSIVE MODE")
    empty = conn.execute("SELECT NOT EXISTS (SELECT 1 FROM chunks)").fetchone()[0]
    report["deferred"] = bool(empty)
    if empty:
        conn.execute("DROP INDEX IF EXISTS chunks_tsv")
        conn.execute(f"DROP INDEX IF EXISTS chunks_hnsw_{int(dim)}")
    else:
        pg_schema.ensure_dim_index(conn, dim)
    t = time.perf_counter()
    yield
    report["copy_s"] = time.perf_counter() - t
    if empty:
        t = time.perf_counter()
        conn.execute("SELECT set_config('maintenance_work_mem', %s, true)", (maintenance_work_mem,))
        conn.execute("CREATE INDEX chunks_tsv ON chunks USING gin (tsv)")
        pg_schema.ensure_dim_index(conn, dim)
        report["index_s"] = time.perf_counter() - t
    else:
        report["index_s"] = 0.0


def copy_batches(conn: Any, batches: Iterable[SessionBatch], dim: int) -> tuple[int, int, int]:
    """COPY the batches' chunks (binary: vectors travel as float32, not text) and their
    session rows; returns (chunks, sessions, tokens). Every chunk is admitted (a bulk load
    has no write policy) and gets its id from the table's sequence."""
    n_chunks = n_sessions = n_tokens = 0
    sessions: list[tuple[Any, ...]] = []
    now = time.time()
    with conn.cursor() as cur:
        cols = ", ".join(_COPY_COLUMNS)
        with cur.copy(f"COPY chunks ({cols}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(list(_COPY_TYPES))
            for b in batches:
                if b.embeddings.shape != (len(b.chunks), dim):
                    raise StoreError(f"session {b.session_id}: {b.embeddings.shape} embeddings for {len(b.chunks)} chunks")
                if b.admitted is not None and not all(b.admitted):
                    raise StoreError(f"session {b.session_id}: a bulk load stores every chunk (none may be rejected)")
                scores = list(b.scores) if b.scores is not None else [None] * len(b.chunks)
                vectors = np.asarray(b.embeddings, dtype=np.float32)
                for c, v, s in zip(b.chunks, vectors, scores):
                    copy.write_row((c.source, c.history, c.session_id, c.session_date, c.position, c.kind, c.text,
                                    c.n_tokens, json.dumps(list(c.dia_ids)), json.dumps(list(c.speakers)),
                                    json.dumps(c.meta), b.namespace, None if s is None else float(s), dim, v))  # fmt: skip
                    n_tokens += c.n_tokens
                n_chunks += len(b.chunks)
                n_sessions += 1
                sessions.append((b.namespace, b.key, b.source, b.history, b.session_id, len(b.chunks), now))
        # The sessions' primary key refuses a session given twice (the whole load rolls back).
        with cur.copy("COPY sessions (namespace, key, source, history, session_id, n_chunks, added_at) FROM STDIN") as copy:
            for row in sessions:
                copy.write_row(row)
    return n_chunks, n_sessions, n_tokens
