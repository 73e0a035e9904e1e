"""Dense retrieval: exact cosine similarity over unit vectors (faiss flat inner-product index).

The exact baseline of the foundation and write benchmarks. The searcher uses
:class:`~budgetmem.retrieval.ann.VectorIndex` (exact on small namespaces, HNSW on large ones):
a flat scan took 412 ms p50 at 1M chunks (docs/BENCHMARKS.md, foundation section).
"""

from __future__ import annotations

import numpy as np

__all__ = ["DenseIndex"]


class DenseIndex:
    def __init__(self, matrix: np.ndarray) -> None:
        import faiss

        # One query at a time does not pay for OpenMP's thread wake-ups: on our 2-core machines
        # faiss with one thread answered a 10k search in 1.7 ms vs 16 ms with two, and a 1M
        # search in 168 ms vs 412 ms (docs/BENCHMARKS.md, foundation section). faiss keeps
        # this setting per process; we only ever search one query at a time.
        faiss.omp_set_num_threads(1)
        matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        self.size, self.dim = matrix.shape
        self._index = faiss.IndexFlatIP(self.dim)
        if self.size:
            self._index.add(matrix)

    def vectors(self, rows: np.ndarray) -> np.ndarray:
        """The stored embeddings of ``rows`` (as indexed), without re-encoding anything."""
        return np.stack([self._index.reconstruct(int(r)) for r in rows]) if len(rows) else np.zeros((0, self.dim), np.float32)

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows, scores) of the ``k`` nearest rows, best first; scores are cosine similarities."""
        k = min(k, self.size)
        if k == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        scores, rows = self._index.search(np.asarray(query, dtype=np.float32).reshape(1, -1), k)
        return rows[0].astype(np.int64), scores[0]
