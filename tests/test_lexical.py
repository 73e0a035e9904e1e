"""The incremental BM25 index against independent references: the Lucene formula by hand,
bm25s (the library it replaced), and a fresh build after any sequence of adds and deletes."""

from __future__ import annotations

import math
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from budgetmem.retrieval.bm25 import BM25Index

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from _synthetic import ZipfTexts  # noqa: E402

TEXTS = [
    "The cat sat on the warm mat by the window.",
    "Dogs were running in the park while cats slept.",
    "Sourdough bread needs a starter fed with rye flour.",
    "The ferry timetable in Lisbon changed in March.",
    "A cat and a dog shared the sofa; the cat won.",
    "Rye flour and a lively starter make the loaf rise.",
    "In March the Lisbon trams ran late every morning.",
]


def _by_hand(index: BM25Index, docs: dict[int, str], query: str, k1: float = 1.5, b: float = 0.75) -> dict[int, float]:
    toks = {k: index.tokenize(d) for k, d in docs.items()}
    n, avgdl = len(docs), sum(map(len, toks.values())) / len(docs)
    out: dict[int, float] = {}
    for term in set(index.tokenize(query)):
        df = sum(term in t for t in toks.values())
        if df == 0:
            continue
        idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
        for key, t in toks.items():
            tf = Counter(t)[term]
            if tf:
                out[key] = out.get(key, 0.0) + idf * tf / (tf + k1 * (1 - b + b * len(t) / avgdl))
    return out


def _check(index: BM25Index, docs: dict[int, str], query: str) -> None:
    keys, scores = index.search(query, k=len(docs))
    ref = _by_hand(index, docs, query)
    assert dict(zip(keys.tolist(), scores.tolist())) == pytest.approx(ref, rel=1e-5)
    assert list(scores) == sorted(scores, reverse=True)


QUERIES = ["cat", "rye flour starter", "Lisbon in March", "dogs running cats", "zebra"]


@pytest.mark.parametrize("query", QUERIES)
def test_incremental_adds_score_like_the_formula(query):
    index = BM25Index()
    for i, text in enumerate(TEXTS):  # one add per text: seven segments merged as they come
        index.add([100 + i], [text])
    _check(index, {100 + i: t for i, t in enumerate(TEXTS)}, query)


@pytest.mark.parametrize("query", QUERIES)
def test_deletes_score_like_the_formula(query):
    index = BM25Index(TEXTS, keys=range(len(TEXTS)))
    assert index.remove([0, 4, 42]) == 2  # 42 was never added
    docs = {i: t for i, t in enumerate(TEXTS) if i not in (0, 4)}
    _check(index, docs, query)
    index.compact()  # dead postings dropped: same scores
    _check(index, docs, query)
    assert 0 not in index.search("cat", 10)[0].tolist()


def test_matches_bm25s_on_a_zipf_corpus():
    import bm25s

    zipf = ZipfTexts(vocab_size=3000, seed=1, min_words=20, max_words=60)
    texts = list(zipf.texts(1500, seed=2))
    index = BM25Index(texts[:500])
    index.add(np.arange(500, 1500), texts[500:])
    ref = bm25s.BM25(k1=1.5, b=0.75)
    ref.index([index.tokenize(t) for t in texts], show_progress=False)
    for q in zipf.queries(30, seed=3):
        terms = list(dict.fromkeys(t for t in index.tokenize(q) if t in ref.vocab_dict))  # each term once
        keys, scores = index.search(q, 10)
        r_rows, r_scores = ref.retrieve([terms], k=10, show_progress=False)
        np.testing.assert_allclose(scores, r_scores[0], rtol=1e-4)
        assert set(keys.tolist()) == set(r_rows[0].tolist()) or np.unique(r_scores[0]).size < 10


def test_background_merge_and_save_load(tmp_path, monkeypatch):
    monkeypatch.setattr(BM25Index, "SYNC_MERGE_POSTINGS", 50)  # every merge goes to the background
    zipf = ZipfTexts(vocab_size=2000, seed=4, min_words=10, max_words=30)
    texts = list(zipf.texts(400, seed=5))
    index = BM25Index()
    for a in range(0, 400, 40):
        index.add(np.arange(a, a + 40), texts[a : a + 40])
    index.wait_merges()
    index.remove(range(0, 400, 9))
    fresh = BM25Index([t for i, t in enumerate(texts) if i % 9], keys=[i for i in range(400) if i % 9])
    path = tmp_path / "lex.npz"
    index.save(path)
    back = BM25Index.load(path)
    for q in zipf.queries(20, seed=6):
        want_k, want_s = fresh.search(q, 8)
        for got in (index, back):
            k, s = got.search(q, 8)
            np.testing.assert_allclose(s, want_s, rtol=1e-5)
            assert k.tolist() == want_k.tolist()
    assert back.size == fresh.size


def test_no_shared_term_finds_nothing():
    keys, scores = BM25Index(TEXTS).search("zebra quantum", k=3)
    assert keys.size == 0 and scores.size == 0
