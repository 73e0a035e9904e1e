"""Which memory a tool call may use: the namespace scope, and the providers that resolve it.

A *memory provider* is a callable ``(namespace | None) -> BudgetMem``. The tools hand it the
``namespace`` argument the caller gave (None when it gave none) and get back the memory to
act on, or an error. Two providers cover the two ways the server runs:

- stdio (``budgetmem mcp``): :func:`fixed_provider`, one namespace fixed by ``--namespace``.
- streamable HTTP inside the REST service: :func:`context_provider`, the namespace bound to
  the caller's key, read from :data:`current_namespace`, which the service's auth
  middleware sets for each request after checking the key.

Either way a call may name its own namespace or a child of it (``NS/...``, e.g. one per
project or per end user) and nothing else, so a key bound to ``alice`` reaches
``alice`` and ``alice/work`` but never ``bob`` or ``alice2``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Literal

from budgetmem.encoder import Encoder
from budgetmem.errors import ForbiddenError, InputError
from budgetmem.llm import LLM
from budgetmem.memory import BudgetMem
from budgetmem.pipeline.policy import Policy
from budgetmem.settings import Settings
from budgetmem.store import Store, open_store

__all__ = [
    "MemoryProvider",
    "MemoryPool",
    "current_namespace",
    "current_scopes",
    "Scope",
    "scoped_namespace",
    "fixed_provider",
    "context_provider",
]

Scope = Literal["read", "query", "write"]
"""What a tool needs of the caller's key: read (search, list, stats), query (ask: it spends
money on model calls), write (add, delete, forget) — the REST service's scopes."""

MemoryProvider = Callable[[str | None, Scope], BudgetMem]
"""``(namespace asked for or None, scope the call needs) -> BudgetMem``; raises a
BudgetMemError to refuse."""

current_namespace: ContextVar[str | None] = ContextVar("budgetmem_mcp_namespace", default=None)
"""The namespace the authenticated caller of this HTTP request may use (None: nobody is
authenticated). Set it in an ASGI / HTTP middleware that runs before the mounted MCP app,
for the duration of the request: the SDK runs each tool call in the context of the HTTP
request that carried it (see :func:`budgetmem.mcp.http.streamable_http_app`)."""

current_scopes: ContextVar[frozenset[str] | None] = ContextVar("budgetmem_mcp_scopes", default=None)
"""The scopes of the caller's key, set beside :data:`current_namespace` (None: not limited)."""


def scoped_namespace(base: str, requested: str | None) -> str:
    """``requested`` if it is ``base`` or a child ``base/...``; ``base`` if None or empty.

    The check is on whole path segments: ``alice2`` is not inside ``alice``."""
    if requested is None or requested == "" or requested == base:
        return base
    child = requested[len(base) + 1 :] if requested.startswith(base + "/") else ""
    if not child or any(not part.strip() for part in child.split("/")):
        raise InputError(
            f"namespace {requested!r} is outside this connection's memory",
            hint=f"use {base!r} or a child such as '{base}/project', or leave namespace out",
        )
    return requested


class MemoryPool:
    """One store file and one :class:`BudgetMem` per namespace, opened on first use and
    shared by every call after (a BudgetMem is safe to use from many threads).

    Namespaces embedded with the configured encoder share one loaded encoder, so a
    service with many users holds one copy of the model; a namespace embedded with another
    encoder keeps its own, as :class:`BudgetMem` requires."""

    def __init__(
        self,
        store: str | Path | Store,
        settings: Settings | None = None,
        *,
        policy: str | Policy = "mid",
        llms: Mapping[str, LLM] | None = None,
    ) -> None:
        """``policy`` is ask_memory's default when a call names none; ``llms`` maps provider
        strings to ready LLM objects, as in :class:`BudgetMem` (custom clients, test fakes)."""
        self.settings = settings or Settings()
        self.store = store if isinstance(store, Store) else open_store(store)
        self._owns_store = not isinstance(store, Store)
        self.policy = policy
        self.llms = llms
        self._encoder = Encoder(self.settings.encoder, self.settings.models_dir)
        self._memories: dict[str, BudgetMem] = {}
        self._lock = threading.Lock()

    def get(self, namespace: str) -> BudgetMem:
        with self._lock:
            mem = self._memories.get(namespace)
            if mem is None:
                info = self.store.namespace(namespace)
                shared = info is None or info.encoder == self._encoder.name
                mem = BudgetMem(
                    self.store, namespace, settings=self.settings, policy=self.policy, llms=self.llms,
                    encoder=self._encoder if shared else None,
                )  # fmt: skip
                self._memories[namespace] = mem
            return mem

    def close(self) -> None:
        with self._lock:
            for mem in self._memories.values():
                mem.close()
            self._memories.clear()
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> MemoryPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def fixed_provider(pool: MemoryPool, namespace: str) -> MemoryProvider:
    """Every call uses ``namespace`` (or a child of it that the call names): stdio mode."""
    if not namespace.strip():
        raise InputError("an empty namespace cannot be served", hint="pass --namespace NAME")

    def provide(requested: str | None, scope: Scope) -> BudgetMem:
        return pool.get(scoped_namespace(namespace, requested))  # stdio: the local user holds every scope

    return provide


def context_provider(memory: MemoryPool | Callable[[str], BudgetMem]) -> MemoryProvider:
    """Every call uses the namespace in :data:`current_namespace` (or a child of it) and needs
    its scope in :data:`current_scopes`; a call with no namespace bound is refused: an
    unauthenticated request reaches no memory. ``memory`` is a pool, or any function from a
    namespace to its BudgetMem (the REST service passes its own)."""
    get = memory.get if isinstance(memory, MemoryPool) else memory

    def provide(requested: str | None, scope: Scope) -> BudgetMem:
        bound = current_namespace.get()
        if not bound:
            raise InputError(
                "no namespace is bound to this request", hint="authenticate with a key bound to a namespace"
            )
        namespace = scoped_namespace(bound, requested)
        scopes = current_scopes.get()
        if scopes is not None and scope not in scopes:
            raise ForbiddenError(f"this key lacks the {scope!r} scope this tool needs", hint=f"use a key with --scope {scope}")
        return get(namespace)

    return provide
