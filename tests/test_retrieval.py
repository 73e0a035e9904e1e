"""Retrieval checked against independent references: BM25 by the formula, dense by numpy,
fusion by hand."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from conftest import EXAMPLE

from budgetmem import BudgetMem, RetrievalSettings
from budgetmem.errors import ConfigError
from budgetmem.retrieval import BM25Index, DenseIndex
from budgetmem.retrieval import fusion

CORPUS = [
    "The cat sat on the warm mat by the window.",
    "Dogs were running in the park while cats slept.",
    "Sourdough bread needs a starter fed with rye flour.",
    "The ferry timetable in Lisbon changed in March.",
    "A cat and a dog shared the sofa; the cat won.",
]


def _lucene_bm25(index: BM25Index, docs: list[str], query: str, k1=1.5, b=0.75) -> np.ndarray:
    """BM25 as Lucene defines it: idf = ln(1 + (N - df + .5) / (df + .5)),
    term score = idf * tf / (tf + k1 * (1 - b + b * dl / avgdl))."""
    toks = [index.tokenize(d) for d in docs]
    n, avgdl = len(docs), sum(map(len, toks)) / len(docs)
    scores = np.zeros(n)
    for term in set(index.tokenize(query)):
        df = sum(term in t for t in toks)
        if df == 0:
            continue
        idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
        for i, t in enumerate(toks):
            tf = Counter(t)[term]
            scores[i] += idf * tf / (tf + k1 * (1 - b + b * len(t) / avgdl))
    return scores


@pytest.mark.parametrize("query", ["cat", "cats and dogs running", "rye flour starter", "Lisbon ferry in March"])
def test_bm25_matches_the_formula(query):
    index = BM25Index(CORPUS)
    rows, scores = index.search(query, k=5)
    ref = _lucene_bm25(index, CORPUS, query)
    expected_rows = [i for i in np.argsort(-ref, kind="stable") if ref[i] > 0]
    assert sorted(rows.tolist()) == sorted(expected_rows)
    np.testing.assert_allclose(scores, ref[rows], rtol=1e-5)
    assert list(scores) == sorted(scores, reverse=True)


def test_bm25_no_shared_term_finds_nothing():
    rows, scores = BM25Index(CORPUS).search("zebra quantum", k=3)
    assert rows.size == 0 and scores.size == 0


def test_dense_matches_numpy():
    rng = np.random.default_rng(0)
    m = rng.normal(size=(500, 32)).astype(np.float32)
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    q = m[17] + 0.1 * rng.normal(size=32).astype(np.float32)
    rows, scores = DenseIndex(m).search(q, 10)
    ref = m @ q
    assert rows.tolist() == np.argsort(-ref)[:10].tolist()
    np.testing.assert_allclose(scores, ref[rows], rtol=1e-5)
    assert rows[0] == 17


def test_rrf_by_hand():
    dense = (np.array([3, 1, 2]), np.array([0.9, 0.8, 0.1]))
    lexical = (np.array([1, 4]), np.array([7.0, 2.0]))
    fused = fusion.rrf([dense, lexical], k=60)
    assert fused[1] == pytest.approx(1 / 62 + 1 / 61)
    assert fused[3] == pytest.approx(1 / 61)
    assert fused[4] == pytest.approx(1 / 62)
    assert fused[2] == pytest.approx(1 / 63)
    assert max(fused, key=fused.get) == 1


def test_weighted_fusion_by_hand():
    dense = (np.array([0, 1, 2]), np.array([0.9, 0.5, 0.1]))
    lexical = (np.array([2, 3]), np.array([4.0, 2.0]))
    fused = fusion.weighted(dense, lexical, dense_weight=0.7)
    # dense min-max: 0 -> 1, 1 -> 0.5, 2 -> 0; lexical: 2 -> 1, 3 -> 0
    assert fused == pytest.approx({0: 0.7, 1: 0.35, 2: 0.3, 3: 0.0})


def test_searcher_end_to_end(tmp_path, minilm_settings):
    with BudgetMem(tmp_path / "m.db", "ns", settings=minilm_settings.replace(chunking__max_tokens=48)) as mem:
        mem.add(EXAMPLE)
        for retriever in ("dense", "bm25", "hybrid"):
            hits = mem.search("Who is Priya's Portuguese tutor?", k=3, retriever=retriever)
            assert 1 <= len(hits) <= 3
            assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
            assert "D3:8" in {d for h in hits for d in h.chunk.dia_ids}, retriever
        hybrid = mem.search("Zakwas", k=2, retriever="hybrid")
        assert "Zakwas" in hybrid[0].chunk.text
        assert set(hybrid[0].components) == {"dense", "bm25"}
        with pytest.raises(ConfigError, match="unknown retriever"):
            mem.search("x", retriever="magic")
        with pytest.raises(ConfigError, match="empty query"):
            mem.search("   ")


def test_retrieval_settings_validate():
    with pytest.raises(ConfigError):
        RetrievalSettings(fusion="max")
    with pytest.raises(ConfigError):
        RetrievalSettings(dense_weight=1.5)
