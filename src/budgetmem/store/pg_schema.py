"""The PostgreSQL store's schema as versioned migrations, and the connection set-up.

Everything lives in one schema (``budgetmem``) so a database shared with other
applications keeps its own tables apart. ``meta.schema_version`` records the last
migration applied. Opening a store applies the missing migrations in order, in one
transaction, under an advisory lock: two servers starting together never race, a newer
budgetmem upgrades an older schema in place, and a schema newer than this code is refused
(never dropped).

Embeddings are ``vector`` columns of any dimension: a namespace is bound to one encoder,
and each dimension in use gets its own partial HNSW index over ``embedding::vector(d)``
(pgvector's way to index several dimensions in one table), created with the first
namespace of that dimension. Lexical search uses a stored ``tsvector`` (English
configuration) with a GIN index; see :mod:`budgetmem.store.pg_store` for the ranking.
"""

from __future__ import annotations

from typing import Any

from budgetmem.errors import StoreError

__all__ = ["SCHEMA", "PG_SCHEMA_VERSION", "MIGRATIONS", "migrate", "ensure_dim_index", "configure"]

SCHEMA = "budgetmem"

MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE namespaces (
    name TEXT PRIMARY KEY,
    encoder TEXT NOT NULL,
    dim INTEGER NOT NULL,
    chunk_tokens INTEGER NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    write_policy TEXT,
    write_budget TEXT,
    seen_chunks BIGINT NOT NULL DEFAULT 0,
    seen_tokens BIGINT NOT NULL DEFAULT 0,
    revision BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE sessions (
    namespace TEXT NOT NULL REFERENCES namespaces(name),
    key TEXT NOT NULL,
    source TEXT NOT NULL,
    history TEXT NOT NULL,
    session_id TEXT NOT NULL,
    n_chunks INTEGER NOT NULL,
    added_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (namespace, key)
);
CREATE TABLE chunks (
    id BIGSERIAL PRIMARY KEY,
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
    meta TEXT NOT NULL,
    score DOUBLE PRECISION,
    access_count INTEGER NOT NULL DEFAULT 0,
    last_access DOUBLE PRECISION,
    compressed TEXT,
    compressed_tokens INTEGER,
    compress_meta TEXT,
    dim INTEGER NOT NULL,
    embedding public.vector NOT NULL,
    tsv TSVECTOR GENERATED ALWAYS AS (to_tsvector('english'::regconfig, text)) STORED
);
CREATE INDEX chunks_by_namespace ON chunks (namespace, id);
CREATE INDEX chunks_by_session ON chunks (namespace, session_id);
CREATE INDEX chunks_tsv ON chunks USING gin (tsv);
CREATE TABLE archive (
    id BIGINT PRIMARY KEY,
    namespace TEXT NOT NULL REFERENCES namespaces(name),
    row JSONB NOT NULL,
    vector public.vector NOT NULL,
    reason TEXT NOT NULL,
    archived_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX archive_by_namespace ON archive (namespace, id);
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    hash TEXT NOT NULL,
    namespace TEXT NOT NULL,
    scopes TEXT NOT NULL,
    name TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    last_used DOUBLE PRECISION,
    revoked_at DOUBLE PRECISION
);
CREATE TABLE module_cache (key TEXT PRIMARY KEY, value TEXT NOT NULL, created DOUBLE PRECISION);
CREATE TABLE module_cache_sources (tag TEXT NOT NULL, key TEXT NOT NULL, PRIMARY KEY (tag, key));
CREATE INDEX module_cache_sources_by_key ON module_cache_sources (key);
""",
    ),
    (
        2,
        # What `budgetmem migrate` has copied so far: an interrupted copy resumes from here.
        """
CREATE TABLE migrations (
    source TEXT NOT NULL,
    part TEXT NOT NULL,
    done BOOLEAN NOT NULL DEFAULT FALSE,
    copied BIGINT NOT NULL DEFAULT 0,
    checksum TEXT,
    PRIMARY KEY (source, part)
);
""",
    ),
]
PG_SCHEMA_VERSION = MIGRATIONS[-1][0]

LOCK_KEY = 0x62756467  # an advisory-lock key of this schema's own ("budg")


def configure(conn: Any) -> None:
    """Every pooled connection: our schema first on the path, and numpy <-> vector."""
    from pgvector.psycopg import register_vector

    conn.execute(f"SET search_path TO {SCHEMA}, public")
    register_vector(conn)
    conn.commit()


def migrate(conn: Any, where: str, *, upto: int = PG_SCHEMA_VERSION) -> int:
    """Apply the missing migrations up to ``upto`` (one transaction, under an advisory lock);
    returns the schema's version. ``upto`` below the latest is for tests of upgrades."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector WITH SCHEMA public")
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        has_meta = conn.execute(
            "SELECT 1 FROM information_schema.tables WHERE table_schema=%s AND table_name='meta'", (SCHEMA,)
        ).fetchone()
        version = 0
        if has_meta:
            row = conn.execute(f"SELECT value FROM {SCHEMA}.meta WHERE key='schema_version'").fetchone()
            version = int(row[0]) if row else 0
        if version > PG_SCHEMA_VERSION:
            raise StoreError(
                f"{where} has schema version {version}, this budgetmem reads up to {PG_SCHEMA_VERSION}",
                hint="upgrade budgetmem",
            )
        for number, sql in MIGRATIONS:
            if number <= version or number > upto:
                continue
            conn.execute(f"SET LOCAL search_path TO {SCHEMA}, public")
            for stmt in filter(str.strip, sql.split(";")):
                conn.execute(stmt)
            conn.execute(
                f"INSERT INTO {SCHEMA}.meta VALUES ('schema_version', %s) "
                "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                (str(number),),
            )
            version = number
    return version


def ensure_dim_index(conn: Any, dim: int) -> None:
    """Inside a transaction: the HNSW (cosine) index for embeddings of this dimension."""
    dim = int(dim)
    conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_KEY, dim))
    conn.execute(
        f"CREATE INDEX IF NOT EXISTS chunks_hnsw_{dim} ON chunks USING hnsw "
        f"((embedding::public.vector({dim})) public.vector_cosine_ops) WHERE dim = {dim}"
    )
