"""The dense index: exact below a size, HNSW above (faiss or usearch), checked against numpy;
removal that leaves no trace in memory or in a saved file; f16 / int8 storage."""

from __future__ import annotations

import numpy as np
import pytest

from budgetmem.retrieval.ann import VectorIndex

try:
    import usearch  # noqa: F401 - the optional backend ('budgetmem[usearch]', in the dev extra)

    BACKENDS = ("faiss", "usearch")
except ImportError:
    BACKENDS = ("faiss",)


def _vectors(n: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    # Clustered, as real embeddings are (isotropic random vectors have no near neighbours).
    rng = np.random.default_rng(seed)
    basis = np.random.default_rng(99).standard_normal((8, dim))
    x = rng.standard_normal((n, 8)) @ basis + 0.3 * rng.standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _truth(m: np.ndarray, keys: np.ndarray, q: np.ndarray, k: int) -> list[int]:
    return keys[np.argsort(-(m @ q), kind="stable")[:k]].tolist()


def _recall(index: VectorIndex, m: np.ndarray, keys: np.ndarray, queries: np.ndarray, k: int = 10) -> float:
    return float(np.mean([len(set(index.search(q, k)[0].tolist()) & set(_truth(m, keys, q, k))) / k for q in queries]))


def test_exact_mode_matches_numpy():
    m = _vectors(500)
    keys = np.arange(500) * 7 + 3  # keys are chunk ids, not rows
    index = VectorIndex(32, exact_below=1000)
    index.add(keys[:200], m[:200])
    index.add(keys[200:], m[200:])  # incremental
    assert index.mode == "exact" and len(index) == 500
    q = _vectors(1, seed=5)[0]
    got, scores = index.search(q, 10)
    assert got.tolist() == _truth(m, keys, q, 10)
    np.testing.assert_allclose(scores, np.sort(m @ q)[::-1][:10], rtol=1e-5)
    np.testing.assert_array_equal(index.get(keys[[3, 400]]), m[[3, 400]])


@pytest.mark.parametrize("backend", BACKENDS)
def test_hnsw_close_to_exact_and_incremental(backend):
    m = _vectors(3000)
    keys = np.arange(3000, dtype=np.int64) + 10_000
    index = VectorIndex(32, backend=backend, exact_below=1000)
    index.add(keys[:600], m[:600])
    assert index.mode == "exact"
    index.add(keys[600:2000], m[600:2000])  # crosses the threshold: becomes a graph
    assert index.mode == "hnsw"
    index.add(keys[2000:], m[2000:])  # added to the graph, no rebuild
    assert len(index) == 3000
    assert _recall(index, m, keys, _vectors(50, seed=9)) >= 0.95
    for i in (0, 1500, 2999):  # every vector finds itself first
        assert index.search(m[i], 1)[0][0] == keys[i]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("exact_below", [10_000, 0])
def test_removed_keys_never_come_back(backend, exact_below):
    m = _vectors(1500)
    keys = np.arange(1500, dtype=np.int64)
    index = VectorIndex(32, backend=backend, exact_below=exact_below)
    index.add(keys, m)
    gone = keys[::5]
    assert index.remove(np.append(gone, 99_999)) == gone.size  # an unknown key is ignored
    assert len(index) == 1200
    assert not set(index.keys().tolist()) & set(gone.tolist())
    for i in gone[:50]:
        assert i not in index.search(m[i], 20)[0].tolist()
    live = np.setdiff1d(keys, gone)
    assert _recall(index, m[live], live, _vectors(30, seed=4)) >= 0.9


@pytest.mark.parametrize("backend", BACKENDS)
def test_many_removals_rebuild_the_graph(backend):
    m = _vectors(2000)
    index = VectorIndex(32, backend=backend, exact_below=100)
    index.add(np.arange(2000), m)
    index.remove(np.arange(0, 1000))  # half: past the quarter that triggers a rebuild
    assert index._freed == 0  # noqa: SLF001 - the rebuild reset the count
    assert len(index) == 1000 and index.search(m[1500], 1)[0][0] == 1500


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["f32", "f16"])
@pytest.mark.parametrize("exact_below", [10_000, 0])
def test_saved_file_keeps_no_removed_vector(tmp_path, backend, dtype, exact_below):
    m = _vectors(800)
    index = VectorIndex(32, backend=backend, dtype=dtype, exact_below=exact_below)
    index.add(np.arange(800), m)
    victim = 123
    # The bytes a file would hold for the victim (its first 8 components, as stored).
    pattern = m[victim, :8].astype(np.float32 if dtype == "f32" or exact_below else np.float16).tobytes()
    before = b"".join(p.read_bytes() for p in index.save(tmp_path / "before"))
    assert pattern in before  # the check can see a vector
    index.remove(np.array([victim]))
    after = b"".join(p.read_bytes() for p in index.save(tmp_path / "after"))
    assert pattern not in after


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("exact_below", [10_000, 0])
def test_save_and_load(tmp_path, backend, exact_below):
    m = _vectors(1200)
    index = VectorIndex(32, backend=backend, exact_below=exact_below)
    index.add(np.arange(1200) + 5, m)
    index.remove(np.array([10, 11]))
    index.save(tmp_path / "v")
    back = VectorIndex.load(tmp_path / "v", index.mode, 32, backend=backend, exact_below=exact_below)
    assert sorted(back.keys().tolist()) == sorted(index.keys().tolist())
    for q in _vectors(10, seed=3):
        assert back.search(q, 5)[0].tolist() == index.search(q, 5)[0].tolist()
    assert 10 not in back.search(m[5], 10)[0].tolist()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["f16", "i8"])
def test_memory_saving_dtypes_keep_recall(backend, dtype):
    m = _vectors(2000)
    keys = np.arange(2000)
    index = VectorIndex(32, backend=backend, dtype=dtype, exact_below=0)
    index.add(keys, m)
    assert _recall(index, m, keys, _vectors(40, seed=8)) >= 0.9
    back = index.get(np.array([7, 1999]))
    np.testing.assert_allclose(back, m[[7, 1999]], atol=0.03 if dtype == "i8" else 2e-3)


def test_bad_options():
    with pytest.raises(ValueError, match="dtype"):
        VectorIndex(8, dtype="f64")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="backend"):
        VectorIndex(8, backend="annoy")  # type: ignore[arg-type]
