"""What one running service holds: the store file, its keys, one BudgetMem per namespace,
the worker pools, background jobs and metrics.

Namespaces get a BudgetMem each, opened on first use and kept: its indexes, pipeline and
module cache then serve every later request. Each namespace has its own connection to the
store file, so with SQLite's WAL a long write in one (an ingest, a forget's VACUUM) never
holds a lock that reads in another wait on. Encoders are shared by name (one model in
memory, whatever the number of namespaces); llama.cpp models are shared by the backend
itself, one lock per loaded model.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path

from budgetmem.encoder import Encoder
from budgetmem.errors import NotFoundError
from budgetmem.llm import LLM
from budgetmem.memory import BudgetMem
from budgetmem.server.jobs import JobBoard
from budgetmem.server.metrics import Metrics
from budgetmem.server.pool import WorkPool
from budgetmem.settings import Settings
from budgetmem.store import Store, is_postgres, open_store
from budgetmem.store.keys import KeyStore

__all__ = ["Service"]


class Service:
    def __init__(
        self,
        store: str | Path,
        settings: Settings | None = None,
        *,
        llms: Mapping[str, LLM] | None = None,
        encoder: Encoder | None = None,
    ) -> None:
        """``llms`` and ``encoder`` replace what the settings would build (tests, custom clients)."""
        self.settings = settings or Settings()
        self.path = store if is_postgres(store) else Path(store)
        """The store's address (a file path, or a postgresql:// URL)."""
        self.store = open_store(self.path)
        """The service's own connection: keys, and namespace lookups before a BudgetMem exists."""
        self.keys = KeyStore(self.store)
        self._llms = llms
        self._encoders: dict[str, Encoder] = {encoder.name: encoder} if encoder is not None else {}
        self._stores: dict[str, Store] = {}
        self._mems: dict[tuple[str, str], BudgetMem] = {}
        self._lock = threading.Lock()
        s = self.settings.server
        self.queries = WorkPool("query", s.workers, s.queue)
        """The answer pipeline: LLM-bound, so few threads and a short queue."""
        self.requests = WorkPool("request", s.request_threads, 64)
        """Everything else that blocks (search, list, small adds, deletes): quick work."""
        self.ingests = WorkPool("ingest", 1, s.queue)
        self.jobs = JobBoard(self.ingests, self.store)
        self.metrics = Metrics([self.queries, self.requests, self.ingests])

    def memory(self, namespace: str, strategy: str | None = None, *, create: bool = False) -> BudgetMem:
        """The namespace's BudgetMem (per pipeline strategy). Unless ``create`` (an add), an
        unknown namespace is a NotFoundError before anything is opened for it."""
        strategy = strategy or self.settings.pipeline.strategy
        with self._lock:
            mem = self._mems.get((namespace, strategy))
            if mem is not None:
                return mem
        info = self.store.namespace(namespace, counts=False)
        if info is None and not create:
            raise NotFoundError(f"namespace {namespace!r} not found", hint="add memories to it first")
        with self._lock:
            mem = self._mems.get((namespace, strategy))
            if mem is None:
                name = info.encoder if info is not None else self.settings.encoder.name
                if name not in self._encoders:
                    enc = type(self.settings.encoder)(**{**self.settings.encoder.__dict__, "name": name})
                    self._encoders[name] = Encoder(enc, self.settings.models_dir)
                self._encoders[name].batch_queries = self.settings.server.batch_queries
                # SQLite: a connection per namespace, so one namespace's writer never holds
                # another's reads. PostgreSQL: the one store's pool already gives each thread
                # its own connection.
                if self.store.backend == "postgresql":
                    store = self.store
                else:
                    if namespace not in self._stores:
                        self._stores[namespace] = open_store(self.path)
                    store = self._stores[namespace]
                mem = BudgetMem(
                    store, namespace, settings=self.settings, encoder=self._encoders[name],
                    strategy=strategy, policy=self.settings.server.policy, llms=self._llms,
                )  # fmt: skip
                self._mems[(namespace, strategy)] = mem
            return mem

    def close(self) -> None:
        for pool in (self.queries, self.requests, self.ingests):
            pool.shutdown()
        with self._lock:
            for mem in self._mems.values():
                mem.close()
            for store in self._stores.values():
                store.close()
            self._mems.clear()
            self._stores.clear()
        self.store.close()
