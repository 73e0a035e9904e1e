"""Concurrent queries share the encoder's forward passes, and each gets its own row."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from budgetmem.encoder import _QueryBatcher


def _run_concurrently(batcher: _QueryBatcher, texts: list[str]) -> list[object]:
    out: list[object] = [None] * len(texts)
    start = threading.Barrier(len(texts))

    def one(i: int) -> None:
        start.wait()
        try:
            out[i] = batcher(texts[i])
        except Exception as exc:  # noqa: BLE001 - the test inspects what each caller got
            out[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(texts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads), "a caller was left waiting"
    return out


def test_each_caller_gets_its_own_row_and_passes_are_shared() -> None:
    batches: list[int] = []

    def encode_many(texts: list[str]) -> np.ndarray:
        batches.append(len(texts))
        time.sleep(0.02)  # a forward pass: callers that arrive meanwhile queue up
        return np.array([[float(t.split()[-1]), 1.0] for t in texts], dtype=np.float32)

    texts = [f"query {i}" for i in range(32)]
    out = _run_concurrently(_QueryBatcher(encode_many), texts)
    assert [float(v[0]) for v in out] == list(range(32))  # type: ignore[index]
    assert sum(batches) == 32 and len(batches) < 32 and max(batches) > 1


def test_a_failed_pass_reaches_every_caller_in_it_and_the_next_pass_runs() -> None:
    calls = {"n": 0}

    def encode_many(texts: list[str]) -> np.ndarray:
        calls["n"] += 1
        time.sleep(0.02)
        if calls["n"] == 1:
            raise RuntimeError("encoder failed")
        return np.ones((len(texts), 2), dtype=np.float32)

    batcher = _QueryBatcher(encode_many)
    out = _run_concurrently(batcher, [f"q {i}" for i in range(8)])
    assert any(isinstance(x, RuntimeError) for x in out)  # the first pass's callers see its error
    assert all(isinstance(x, (RuntimeError, np.ndarray)) for x in out)
    assert batcher("again").shape == (2,)  # no caller is left leading: the next query is served


@pytest.mark.models
def test_batched_queries_equal_one_by_one_encoding(minilm) -> None:  # type: ignore[no-untyped-def]
    texts = [f"What did Caroline do at the meeting on day {i}?" for i in range(24)]
    want = minilm.encode(texts)
    out = _run_concurrently(_QueryBatcher(minilm.encode), texts)
    assert all(np.allclose(o, w, atol=1e-5) for o, w in zip(out, want))


# ---------------------------------------------------------------- query precision
from dataclasses import replace  # noqa: E402

from budgetmem.encoder import Encoder, query_precision  # noqa: E402
from budgetmem.errors import ConfigError  # noqa: E402
from budgetmem.llm.native import CpuInfo  # noqa: E402
from budgetmem.settings import EncoderSettings  # noqa: E402


def _cpu(*flags: str) -> CpuInfo:
    return CpuInfo("test cpu", "test", frozenset(flags), 2)


def test_auto_precision_is_bfloat16_only_where_the_cpu_computes_it() -> None:
    assert query_precision("auto", _cpu("avx2", "avx512f", "avx512_bf16")) == "bfloat16"
    assert query_precision("auto", _cpu("avx2", "amx_tile", "amx_bf16")) == "bfloat16"
    assert query_precision("auto", _cpu("avx2", "avx512f")) == "float32"  # emulated there: slower
    assert query_precision("float32", _cpu("avx512_bf16")) == "float32"
    assert query_precision("bfloat16", _cpu("avx2")) == "bfloat16"
    with pytest.raises(ConfigError, match="query_precision"):
        EncoderSettings(query_precision="int8")  # type: ignore[arg-type]


def test_bfloat16_queries_match_float32_and_stored_chunks_stay_float32(minilm: Encoder) -> None:
    texts = ["When did Caroline go to the LGBTQ support group?", "What does Melanie paint?", "rye flour mill"]
    half = Encoder(replace(minilm.settings, query_precision="bfloat16"))
    full = Encoder(replace(minilm.settings, query_precision="float32"))
    q_half = np.stack([half.encode_query(t) for t in texts])
    q_full = np.stack([full.encode_query(t) for t in texts])
    assert q_half.dtype == np.float32 and q_half.shape == (3, minilm.dim)
    assert not np.array_equal(q_half, q_full)  # it did run in bfloat16
    cos = (q_half * q_full).sum(axis=1)
    assert cos.min() > 0.999, cos
    # Chunks are embedded by the float32 network whatever the query precision.
    assert np.array_equal(half.encode(texts), full.encode(texts))
    np.testing.assert_array_equal(q_full, np.stack([full.encode([t])[0] for t in texts]))


def test_concurrent_searches_of_one_namespace_share_a_forward_pass(tmp_path, minilm: Encoder) -> None:  # type: ignore[no-untyped-def]
    """The namespace's lock is not held while a query is embedded, so concurrent searches
    reach the encoder's batcher together (held, they would pass one by one)."""
    from budgetmem import BudgetMem
    from budgetmem.settings import Settings
    from budgetmem.store import Store

    enc = Encoder(minilm.settings)
    mem = BudgetMem(Store(tmp_path / "m.db"), "ns", settings=Settings(encoder=minilm.settings), encoder=enc)
    for i in range(6):
        mem.add_session([("a", f"note {i}: the meeting moved to room {i}")], session_id=f"s{i}")
    mem.search("warm up", retriever="dense")
    sizes: list[int] = []
    inner = enc._encode_queries

    def slow_encode(texts):  # type: ignore[no-untyped-def]
        sizes.append(len(texts))
        time.sleep(0.05)
        return inner(texts)

    enc._queries = _QueryBatcher(slow_encode)
    enc.batch_queries = True
    start = threading.Barrier(8)
    results: list[object] = [None] * 8

    def one(i: int) -> None:
        start.wait()
        results[i] = mem.search(f"which room is note {i} in?", k=3, retriever="dense")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert all(isinstance(r, list) and len(r) == 3 for r in results)
    assert sum(sizes) == 8 and max(sizes) > 1, sizes
