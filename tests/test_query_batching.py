"""Concurrent queries share the encoder's forward passes, and each gets its own row."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import numpy as np
import pytest

from budgetmem.encoder import Encoder, _QueryBatcher


def _run_concurrently(batcher: _QueryBatcher, texts: list[str]) -> list[object]:
    """Each text from a thread of its own (named after its index), all started together."""
    out: list[object] = [None] * len(texts)
    start = threading.Barrier(len(texts))

    def one(i: int) -> None:
        start.wait()
        try:
            out[i] = batcher(texts[i])
        except Exception as exc:  # noqa: BLE001 - the test inspects what each caller got
            out[i] = exc

    threads = [threading.Thread(target=one, args=(i,), name=f"caller-{i}") for i in range(len(texts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads), "a caller was left waiting"
    return out


class _Recorder:
    """A fake encoder: row i is (the number at the end of text i, 1); records each pass
    (its texts and the thread that ran it) and takes ``seconds`` per pass."""

    def __init__(self, seconds: float = 0.02, fail_passes: tuple[int, ...] = ()) -> None:
        self.passes: list[tuple[str, list[str]]] = []
        self.seconds = seconds
        self.fail_passes = fail_passes
        self._lock = threading.Lock()

    def __call__(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            self.passes.append((threading.current_thread().name, list(texts)))
            n = len(self.passes)
        time.sleep(self.seconds)  # a forward pass: callers that arrive meanwhile queue up
        if n in self.fail_passes:
            raise RuntimeError(f"encoder failed in pass {n}")
        return np.array([[float(t.split()[-1]), 1.0] for t in texts], dtype=np.float32)


def test_each_caller_gets_its_own_row_and_passes_are_shared() -> None:
    enc = _Recorder()
    texts = [f"query {i}" for i in range(32)]
    out = _run_concurrently(_QueryBatcher(enc), texts)
    assert [float(v[0]) for v in out] == list(range(32))  # type: ignore[index]
    sizes = [len(b) for _, b in enc.passes]
    assert sum(sizes) == 32 and len(sizes) < 32 and max(sizes) > 1, sizes
    assert sorted(t for _, b in enc.passes for t in b) == sorted(texts)  # each query encoded once


def test_a_leader_runs_one_pass_and_it_holds_its_own_query() -> None:
    """No caller is kept encoding other callers' queries after its own is done: each pass is
    run by a caller whose query is in it, and no caller runs two."""
    enc = _Recorder(seconds=0.01)
    texts = [f"query {i}" for i in range(40)]
    _run_concurrently(_QueryBatcher(enc), texts)
    leaders = [name for name, _ in enc.passes]
    assert len(leaders) == len(set(leaders)), leaders
    for name, batch in enc.passes:
        assert f"query {name.split('-')[1]}" in batch, (name, batch)


def test_passes_are_bounded() -> None:
    enc = _Recorder()
    out = _run_concurrently(_QueryBatcher(enc, max_batch=4), [f"q {i}" for i in range(19)])
    assert [float(v[0]) for v in out] == list(range(19))  # type: ignore[index]
    assert max(len(b) for _, b in enc.passes) <= 4 and sum(len(b) for _, b in enc.passes) == 19
    with pytest.raises(ValueError):
        _QueryBatcher(enc, max_batch=0)


def test_a_lone_query_is_encoded_at_once_in_a_pass_of_its_own() -> None:
    enc = _Recorder(seconds=0.0)
    batcher = _QueryBatcher(enc)
    for i in range(3):
        assert float(batcher(f"q {i}")[0]) == i
    assert [b for _, b in enc.passes] == [["q 0"], ["q 1"], ["q 2"]]
    assert [name for name, _ in enc.passes] == [threading.current_thread().name] * 3  # no hand-off to another thread


def test_a_failed_pass_reaches_every_caller_in_it_and_the_next_pass_runs() -> None:
    enc = _Recorder(fail_passes=(1,))
    batcher = _QueryBatcher(enc)
    texts = [f"q {i}" for i in range(12)]
    out = _run_concurrently(batcher, texts)
    failed = set(enc.passes[0][1])
    assert len(enc.passes) > 1  # the callers queued behind the failed pass were served
    for text, got in zip(texts, out):
        if text in failed:
            assert isinstance(got, RuntimeError) and "pass 1" in str(got), (text, got)
        else:
            assert isinstance(got, np.ndarray) and float(got[0]) == float(text.split()[-1]), (text, got)
    assert float(batcher("again 7")[0]) == 7.0  # no caller is left leading: the next query is served


def test_an_encoder_that_always_fails_fails_every_caller() -> None:
    enc = _Recorder(fail_passes=tuple(range(1, 100)))
    out = _run_concurrently(_QueryBatcher(enc), [f"q {i}" for i in range(16)])
    assert all(isinstance(x, RuntimeError) for x in out), out
    assert sum(len(b) for _, b in enc.passes) == 16


def test_a_pass_with_too_few_rows_is_an_error_for_each_caller() -> None:
    batcher = _QueryBatcher(lambda texts: np.zeros((len(texts) - 1, 2), np.float32))
    with pytest.raises(RuntimeError, match="0 rows for 1"):
        batcher("q 1")


@pytest.mark.models
def test_batched_query_vectors_equal_one_by_one(minilm) -> None:  # type: ignore[no-untyped-def]
    """Through the query network itself, with queries of very different lengths in a pass
    (the short ones padded): in float32 padding moves nothing beyond rounding."""
    enc = Encoder(replace(minilm.settings, query_precision="float32"))
    texts = _mixed_lengths()
    one = np.stack([enc.encode_query(t) for t in texts])  # the library's single-query path
    out = np.stack(_run_concurrently(enc._queries, texts))  # type: ignore[arg-type]
    np.testing.assert_allclose(out, one, rtol=0, atol=1e-6)
    assert enc._queries(texts[0]).tobytes() == one[0].tobytes()  # alone: bit for bit the single path


@pytest.mark.models
def test_batched_bfloat16_queries_stay_within_rounding_of_one_by_one(minilm) -> None:  # type: ignore[no-untyped-def]
    """In bfloat16, padding changes the network's rounding (a padded query's token vectors
    move by a bfloat16 step or so), so a batched query vector is close to its lone one, not
    equal: cosine >= 0.9999, well inside what bfloat16 queries already differ from float32
    (>= 0.996, the service benchmark)."""
    enc = Encoder(replace(minilm.settings, query_precision="bfloat16"))
    texts = _mixed_lengths()
    one = np.stack([enc.encode_query(t) for t in texts])
    out = np.stack(_run_concurrently(enc._queries, texts))  # type: ignore[arg-type]
    cos = (one * out).sum(axis=1) / np.linalg.norm(one, axis=1) / np.linalg.norm(out, axis=1)
    assert cos.min() > 0.9999, cos


def _mixed_lengths() -> list[str]:
    return [f"What did Caroline do at the meeting on day {i}?" for i in range(8)] + [
        "rye", "Melanie's kids", "When did Caroline go to the LGBTQ support group, and what did she tell Melanie "
        "about the people she met there and the books they recommended to her afterwards?",
    ]  # fmt: skip


# ---------------------------------------------------------------- query precision
from budgetmem.encoder import query_precision  # noqa: E402
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
        EncoderSettings(query_precision="int4")  # type: ignore[arg-type]
    assert query_precision("int8", _cpu("avx2")) == "int8"
    assert "int8" not in {query_precision("auto", _cpu(*f)) for f in [("avx2",), ("avx512_bf16",), ("amx_bf16",)]}


_PRECISION_TEXTS = ["When did Caroline go to the LGBTQ support group?", "What does Melanie paint?", "rye flour mill"]


def _queries_beside_float32(minilm: Encoder, precision: str) -> tuple[Encoder, Encoder, np.ndarray, np.ndarray]:
    """An encoder at ``precision`` and a float32 one, with the query embeddings of each."""
    other = Encoder(replace(minilm.settings, query_precision=precision))
    full = Encoder(replace(minilm.settings, query_precision="float32"))
    q_other = np.stack([other.encode_query(t) for t in _PRECISION_TEXTS])
    q_full = np.stack([full.encode_query(t) for t in _PRECISION_TEXTS])
    return other, full, q_other, q_full


def test_bfloat16_queries_match_float32_and_stored_chunks_stay_float32(minilm: Encoder) -> None:
    texts = _PRECISION_TEXTS
    half, full, q_half, q_full = _queries_beside_float32(minilm, "bfloat16")
    assert q_half.dtype == np.float32 and q_half.shape == (3, minilm.dim)
    assert not np.array_equal(q_half, q_full)  # it did run in bfloat16
    cos = (q_half * q_full).sum(axis=1)
    assert cos.min() > 0.999, cos
    # Chunks are embedded by the float32 network whatever the query precision.
    assert np.array_equal(half.encode(texts), full.encode(texts))
    np.testing.assert_array_equal(q_full, np.stack([full.encode([t])[0] for t in texts]))


def test_int8_queries_stay_close_to_float32_and_stored_chunks_stay_float32(minilm: Encoder) -> None:
    import torch

    texts = _PRECISION_TEXTS
    small, full, q_small, q_full = _queries_beside_float32(minilm, "int8")
    assert q_small.dtype == np.float32 and q_small.shape == (3, minilm.dim)
    assert not any(type(m) is torch.nn.Linear for m in small._query_model.modules())  # all quantised
    assert any(type(m) is torch.nn.Linear for m in small._model.modules())  # the original is untouched
    cos = (q_small * q_full).sum(axis=1)
    assert 0.9 < cos.min() and cos.max() < 1 - 1e-6, cos  # quantised, yet pointing the same way
    assert np.array_equal(small.encode(texts), full.encode(texts))
    np.testing.assert_allclose(np.linalg.norm(q_small, axis=1), 1.0, atol=1e-5)


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


def test_concurrent_batched_searches_return_the_sequential_hits(tmp_path, minilm: Encoder) -> None:  # type: ignore[no-untyped-def]
    """What the service does (batching on, many request threads) ranks as one search at a
    time with batching off does: same chunks, same order, scores within float32 rounding."""
    from budgetmem import BudgetMem
    from budgetmem.settings import Settings
    from budgetmem.store import Store

    settings = replace(minilm.settings, query_precision="float32")
    enc = Encoder(settings)
    mem = BudgetMem(Store(tmp_path / "m.db"), "ns", settings=Settings(encoder=settings), encoder=enc)
    topics = ["room", "train", "garden", "piano", "budget", "doctor", "recipe", "flight"]
    for i, topic in enumerate(topics):
        mem.add_session([("a", f"note {i}: we talked about the {topic} on day {i}"), ("b", f"the {topic} again, in May {2020 + i}")],
                        session_id=f"s{i}", date_time=f"1 May {2020 + i}")  # fmt: skip
    queries = [f"what happened with the {t}{' in May 2023' if j % 3 == 0 else ''}?" for j, t in enumerate(topics * 3)]
    plan = [(q, r) for q in queries for r in ("hybrid", "dense")]

    def ranked(q: str, r: str) -> list[tuple[int, float]]:
        return [(int(h.chunk.id or 0), h.score) for h in mem.search(q, k=4, retriever=r)]

    sequential = [ranked(q, r) for q, r in plan]
    enc.batch_queries = True
    passes: list[int] = []
    inner = enc._encode_queries

    def counted(texts):  # type: ignore[no-untyped-def]
        passes.append(len(texts))
        return inner(texts)

    enc._queries = _QueryBatcher(counted)
    out: list[object] = [None] * len(plan)
    start = threading.Barrier(len(plan))

    def one(i: int) -> None:
        start.wait()
        out[i] = ranked(*plan[i])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(plan))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert max(passes) > 1, passes  # they did share passes
    for want, got in zip(sequential, out):
        assert [c for c, _ in got] == [c for c, _ in want]  # type: ignore[union-attr]
        np.testing.assert_allclose([x for _, x in got], [x for _, x in want], rtol=0, atol=1e-5)  # type: ignore[union-attr]


def test_the_service_batches_queries_unless_its_settings_say_not(tmp_path, minilm: Encoder) -> None:  # type: ignore[no-untyped-def]
    from budgetmem.server.service import Service
    from budgetmem.settings import ServerSettings, Settings, load_settings

    config = tmp_path / "budgetmem.toml"
    config.write_text("[server]\nbatch_queries = false\n", encoding="utf-8")
    assert load_settings(config).server.batch_queries is False and ServerSettings().batch_queries is True
    for on in (True, False):
        enc = Encoder(minilm.settings)
        settings = Settings(encoder=minilm.settings, server=ServerSettings(batch_queries=on))
        service = Service(tmp_path / f"{on}.db", settings, encoder=enc)
        try:
            assert service.memory("ns", create=True).encoder.batch_queries is on
        finally:
            service.close()


def test_the_service_lets_every_concurrent_search_join_one_pass(tmp_path, minilm: Encoder) -> None:  # type: ignore[no-untyped-def]
    """A search holds a request thread while its query waits for a forward pass, so the
    request pool bounds the passes: with the default pool, 16 searches that arrive while a
    pass runs all share the next one (with 8 threads they met the encoder 8 at a time)."""
    from budgetmem.server.service import Service
    from budgetmem.settings import Settings

    enc = Encoder(minilm.settings)
    service = Service(tmp_path / "s.db", Settings(encoder=minilm.settings), encoder=enc)
    try:
        mem = service.memory("ns", create=True)
        mem.add_session([("a", "note: the meeting moved to room 4")], session_id="s0")
        mem.search("warm up", retriever="dense")
        sizes: list[int] = []
        inner = enc._encode_queries
        first = threading.Event()

        def slow_encode(texts):  # type: ignore[no-untyped-def]
            sizes.append(len(texts))
            if len(sizes) == 1:  # the first pass lasts until every other search has arrived
                first.wait(timeout=30)
            return inner(texts)

        enc._queries = _QueryBatcher(slow_encode)
        futures = [service.requests.submit(mem.search, f"which room, take {i}?", k=1, retriever="dense") for i in range(17)]
        deadline = time.monotonic() + 30
        while len(enc._queries._waiting) < 16 and time.monotonic() < deadline:
            time.sleep(0.01)
        first.set()
        assert all(len(f.result(timeout=60)) == 1 for f in futures)
        assert sizes == [1, 16], sizes
    finally:
        service.close()
