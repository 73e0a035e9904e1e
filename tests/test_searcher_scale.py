"""The searcher at scale: incremental sync, persisted index files (fresh, stale, corrupt),
the LRU of loaded namespaces, forgetting through every index and file, the store's query
plans, windowed embedding of long chunks, and the default configuration's ranking."""

from __future__ import annotations

import re
import zlib
from pathlib import Path

import numpy as np
import pytest

from budgetmem import BudgetMem
from budgetmem.ingest.chunker import Chunk
from budgetmem.retrieval.searcher import Searcher
from budgetmem.settings import RetrievalSettings
from budgetmem.store import SessionBatch, Store, index_files

DIM = 24


class BagEncoder:
    """A sentence-encoder stand-in: the normalised sum of one seeded vector per word, so texts
    that share words are near each other (fast, deterministic, no model)."""

    name = "bag-of-words-24"
    dim = DIM

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), DIM), np.float32)
        for i, t in enumerate(texts):
            for w in re.findall(r"\w+", t.lower()):
                out[i] += np.random.default_rng(zlib.crc32(w.encode())).standard_normal(DIM)
        return out / np.linalg.norm(out, axis=1, keepdims=True).clip(min=1e-9)

    def encode_query(self, text: str) -> np.ndarray:
        return self.encode([text])[0]


ENC = BagEncoder()
WORDS = "apple river stone cloud piano tiger lemon violet harbor candle meadow falcon copper".split()


def _texts(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, 6)) + f" item{seed}x{i}" for i in range(n)]


def _add(store: Store, namespace: str, texts: list[str], key: str, date: str | None = None) -> list[int]:
    chunks = [
        Chunk(text=t, n_tokens=8, source="t", history=namespace, session_id=key, session_date=date, position=i,
              dia_ids=(f"{key}:{i}",), speakers=())  # fmt: skip
        for i, t in enumerate(texts)
    ]
    batch = SessionBatch(namespace, key, "t", namespace, key, chunks, ENC.encode(texts))
    return store.add([batch], encoder=ENC.name, dim=DIM, chunk_tokens=256)


def _settings(**kw) -> RetrievalSettings:
    return RetrievalSettings(**{"persist_min_chunks": 0, "exact_below": 50, **kw})


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "m.db") as s:
        yield s


def _exact_ids(store: Store, ns: str, query: str, k: int) -> list[int]:
    ids, m = store.embeddings(ns)
    return ids[np.argsort(-(m @ ENC.encode_query(query)), kind="stable")[:k]].tolist()


def test_adds_are_synced_incrementally(store):
    ids = _add(store, "a", _texts(80, 1), "s1")
    s = Searcher(store, ENC, _settings())  # type: ignore[arg-type]
    s.search("a", "apple river", retriever="dense")
    assert s.stats["built"] == 1
    new = _add(store, "a", _texts(30, 2), "s2")
    hits = s.search("a", "item2x7", retriever="bm25")
    assert hits[0].chunk.id == new[7]
    assert s.stats["built"] == 2 and s.stats["synced"] == 1  # dense synced, bm25 built on demand
    dense = s.search("a", "piano tiger lemon", k=5, retriever="dense")
    assert {h.chunk.id for h in dense} <= set(ids + new)
    assert s._cache["a"].dense.mode == "hnsw"  # noqa: SLF001 - 110 chunks is past exact_below


def test_persisted_indexes_are_reloaded_updated_or_rebuilt(store):
    _add(store, "a", _texts(120, 1), "s1")
    first = Searcher(store, ENC, _settings())  # type: ignore[arg-type]
    want = [h.chunk.id for h in first.search("a", "copper falcon meadow")]
    assert first.stats["written"] == 1 and index_files.read_header(store.path, "a") is not None

    fresh = Searcher(store, ENC, _settings())  # type: ignore[arg-type]
    assert [h.chunk.id for h in fresh.search("a", "copper falcon meadow")] == want
    assert fresh.stats == {**fresh.stats, "loaded": 1, "built": 0, "synced": 0}

    new = _add(store, "a", _texts(5, 3), "s2")  # the file is now stale: brought up to date
    stale = Searcher(store, ENC, _settings())  # type: ignore[arg-type]
    assert stale.search("a", "item3x2", retriever="bm25")[0].chunk.id == new[2]
    assert stale.stats["loaded"] == 1 and stale.stats["synced"] == 2 and stale.stats["built"] == 0

    data = next(p for p in store.index_dir.iterdir() if p.name.endswith(".dense"))
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # one flipped byte: the digest no longer matches
    data.write_bytes(bytes(raw))
    corrupt = Searcher(store, ENC, _settings())  # type: ignore[arg-type]
    corrupt.search("a", "copper falcon meadow")
    assert corrupt.stats["loaded"] == 0 and corrupt.stats["built"] == 2


def test_settings_mismatch_is_not_trusted(store):
    _add(store, "a", _texts(60, 1), "s1")
    Searcher(store, ENC, _settings()).search("a", "apple")  # type: ignore[arg-type]
    other = Searcher(store, ENC, _settings(vector_dtype="f16"))  # type: ignore[arg-type]
    other.search("a", "apple")
    assert other.stats["loaded"] == 0 and other.stats["built"] == 2


def test_lru_keeps_a_bounded_number_of_namespaces(store):
    for i in range(5):
        _add(store, f"ns{i}", _texts(20, i), f"s{i}")
    s = Searcher(store, ENC, _settings(cache_namespaces=2, persist=False))  # type: ignore[arg-type]
    for i in range(5):
        s.search(f"ns{i}", "apple")
    assert s.loaded() == ["ns3", "ns4"] and s.stats["evicted"] == 3
    s.search("ns3", "apple")  # a hit moves it to the back
    s.search("ns0", "apple")
    assert s.loaded() == ["ns3", "ns0"]


@pytest.mark.parametrize("exact_below", [10_000, 50])
def test_forget_removes_from_every_index_and_file(store, exact_below):
    ids = _add(store, "a", _texts(100, 1), "s1")
    _add(store, "a", ["zyzzyva unique marker"], "secret")
    secret = store.ids("a")[-1]
    s = Searcher(store, ENC, _settings(exact_below=exact_below))  # type: ignore[arg-type]
    assert s.search("a", "zyzzyva")[0].chunk.id == secret  # hybrid: both indexes built and written
    s.flush()
    vec = ENC.encode(["zyzzyva unique marker"])[0]
    files = lambda: b"".join(p.read_bytes() for p in store.index_dir.iterdir())  # noqa: E731
    assert vec[:6].tobytes() in files() and b"zyzzyva" in files()

    store.delete("a", int(secret))  # the store calls the searcher back, which rewrites the files
    assert vec[:6].tobytes() not in files() and b"zyzzyva" not in files()
    for retriever in ("dense", "bm25", "hybrid"):
        got = [h.chunk.id for h in s.search("a", "zyzzyva unique marker", k=10, retriever=retriever)]
        assert secret not in got
    assert s.stats["built"] == 2  # no rebuild: removed in place
    assert index_files.read_header(store.path, "a")["version"] == list(store.version("a"))

    # A process that never loaded the namespace: its stale files are shredded, not kept.
    store.forget_session("a", "s1")
    assert index_files.read_header(store.path, "a") is not None  # rewritten by the live searcher
    s.invalidate("a")
    _add(store, "a", ["another zyzzyva"], "later")
    store.delete("a", int(store.ids("a")[-1]))
    assert index_files.read_header(store.path, "a") is None and not list(store.index_dir.iterdir())
    assert ids  # (the first session is gone with forget_session)


def test_forget_namespace_drops_it(store):
    _add(store, "a", _texts(60, 1), "s1")
    s = Searcher(store, ENC, _settings())  # type: ignore[arg-type]
    s.search("a", "apple")
    store.forget_namespace("a")
    assert s.loaded() == [] and not list(store.index_dir.iterdir())


def test_search_path_uses_indexes_only(store):
    for i in range(30):
        _add(store, f"user-{i:02d}", _texts(10, i), f"s{i}")
    s = Searcher(store, ENC, _settings(persist=False))  # type: ignore[arg-type]
    seen: list[str] = []
    store._db.set_trace_callback(seen.append)  # noqa: SLF001
    s.search("user-07", "apple in May 2023")  # builds, then a date-aware hybrid search
    _add(store, "user-07", ["new text"], "late")
    s.search("user-07", "river")  # incremental sync
    store._db.set_trace_callback(None)  # noqa: SLF001
    selects = [q for q in dict.fromkeys(seen) if q.lstrip().upper().startswith("SELECT") and "user-07" in q]
    assert len(selects) >= 5
    for sql in selects:
        plan = [r[3] for r in store._db.execute("EXPLAIN QUERY PLAN " + sql)]  # noqa: SLF001
        assert not [p for p in plan if p.startswith("SCAN")], (sql, plan)


def test_date_boost_prefers_the_named_month(store):
    may = _add(store, "a", ["hiking with Sam on the ridge"], "s1", date="1:00 pm on 3 May, 2023")
    aug = _add(store, "a", ["hiking with Sam on the ridge"], "s2", date="2:00 pm on 9 August, 2023")
    q = "Who went hiking with Sam in August 2023?"
    plain = Searcher(store, ENC, _settings(date_boost=0.0))  # type: ignore[arg-type]
    assert plain.search("a", q, k=1)[0].chunk.id == may[0]  # a tie, broken by id
    assert Searcher(store, ENC, _settings()).search("a", q, k=1)[0].chunk.id == aug[0]  # type: ignore[arg-type]
    assert Searcher(store, ENC, _settings()).search("a", "hiking with Sam in May", k=1)[0].chunk.id == may[0]  # type: ignore[arg-type]


def test_a_dated_search_reads_whole_chunks_only_for_its_hits(store):
    """The date boost needs only the candidates' session dates; whole chunks (texts, JSON
    fields) are read for the k hits alone. Reading every candidate whole cost more than the
    rest of a service search."""
    _add(store, "a", _texts(60, 1), "s1", date="1:00 pm on 3 May, 2023")
    aug = _add(store, "a", _texts(60, 2), "s2", date="2:00 pm on 9 August, 2023")
    searcher = Searcher(store, ENC, _settings(candidates=50))  # type: ignore[arg-type]
    read: list[int] = []
    chunks = store.chunks

    def counted(namespace, ids=None):  # type: ignore[no-untyped-def]
        read.extend(ids or [])
        return chunks(namespace, ids)

    store.chunks = counted
    hits = searcher.search("a", "apple river stone in August 2023", k=5)
    assert len(hits) == 5 and {h.chunk.id for h in hits} <= set(aug)  # the boost still worked
    assert sorted(read) == sorted(h.chunk.id for h in hits)


def test_default_configuration_on_the_example(tmp_path, minilm_settings):
    """Evidence recall@3 on the example conversation's ten questions (chunks of 96 tokens):
    the defaults find every evidence turn; the old default (RRF, no date boost) misses the
    June-2024 question; dense alone misses two (measured when the defaults were chosen)."""
    import json

    from conftest import EXAMPLE

    qa = [(q["question"], set(q["evidence"])) for s in json.loads(EXAMPLE.read_text()) for q in s["qa"]]

    def recalls(retriever: str | None = None, **changes) -> list[float]:
        s = minilm_settings.replace(chunking__max_tokens=96, **changes)
        with BudgetMem(tmp_path / "m.db", "ns", settings=s) as mem:
            mem.add(EXAMPLE)
            got = [{d for h in mem.search(q, k=3, retriever=retriever) for d in h.chunk.dia_ids} for q, _ in qa]
        return [len(ev & g) / len(ev) for (_, ev), g in zip(qa, got)]

    assert recalls() == [1.0] * 10
    old = recalls(retrieval__fusion="rrf", retrieval__date_boost=0.0)
    assert sum(old) == 9 and old[[q for q, _ in qa].index("How long was Tomasz's long run in June 2024?")] == 0
    assert sum(recalls("dense")) == 8


def test_long_chunk_is_embedded_in_windows_never_cut(minilm):
    """A text longer than the encoder reads is embedded window by window and mean-pooled:
    its last words count (a truncating encoder would not see them)."""
    w = minilm.max_tokens
    filler = " ".join(["the weather report mentioned light rain and wind"] * 100)
    text = filler + " The secret ingredient was smoked paprika from La Vera."
    offs = minilm.offsets(text)
    assert len(offs) > 2 * w
    windows = minilm._windows(text)  # noqa: SLF001
    assert len(windows) >= 3 and windows[-1].endswith("La Vera.")
    covered = sum(len(minilm.offsets(x)) for x in windows)
    assert covered >= len(offs)  # every token is read by some window
    whole = minilm.encode([text])[0]
    pooled = minilm.encode(windows).mean(axis=0)
    np.testing.assert_allclose(whole, pooled / np.linalg.norm(pooled), atol=1e-5)
    cut = minilm.encode([text[: offs[w - 1][1]]])[0]  # what a truncating encoder would embed
    q = minilm.encode_query("smoked paprika ingredient")
    assert float(whole @ q) > float(cut @ q) + 0.02
