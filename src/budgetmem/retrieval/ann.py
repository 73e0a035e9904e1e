"""Dense retrieval that scales: exact search on small namespaces, an HNSW graph on large ones.

Keys are chunk ids; vectors are unit-length, so inner product = cosine. Below
``exact_below`` vectors the index is a plain matrix searched exactly (no build cost,
recall 1); past that it becomes an HNSW graph from one of two libraries, measured against
each other on the same vectors in bench/retrieval.py (ANN section):

- ``faiss``: ``IndexHNSWFlat`` (``IndexHNSWSQ`` for f16 / i8). faiss's HNSW cannot remove
  a vector, so a removed key becomes a tombstone: its position is excluded from every
  search (an ``IDSelector``) and its stored code is overwritten with zeros at once, so
  neither memory nor a saved file keeps the forgotten vector.
- ``usearch``: removes keys natively, but a freed slot keeps its bytes (in memory and in a
  saved file) until reused. A removal therefore re-fills the freed slots with zero vectors
  under throw-away keys and removes those again (usearch reuses freed slots).

Either way tests/test_ann.py reads the saved file to check that a removed vector is gone,
and the graph is rebuilt from the live vectors once removed slots exceed a quarter of the
live ones. ``dtype`` f16 or i8 keeps the graph's vectors in half or a quarter of the
memory; the recall it costs is measured in the benchmark. Exact mode keeps float32.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Literal

import numpy as np

__all__ = ["VectorIndex", "DTYPES", "BACKENDS"]

DTYPES = ("f32", "f16", "i8")
BACKENDS = ("faiss", "usearch")
_SCRUB_BASE = 1 << 62  # usearch's throw-away keys; chunk ids never get near this


def _threads() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


class _FaissGraph:
    def __init__(self, dim: int, dtype: str, m: int, ef_add: int, ef_search: int) -> None:
        import faiss

        self.faiss = faiss
        self.dim, self.dtype, self.ef_search = dim, dtype, ef_search
        if dtype == "f32":
            self.index = faiss.IndexHNSWFlat(dim, m, faiss.METRIC_INNER_PRODUCT)
        else:
            qt = faiss.ScalarQuantizer.QT_fp16 if dtype == "f16" else faiss.ScalarQuantizer.QT_8bit
            self.index = faiss.IndexHNSWSQ(dim, qt, m, faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.efConstruction = ef_add
        self.keys_at = np.zeros(0, np.int64)  # position -> key
        self.pos: dict[int, int] = {}
        self.dead = np.zeros(0, bool)
        self._params = None

    def __len__(self) -> int:
        return len(self.pos)

    def keys(self) -> np.ndarray:
        return self.keys_at[~self.dead]

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        if not self.index.is_trained:  # int8: per-dimension ranges from the first vectors
            self.index.train(vectors)
        first = self.index.ntotal
        with _omp_threads(self.faiss, _threads()):
            self.index.add(vectors)
        self.keys_at = np.concatenate([self.keys_at, keys])
        self.dead = np.concatenate([self.dead, np.zeros(keys.size, bool)])
        for i, k in enumerate(keys.tolist(), start=first):
            self.pos[int(k)] = i

    def remove(self, keys: np.ndarray) -> int:
        at = np.array([p for k in keys.tolist() if (p := self.pos.pop(int(k), None)) is not None], np.int64)
        if at.size:
            storage = self.faiss.downcast_index(self.index.storage)
            codes = self.faiss.rev_swig_ptr(storage.codes.data(), storage.codes.size())
            cs = storage.code_size
            for p in at.tolist():
                codes[p * cs : (p + 1) * cs] = 0
            self.dead[at] = True
            self._params = None
        return int(at.size)

    def get(self, keys: np.ndarray) -> np.ndarray:
        at = np.array([self.pos[int(k)] for k in keys.tolist()], np.int64)
        return self.index.reconstruct_batch(at)

    def search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self._params is None:
            self._params = self.faiss.SearchParametersHNSW()
            self._params.efSearch = self.ef_search
            if self.dead.any():
                # Keep the selectors referenced: faiss holds bare pointers to them.
                self._sel = (batch := self.faiss.IDSelectorBatch(np.flatnonzero(self.dead).astype(np.int64)))
                self._not = self.faiss.IDSelectorNot(batch)
                self._params.sel = self._not
        with _omp_threads(self.faiss, 1):
            scores, at = self.index.search(q.reshape(1, -1), k, params=self._params)
        ok = at[0] >= 0
        return self.keys_at[at[0][ok]], scores[0][ok]

    def save(self, path: Path) -> None:
        self.faiss.write_index(self.index, str(path))
        with open(str(path) + "-keys", "wb") as f:
            np.savez(f, keys=self.keys_at, dead=self.dead)

    def load(self, path: Path) -> None:
        self.index = self.faiss.read_index(str(path))
        with np.load(str(path) + "-keys", allow_pickle=False) as z:
            self.keys_at, self.dead = z["keys"].astype(np.int64), z["dead"].astype(bool)
        if self.keys_at.size != self.index.ntotal or self.index.d != self.dim:
            raise ValueError("faiss index and its key file disagree")
        self.index.hnsw.efSearch = self.ef_search
        self.pos = {int(k): i for i, k in enumerate(self.keys_at.tolist()) if not self.dead[i]}

    def files(self, path: Path) -> list[Path]:
        return [path, Path(str(path) + "-keys")]


class _UsearchGraph:
    def __init__(self, dim: int, dtype: str, m: int, ef_add: int, ef_search: int) -> None:
        from usearch.index import Index

        # Inner product equals cosine on unit vectors and skips the norms; usearch's int8
        # kernels need the cosine metric to scale the quantised vectors back.
        self.dim, self.dtype = dim, dtype
        self.index = Index(ndim=dim, metric="cos" if dtype == "i8" else "ip", dtype=dtype, connectivity=m,
                           expansion_add=ef_add, expansion_search=ef_search)  # fmt: skip

    def __len__(self) -> int:
        return len(self.index)

    def keys(self) -> np.ndarray:
        return np.asarray(self.index.keys, dtype=np.int64)

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        self.index.add(keys.astype(np.uint64), vectors, threads=_threads())

    def remove(self, keys: np.ndarray) -> int:
        present = np.array([k for k in keys.tolist() if self.index.contains(int(k))], np.int64)
        if present.size == 0:
            return 0
        self.index.remove(present.astype(np.uint64))
        scrub = (_SCRUB_BASE + np.arange(present.size)).astype(np.uint64)
        self.index.add(scrub, np.zeros((present.size, self.dim), np.float32), threads=1)
        self.index.remove(scrub)
        return int(present.size)

    def get(self, keys: np.ndarray) -> np.ndarray:
        out = np.asarray(self.index.get(keys.astype(np.uint64), dtype="f32"), np.float32).reshape(-1, self.dim)
        if self.dtype == "i8":  # usearch scales unit vectors to [-127, 127] for int8
            out /= np.linalg.norm(out, axis=1, keepdims=True).clip(min=1e-12)
        return out

    def search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        m = self.index.search(q, k, threads=1)
        return np.asarray(m.keys, dtype=np.int64), 1.0 - np.asarray(m.distances, dtype=np.float32)

    def save(self, path: Path) -> None:
        self.index.save(str(path))

    def load(self, path: Path) -> None:
        self.index.load(str(path))
        if self.index.ndim != self.dim:
            raise ValueError(f"index has {self.index.ndim} dimensions, expected {self.dim}")

    def files(self, path: Path) -> list[Path]:
        return [path]


class _omp_threads:
    """faiss's OpenMP thread count for one call: all cores to build, one to search (on 2
    cores a second thread only adds wake-up latency: the foundation benchmark measured a 1M
    flat search at 168 ms with one thread and 412 ms with two)."""

    def __init__(self, faiss, n: int) -> None:  # type: ignore[no-untyped-def]
        self.faiss, self.n = faiss, n

    def __enter__(self) -> None:
        self.before = self.faiss.omp_get_max_threads()
        self.faiss.omp_set_num_threads(self.n)

    def __exit__(self, *exc: object) -> None:
        self.faiss.omp_set_num_threads(self.before)


class VectorIndex:
    """Exact below ``exact_below`` vectors, HNSW above; add, remove, search, save, load."""

    def __init__(
        self,
        dim: int,
        *,
        backend: Literal["faiss", "usearch"] = "faiss",
        dtype: Literal["f32", "f16", "i8"] = "f32",
        exact_below: int = 20_000,
        connectivity: int = 32,
        expansion_add: int = 64,
        expansion_search: int = 256,
    ) -> None:
        if dtype not in DTYPES:
            raise ValueError(f"unknown vector dtype {dtype!r}; use one of {DTYPES}")
        if backend not in BACKENDS:
            raise ValueError(f"unknown ANN backend {backend!r}; use one of {BACKENDS}")
        self.dim = int(dim)
        self.backend = backend
        self.dtype = dtype
        self.exact_below = int(exact_below)
        self._graph_args = (self.dim, dtype, int(connectivity), int(expansion_add), int(expansion_search))
        self._lock = threading.RLock()
        # Exact mode: a matrix and its keys. Graph mode: ``_graph`` (and these stay empty).
        self._mat = np.zeros((0, self.dim), np.float32)
        self._keys = np.zeros(0, np.int64)
        self._graph: _FaissGraph | _UsearchGraph | None = None
        self._freed = 0  # removals since the graph was built

    # ------------------------------------------------------------------ state
    @property
    def mode(self) -> str:
        return "exact" if self._graph is None else "hnsw"

    def __len__(self) -> int:
        return int(self._keys.size) if self._graph is None else len(self._graph)

    def keys(self) -> np.ndarray:
        with self._lock:
            return self._keys.copy() if self._graph is None else self._graph.keys()

    def _new_graph(self) -> _FaissGraph | _UsearchGraph:
        return (_FaissGraph if self.backend == "faiss" else _UsearchGraph)(*self._graph_args)

    def _to_graph(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        graph = self._new_graph()
        if keys.size:
            graph.add(keys, np.ascontiguousarray(vectors, dtype=np.float32))
        self._graph = graph
        self._mat = np.zeros((0, self.dim), np.float32)
        self._keys = np.zeros(0, np.int64)
        self._freed = 0

    # ------------------------------------------------------------------ updates
    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors under new keys (chunk ids are never reused, so keys are new)."""
        keys = np.asarray(keys, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        if keys.size != vectors.shape[0]:
            raise ValueError(f"{keys.size} keys for {vectors.shape[0]} vectors")
        if keys.size == 0:
            return
        with self._lock:
            if self._graph is None:
                if self._keys.size + keys.size < self.exact_below:
                    self._mat = np.concatenate([self._mat, vectors])
                    self._keys = np.concatenate([self._keys, keys])
                else:
                    self._to_graph(np.concatenate([self._keys, keys]), np.concatenate([self._mat, vectors]))
                return
            self._graph.add(keys, vectors)

    def remove(self, keys: np.ndarray) -> int:
        """Remove keys (absent ones are ignored); their vectors are overwritten at once."""
        keys = np.asarray(keys, dtype=np.int64)
        with self._lock:
            if keys.size == 0:
                return 0
            if self._graph is None:
                keep = ~np.isin(self._keys, keys)
                gone = int((~keep).sum())
                if gone:
                    self._mat[~keep] = 0.0  # no copy of a forgotten vector outlives this call
                    self._mat = self._mat[keep].copy()
                    self._keys = self._keys[keep].copy()
                return gone
            gone = self._graph.remove(keys)
            self._freed += gone
            if self._freed * 4 > max(len(self._graph), 1):
                self._rebuild()
            return gone

    def _rebuild(self) -> None:
        """A fresh index from the live vectors (after many removals)."""
        keys = self.keys()
        vectors = self.get(keys)
        if keys.size < self.exact_below:
            self._graph = None
            self._mat, self._keys, self._freed = vectors, keys, 0
        else:
            self._to_graph(keys, vectors)

    # ------------------------------------------------------------------ reads
    def get(self, keys: np.ndarray) -> np.ndarray:
        """Stored vectors of ``keys`` (float32; f16/i8 vectors come back dequantised)."""
        keys = np.asarray(keys, dtype=np.int64)
        with self._lock:
            if keys.size == 0:
                return np.zeros((0, self.dim), np.float32)
            if self._graph is not None:
                return self._graph.get(keys)
            order = np.argsort(self._keys)
            pos = order[np.searchsorted(self._keys, keys, sorter=order).clip(max=max(self._keys.size - 1, 0))]
            if self._keys.size == 0 or not np.array_equal(self._keys[pos], keys):
                raise KeyError("some keys are not in the index")
            return self._mat[pos].copy()

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(keys, cosine scores) of the ``k`` nearest vectors, best first."""
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(-1)
        with self._lock:
            n = len(self)
            k = min(int(k), n)
            if k <= 0:
                return np.zeros(0, np.int64), np.zeros(0, np.float32)
            if self._graph is not None:
                return self._graph.search(q, k)
            scores = self._mat @ q
            top = np.argpartition(-scores, k - 1)[:k] if k < n else np.arange(n)
            top = top[np.lexsort((self._keys[top], -scores[top]))]
            return self._keys[top].copy(), scores[top].astype(np.float32)

    # ------------------------------------------------------------------ persistence
    def save(self, path: Path) -> list[Path]:
        """Write the index under ``path`` (and siblings named from it); returns the files."""
        with self._lock:
            if self._graph is None:
                with open(path, "wb") as f:
                    np.savez(f, keys=self._keys, vectors=self._mat)
                return [path]
            self._graph.save(path)
            return self._graph.files(path)

    def files(self, path: Path) -> list[Path]:
        """The files :meth:`save` writes for this index in its current mode."""
        return [path] if self._graph is None else self._graph.files(path)

    @classmethod
    def load(cls, path: Path, mode: str, dim: int, **options: object) -> VectorIndex:
        """Read what :meth:`save` wrote; ``mode`` and ``dim`` come from the file's header."""
        idx = cls(dim, **options)  # type: ignore[arg-type]
        if mode == "exact":
            with np.load(path, allow_pickle=False) as z:
                keys, mat = z["keys"].astype(np.int64), z["vectors"].astype(np.float32)
            if mat.shape != (keys.size, dim):
                raise ValueError(f"vector file holds {mat.shape}, expected ({keys.size}, {dim})")
            idx._keys, idx._mat = keys, mat
        else:
            graph = idx._new_graph()
            graph.load(path)
            idx._graph = graph
        return idx
