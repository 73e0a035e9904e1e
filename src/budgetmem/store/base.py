"""The one Store interface every backend implements, and the factory that picks a backend.

A store is named by its *address*: ``postgresql://user@host:port/db`` (or ``postgres://``)
opens the PostgreSQL + pgvector store (:mod:`budgetmem.store.pg_store`); anything else is
a path to a SQLite file (:mod:`budgetmem.store.sqlite_store`). Callers hold a
:class:`Store` and never branch on the backend, except through the two capabilities below.

Capabilities a caller may ask about:

- ``ranks_in_database``: the backend ranks chunks itself (pgvector HNSW, full-text
  search), so a searcher asks it for rankings instead of building in-memory indexes;
  ``dense_ranking`` / ``lexical_ranking`` then answer.
- ``index_dir``: where searchers may persist their indexes (None: nowhere, the database
  is the index).

``Store(address)`` on this base class is the factory too (so ``budgetmem.Store(path)`` in
user code keeps working); new code calls :func:`open_store`.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from budgetmem.chunk import Chunk
from budgetmem.store.records import ArchivedChunk, NamespaceDump, NamespaceInfo, Removed, SessionBatch, WriteState

__all__ = ["Store", "open_store", "is_postgres", "ENV_STORE", "describe"]

ENV_STORE = "BUDGETMEM_STORE"
"""The environment variable that names the store when ``--store`` is not given."""

_PG_SCHEMES = ("postgresql://", "postgres://")


def is_postgres(address: str | Path | None) -> bool:
    return isinstance(address, str) and address.strip().lower().startswith(_PG_SCHEMES)


def describe(address: str | Path) -> str:
    """The address without a password, for messages and logs."""
    if not is_postgres(address):
        return str(address)
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(str(address))
    if parts.password is None:
        return str(address)
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def open_store(address: str | Path, *, create: bool = True) -> Store:
    """The store at ``address``: PostgreSQL for a ``postgresql://`` URL, else a SQLite file."""
    if is_postgres(address):
        from budgetmem.store.pg_store import PostgresStore

        return PostgresStore(str(address), create=create)
    from budgetmem.store.sqlite_store import SQLiteStore

    return SQLiteStore(os.fspath(address), create=create)


class Store(abc.ABC):
    """A budgetmem store: namespaces of chunks with metadata and embeddings, sessions, and
    the archive of chunks a write budget set aside. Thread-safe; a context manager."""

    backend: str = ""
    """``sqlite`` or ``postgresql``."""
    ranks_in_database: bool = False

    def __new__(cls, *args: Any, **kwargs: Any) -> Store:
        if cls is Store:  # Store(address): pick the backend by address
            address = args[0] if args else kwargs.get("path", kwargs.get("address"))
            if is_postgres(address):
                from budgetmem.store.pg_store import PostgresStore

                return object.__new__(PostgresStore)
            from budgetmem.store.sqlite_store import SQLiteStore

            return object.__new__(SQLiteStore)
        return object.__new__(cls)

    # ------------------------------------------------------------------ identity
    @property
    @abc.abstractmethod
    def address(self) -> str:
        """What ``open_store`` takes to open this store again (another process may)."""

    @property
    def index_dir(self) -> Path | None:
        return None

    def close(self) -> None: ...

    # ------------------------------------------------------------------ side tables
    # The store's small tables beside the memories (API keys, service jobs, control state)
    # use these two instead of a connection of their own: one SQL text serves both backends
    # (``?`` placeholders; PostgreSQL gets them as ``%s``).
    @abc.abstractmethod
    def side_query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """The rows of one read."""

    @abc.abstractmethod
    def side_write(self, sql: str, params: Sequence[Any] = (), *, many: bool = False, wait: bool = True) -> int | None:
        """One statement in a transaction of its own (``many``: ``params`` is a list of rows);
        the rows it changed. ``wait=False`` gives up at once, returning None, when another
        writer holds what it needs: for bookkeeping a request must never wait on."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ namespaces
    @abc.abstractmethod
    def namespaces(self) -> list[NamespaceInfo]: ...

    @abc.abstractmethod
    def namespace(self, name: str, *, counts: bool = True) -> NamespaceInfo | None:
        """One namespace's info. ``counts=False`` skips counting its chunks, sessions and
        archive (those fields are then 0): what every search asks, in one keyed read."""

    @abc.abstractmethod
    def require_namespace(self, name: str, *, counts: bool = True) -> NamespaceInfo: ...

    @abc.abstractmethod
    def check_encoder(self, namespace: str, encoder: str, dim: int) -> bool: ...

    @abc.abstractmethod
    def known_sessions(self, namespace: str) -> set[str]: ...

    # ------------------------------------------------------------------ writes
    @abc.abstractmethod
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
    ) -> list[int]: ...

    @abc.abstractmethod
    def archive(self, namespace: str, ids: Sequence[int], reason: str = "evicted") -> int: ...

    @abc.abstractmethod
    def restore(self, namespace: str, ids: Sequence[int] | None = None) -> int: ...

    @abc.abstractmethod
    def purge(self, namespace: str | None = None, ids: Sequence[int] | None = None) -> int: ...

    @abc.abstractmethod
    def touch(self, namespace: str, ids: Sequence[int]) -> None: ...

    @abc.abstractmethod
    def set_compressed(
        self, namespace: str, chunk_id: int, text: str, n_tokens: int, meta: Mapping[str, object]
    ) -> None: ...

    # ------------------------------------------------------------------ forgetting
    @abc.abstractmethod
    def delete(self, namespace: str, chunk_id: int, *, vacuum: bool = True) -> Removed: ...

    @abc.abstractmethod
    def forget_session(self, namespace: str, session_id: str, *, vacuum: bool = True) -> Removed: ...

    @abc.abstractmethod
    def forget_namespace(self, namespace: str, *, vacuum: bool = True) -> Removed: ...

    @abc.abstractmethod
    def wipe(self, *, vacuum: bool = True) -> bool: ...

    @abc.abstractmethod
    def vacuum(self) -> None: ...

    @abc.abstractmethod
    def on_forget(self, hook: Callable[[str], None]) -> None: ...

    # ------------------------------------------------------------------ reads
    @abc.abstractmethod
    def version(self, namespace: str) -> tuple[int, int, int]: ...

    @abc.abstractmethod
    def write_state(self, namespace: str) -> list[WriteState]: ...

    @abc.abstractmethod
    def archived(self, namespace: str) -> list[ArchivedChunk]: ...

    @abc.abstractmethod
    def seen(self, namespace: str) -> tuple[list[str], np.ndarray]: ...

    @abc.abstractmethod
    def chunks(self, namespace: str, ids: Sequence[int] | None = None) -> list[Chunk]: ...

    def session_dates(self, namespace: str, ids: Sequence[int]) -> dict[int, str | None]:
        """The session date of each of these chunks that is stored (a chunk gone meanwhile is
        absent). Date-aware search asks it of every candidate, so backends read the one
        column instead of whole chunks."""
        return {int(c.id or 0): c.session_date for c in self.chunks(namespace, ids)}

    @abc.abstractmethod
    def chunk_page(
        self, namespace: str, *, after: int = 0, limit: int = 100, session_id: str | None = None
    ) -> list[Chunk]: ...

    @abc.abstractmethod
    def ids(self, namespace: str) -> np.ndarray: ...

    @abc.abstractmethod
    def texts(self, namespace: str, ids: Sequence[int] | np.ndarray | None = None) -> tuple[np.ndarray, list[str]]: ...

    @abc.abstractmethod
    def embeddings(
        self, namespace: str, ids: Sequence[int] | np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]: ...

    # ------------------------------------------------------------------ whole namespaces (migrate)
    @abc.abstractmethod
    def dump_namespace(self, namespace: str) -> NamespaceDump:
        """Every row of the namespace, as stored (ids, scores, access counts, archive)."""

    @abc.abstractmethod
    def load_namespace(self, dump: NamespaceDump) -> None:
        """Write a dump in one transaction, ids kept; the namespace must not exist here yet."""

    # ------------------------------------------------------------------ ranking in the database
    def dense_ranking(self, namespace: str, vector: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
        """(chunk ids, cosine similarities), best first; only where ``ranks_in_database``."""
        raise NotImplementedError(f"the {self.backend} store does not rank in the database")

    def lexical_ranking(self, namespace: str, query: str, depth: int) -> tuple[np.ndarray, np.ndarray]:
        """(chunk ids, lexical scores), best first; only where ``ranks_in_database``."""
        raise NotImplementedError(f"the {self.backend} store does not rank in the database")
