"""A store under exhausted resources (issue 20, item 6): a full disk during an ingest, a
read-only file, another writer holding the lock, a file from a newer budgetmem. Each gives one
clean error line (exit 2) and leaves the store as it was; see tests/exhaust.py for how each
condition is made. The reliability campaign ``resources`` runs the same attacks at random
sizes and points."""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from pathlib import Path

import pytest
from conftest import EXAMPLE, REPO
from exhaust import (
    Locker, can_write, chunk_keys, cli, content, file_digest, file_size_limit, integrity, make_future, one_line_error,
    without_root_override,
)  # fmt: skip

from budgetmem import BudgetMem
from budgetmem.cli.main import main
from budgetmem.errors import StoreError
from budgetmem.store import sqlite_store

NOTES = REPO / "examples" / "notes.md"


@pytest.fixture(scope="module")
def template(tmp_path_factory, minilm, minilm_settings) -> Path:
    """A store with the example conversation in namespace 'demo', closed (its WAL folded in)."""
    path = tmp_path_factory.mktemp("template") / "memory.db"
    with BudgetMem(path, "demo", settings=minilm_settings, encoder=minilm) as mem:
        mem.add(EXAMPLE)
    assert not Path(f"{path}-wal").exists()
    return path


@pytest.fixture
def store(template, tmp_path) -> Path:
    path = tmp_path / "memory.db"
    shutil.copy(template, path)
    return path


def test_full_disk_during_ingest_is_one_line_and_keeps_the_store(store):
    before, keys = content(store), chunk_keys(store)
    # 8 KiB: the WAL's second page is past the limit, so the ingest's first write fails.
    done = cli(["ingest", str(NOTES), "--store", str(store), "--namespace", "demo"], preexec=file_size_limit(8192))
    assert one_line_error(done) is None, done.stderr
    assert "could not write" in done.stderr and "file size limit" in done.stderr
    assert integrity(store) == "ok"
    assert content(store) == before
    # The same ingest, with room, stores everything once on top of what was there.
    again = cli(["ingest", str(NOTES), "--store", str(store), "--namespace", "demo"])
    assert again.returncode == 0, again.stderr
    after = chunk_keys(store)
    assert max(after.values()) == 1 and not keys - after and sum(after.values()) > sum(keys.values())


def test_a_failed_commit_is_rolled_back_and_named(store, monkeypatch):
    """The COMMIT itself failing (where a full disk shows up in WAL mode): before the fix the
    raw sqlite3 error escaped and the transaction was left open on the connection."""
    s = sqlite_store.SQLiteStore(store)
    real = s._db

    class FailingCommit:
        def __getattr__(self, name):
            return getattr(real, name)

        def execute(self, sql, *args):
            if sql == "COMMIT":
                raise sqlite3.OperationalError("database or disk is full")
            return real.execute(sql, *args)

    before = content(store)
    monkeypatch.setattr(s, "_db", FailingCommit())
    with pytest.raises(StoreError, match="could not write .*database or disk is full"):
        s.touch("demo", [1])
    assert not real.in_transaction
    monkeypatch.undo()
    s.close()
    assert content(store) == before


def test_read_only_store_refuses_writes_and_serves_reads(store):
    os.chmod(store, 0o444)
    assert not can_write(store), "the child could still write the chmod 444 store"
    before = file_digest(store)
    for args in (["ingest", str(NOTES)], ["forget", "--session", "session_1"]):
        done = cli([*args, "--store", str(store), "--namespace", "demo"], preexec=without_root_override)
        assert one_line_error(done) is None, done.stderr
        assert "is read-only" in done.stderr, done.stderr
        assert file_digest(store) == before
    # Reading needs no write: before the fix even `stats` failed, calling the file "not a budgetmem store".
    done = cli(["stats", "--store", str(store), "--namespace", "demo", "--json"], preexec=without_root_override)
    assert done.returncode == 0, done.stderr
    assert file_digest(store) == before and integrity(store) == "ok"


def test_locked_store_is_one_line_and_unchanged(store, minilm, minilm_settings, monkeypatch, capsys):
    monkeypatch.setattr(sqlite_store, "BUSY_TIMEOUT_S", 0.5)
    before = content(store)
    with Locker(store):
        # Opening and searching need no write lock (before the fix, opening took it).
        with BudgetMem(store, "demo", settings=minilm_settings, encoder=minilm) as mem:
            assert mem.search("bakery", k=2)
            t0 = time.perf_counter()
            with pytest.raises(StoreError, match="locked by another writer"):
                mem.add(NOTES)
            assert time.perf_counter() - t0 < 20
        assert main(["forget", "--store", str(store), "--namespace", "demo", "--session", "session_1"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "locked by another writer" in err
    assert content(store) == before and integrity(store) == "ok"


def test_a_writer_waits_for_a_short_lock(store, minilm, minilm_settings, monkeypatch):
    monkeypatch.setattr(sqlite_store, "BUSY_TIMEOUT_S", 20.0)
    keys = chunk_keys(store)
    with Locker(store, hold_s=0.5):
        with BudgetMem(store, "demo", settings=minilm_settings, encoder=minilm) as mem:
            mem.add(NOTES)
    after = chunk_keys(store)
    assert max(after.values()) == 1 and not keys - after and len(after) > len(keys)


@pytest.mark.parametrize("journal", ["wal", "delete"])
def test_future_schema_store_is_refused_untouched(store, journal, capsys):
    make_future(store, 3, journal=journal)
    before = file_digest(store)
    for args in (["ingest", str(EXAMPLE)], ["stats"], ["forget", "--session", "session_1"]):
        assert main([*args, "--store", str(store), "--namespace", "demo"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "schema version 3, this budgetmem reads up to 2" in err, err
        # Before the fix a rollback-journal file was switched to WAL before the version was read.
        assert file_digest(store) == before
    db = sqlite3.connect(store)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == journal
    db.close()
