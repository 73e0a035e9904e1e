"""Search a namespace of a store with dense, BM25 or hybrid retrieval.

Indexes are built from the store on first use and kept while the namespace is
unchanged (its chunk count, highest id and revision, which every admission, eviction,
restore and delete moves), so repeated queries pay only the search.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from collections.abc import Sequence
from typing import Any

import numpy as np

from budgetmem.encoder import Encoder
from budgetmem.errors import ConfigError, StoreError
from budgetmem.chunk import Chunk
from budgetmem.retrieval import fusion
from budgetmem.retrieval.bm25 import BM25Index
from budgetmem.retrieval.dense import DenseIndex
from budgetmem.settings import RetrievalSettings
from budgetmem.store import Store

__all__ = ["Hit", "Searcher", "RETRIEVERS"]

RETRIEVERS = ("dense", "bm25", "hybrid")


@dataclass(frozen=True)
class Hit:
    chunk: Chunk
    score: float
    """The score the ranking used (cosine, BM25, or fused)."""
    rank: int
    """1-based."""
    retriever: str
    components: dict[str, float] = field(default_factory=dict)
    """Per-retriever scores behind a hybrid score (absent where a retriever did not rank it)."""

    def to_dict(self) -> dict[str, Any]:
        c = self.chunk
        return {
            "rank": self.rank,
            "score": round(self.score, 6),
            "retriever": self.retriever,
            "components": {k: round(v, 6) for k, v in self.components.items()},
            "chunk_id": c.id,
            "session_id": c.session_id,
            "session_date": c.session_date,
            "dia_ids": list(c.dia_ids),
            "speakers": list(c.speakers),
            "source": c.source,
            "n_tokens": c.n_tokens,
            "text": c.text,
        }


@dataclass
class _Indexes:
    version: tuple[int, int, int]
    ids: np.ndarray
    dense: DenseIndex | None = None
    bm25: BM25Index | None = None
    rows: dict[int, int] | None = None
    """chunk id -> row, built on first use by :meth:`Searcher.vectors`."""


class Searcher:
    def __init__(self, store: Store, encoder: Encoder, settings: RetrievalSettings | None = None) -> None:
        self.store = store
        self.encoder = encoder
        self.settings = settings or RetrievalSettings()
        self._cache: dict[str, _Indexes] = {}
        self._lock = threading.Lock()

    def _indexes(self, namespace: str, need: set[str]) -> _Indexes:
        info = self.store.require_namespace(namespace)
        if info.encoder != self.encoder.name:
            raise StoreError(
                f"namespace {namespace!r} was embedded with {info.encoder}, not {self.encoder.name}",
                hint=f"search with --encoder {info.encoder}",
            )
        version = self.store.version(namespace)
        texts: list[str] | None = None
        with self._lock:
            idx = self._cache.get(namespace)
            if idx is None or idx.version != version:
                ids, texts = self.store.texts(namespace)
                idx = self._cache[namespace] = _Indexes(version, ids)
            if "dense" in need and idx.dense is None:
                ids, matrix = self.store.embeddings(namespace)
                assert np.array_equal(ids, idx.ids), "store changed while indexing"
                idx.dense = DenseIndex(matrix)
            if "bm25" in need and idx.bm25 is None:
                if texts is None:  # indexes built by an earlier call: read the texts now
                    _, texts = self.store.texts(namespace)
                idx.bm25 = BM25Index(texts)
        return idx

    def invalidate(self, namespace: str) -> None:
        """Drop the namespace's built indexes. A changed namespace is rebuilt on its next search
        anyway (its version moved); dropping them now also keeps :meth:`vectors` from serving a
        deleted chunk's embedding."""
        with self._lock:
            self._cache.pop(namespace, None)

    def vectors(self, chunk_ids: Sequence[int]) -> np.ndarray | None:
        """Embeddings of stored chunks from the dense indexes already built (the router's state
        reads them instead of encoding the chunks again); None if any id is not indexed here."""
        with self._lock:
            for idx in self._cache.values():
                if idx.dense is None:
                    continue
                if idx.rows is None:
                    idx.rows = {int(c): r for r, c in enumerate(idx.ids.tolist())}
                rows = [idx.rows.get(int(c)) for c in chunk_ids]
                if all(r is not None for r in rows):
                    return idx.dense.vectors(np.asarray(rows))
        return None

    def search(self, namespace: str, query: str, k: int | None = None, retriever: str | None = None) -> list[Hit]:
        k = k or self.settings.top_k
        retriever = retriever or self.settings.retriever
        if retriever not in RETRIEVERS:
            raise ConfigError(f"unknown retriever {retriever!r}", hint=f"use one of: {', '.join(RETRIEVERS)}")
        if not query.strip():
            raise ConfigError("empty query", hint="give a question or keywords to search for")
        need = {"dense", "bm25"} if retriever == "hybrid" else {retriever}
        idx = self._indexes(namespace, need)
        depth = k if retriever != "hybrid" else max(k, self.settings.candidates)

        rankings: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        if idx.dense is not None and "dense" in need:
            rankings["dense"] = idx.dense.search(self.encoder.encode_query(query), depth)
        if idx.bm25 is not None and "bm25" in need:
            rankings["bm25"] = idx.bm25.search(query, depth)

        if retriever == "hybrid":
            if self.settings.fusion == "rrf":
                fused = fusion.rrf(list(rankings.values()), k=self.settings.rrf_k)
            else:
                fused = fusion.weighted(rankings["dense"], rankings["bm25"], self.settings.dense_weight)
            order = sorted(fused, key=lambda r: (-fused[r], r))[:k]
            scored = [(row, fused[row]) for row in order]
        else:
            rows, scores = rankings[retriever]
            scored = list(zip(rows.tolist(), scores.tolist()))[:k]

        components = {name: dict(zip(r.tolist(), s.tolist())) for name, (r, s) in rankings.items()}
        chunk_ids = [int(idx.ids[row]) for row, _ in scored]
        chunks = {c.id: c for c in self.store.chunks(namespace, chunk_ids)}
        return [
            Hit(
                chunk=chunks[cid],
                score=float(score),
                rank=rank,
                retriever=retriever,
                components={name: float(m[row]) for name, m in components.items() if row in m},
            )
            for rank, ((row, score), cid) in enumerate(zip(scored, chunk_ids), start=1)
        ]
