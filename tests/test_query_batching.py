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
