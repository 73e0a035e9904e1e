"""Search a namespace of a store with dense, BM25 or hybrid retrieval.

Per namespace the searcher holds a dense index (:class:`~budgetmem.retrieval.ann.VectorIndex`)
and a lexical one (:class:`~budgetmem.retrieval.bm25.BM25Index`), both keyed by chunk id.

- **Incremental.** Before each search the namespace's version (chunk count, highest id,
  revision: every add, eviction, restore and delete moves it) is compared with the one
  the indexes were synced at. If it moved, the store's live ids are diffed against the
  indexed ones and only the difference is applied: new chunks added (their stored
  embeddings and texts read by id), gone ones removed. Chunk ids are never reused and a
  chunk's embedding never changes, so the diff is exact.
- **Persistent.** Large namespaces are written beside the store (see
  :mod:`budgetmem.store.index_files`) and loaded by the next process. A file is used only
  if its header names this namespace, encoder and settings and every data file's digest
  matches; it is then diffed against the store like an in-memory index, so a stale file is
  brought up to date, and a corrupt one is rebuilt.
- **Bounded.** At most ``cache_namespaces`` namespaces stay loaded (least recently used
  beyond that are written if needed and dropped). Nothing scans all namespaces: every
  store query is by one namespace through its index.
- **Forgetting.** The store calls :meth:`Searcher.forgotten` after every delete or forget:
  the removed chunks leave the loaded indexes (their vectors overwritten) and the files are
  rewritten at once; the store then shreds any file of that namespace still out of date.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from budgetmem.encoder import Encoder
from budgetmem.errors import ConfigError, StoreError
from budgetmem.chunk import Chunk
from budgetmem.retrieval import fusion
from budgetmem.retrieval.ann import VectorIndex
from budgetmem.retrieval.bm25 import BM25Index, Tokenizer
from budgetmem.retrieval.dates import query_dates
from budgetmem.settings import RetrievalSettings
from budgetmem.store import NamespaceInfo, Store, index_files

__all__ = ["Hit", "Searcher", "RETRIEVERS"]

RETRIEVERS = ("dense", "bm25", "hybrid")
_PARTS = ("dense", "bm25")


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
class _Loaded:
    """One namespace's indexes in memory, each with the sorted chunk ids it holds."""

    version: tuple[int, int, int] | None
    dense: VectorIndex | None = None
    bm25: BM25Index | None = None
    ids: dict[str, np.ndarray] = field(default_factory=dict)
    dirty: bool = False
    """Changed since it was last written (or never written)."""
    lock: threading.Lock = field(default_factory=threading.Lock)


class Searcher:
    def __init__(self, store: Store, encoder: Encoder, settings: RetrievalSettings | None = None) -> None:
        self.store = store
        self.encoder = encoder
        self.settings = settings or RetrievalSettings()
        self._cache: OrderedDict[str, _Loaded] = OrderedDict()
        self._lock = threading.Lock()
        self._tokenizer = Tokenizer()  # one stem cache for every namespace's lexical index
        self.stats = {"built": 0, "loaded": 0, "synced": 0, "evicted": 0, "written": 0}
        """Counts of index builds from the store, loads from files, incremental syncs,
        evictions and file writes (tests and benchmarks read them)."""
        store.on_forget(self.forgotten)  # held weakly by the store

    # ------------------------------------------------------------------ index life cycle
    def _options(self) -> dict[str, Any]:
        s = self.settings
        return {
            "backend": s.ann_backend,
            "dtype": s.vector_dtype,
            "exact_below": s.exact_below,
            "connectivity": s.hnsw_connectivity,
            "expansion_add": s.hnsw_expansion_add,
            "expansion_search": s.hnsw_expansion_search,
        }

    def _new_dense(self) -> VectorIndex:
        return VectorIndex(self.encoder.dim, **self._options())

    def _entry(self, namespace: str) -> _Loaded:
        """The namespace's entry, loaded from files if they are good, else empty; marked most
        recently used. Evicts beyond the LRU size."""
        with self._lock:
            entry = self._cache.get(namespace)
            if entry is not None:
                self._cache.move_to_end(namespace)
                return entry
            entry = self._read(namespace) or _Loaded(version=None)
            self._cache[namespace] = entry
            while len(self._cache) > self.settings.cache_namespaces:
                old_ns, old = self._cache.popitem(last=False)
                self.stats["evicted"] += 1
                with old.lock:
                    self._write(old_ns, old)
            return entry

    def _indexes(self, namespace: str, need: set[str]) -> _Loaded:
        self._check_encoder(self.store.require_namespace(namespace, counts=False))
        version = self.store.version(namespace)
        entry = self._entry(namespace)
        with entry.lock:
            missing = [p for p in _PARTS if p in need and getattr(entry, p) is None]
            if entry.version != version or missing:
                self._sync(namespace, entry, version, need)
            if entry.dirty and self._persistent(entry) and entry.version == version and missing:
                self._write(namespace, entry)  # a fresh build is worth keeping at once
        return entry

    def _check_encoder(self, info: NamespaceInfo) -> None:
        if info.encoder != self.encoder.name:
            raise StoreError(
                f"namespace {info.name!r} was embedded with {info.encoder}, not {self.encoder.name}",
                hint=f"search with --encoder {info.encoder}",
            )

    def _sync(self, namespace: str, entry: _Loaded, version: tuple[int, int, int], need: set[str]) -> None:
        """Bring every loaded (or needed) part to the store's current ids, by difference."""
        live = self.store.ids(namespace)
        for part in _PARTS:
            index = getattr(entry, part)
            if index is None and part not in need:
                continue
            if index is None:
                index = self._new_dense() if part == "dense" else BM25Index(tokenizer=self._tokenizer)
                setattr(entry, part, index)
                entry.ids[part] = np.zeros(0, np.int64)
                self.stats["built"] += 1
            else:
                self.stats["synced"] += 1
            have = entry.ids[part]
            gone = np.setdiff1d(have, live, assume_unique=True)
            new = np.setdiff1d(live, have, assume_unique=True)
            if gone.size:
                index.remove(gone)
            if new.size:
                if part == "dense":
                    ids, matrix = self.store.embeddings(namespace, new)
                    index.add(ids, matrix)
                else:
                    ids, texts = self.store.texts(namespace, new)
                    index.add(ids, texts)
                if not np.array_equal(ids, new):  # chunks removed while we read: next search syncs again
                    live = np.setdiff1d(live, np.setdiff1d(new, ids, assume_unique=True), assume_unique=True)
                    version = (-1, -1, -1)
            if gone.size or new.size:
                entry.dirty = True
            entry.ids[part] = live
        entry.version = version

    def _persistent(self, entry: _Loaded) -> bool:
        n = max((ids.size for ids in entry.ids.values()), default=0)
        return self.settings.persist and self.store.index_dir is not None and n >= self.settings.persist_min_chunks

    # ------------------------------------------------------------------ files
    def _header_fields(self) -> dict[str, Any]:
        return {"encoder": self.encoder.name, "dim": self.encoder.dim, "options": self._options(),
                "bm25": {"k1": 1.5, "b": 0.75}}  # fmt: skip

    def _read(self, namespace: str) -> _Loaded | None:
        """The namespace's indexes from disk, or None if absent, for other settings, or corrupt."""
        if not self.settings.persist or self.store.index_dir is None:
            return None
        path = self.store.path  # type: ignore[attr-defined]  # a store with index files is a file
        h = index_files.read_header(path, namespace)
        if h is None or any(h.get(k) != v for k, v in self._header_fields().items()):
            return None
        try:
            digests: dict[str, str] = h["digests"]
            for name, want in digests.items():
                if index_files.digest(index_files.index_dir(path) / name) != want:
                    raise ValueError(f"{name}: digest mismatch")
            entry = _Loaded(version=tuple(h["version"]))  # type: ignore[arg-type]
            if "dense" in h["parts"]:
                entry.dense = VectorIndex.load(
                    index_files.data_path(path, namespace, "dense"), h["parts"]["dense"], self.encoder.dim, **self._options()
                )
                entry.ids["dense"] = np.sort(entry.dense.keys())
            if "bm25" in h["parts"]:
                with open(index_files.data_path(path, namespace, "bm25"), "rb") as f:
                    entry.bm25 = BM25Index.load(f, tokenizer=self._tokenizer)
                entry.ids["bm25"] = np.sort(entry.bm25.keys())
        except (OSError, ValueError, KeyError, RuntimeError):  # corrupt or half-written: rebuild
            return None
        self.stats["loaded"] += 1
        return entry

    def _write(self, namespace: str, entry: _Loaded) -> None:
        """Write a changed entry's indexes and header (big namespaces only)."""
        if not entry.dirty or entry.version is None or not self._persistent(entry):
            return
        path = self.store.path  # type: ignore[attr-defined]
        digests: dict[str, str] = {}
        parts: dict[str, str] = {}
        # The header goes first: a reader never pairs an old header with new data files.
        index_files.drop_namespace(path, namespace)
        index_files.index_dir(path).mkdir(parents=True, exist_ok=True)
        if entry.dense is not None:
            target = index_files.data_path(path, namespace, "dense")
            for p in _write_all(target, entry.dense.save):
                digests[p.name] = index_files.digest(p)
            parts["dense"] = entry.dense.mode
        if entry.bm25 is not None:
            target = index_files.data_path(path, namespace, "bm25")
            for p in _write_all(target, lambda t: _save_bm25(entry.bm25, t)):  # type: ignore[arg-type]
                digests[p.name] = index_files.digest(p)
            parts["bm25"] = "segments"
        index_files.write_header(path, namespace, {
            **self._header_fields(), "version": list(entry.version), "parts": parts, "digests": digests,
        })  # fmt: skip
        entry.dirty = False
        self.stats["written"] += 1

    def flush(self) -> None:
        """Write every changed loaded namespace (also done on eviction and on close)."""
        with self._lock:
            items = list(self._cache.items())
        for ns, entry in items:
            with entry.lock:
                self._write(ns, entry)

    # ------------------------------------------------------------------ forgetting
    def forgotten(self, namespace: str) -> None:
        """Called by the store after a delete or forget committed: drop what was removed from
        the loaded indexes and rewrite their files now (no file keeps a forgotten chunk)."""
        with self._lock:
            entry = self._cache.get(namespace)
        if entry is None:
            return
        if self.store.namespace(namespace, counts=False) is None:  # the whole namespace was forgotten
            with self._lock:
                self._cache.pop(namespace, None)
            return
        with entry.lock:
            self._sync(namespace, entry, self.store.version(namespace), set())
            self._write(namespace, entry)

    def invalidate(self, namespace: str) -> None:
        """Drop the namespace's loaded indexes (the next search loads or rebuilds them)."""
        with self._lock:
            self._cache.pop(namespace, None)

    def loaded(self) -> list[str]:
        """Namespaces whose indexes are in memory, least recently used first."""
        with self._lock:
            return list(self._cache)

    # ------------------------------------------------------------------ reads
    def vectors(self, chunk_ids: Sequence[int]) -> np.ndarray | None:
        """Embeddings of stored chunks from the dense indexes already loaded (the router's state
        reads them instead of encoding the chunks again); None if any id is not indexed here."""
        wanted = np.asarray([int(c) for c in chunk_ids], dtype=np.int64)
        with self._lock:
            entries = list(self._cache.values())
        for entry in entries:
            with entry.lock:
                ids = entry.ids.get("dense")
                if entry.dense is None or ids is None or not np.isin(wanted, ids).all():
                    continue
                return entry.dense.get(wanted)
        return None

    def search(self, namespace: str, query: str, k: int | None = None, retriever: str | None = None) -> list[Hit]:
        k = k or self.settings.top_k
        retriever = retriever or self.settings.retriever
        if retriever not in RETRIEVERS:
            raise ConfigError(f"unknown retriever {retriever!r}", hint=f"use one of: {', '.join(RETRIEVERS)}")
        if not query.strip():
            raise ConfigError("empty query", hint="give a question or keywords to search for")
        need = set(_PARTS) if retriever == "hybrid" else {retriever}
        s = self.settings
        dates = query_dates(query) if s.date_boost > 0 else None
        # Hybrid and date-aware ranking look deeper than k, then re-rank.
        depth = max(k, s.candidates) if retriever == "hybrid" or dates else k

        rankings: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        if self.store.ranks_in_database:
            # The database is the index (pgvector HNSW, full-text search): nothing to load or sync.
            self._check_encoder(self.store.require_namespace(namespace, counts=False))
            if "dense" in need:
                rankings["dense"] = self.store.dense_ranking(namespace, self.encoder.encode_query(query), depth)
            if "bm25" in need:
                rankings["bm25"] = self.store.lexical_ranking(namespace, query, depth)
        else:
            entry = self._indexes(namespace, need)
            # The query is embedded before the namespace's lock is taken: held across the
            # forward pass, the lock would queue concurrent searches one by one, and none could
            # join the encoder's shared batch.
            vector = self.encoder.encode_query(query) if "dense" in need and entry.dense is not None else None
            with entry.lock:
                if vector is not None and entry.dense is not None:
                    rankings["dense"] = entry.dense.search(vector, depth)
                if "bm25" in need and entry.bm25 is not None:
                    rankings["bm25"] = entry.bm25.search(query, depth)

        if retriever == "hybrid":
            if s.fusion == "rrf":
                fused = fusion.rrf(list(rankings.values()), k=s.rrf_k)
            else:
                fused = fusion.weighted(rankings["dense"], rankings["bm25"], s.dense_weight)
        else:
            fused = dict(zip(*(x.tolist() for x in rankings[retriever])))
        if dates:
            # Date-aware: chunks from sessions of the month / year the query names move up.
            # Only the candidates' session dates are read (whole chunks only for the top k):
            # a dated query has up to 2 x candidates of them, and decoding each whole chunk
            # cost more than the rest of the search.
            when = self.store.session_dates(namespace, list(fused))
            lift = s.date_boost * (max(fused.values(), default=0.0) if retriever != "hybrid" or s.fusion == "rrf" else 1.0)
            fused = {cid: v + (lift if cid in when and dates.matches(when[cid]) else 0.0)
                     for cid, v in fused.items()}  # fmt: skip
        order = sorted(fused, key=lambda c: (-fused[c], c))[:k]
        chunks = {c.id: c for c in self.store.chunks(namespace, order)} if order else {}
        components = {name: dict(zip(r.tolist(), sc.tolist())) for name, (r, sc) in rankings.items()}
        hits = []
        for cid in order:
            if cid not in chunks:  # deleted between the index sync and this read
                continue
            hits.append(Hit(
                chunk=chunks[cid], score=float(fused[cid]), rank=len(hits) + 1, retriever=retriever,
                components={name: float(m[cid]) for name, m in components.items() if cid in m},
            ))  # fmt: skip
        return hits


def _write_all(target: Path, save: Any) -> list[Path]:
    """Save through temporary names, then move each file into place (shredding the old)."""
    tmp = target.with_name(target.name + ".new")
    written = save(tmp)
    out = []
    for p in written:
        final = Path(str(p).replace(tmp.name, target.name, 1))
        index_files.shred(final)
        p.replace(final)
        out.append(final)
    return out


def _save_bm25(index: BM25Index, path: Path) -> list[Path]:
    with open(path, "wb") as f:
        index.save(f)
    return [path]
