"""Lexical retrieval: BM25 (bm25s, Lucene variant, k1 = 1.5, b = 0.75) with English
stemming and stop words.

On LoCoMo, BM25 over 256-token chunks finds more of the questions' evidence than the
dense encoder does, so it is a first-class retriever here, not a fallback.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["BM25Index"]


def _stemmer():  # type: ignore[no-untyped-def]
    try:
        import Stemmer

        return Stemmer.Stemmer("english")
    except ImportError:  # PyStemmer is a dependency, but keep BM25 usable without it
        return None


class BM25Index:
    def __init__(self, texts: Sequence[str], *, k1: float = 1.5, b: float = 0.75) -> None:
        import bm25s

        self._bm25s = bm25s
        self._stemmer = _stemmer()
        self.size = len(texts)
        self._retriever = bm25s.BM25(k1=k1, b=b)
        if self.size:
            tokens = bm25s.tokenize(list(texts), stopwords="en", stemmer=self._stemmer, show_progress=False)
            self._retriever.index(tokens, show_progress=False)

    def tokenize(self, text: str) -> list[str]:
        """The terms BM25 sees: lower-cased, stop words removed, Snowball-stemmed."""
        out = self._bm25s.tokenize([text], stopwords="en", stemmer=self._stemmer, return_ids=False, show_progress=False)
        return list(out[0])

    def search(self, query: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows, scores) of the ``k`` best rows with a positive score, best first."""
        k = min(k, self.size)
        if k == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        terms = [t for t in self.tokenize(query) if t in self._retriever.vocab_dict]
        if not terms:  # no query term occurs in the memory: nothing matches
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        rows, scores = self._retriever.retrieve([terms], k=k, show_progress=False, n_threads=1)
        keep = scores[0] > 0  # rows that share no term with the query are not matches
        return rows[0][keep].astype(np.int64), scores[0][keep].astype(np.float32)
