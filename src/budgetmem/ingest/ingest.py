"""Ingest: histories -> chunks -> embeddings -> one store transaction."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from budgetmem.encoder import Encoder
from budgetmem.ingest.chunker import chunk_session, render_session
from budgetmem.ingest.history import History, Session
from budgetmem.settings import WriteSettings
from budgetmem.store import SessionBatch, Store
from budgetmem.write.writer import apply_write_policy, effective_write_settings

__all__ = ["IngestReport", "NamespaceReport", "ingest_histories", "namespace_for", "session_key"]


@dataclass(frozen=True)
class NamespaceReport:
    namespace: str
    history: str
    sessions_added: int
    sessions_skipped: int
    chunks_added: int
    """Chunks offered by the new sessions (stored or, under a write budget, archived)."""
    tokens_added: int
    write_policy: str = "all"
    chunks_stored: int = -1
    """Of ``chunks_added``, how many went live (-1: all of them, no write policy)."""
    chunks_evicted: int = 0
    """Chunks stored earlier that this ingest pushed out to the archive."""
    session_ids: tuple[str, ...] = ()
    """Ids of the sessions offered, added or skipped (already stored), in order."""


@dataclass(frozen=True)
class IngestReport:
    namespaces: tuple[NamespaceReport, ...]
    encoder: str
    seconds: float
    """Chunking, embedding and writing; the encoder's one-off load time is in ``load_seconds``."""
    load_seconds: float = 0.0

    @property
    def chunks_added(self) -> int:
        return sum(n.chunks_added for n in self.namespaces)

    @property
    def chunks_per_s(self) -> float:
        return self.chunks_added / self.seconds if self.seconds > 0 else 0.0


def namespace_for(base: str, history: History, many: bool) -> str:
    """A file with several histories (LoCoMo conversations) gives one namespace each."""
    return f"{base}/{history.name}" if many else base


def session_key(history: History, session: Session) -> str:
    payload = json.dumps([history.name, session.session_id, session.date_time, render_session(session)])
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def ingest_histories(
    store: Store,
    namespace: str,
    histories: Sequence[History],
    encoder: Encoder,
    max_tokens: int,
    *,
    progress: bool = False,
    write: WriteSettings | None = None,
) -> IngestReport:
    """``write``: the write policy and budget (selective-write paper §III-E); None stores
    everything, or keeps applying the policy a budgeted namespace already has."""
    load_seconds = encoder.load()
    started = time.perf_counter()
    many = len(histories) > 1
    batches: list[SessionBatch] = []
    reports: list[NamespaceReport] = []
    for h in histories:
        ns = namespace_for(namespace, h, many)
        store.check_encoder(ns, encoder.name, encoder.dim)
        known = store.known_sessions(ns)
        added = skipped = n_chunks = n_tokens = 0
        for s in h.sessions:
            key = session_key(h, s)
            if key in known:
                skipped += 1
                continue
            chunks = chunk_session(s, encoder, max_tokens, source=h.source, history=h.name)
            batches.append(SessionBatch(ns, key, h.source, h.name, s.session_id, chunks, np.zeros((0, 0))))
            added += 1
            n_chunks += len(chunks)
            n_tokens += sum(c.n_tokens for c in chunks)
        ids = tuple(s.session_id for s in h.sessions)
        reports.append(NamespaceReport(ns, h.name, added, skipped, n_chunks, n_tokens, session_ids=ids))

    # Embed everything before writing, then write in one transaction: all or nothing.
    texts = [c.text for b in batches for c in b.chunks]
    vectors = encoder.encode(texts, progress=progress)
    embedded, start = [], 0
    for b in batches:
        end = start + len(b.chunks)
        embedded.append(SessionBatch(b.namespace, b.key, b.source, b.history, b.session_id, b.chunks, vectors[start:end]))
        start = end

    # Budgeted writes: score and plan per namespace, still before anything is written.
    asked = write or WriteSettings()
    final: list[SessionBatch] = []
    evict: dict[str, list[int]] = {}
    specs: dict[str, tuple[str, str | None]] = {}
    for i, r in enumerate(reports):
        mine = [b for b in embedded if b.namespace == r.namespace]
        chosen = effective_write_settings(store, r.namespace, asked)
        plan = apply_write_policy(store, r.namespace, mine, chosen)
        final.extend(plan.batches)
        if plan.spec is not None:
            specs[r.namespace] = plan.spec
            evict[r.namespace] = plan.evict
            reports[i] = dataclasses.replace(
                r, write_policy=chosen.policy, chunks_stored=plan.admitted, chunks_evicted=len(plan.evict)
            )
    lost: list[str] = []
    store.add(final, encoder=encoder.name, dim=encoder.dim, chunk_tokens=max_tokens, evict=evict, write_policy=specs,
              skipped=lost)  # fmt: skip
    if lost:
        # Another writer (a second server on the same database) stored these sessions between
        # our look and our write: they were not added by us, so report them as skipped.
        gone = set(lost)
        for i, r in enumerate(reports):
            mine = [b for b in final if b.namespace == r.namespace and b.key in gone]
            if mine:
                reports[i] = dataclasses.replace(
                    r, sessions_added=r.sessions_added - len(mine), sessions_skipped=r.sessions_skipped + len(mine),
                    chunks_added=r.chunks_added - sum(len(b.chunks) for b in mine),
                    tokens_added=r.tokens_added - sum(c.n_tokens for b in mine for c in b.chunks),
                )  # fmt: skip
    return IngestReport(tuple(reports), encoder.name, time.perf_counter() - started, load_seconds)
