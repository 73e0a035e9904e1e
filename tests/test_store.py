"""The Store contract on both backends (SQLite file, PostgreSQL): namespaces, append, no
re-embedding, all-or-nothing ingest. ``store_address`` runs each test on each backend."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import EXAMPLE

from budgetmem import BudgetMem, Store
from budgetmem.errors import StoreError
from budgetmem.store import open_store
from budgetmem.ingest import chunk_history, load_histories
from budgetmem.ingest.ingest import ingest_histories


def _counts(address) -> tuple[int, int, int]:
    """(chunks, embeddings, sessions) over every namespace, read through the Store interface."""
    with open_store(address, create=False) as store:
        infos = store.namespaces()
        embedded = sum(len(store.embeddings(n.name)[0]) for n in infos)
        return sum(n.n_chunks for n in infos), embedded, sum(n.n_sessions for n in infos)


def test_wal_namespaces_and_append(store_address, minilm_settings):
    db = store_address
    with BudgetMem(db, "alice", settings=minilm_settings) as mem:
        assert mem.store.backend == ("postgresql" if db.startswith("postgresql://") else "sqlite")
        if mem.store.backend == "sqlite":
            assert mem.store.journal_mode == "wal"
        first = mem.add(EXAMPLE)
        assert first.chunks_added == 4 and first.namespaces[0].namespace == "alice"
        mem.add_session([("Alice", "I adopted a parrot called Kiwi.")], session_id="s-new", date_time="1 Jan 2025")
        assert mem.store.chunks("alice")[-1].dia_ids == ("s-new:0",)
        info = mem.store.require_namespace("alice")
        assert (info.n_chunks, info.n_sessions, info.encoder, info.dim) == (5, 5, "all-minilm-l6-v2", 384)
    with BudgetMem(db, "bob", settings=minilm_settings) as other:
        other.add_session(["unrelated"], session_id="s1")
        assert [n.name for n in other.store.namespaces()] == ["alice", "bob"]
        assert len(other.store.chunks("bob")) == 1


def test_reopen_never_reembeds(store_address, minilm_settings):
    db = store_address
    with BudgetMem(db, "ns", settings=minilm_settings) as mem:
        mem.add(EXAMPLE)
        ids, before = mem.store.embeddings("ns")
    with BudgetMem(db, "ns", settings=minilm_settings) as again:
        again.encoder.n_encoded = 0
        hits = again.search("Zakwas bakery name", k=2)
        assert hits and again.encoder.n_encoded == 1  # only the query was embedded
        ids2, after = again.store.embeddings("ns")
    assert np.array_equal(ids, ids2) and np.array_equal(before, after)
    np.testing.assert_allclose(np.linalg.norm(after, axis=1), 1.0, atol=1e-5)


def test_reingest_same_file_is_a_noop(store_address, minilm_settings):
    db = store_address
    with BudgetMem(db, "ns", settings=minilm_settings) as mem:
        mem.add(EXAMPLE)
        again = mem.add(EXAMPLE)
    assert (again.chunks_added, again.namespaces[0].sessions_skipped) == (0, 4)
    assert _counts(db) == (4, 4, 4)


def test_failed_embedding_leaves_store_unchanged(store_address, minilm, monkeypatch):
    db = store_address
    with Store(db) as store:
        ingest_histories(store, "ns", load_histories(EXAMPLE), minilm, 256)
    before = _counts(db)

    def boom(texts, progress=False):
        raise RuntimeError("encoder died")

    monkeypatch.setattr(minilm, "encode", boom)
    with Store(db) as store, pytest.raises(RuntimeError):
        ingest_histories(store, "other", load_histories(EXAMPLE), minilm, 64)
    assert _counts(db) == before


def test_write_failure_rolls_back_every_namespace(store_address, minilm):
    from budgetmem.store import SessionBatch

    chunks = [c for h in load_histories(EXAMPLE) for c in chunk_history(h, minilm, 256)]
    good = SessionBatch("a", "k1", "src", "h", "s1", chunks[:1], np.ones((1, 384), dtype=np.float32))
    bad = SessionBatch("b", "k2", "src", "h", "s2", chunks[1:3], np.ones((1, 384), dtype=np.float32))  # wrong shape
    db = store_address
    with Store(db) as store:
        with pytest.raises(StoreError, match="embeddings for 2 chunks"):
            store.add([good, bad], encoder="all-minilm-l6-v2", dim=384, chunk_tokens=256)
        assert store.namespaces() == []
    assert _counts(db) == (0, 0, 0)


def test_encoder_mismatch_is_refused(store_address, minilm):
    from budgetmem.store import SessionBatch

    db = store_address
    with Store(db) as store:
        ingest_histories(store, "ns", load_histories(EXAMPLE), minilm, 256)
        with pytest.raises(StoreError, match="was embedded with all-minilm-l6-v2"):
            store.add(
                [SessionBatch("ns", "k", "s", "h", "x", [], np.zeros((0, 768), dtype=np.float32))],
                encoder="all-mpnet-base-v2",
                dim=768,
                chunk_tokens=256,
            )


def test_store_file_errors(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StoreError, match="not a budgetmem store"):
        Store(junk)
    with pytest.raises(StoreError, match="store not found"):
        Store(tmp_path / "absent.db", create=False)
    with pytest.raises(StoreError, match="is a directory"):
        Store(tmp_path)
    with Store(tmp_path / "ok.db") as store, pytest.raises(StoreError, match="namespace 'nobody' not found"):
        store.require_namespace("nobody")

