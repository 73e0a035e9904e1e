"""The Store contract, method by method, on both backends (``store_address``: a SQLite file
and a real PostgreSQL). Synthetic chunks and unit vectors, so expected values are exact."""

from __future__ import annotations

import numpy as np
import pytest

from budgetmem.chunk import Chunk
from budgetmem.errors import NotFoundError, StoreError
from budgetmem.store import SessionBatch, Store, open_store

DIM = 8
TEXTS = [
    "Tomasz opened a bakery called Zakwas in Krakow",
    "Priya moved to Lisbon with her cat Pixel",
    "The rye flour comes from a mill near Gdansk",
    "Pixel the cat stayed with Marta during the move",
]


def _chunk(i: int, text: str, session: str) -> Chunk:
    return Chunk(id=0, source="src", history="h", session_id=session, session_date="8 May 2023", position=i,
                 kind="chat", text=text, n_tokens=len(text.split()), dia_ids=(f"{session}:{i}",), speakers=("A",),
                 meta={"i": i})  # fmt: skip


def _vectors(n: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _batch(ns: str, key: str, session: str, texts: list[str], seed: int = 0, **kw) -> SessionBatch:
    chunks = [_chunk(i, t, session) for i, t in enumerate(texts)]
    return SessionBatch(ns, key, "src", "h", session, chunks, _vectors(len(texts), seed), **kw)


def _add(store: Store, *batches: SessionBatch, **kw) -> list[int]:
    return store.add(list(batches), encoder="test-enc", dim=DIM, chunk_tokens=64, **kw)


def test_add_read_back_and_idempotent(store_address):
    with open_store(store_address) as store:
        b = _batch("ns", "k1", "s1", TEXTS)
        ids = _add(store, b)
        assert len(ids) == 4 and ids == sorted(ids)
        lost: list[str] = []
        assert _add(store, b, skipped=lost) == [] and lost == ["k1"]  # the same session key again: skipped
        info = store.require_namespace("ns")
        assert (info.n_chunks, info.n_sessions, info.dim, info.seen_chunks) == (4, 1, DIM, 4)
        assert info.n_tokens == sum(len(t.split()) for t in TEXTS)
        got = store.chunks("ns", [ids[2], ids[0]])
        assert [c.text for c in got] == [TEXTS[2], TEXTS[0]] and got[0].meta == {"i": 2}
        assert got[1].dia_ids == ("s1:0",) and got[1].session_date == "8 May 2023"
        assert store.session_dates("ns", [ids[2], 10**9, ids[0]]) == {ids[2]: "8 May 2023", ids[0]: "8 May 2023"}
        assert store.session_dates("ns", []) == {} and store.session_dates("other", ids) == {}
        got_ids, matrix = store.embeddings("ns")
        assert got_ids.tolist() == ids
        np.testing.assert_allclose(matrix, b.embeddings, atol=1e-6)
        assert store.texts("ns", [ids[3]])[1] == [TEXTS[3]]
        assert store.ids("ns").tolist() == ids
        assert [c.id for c in store.chunk_page("ns", after=ids[1], limit=1)] == [ids[2]]
        assert store.known_sessions("ns") == {"k1"}
        # (creation time in µs, highest chunk id, revision): index reads only, moved by every write.
        created_us, top, revision = store.version("ns")
        assert abs(created_us - info.created_at * 1_000_000) <= 1 and (top, revision) == (ids[-1], 1)
        assert store.version("absent") == (0, 0, 0)
    with open_store(store_address, create=False) as again:  # another connection sees it all
        assert [n.name for n in again.namespaces()] == ["ns"]


def test_rejected_and_evicted_go_to_the_archive_and_come_back(store_address):
    with open_store(store_address) as store:
        ids = _add(store, _batch("ns", "k1", "s1", TEXTS, scores=[0.9, 0.1, 0.5, 0.7], admitted=[True, False, True, True]),
                   write_policy={"ns": ('{"name": "salience"}', "0.75")})  # fmt: skip
        assert store.ids("ns").tolist() == [ids[0], ids[2], ids[3]]
        _add(store, evict={"ns": [ids[2]]})
        archived = store.archived("ns")
        assert [(a.chunk.id, a.reason) for a in archived] == [(ids[1], "rejected"), (ids[2], "evicted")]
        assert archived[0].chunk.text == TEXTS[1] and archived[0].score == pytest.approx(0.1)
        info = store.require_namespace("ns")
        assert (info.n_chunks, info.n_archived, info.write_budget, info.seen_chunks) == (2, 2, "0.75", 4)
        assert [w.id for w in store.write_state("ns")] == [ids[0], ids[3]]
        texts, seen = store.seen("ns")
        assert texts == TEXTS and seen.shape == (4, DIM)  # live and archived, in id order
        assert store.restore("ns", [ids[2]]) == 1
        assert store.ids("ns").tolist() == [ids[0], ids[2], ids[3]]
        assert store.chunks("ns", [ids[2]])[0].meta == {"i": 2}  # whole row back, same id
        np.testing.assert_allclose(store.embeddings("ns", [ids[2]])[1][0], _vectors(4)[2], atol=1e-6)
        assert store.purge("ns") == 1 and store.archived("ns") == []
        with pytest.raises(StoreError, match="not stored in namespace"):
            store.archive("ns", [ids[1]])  # purged: gone for good


def test_touch_and_set_compressed(store_address):
    with open_store(store_address) as store:
        ids = _add(store, _batch("ns", "k1", "s1", TEXTS[:2]))
        store.touch("ns", [ids[1], ids[1]])
        store.touch("ns", [ids[1]])
        assert [w.access_count for w in store.write_state("ns")] == [0, 2]
        store.set_compressed("ns", ids[0], "Zakwas bakery", 2, {"model": "x"})
        c = store.chunks("ns", [ids[0]])[0]
        assert (c.compressed, c.compressed_tokens) == ("Zakwas bakery", 2)
        with pytest.raises(StoreError):
            store.set_compressed("other", ids[0], "x", 1, {})


def test_delete_and_forget_count_sessions_and_stay_in_their_namespace(store_address):
    with open_store(store_address) as store:
        a = _add(store, _batch("a", "k1", "s1", TEXTS[:2]), _batch("a", "k2", "s2", TEXTS[2:]))
        b = _add(store, _batch("b", "k1", "s1", TEXTS[:1], seed=1))
        with pytest.raises(NotFoundError):
            store.delete("a", b[0])  # another namespace's id is not found here
        r = store.delete("a", a[0])
        assert (r.chunks, r.archived, r.sessions, r.texts) == (1, 0, 0, (TEXTS[0],))
        assert store.delete("a", a[1]).sessions == 1  # the session's last chunk: its row goes
        assert store.require_namespace("a").n_sessions == 1
        r = store.forget_session("a", "s2")
        assert (r.chunks, r.sessions) == (2, 1) and store.ids("a").size == 0
        with pytest.raises(NotFoundError):
            store.forget_session("a", "s2")
        r = store.forget_namespace("b")
        assert r.namespace_removed and r.chunks == 1 and store.namespace("b") is None
        assert [n.name for n in store.namespaces()] == ["a"]


def test_forget_hooks_run_after_commit(store_address):
    calls: list[str] = []
    with open_store(store_address) as store:
        ids = _add(store, _batch("ns", "k1", "s1", TEXTS))

        def hook(namespace: str) -> None:
            calls.append(namespace)

        store.on_forget(hook)
        store.delete("ns", ids[0])
        assert calls == ["ns"]


def test_encoder_binding_and_bad_batches(store_address):
    with open_store(store_address) as store:
        _add(store, _batch("ns", "k1", "s1", TEXTS[:1]))
        assert store.check_encoder("ns", "test-enc", DIM) and not store.check_encoder("new", "x", 3)
        with pytest.raises(StoreError, match="was embedded with test-enc"):
            store.add([_batch("ns", "k2", "s2", TEXTS[:1])], encoder="other", dim=DIM, chunk_tokens=64)
        bad = SessionBatch("ns", "k3", "src", "h", "s3", [_chunk(0, "x", "s3")], np.zeros((2, DIM), np.float32))
        with pytest.raises(StoreError, match="embeddings for 1 chunks"):
            _add(store, _batch("ns", "k4", "s4", TEXTS[1:2]), bad)
        assert store.require_namespace("ns").n_chunks == 1  # the good batch rolled back with the bad


def test_ranking_in_the_database_matches_exact_search(pg_address):
    """PostgreSQL ranks in the database: pgvector's HNSW order equals exact cosine order here
    (a small index is searched exhaustively), and lexical search finds the terms."""
    with open_store(pg_address) as store:
        assert store.ranks_in_database
        vecs = _vectors(40, seed=3)
        texts = [f"note {i} about " + ("bakery flour" if i % 5 == 0 else "weather") for i in range(40)]
        batch = SessionBatch("ns", "k", "src", "h", "s", [_chunk(i, t, "s") for i, t in enumerate(texts)], vecs)
        ids = np.array(_add(store, batch))
        _add(store, _batch("other", "k", "s", TEXTS, seed=9))  # another namespace never shows up
        q = _vectors(1, seed=4)[0]
        got_ids, got_scores = store.dense_ranking("ns", q, 10)
        exact = np.argsort(-(vecs @ q))[:10]
        assert got_ids.tolist() == ids[exact].tolist()
        np.testing.assert_allclose(got_scores, (vecs @ q)[exact], atol=1e-5)
        lex_ids, lex_scores = store.lexical_ranking("ns", "Where does the flour for the bakery come from?", 20)
        assert sorted(lex_ids.tolist()) == ids[[i for i in range(40) if i % 5 == 0]].tolist()
        assert (lex_scores > 0).all()


def test_sqlite_store_does_not_rank_in_the_database(tmp_path):
    with open_store(tmp_path / "m.db") as store:
        assert not store.ranks_in_database and store.index_dir is not None
        with pytest.raises(NotImplementedError):
            store.dense_ranking("ns", np.zeros(DIM), 3)


def test_version_moves_on_every_change_of_the_chunk_set(store_address):
    """Searchers in any process resync when the version moves; it is read on every search,
    so it must move on each kind of change, a namespace forgotten and made again included."""
    import time

    with open_store(store_address) as store:
        assert store.version("ns") == (0, 0, 0)
        seen: list[tuple[int, int, int]] = []

        def moved() -> None:
            v = store.version("ns")
            assert v not in seen, (v, seen)
            seen.append(v)

        ids = _add(store, _batch("ns", "k1", "s1", TEXTS))
        moved()
        store.archive("ns", ids[:1])
        moved()
        store.restore("ns")
        moved()
        store.delete("ns", ids[1], vacuum=False)
        moved()
        store.forget_namespace("ns", vacuum=False)
        assert store.version("ns") == (0, 0, 0)
        time.sleep(0.001)
        _add(store, _batch("ns", "k1", "s1", TEXTS))  # the same content again
        moved()
        brief = store.namespace("ns", counts=False)
        assert brief is not None and brief.encoder == "test-enc" and brief.n_chunks == 0  # not counted
        assert store.namespace("ns").n_chunks == 4


def test_side_tables_keys_and_controls_work_on_both_backends(store_address):
    """API keys and control state (the target-cost controller's) go through the store's
    side-table methods: the same code and SQL on a file and on a database."""
    from budgetmem.store.controls import ControlStore
    from budgetmem.store.keys import KeyStore

    with open_store(store_address) as store:
        keys = KeyStore(store)
        token, info = keys.create("team", "read,write")
        assert keys.lookup(token).id == KeyStore(store).lookup(token).id == info.id and keys.active() == 1
        assert keys.lookup(token[:-1] + ("x" if token[-1] != "x" else "y")) is None
        assert keys.revoke(info.id).revoked_at is not None and keys.lookup(token) is None
        controls = ControlStore(store)
        assert controls.get("team", "budget") is None
        controls.put("team", "budget", {"lam": 0.5})
        controls.put("team", "budget", {"lam": 0.25, "spent": 1.5})  # replaced, not added
        assert controls.get("team", "budget") == {"lam": 0.25, "spent": 1.5}
        assert controls.delete("team", "budget") and not controls.delete("team", "budget")
