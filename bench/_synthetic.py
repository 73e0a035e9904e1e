"""Seeded synthetic corpora for retrieval latency: unit vectors and Zipf-distributed texts.

The texts are made of invented words (consonant-vowel syllables) so that no word is an
English stop word and no two words share a Snowball stem: BM25 sees exactly ``vocab_size``
distinct terms, with Zipf frequencies like a natural-language vocabulary.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

__all__ = ["unit_vectors", "embedding_like_vectors", "make_vocabulary", "ZipfTexts"]

_CONSONANTS = "bdfgklmnprstvz"
_VOWELS = "aeiou"


def unit_vectors(n: int, dim: int, seed: int, *, block: int = 100_000) -> np.ndarray:
    """``n`` random unit rows (float32), generated block by block to keep the peak low."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), dtype=np.float32)
    for a in range(0, n, block):
        b = min(n, a + block)
        x = rng.standard_normal((b - a, dim), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[a:b] = x
    return out


def embedding_like_vectors(n: int, dim: int, seed: int, *, latent: int = 32, noise: float = 0.5,
                           basis_seed: int = 7, block: int = 100_000) -> np.ndarray:
    """``n`` unit rows with the structure of sentence embeddings: a ``latent``-dimensional
    Gaussian pushed through one fixed random ``dim x latent`` map, plus isotropic noise of
    relative scale ``noise``, then normalised.

    Isotropic random unit vectors (:func:`unit_vectors`) are fine for timing a flat scan but
    useless for judging an approximate index: in 384 dimensions every pair is nearly
    orthogonal, the 10th neighbour is barely nearer than the 1,000th, and HNSW finds under 10%
    of the true top 10 at 100k rows (bench/retrieval.py measures it). Real encoders put
    their vectors near a low-dimensional manifold; this keeps that property. The map depends
    only on ``basis_seed``, so a corpus and its queries (different ``seed``) share it.
    """
    basis = np.random.default_rng(basis_seed).standard_normal((latent, dim), dtype=np.float32) / np.sqrt(latent)
    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), dtype=np.float32)
    for a in range(0, n, block):
        b = min(n, a + block)
        x = rng.standard_normal((b - a, latent), dtype=np.float32) @ basis
        x += noise * rng.standard_normal((b - a, dim), dtype=np.float32)  # the signal has unit variance per coordinate too
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[a:b] = x
    return out


def make_vocabulary(size: int, seed: int) -> list[str]:
    """``size`` invented words, each with its own stem, none an English stop word."""
    import bm25s.stopwords
    import Stemmer

    stop = set(bm25s.stopwords.STOPWORDS_EN)
    stemmer = Stemmer.Stemmer("english")
    rng = np.random.default_rng(seed)
    syllables = [c + v for c in _CONSONANTS for v in _VOWELS]
    words: list[str] = []
    seen_words: set[str] = set()
    seen_stems: set[str] = set()
    while len(words) < size:
        n_syl = rng.integers(2, 5, size=4 * size)  # 2-4 syllables
        picks = rng.integers(0, len(syllables), size=(4 * size, 4))
        cands = ["".join(syllables[j] for j in row[:k]) for row, k in zip(picks, n_syl)]
        stems = stemmer.stemWords(cands)
        for w, s in zip(cands, stems):
            if w in seen_words or s in seen_stems or w in stop or s in stop:
                continue
            seen_words.add(w)
            seen_stems.add(s)
            words.append(w)
            if len(words) == size:
                break
    return words


class ZipfTexts:
    """Texts of ``min_words..max_words`` words (mean ~150) drawn from a Zipf(``s``) vocabulary."""

    def __init__(self, vocab_size: int = 50_000, s: float = 1.0, seed: int = 0, min_words: int = 120, max_words: int = 180):
        self.vocab = make_vocabulary(vocab_size, seed)
        ranks = np.arange(1, vocab_size + 1, dtype=np.float64)
        p = ranks**-s
        self.cdf = np.cumsum(p / p.sum())
        self.cdf[-1] = 1.0
        self.s = s
        self.min_words, self.max_words = min_words, max_words
        self.seed = seed

    def _words(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.searchsorted(self.cdf, rng.random(n), side="right").astype(np.int32)

    def texts(self, n: int, seed: int, *, block: int = 50_000) -> Iterator[str]:
        rng = np.random.default_rng(seed)
        vocab = self.vocab
        for a in range(0, n, block):
            m = min(block, n - a)
            lengths = rng.integers(self.min_words, self.max_words + 1, size=m)
            ids = self._words(rng, int(lengths.sum())).tolist()
            pos = 0
            for ln in lengths.tolist():
                yield " ".join(map(vocab.__getitem__, ids[pos : pos + ln]))
                pos += ln

    def queries(self, n: int, seed: int, n_words: int = 6) -> list[str]:
        """Queries whose words follow the corpus' Zipf law (so some hit long posting lists)."""
        rng = np.random.default_rng(seed)
        ids = self._words(rng, n * n_words).reshape(n, n_words)
        return [" ".join(self.vocab[i] for i in row) for row in ids]
