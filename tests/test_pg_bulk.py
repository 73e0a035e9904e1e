"""The PostgreSQL bulk path (``PostgresStore.bulk_add``, and ``load_namespace`` under
``budgetmem migrate``): rows by COPY, indexes built after them when the table is empty,
one transaction. A real server (``pg_server`` in conftest), a fresh database each."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest

from budgetmem.errors import StoreError
from budgetmem.store import open_store
from test_store_contract import DIM, TEXTS, _add, _batch

MORE = [
    "Marta bakes rye bread on Sundays for the neighbours",
    "Tomasz sells sourdough at the Krakow market",
    "The cat Pixel sleeps on the warm oven",
]


def _indexes(store) -> dict[str, bool]:
    """The chunks table's indexes and whether each is valid."""
    rows = store.side_query(
        "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE i.indrelid = 'budgetmem.chunks'::regclass"
    )
    return {name: valid for name, valid in rows}


def _bulk(store, ns: str, *batches, **kw):
    return store.bulk_add(ns, iter(batches), encoder="test-enc", dim=DIM, chunk_tokens=64, **kw)


def _ranked_texts(store, ns: str) -> tuple[list[str], list[str]]:
    ids, texts = store.texts(ns)
    by_id = dict(zip(ids.tolist(), texts))
    q = _batch(ns, "q", "q", ["query"], seed=7).embeddings[0]
    dense = store.dense_ranking(ns, q, 10)[0].tolist()
    lexical = store.lexical_ranking(ns, "rye bread cat Krakow", 10)[0].tolist()
    return [by_id[i] for i in dense], [by_id[i] for i in lexical]


def test_bulk_add_into_an_empty_table_builds_the_indexes_after_and_ranks_as_add(pg_server):
    batches = [_batch("ns", "k1", "s1", TEXTS, seed=1), _batch("ns", "k2", "s2", MORE, seed=2)]
    with open_store(pg_server.create_database("bulk_a")) as bulk, open_store(pg_server.create_database("bulk_b")) as live:
        report = _bulk(bulk, "ns", *batches)
        _add(live, *batches)
        assert report["deferred"] is True and report["chunks"] == 7 and report["sessions"] == 2
        assert report["copy_s"] >= 0 and report["index_s"] > 0
        assert _indexes(bulk) == _indexes(live)  # the same indexes, rebuilt, all valid
        assert _indexes(bulk)[f"chunks_hnsw_{DIM}"] and _indexes(bulk)["chunks_tsv"]
        a, b = bulk.require_namespace("ns"), live.require_namespace("ns")
        assert (a.n_chunks, a.n_sessions, a.n_tokens, a.seen_chunks, a.seen_tokens) == \
               (b.n_chunks, b.n_sessions, b.n_tokens, b.seen_chunks, b.seen_tokens) == (7, 2, a.n_tokens, 7, a.n_tokens)  # fmt: skip
        assert bulk.known_sessions("ns") == {"k1", "k2"}
        got = bulk.chunks("ns")
        assert [c.text for c in got] == TEXTS + MORE and got[1].meta == {"i": 1} and got[0].dia_ids == ("s1:0",)
        np.testing.assert_allclose(bulk.embeddings("ns")[1], np.vstack([b.embeddings for b in batches]), atol=1e-6)
        assert _ranked_texts(bulk, "ns") == _ranked_texts(live, "ns")
        assert _ranked_texts(bulk, "ns")[1][0] == MORE[0]  # rye + bread: the best lexical match
        # The live path goes on from there: a later session is added and found.
        _add(bulk, _batch("ns", "k3", "s3", ["Priya adopts a second cat"], seed=3))
        assert bulk.require_namespace("ns").n_chunks == 8 and bulk.known_sessions("ns") == {"k1", "k2", "k3"}


def test_bulk_add_beside_other_namespaces_keeps_their_indexes(pg_address):
    with open_store(pg_address) as store:
        _add(store, _batch("old", "k1", "s1", TEXTS))
        before = _ranked_texts(store, "old")
        report = _bulk(store, "new", _batch("new", "k1", "s1", MORE, seed=2))
        assert report["deferred"] is False and report["index_s"] == 0.0
        assert all(_indexes(store).values()) and f"chunks_hnsw_{DIM}" in _indexes(store)
        assert _ranked_texts(store, "old") == before
        assert sorted(_ranked_texts(store, "new")[0]) == sorted(MORE)


def test_a_failed_bulk_add_writes_nothing_and_leaves_the_indexes(pg_address):
    with open_store(pg_address) as store:
        _add(store, _batch("ns", "k1", "s1", TEXTS))
        with pytest.raises(StoreError, match="already exists"):
            _bulk(store, "ns", _batch("ns", "k2", "s2", MORE))
        store.forget_namespace("ns")
        assert store.side_query("SELECT COUNT(*) FROM chunks") == [(0,)]
        indexes = _indexes(store)
        # Into the now empty table the indexes are dropped for the load; a session given twice
        # fails it after the rows went in, and the rollback restores everything.
        with pytest.raises(psycopg.errors.UniqueViolation):
            _bulk(store, "ns", _batch("ns", "k1", "s1", TEXTS), _batch("ns", "k1", "s2", MORE))
        with pytest.raises(StoreError, match="was given a session of 'other'"):
            _bulk(store, "ns", _batch("ns", "k1", "s1", TEXTS), _batch("other", "k2", "s2", MORE))
        with pytest.raises(StoreError, match="every chunk"):
            _bulk(store, "ns", _batch("ns", "k1", "s1", TEXTS, admitted=[True, False, True, True]))
        assert _indexes(store) == indexes and all(indexes.values())
        assert store.namespace("ns") is None and store.side_query("SELECT COUNT(*) FROM chunks") == [(0,)]
        assert store.side_query("SELECT COUNT(*) FROM sessions") == [(0,)]


def test_migrate_into_an_empty_database_builds_the_indexes_after_the_rows(tmp_path, pg_address):
    from budgetmem.store.migrate import migrate

    with open_store(tmp_path / "m.db") as lite:
        _add(lite, _batch("ns", "k1", "s1", TEXTS), _batch("ns", "k2", "s2", MORE, seed=2))
    migrate(tmp_path / "m.db", pg_address)
    with open_store(pg_address) as store, open_store(tmp_path / "m.db") as lite:
        assert {f"chunks_hnsw_{DIM}", "chunks_tsv"} <= set(_indexes(store)) and all(_indexes(store).values())
        assert store.ids("ns").tolist() == lite.ids("ns").tolist()
        assert _ranked_texts(store, "ns")[1][0] == MORE[0]
