"""Lexical retrieval: an incremental BM25 index (Lucene variant, k1 = 1.5, b = 0.75) with
English stemming and stop words, scored exactly after every add and delete.

On LoCoMo, BM25 over 256-token chunks finds more of the questions' evidence than the
dense encoder does, so it is a first-class retriever here, not a fallback.

Why not bm25s (kept as the tokenizer's reference) or SQLite FTS5: bm25s bakes idf and
length normalisation into its stored scores, so every add rebuilt the whole index (177 s
at 1M chunks); FTS5 is incremental and transactional, but scores every matching row of
every namespace at query time (bench/retrieval.py, lexical section, has both measured).
Here postings hold raw term frequencies in immutable *segments*; idf and the average
length are global counters, so a score is computed at query time from the current
statistics and matches the formula exactly whatever the history of adds and deletes:

    idf(t) = ln(1 + (N - df + 0.5) / (df + 0.5))
    score(d, q) = sum over distinct t in q of idf(t) * tf / (tf + k1 * (1 - b + b * dl / avgdl))

An add tokenises only the new texts and appends one segment. Small tail segments are
merged at once (cheap); a merge whose result would be large runs in a background thread
and swaps in when done, so an add never waits for it. A delete clears the row's ``alive``
bit and takes its terms off ``df`` at once; merges drop dead postings.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

__all__ = ["BM25Index", "Tokenizer"]

_TOKEN = re.compile(r"(?u)\b\w\w+\b")  # bm25s' default pattern: words of two or more characters


def _stop_words() -> frozenset[str]:
    try:
        from bm25s.stopwords import STOPWORDS_EN

        return frozenset(STOPWORDS_EN)
    except ImportError:  # bm25s is a dependency; keep a usable (smaller) list without it
        return frozenset("a an and are as at be but by for if in into is it no not of on or such that the their then "
                         "there these they this to was will with".split())


class Tokenizer:
    """The terms BM25 sees: lower-cased words of 2+ characters, English stop words removed,
    Snowball-stemmed (PyStemmer), as bm25s.tokenize does.

    Stems are cached per word. One tokenizer is shared by every index a searcher loads: a
    cache per index cost 1.2 MB of a 200-chunk namespace's 1.6 MB (tracemalloc). The cache
    is emptied when it passes ``max_cached`` words, so it stays bounded."""

    max_cached = 200_000

    def __init__(self) -> None:
        self.stop = _stop_words()
        try:
            import Stemmer

            self._stem = Stemmer.Stemmer("english").stemWords
        except ImportError:  # PyStemmer is a dependency, but keep BM25 usable without it
            self._stem = None
        self._cache: dict[str, str] = {}

    def stems(self, words: set[str]) -> dict[str, str]:
        """Each word's stem, "" for a stop word (stemmed once per word, then cached)."""
        cache = self._cache
        miss = [w for w in words if w not in cache]
        if miss:
            if len(cache) + len(miss) > self.max_cached:
                cache.clear()
                miss = list(words)
            stems = self._stem(miss) if self._stem is not None else miss
            for w, st in zip(miss, stems):
                cache[w] = "" if w in self.stop else st
        return {w: cache[w] for w in words}

    def __call__(self, text: str) -> list[str]:
        words = _TOKEN.findall(text.lower())
        stems = self.stems(set(words))
        return list(filter(None, map(stems.__getitem__, words)))


@dataclass(frozen=True)
class _Segment:
    """Postings of a batch of rows, grouped by term: rows[indptr[i]:indptr[i+1]] hold term
    ``terms[i]`` with frequencies ``tf`` (same slice)."""

    terms: np.ndarray  # int32, sorted
    indptr: np.ndarray  # int64, len(terms) + 1
    rows: np.ndarray  # int32
    tf: np.ndarray  # uint16 (a count above 65,535 in one chunk is clipped)
    n_rows: int

    @property
    def n_postings(self) -> int:
        return int(self.rows.size)

    @staticmethod
    def build(term_ids: np.ndarray, rows: np.ndarray) -> _Segment:
        """From one (term, row) pair per token occurrence."""
        if term_ids.size == 0:
            z = np.zeros(0, np.int32)
            return _Segment(z, np.zeros(1, np.int64), z, np.zeros(0, np.uint16), int(np.unique(rows).size))
        key = (term_ids.astype(np.int64) << 32) | rows.astype(np.int64)
        uniq, counts = np.unique(key, return_counts=True)  # sorted by term, then row
        t = (uniq >> 32).astype(np.int32)
        terms, starts = np.unique(t, return_index=True)
        indptr = np.append(starts, t.size).astype(np.int64)
        r = (uniq & 0xFFFFFFFF).astype(np.int32)
        return _Segment(terms, indptr, r, np.minimum(counts, 65535).astype(np.uint16), int(np.unique(r).size))

    @staticmethod
    def merge(parts: Sequence[_Segment], alive: np.ndarray) -> _Segment:
        """One segment from several, without the postings of dead rows."""
        t = np.concatenate([np.repeat(p.terms, np.diff(p.indptr)) for p in parts])
        r = np.concatenate([p.rows for p in parts])
        f = np.concatenate([p.tf for p in parts])
        keep = alive[r]
        t, r, f = t[keep], r[keep], f[keep]
        order = np.lexsort((r, t))
        t, r, f = t[order], r[order], f[order]
        terms, starts = np.unique(t, return_index=True)
        indptr = np.append(starts, t.size).astype(np.int64)
        return _Segment(terms.astype(np.int32), indptr, r, f, int(np.unique(r).size))

    def postings(self, term: int) -> tuple[np.ndarray, np.ndarray]:
        i = int(np.searchsorted(self.terms, term))
        if i == self.terms.size or self.terms[i] != term:
            return self.rows[:0], self.tf[:0]
        a, b = self.indptr[i], self.indptr[i + 1]
        return self.rows[a:b], self.tf[a:b]


class BM25Index:
    """BM25 over texts keyed by integers (chunk ids; 0..n-1 when no keys are given).

    ``add`` and ``remove`` are incremental; ``search`` returns (keys, scores), best first.
    Thread-safe: searches and updates may come from several threads.
    """

    SYNC_MERGE_POSTINGS = 2_000_000
    """Merges up to this many postings (~20k chunks of 256 tokens) run inside ``add``
    (about a second on a 2-core machine); larger ones run in a background thread."""

    def __init__(
        self,
        texts: Sequence[str] = (),
        keys: Iterable[int] | None = None,
        *,
        k1: float = 1.5,
        b: float = 0.75,
        tokenizer: Tokenizer | None = None,
    ) -> None:
        self.k1, self.b = float(k1), float(b)
        self.tokenize = tokenizer or Tokenizer()
        self._vocab: dict[str, int] = {}
        self._df = np.zeros(0, np.int64)
        self._len = np.zeros(0, np.float32)  # tokens per row
        self._alive = np.zeros(0, bool)
        self._keys = np.zeros(0, np.int64)  # row -> key
        self._row_of: dict[int, int] = {}
        self._segments: list[_Segment] = []
        self._n_alive = 0
        self._total_len = 0.0
        self._lock = threading.RLock()
        self._merging: threading.Thread | None = None
        self._removed = False  # a segment may hold dead rows' postings
        if len(texts):
            self.add(np.arange(len(texts)) if keys is None else np.fromiter(keys, np.int64), texts)

    # ------------------------------------------------------------------ state
    @property
    def size(self) -> int:
        """Live (not deleted) texts."""
        return self._n_alive

    def __len__(self) -> int:
        return self._n_alive

    @property
    def n_segments(self) -> int:
        return len(self._segments)

    def keys(self) -> np.ndarray:
        with self._lock:
            return self._keys[self._alive].copy()

    def _grow(self, n: int) -> int:
        first = self._keys.size
        self._len = np.concatenate([self._len, np.zeros(n, np.float32)])
        self._alive = np.concatenate([self._alive, np.ones(n, bool)])
        self._keys = np.concatenate([self._keys, np.zeros(n, np.int64)])
        return first

    # ------------------------------------------------------------------ updates
    def add(self, keys: Sequence[int] | np.ndarray, texts: Sequence[str]) -> None:
        """Index ``texts`` under ``keys`` (new keys; adding a present key replaces it)."""
        keys = np.asarray(keys, dtype=np.int64)
        if keys.size != len(texts):
            raise ValueError(f"{keys.size} keys for {len(texts)} texts")
        if keys.size == 0:
            return
        with self._lock:
            present = [int(k) for k in keys.tolist() if int(k) in self._row_of]
            if present:
                self.remove(present)
            tids, doc = self._term_ids(texts)
            if len(self._vocab) > self._df.size:
                grow = max(len(self._vocab) - self._df.size, self._df.size // 2)  # geometric: amortised O(1)
                self._df = np.concatenate([self._df, np.zeros(grow, np.int64)])
            first = self._grow(keys.size)
            lengths = np.bincount(doc, minlength=keys.size)
            rows = doc.astype(np.int64) + first
            seg = _Segment.build(tids, rows)
            self._df[seg.terms] += np.diff(seg.indptr)  # a segment's terms are distinct
            self._len[first:] = lengths
            self._keys[first:] = keys
            for r, k in enumerate(keys.tolist(), start=first):
                self._row_of[int(k)] = r
            self._n_alive += keys.size
            self._total_len += float(lengths.sum())
            self._segments.append(seg)
            self._merge_tail()

    BLOCK = 20_000
    """Texts tokenised at a time: one Python string per word is held only for a block (a
    whole 1M-text corpus at once needed over 20 GB)."""

    def _term_ids(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(term id, text index) of every kept token, new terms added to the vocabulary.

        Per block, each distinct word is stemmed and looked up once, then one C-level dict
        lookup per word: text-by-text tokenising dominated the build (1.6 s of CPU per 10k
        texts of 150 words, against 1.3 s this way with a cold stem cache)."""
        vocab = self._vocab
        tid_parts, doc_parts = [], []
        for a in range(0, len(texts), self.BLOCK):
            words = [_TOKEN.findall(t.lower()) for t in texts[a : a + self.BLOCK]]
            counts = np.fromiter(map(len, words), np.int64, count=len(words))
            flat = [w for ws in words for w in ws]
            del words
            stems = self.tokenize.stems(set(flat))
            term_of = {w: (vocab.setdefault(st, len(vocab)) if st else -1) for w, st in stems.items()}
            tids = np.fromiter(map(term_of.__getitem__, flat), np.int32, count=len(flat))
            del flat
            doc = np.repeat(np.arange(a, a + counts.size, dtype=np.int32), counts)
            kept = tids >= 0  # stop words out
            tid_parts.append(tids[kept])
            doc_parts.append(doc[kept])
        if not tid_parts:
            return np.zeros(0, np.int32), np.zeros(0, np.int32)
        return np.concatenate(tid_parts), np.concatenate(doc_parts)

    def remove(self, keys: Iterable[int]) -> int:
        """Delete texts by key; unknown keys are ignored. Returns how many were removed."""
        with self._lock:
            rows = np.array([r for k in keys if (r := self._row_of.pop(int(k), None)) is not None], dtype=np.int64)
            if rows.size == 0:
                return 0
            for seg in self._segments:  # take the rows' terms off df (a scan; deletes are rare)
                hit = np.flatnonzero(np.isin(seg.rows, rows))
                if hit.size:
                    term_at = np.searchsorted(seg.indptr, hit, side="right") - 1
                    np.subtract.at(self._df, seg.terms[term_at], 1)
            self._alive[rows] = False
            self._removed = True
            self._n_alive -= rows.size
            self._total_len -= float(self._len[rows].sum())
            return int(rows.size)

    def _merge_tail(self) -> None:
        """Keep the segment count logarithmic: merge the two newest segments while the newest
        is at least half the size of the one before (a binary counter). Small merges run
        here; a large one goes to a background thread."""
        segs = self._segments
        while len(segs) >= 2 and segs[-1].n_postings * 2 >= segs[-2].n_postings:
            if segs[-1].n_postings + segs[-2].n_postings > self.SYNC_MERGE_POSTINGS:
                self._merge_in_background(len(segs) - 2)
                return
            segs[-2:] = [_Segment.merge(segs[-2:], self._alive)]

    def _merge_in_background(self, start: int) -> None:
        if self._merging is not None and self._merging.is_alive():
            return  # one at a time; the next add asks again
        parts = list(self._segments[start:])
        alive = self._alive.copy()  # rows deleted meanwhile stay masked at query time

        def run() -> None:
            merged = _Segment.merge(parts, alive)
            with self._lock:
                n = len(parts)
                # Swap only if nothing touched those segments meanwhile (adds only append).
                if len(self._segments) >= start + n and all(a is b for a, b in zip(self._segments[start:], parts)):
                    self._segments[start : start + n] = [merged]

        self._merging = threading.Thread(target=run, name="bm25-merge", daemon=True)
        self._merging.start()

    def wait_merges(self) -> None:
        """Block until a background merge is done (tests and benchmarks)."""
        t = self._merging
        if t is not None:
            t.join()

    def compact(self) -> None:
        """Merge every segment into one without dead rows' postings (and forget their terms'
        frequencies for good). Called before the index is written to disk after a delete."""
        self.wait_merges()
        with self._lock:
            if len(self._segments) > 1 or (self._segments and self._removed):
                self._segments = [_Segment.merge(self._segments, self._alive)]
            self._removed = False
            # Terms no live text uses any more leave the vocabulary (a forgotten chunk's words
            # must not survive in it, nor in a saved file): renumber the rest.
            used = self._df[: len(self._vocab)] > 0
            if not used.all():
                new_id = np.cumsum(used) - 1
                self._vocab = {w: int(new_id[i]) for w, i in self._vocab.items() if used[i]}
                self._df = self._df[: used.size][used].copy()
                if self._segments:
                    seg = self._segments[0]
                    self._segments = [_Segment(new_id[seg.terms].astype(np.int32), seg.indptr, seg.rows, seg.tf, seg.n_rows)]

    # ------------------------------------------------------------------ search
    def search(self, query: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(keys, scores) of the ``k`` best texts with a positive score, best first."""
        with self._lock:
            n = self._n_alive
            k = min(int(k), n)
            terms = {self._vocab[t] for t in self.tokenize(query) if t in self._vocab}
            if k <= 0 or not terms:  # no query term occurs in the memory: nothing matches
                return np.zeros(0, np.int64), np.zeros(0, np.float32)
            avgdl = self._total_len / n
            k1, b = self.k1, self.b
            rows_parts, w_parts = [], []
            for t in terms:
                df = int(self._df[t])
                if df <= 0:
                    continue
                idf = np.log1p((n - df + 0.5) / (df + 0.5))
                for seg in self._segments:
                    r, tf = seg.postings(t)
                    if r.size:
                        f = tf.astype(np.float32)
                        w = idf * f / (f + k1 * (1.0 - b + b * self._len[r] / avgdl))
                        rows_parts.append(r)
                        w_parts.append(w)
            if not rows_parts:
                return np.zeros(0, np.int64), np.zeros(0, np.float32)
            rows = np.concatenate(rows_parts)
            w = np.concatenate(w_parts)
            if rows.size * 8 >= self._alive.size:
                scores = np.bincount(rows, weights=w, minlength=self._alive.size)
                scores[~self._alive] = 0.0
                cand = np.flatnonzero(scores > 0)
                cand_scores = scores[cand]
            else:  # few postings: sum them without a dense array the size of the index
                cand, inv = np.unique(rows, return_inverse=True)
                cand_scores = np.bincount(inv, weights=w)
                keep = self._alive[cand] & (cand_scores > 0)
                cand, cand_scores = cand[keep], cand_scores[keep]
            if cand.size > k:
                top = np.argpartition(-cand_scores, k - 1)[:k]
                cand, cand_scores = cand[top], cand_scores[top]
            # Best first; ties by key, so equal scores come out in a stable order.
            order = np.lexsort((self._keys[cand], -cand_scores))
            return self._keys[cand[order]].copy(), cand_scores[order].astype(np.float32)

    # ------------------------------------------------------------------ persistence
    def save(self, path: Path | BinaryIO) -> None:
        """Write the index to one .npz file (compacted: dead rows leave no postings behind)."""
        self.compact()
        with self._lock:
            seg = self._segments[0] if self._segments else _Segment.build(np.zeros(0, np.int64), np.zeros(0, np.int64))
            alive = self._alive
            vocab = np.array(sorted(self._vocab, key=self._vocab.__getitem__), dtype=object)
            np.savez(
                path,
                terms=seg.terms, indptr=seg.indptr, rows=seg.rows, tf=seg.tf,
                lengths=np.where(alive, self._len, 0), alive=alive, keys=np.where(alive, self._keys, -1),
                df=self._df[: len(self._vocab)], vocab=np.frombuffer("\n".join(vocab.tolist()).encode("utf-8"), np.uint8),
                params=np.array([self.k1, self.b]),
            )  # fmt: skip

    @classmethod
    def load(cls, path: Path | BinaryIO, *, tokenizer: Tokenizer | None = None) -> BM25Index:
        with np.load(path, allow_pickle=False) as z:
            k1, b = (float(x) for x in z["params"])
            idx = cls(k1=k1, b=b, tokenizer=tokenizer)
            text = z["vocab"].tobytes().decode("utf-8")
            words = text.split("\n") if text else []
            idx._vocab = {w: i for i, w in enumerate(words)}
            idx._df = z["df"].astype(np.int64)
            idx._len = z["lengths"].astype(np.float32)
            idx._alive = z["alive"].astype(bool)
            idx._keys = z["keys"].astype(np.int64)
            seg = _Segment(z["terms"], z["indptr"], z["rows"], z["tf"], int(idx._alive.sum()))
        if len(idx._vocab) != idx._df.size:
            raise ValueError("vocabulary and document frequencies disagree")
        idx._segments = [seg] if seg.terms.size else []
        idx._row_of = {int(k): r for r, k in enumerate(idx._keys.tolist()) if idx._alive[r]}
        idx._n_alive = len(idx._row_of)
        idx._total_len = float(idx._len[idx._alive].sum())
        return idx
