"""Delete and forget: a forgotten chunk never comes back, through any retriever, the module
cache, a query, the archive, or the raw bytes of the store and cache files and their WALs."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest
from conftest import EXAMPLE
from fakes import ScriptedFakeLLM

from budgetmem import BudgetMem, ForgetReport, Settings
from budgetmem.cli.main import main
from budgetmem.errors import NotFoundError, StoreError
from budgetmem.pipeline.cache import ModuleCache, source_tag
from budgetmem.pipeline.prompts import task_text
from budgetmem.pipeline.stages import MODULES
from budgetmem.retrieval import RETRIEVERS

SECRET = "Quokkaberry7Q3X"
"""The marker of the chunk to forget: one token, found nowhere else."""
OTHER = "Borogove55Z"
"""The marker of another namespace's chunk, which must survive."""
QUESTION = "What is the vault code word?"
MODEL, ANSWER = "fake:module", "fake:answer"


def _script(prompt: str) -> str:
    """Replies that repeat a marker whenever the prompt shows it, so every cache entry made
    from a marked chunk holds the marker (a leak the tests would see)."""
    word = next((m for m in (SECRET, OTHER) if m in prompt), None)
    module = next((m for m in MODULES if task_text(m) in prompt), None)
    if module is None:  # the answer call
        return word or "unknown"
    if module == "filter":
        blocks = re.split(r"<memory index=", prompt)[1:]
        return "<answer>" + json.dumps([10 if word and word in b else 1 for b in blocks]) + "</answer>"
    text = f"the code word is {word}" if word else "no code word"
    if module == "summary":
        return f"<answer>{text}</answer>"
    return "<answer>" + json.dumps([f"{module}: {text}"]) + "</answer>"


def _llms() -> dict[str, ScriptedFakeLLM]:
    return {n: ScriptedFakeLLM(n, _script) for n in (MODEL, ANSWER, "fake:s", "fake:m", "fake:l")}


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings().replace(
        encoder__name="all-minilm-l6-v2",
        chunking__max_tokens=64,
        retrieval__top_k=5,
        pipeline__module_llm=MODEL,
        pipeline__answer_llm=ANSWER,
        pipeline__ladder=("fake:s", "fake:m", "fake:l"),
        pipeline__concurrent=False,
        pipeline__cache_path=tmp_path / "cache.sqlite",
    )


@pytest.fixture
def mems(tmp_path, settings, minilm):
    """``make(namespace)``: a BudgetMem on one shared store file; all are closed at the end."""
    opened: list[BudgetMem] = []

    def make(namespace: str = "demo", s: Settings | None = None) -> BudgetMem:
        mem = BudgetMem(
            tmp_path / "m.db", namespace, settings=s or settings, encoder=minilm, llms=_llms(), policy="high"
        )
        opened.append(mem)
        return mem

    yield make
    for mem in opened:
        mem.close()


def _raw(path: Path) -> bytes:
    """Every byte of an SQLite file and its WAL, as a disk reader would see them."""
    wal = path.with_name(path.name + "-wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def _fill(make) -> tuple[BudgetMem, BudgetMem, int]:
    """'demo' holds the example conversation and a secret session; 'other' holds its own
    marker. Both have been queried, so the module cache holds entries made from them."""
    mem, other = make("demo"), make("other")
    mem.add(EXAMPLE)
    mem.add_session([("Priya", f"The vault code word is {SECRET}, tell nobody.")], session_id="s-secret")
    other.add_session([("Ana", f"My locker code word is {OTHER}.")], session_id="s-other")
    (secret_id,) = [c.id for c in mem.store.chunks("demo") if SECRET in c.text]
    assert mem.query(QUESTION).answer == SECRET
    assert other.query("What is the locker code word?").answer == OTHER
    return mem, other, int(secret_id)


def _cached_values(path: Path) -> list[str]:
    """Every entry the module cache would return, read through its own interface."""
    db = sqlite3.connect(path)
    keys = [k for (k,) in db.execute("SELECT key FROM results")]
    db.close()
    cache = ModuleCache(path)
    try:
        return [json.dumps(cache.get(k)) for k in keys]
    finally:
        cache.close()


def _assert_gone(mem: BudgetMem, db: Path, cache: Path, *, namespace_gone: bool) -> None:
    if namespace_gone:
        with pytest.raises(NotFoundError):
            mem.search(SECRET)
        with pytest.raises(NotFoundError):
            mem.query(QUESTION)
    else:
        for retriever in RETRIEVERS:
            hits = mem.search(f"vault code word {SECRET}", k=50, retriever=retriever)
            assert not any(SECRET in h.chunk.text for h in hits), retriever
        r = mem.query(QUESTION)
        assert SECRET not in json.dumps([r.answer, r.memory, r.facts, [c.chunk.text for c in r.candidates]])
        assert all(SECRET not in a.chunk.text for a in mem.store.archived("demo"))
    assert not any(SECRET in v for v in _cached_values(cache))
    assert SECRET.encode() not in _raw(db)
    assert SECRET.encode() not in _raw(cache)


@pytest.mark.parametrize("how", ["delete", "session", "namespace"])
def test_forgotten_text_is_gone_everywhere(tmp_path, mems, how):
    db, cache = tmp_path / "m.db", tmp_path / "cache.sqlite"
    mem, other, secret_id = _fill(mems)
    again = mem.query(QUESTION)  # the module cache answers: the path a leak would take
    assert again.answer == SECRET and again.cache["hits"] == 6
    assert any(SECRET in v for v in _cached_values(cache))
    assert SECRET.encode() in _raw(db) and SECRET.encode() in _raw(cache)  # the checks below can fail
    for retriever in RETRIEVERS:
        assert SECRET in mem.search(f"vault code word {SECRET}", k=1, retriever=retriever)[0].chunk.text
    n_other_entries = sum(OTHER in v for v in _cached_values(cache))
    assert n_other_entries > 0

    report = {"delete": lambda: mem.delete(secret_id), "session": lambda: mem.forget_session("s-secret"),
              "namespace": mem.forget}[how]()  # fmt: skip

    assert isinstance(report, ForgetReport) and report.wiped and report.cache_entries >= 6
    if how == "namespace":
        assert report.namespace_removed and report.chunks > 1 and report.sessions == 5
        assert [n.name for n in mem.store.namespaces()] == ["other"]
    else:
        assert (report.chunks, report.archived, report.sessions, report.namespace_removed) == (1, 0, 1, False)
        hits = mem.search("What did Tomasz name his bakery?", k=3)  # the rest of the namespace is intact
        assert any("Zakwas" in h.chunk.text for h in hits)
        assert mem.store.require_namespace("demo").n_sessions == 4
    _assert_gone(mem, db, cache, namespace_gone=how == "namespace")

    # The other namespace: untouched in the store, the indexes and the module cache.
    assert OTHER.encode() in _raw(db)
    assert any(OTHER in h.chunk.text for h in other.search(OTHER, retriever="bm25"))
    assert sum(OTHER in v for v in _cached_values(cache)) == n_other_entries
    assert other.query("What is the locker code word?").cache["hits"] == 6

    # Closed and reopened (the WAL is folded into the file): still gone.
    mem.close(), other.close()
    assert SECRET.encode() not in _raw(db) and OTHER.encode() in _raw(db)


def test_forgotten_text_stays_gone_after_the_namespace_is_reused(tmp_path, mems):
    mem, _, _ = _fill(mems)
    mem.forget()
    mem.add_session([("Priya", "The vault has no code word any more.")], session_id="s-new")
    (hit,) = mem.search(f"vault code word {SECRET}", k=50, retriever="hybrid")
    assert "no code word any more" in hit.chunk.text
    assert SECRET not in mem.query(QUESTION).answer


def test_ids_and_sessions_of_another_namespace_are_not_found(tmp_path, mems):
    mem, other, secret_id = _fill(mems)
    with pytest.raises(NotFoundError, match=f"chunk {secret_id} not found in namespace 'other'"):
        other.delete(secret_id)
    with pytest.raises(NotFoundError, match="session 's-secret' not found in namespace 'other'"):
        other.forget_session("s-secret")
    with pytest.raises(NotFoundError, match="chunk 999999 not found"):
        mem.delete(999999)
    assert issubclass(NotFoundError, StoreError)
    assert SECRET in mem.store.chunks("demo", [secret_id])[0].text  # nothing was deleted
    with pytest.raises(NotFoundError, match="namespace 'nobody' not found"):
        mems("nobody").forget()


def test_archived_chunks_of_a_forgotten_session_are_gone(tmp_path, mems, settings):
    db = tmp_path / "m.db"
    # Keep the two newest chunks: the secret, stored first, is evicted to the archive.
    mem = mems("budget", settings.replace(write__policy="last", write__budget="2"))
    mem.add_session([("Priya", f"The vault code word is {SECRET}.")], session_id="s-secret")
    mem.add_session([("Priya", f"Again: the vault code word is {SECRET}.")], session_id="s-secret")
    for i in range(3):
        mem.add_session([("Tomasz", f"Bread diary, day {i}: rye again.")], session_id=f"s{i}")
    archived = mem.store.archived("budget")
    assert [(a.reason, SECRET in a.chunk.text) for a in archived[:2]] == [("evicted", True)] * 2
    assert SECRET.encode() in _raw(db)

    report = mem.forget_session("s-secret")

    assert (report.chunks, report.archived, report.sessions) == (0, 2, 2)
    assert all(SECRET not in a.chunk.text for a in mem.store.archived("budget"))
    assert mem.store.restore("budget") == 1  # only the day-0 chunk was left to restore
    assert SECRET not in json.dumps(mem.store.seen("budget")[0])
    assert SECRET.encode() not in _raw(db)
    info = mem.store.require_namespace("budget")
    assert (info.n_sessions, info.seen_chunks) == (3, 3)  # what was forgotten no longer counts as seen


def test_delete_an_archived_chunk_and_session_counts(tmp_path, mems, settings):
    mem = mems("budget", settings.replace(write__policy="last", write__budget="2"))
    mem.add_session([("Priya", f"The vault code word is {SECRET}.")], session_id="s-secret")
    mem.add_session([("Tomasz", "Rye again.")], session_id="s-rye")
    mem.add_session([("Tomasz", "Rye once more.")], session_id="s-rye-2")
    (gone,) = mem.store.archived("budget")
    report = mem.delete(int(gone.chunk.id))
    assert (report.chunks, report.archived, report.sessions) == (0, 1, 1)
    assert mem.store.archived("budget") == [] and SECRET.encode() not in _raw(tmp_path / "m.db")

    # A session of two chunks loses its row only with its last chunk.
    long = [("Priya", " ".join(["Lisbon trams are loud and yellow."] * 5)),
            ("Tomasz", " ".join(["Rye needs patience."] * 8))]  # fmt: skip
    mem2 = mems("plain")
    mem2.add_session(long, session_id="s-long")
    first, second = [c.id for c in mem2.store.chunks("plain")]
    count = "SELECT n_chunks FROM sessions WHERE namespace='plain' AND session_id='s-long'"
    assert mem2.store._db.execute(count).fetchall() == [(2,)]
    assert mem2.delete(first).sessions == 0 and mem2.store._db.execute(count).fetchall() == [(1,)]
    assert mem2.delete(second).sessions == 1 and mem2.store._db.execute(count).fetchall() == []


def test_a_reader_holding_an_old_snapshot_delays_the_wipe(tmp_path, mems):
    db = tmp_path / "m.db"
    mem, _, secret_id = _fill(mems)
    reader = sqlite3.connect(db, isolation_level=None)
    reader.execute("BEGIN")
    assert reader.execute("SELECT COUNT(*) FROM chunks WHERE text LIKE ?", (f"%{SECRET}%",)).fetchone() == (1,)
    report = mem.delete(secret_id)
    assert not report.wiped  # the reader may still read its snapshot: the WAL keeps the old pages
    assert mem.store.chunks("demo", [secret_id]) == []
    reader.execute("COMMIT")
    reader.close()
    assert mem.store.wipe() and SECRET.encode() not in _raw(db)


def test_wipe_leaves_no_copy_of_deleted_rows(tmp_path):
    """secure_delete zeroes what a DELETE frees, but rows that b-tree rebalances and growing
    updates moved leave copies it never sees; the wipe's VACUUM rewrites every page. Shown
    with secure_delete off, so the copies are there to find whatever SQLite's build default."""
    from budgetmem.store.wipe import truncate_wal, wipe

    def fill_and_delete(path: Path) -> tuple[sqlite3.Connection, list[bytes]]:
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA secure_delete=OFF")
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, text TEXT, n INTEGER)")
        for i in range(200):
            db.execute("INSERT INTO t VALUES (?, ?, 0)", (i, f"MARK{i:04d}X " + "w" * (50 + 37 * i % 900)))
        for i in range(0, 200, 3):
            db.execute("UPDATE t SET n = n + 100000, text = text || ? WHERE id = ?", ("z" * (i % 200), i))
        doomed = list(range(0, 200, 5))
        db.executemany("DELETE FROM t WHERE id = ?", [(i,) for i in doomed])
        return db, [f"MARK{i:04d}X".encode() for i in doomed]

    db, marks = fill_and_delete(tmp_path / "plain.db")
    assert truncate_wal(db)
    assert sum(m in _raw(tmp_path / "plain.db") for m in marks) > 0  # a checkpoint alone is not enough
    db.close()
    db, marks = fill_and_delete(tmp_path / "wiped.db")
    assert wipe(db)
    assert not any(m in _raw(tmp_path / "wiped.db") for m in marks)
    assert db.execute("SELECT COUNT(*) FROM t").fetchone() == (160,)
    db.close()


def test_module_cache_forgets_by_source_and_drops_untagged_entries(tmp_path):
    path = tmp_path / "c.sqlite"
    old = sqlite3.connect(path)  # a cache file from before entries recorded their sources
    old.execute("CREATE TABLE results (key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL)")
    old.execute("INSERT INTO results VALUES ('legacy', '{\"text\": \"old\"}', 0)")
    old.commit()
    old.close()
    cache = ModuleCache(path)
    try:
        assert cache.get("legacy") == {"text": "old"}  # upgraded in place, still readable
        a, b = source_tag("chunk a"), source_tag("chunk b")
        cache.put("from-a", {"v": 1}, {a})
        cache.put("from-ab", {"v": 2}, {a, b})
        cache.put("from-b", {"v": 3}, {b})
        assert cache.forget({a}) == (3, True)  # from-a, from-ab and the untraceable legacy entry
        assert [cache.get(k) for k in ("from-a", "from-ab", "from-b", "legacy")] == [None, None, {"v": 3}, None]
        cache.put("late-a", {"v": 4}, {a})  # a query still running when a was forgotten
        assert cache.get("late-a") is None
        rows = cache._db.execute("SELECT tag, key FROM sources").fetchall()
        assert rows == [(b, "from-b")]
    finally:
        cache.close()


# ---------------------------------------------------------------------- CLI
def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def cli_store(tmp_path, capsys):
    """A CLI-ingested store; a config keeps the module cache inside tmp_path."""
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(f'[pipeline]\ncache_path = "{tmp_path / "cache.sqlite"}"\n', encoding="utf-8")
    db = tmp_path / "mem.db"
    for ns in ("demo", "other"):
        code, _, err = _run(
            capsys, "--config", str(cfg), "ingest", str(EXAMPLE), "--store", str(db), "--namespace", ns,
            "--encoder", "all-minilm-l6-v2", "--chunk-tokens", "64",
        )  # fmt: skip
        assert code == 0, err
    return cfg, db


def _hits(capsys, cfg: Path, db: Path, ns: str, query: str) -> list[dict]:
    code, out, err = _run(capsys, "--config", str(cfg), "search", query, "--store", str(db), "--namespace", ns,
                          "-k", "50", "--retriever", "bm25", "--json")  # fmt: skip
    assert code == 0, err
    return json.loads(out)["hits"]


def test_cli_delete(cli_store, capsys):
    cfg, db = cli_store
    (target,) = [h for h in _hits(capsys, cfg, db, "demo", "Zakwas") if "Zakwas" in h["text"]][:1]
    (theirs,) = [h for h in _hits(capsys, cfg, db, "other", "Zakwas") if "Zakwas" in h["text"]][:1]
    base = ["--config", str(cfg), "delete", "--store", str(db)]
    code, _, err = _run(capsys, *base, str(theirs["chunk_id"]), "--namespace", "demo")
    assert code == 2 and f"chunk {theirs['chunk_id']} not found in namespace 'demo'" in err and err.count("\n") == 1
    code, out, err = _run(capsys, *base, str(target["chunk_id"]), "--namespace", "demo", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert (report["chunks"], report["namespace"], report["wiped"]) == (1, "demo", True)
    assert target["chunk_id"] not in [h["chunk_id"] for h in _hits(capsys, cfg, db, "demo", "Zakwas")]
    assert theirs["chunk_id"] in [h["chunk_id"] for h in _hits(capsys, cfg, db, "other", "Zakwas")]
    code, _, err = _run(capsys, *base, str(target["chunk_id"]), "--namespace", "demo")  # already gone
    assert code == 2 and "not found" in err
    code, out, err = _run(capsys, *base, "123", "--namespace", "nobody")
    assert code == 2 and "namespace 'nobody' not found" in err


def test_cli_forget_session_and_namespace(cli_store, capsys):
    cfg, db = cli_store
    session = _hits(capsys, cfg, db, "demo", "Zakwas")[0]["session_id"]
    base = ["--config", str(cfg), "forget", "--store", str(db), "--namespace", "demo"]
    code, out, err = _run(capsys, *base, "--session", session)
    assert code == 0 and out.startswith(f"forgot session {session} in demo: ") and not err
    assert session not in {h["session_id"] for h in _hits(capsys, cfg, db, "demo", "Zakwas bakery Priya Tomasz")}
    code, _, err = _run(capsys, *base, "--session", "no-such-session")
    assert code == 2 and "session 'no-such-session' not found" in err

    code, _, err = _run(capsys, *base)  # not a terminal and no --yes: refused, nothing changed
    assert code == 2 and "needs confirmation (add --yes)" in err
    assert _hits(capsys, cfg, db, "demo", "Priya")
    code, out, err = _run(capsys, *base, "--yes", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["namespace_removed"] and report["sessions"] == 3 and report["chunks"] > 0
    code, out, _ = _run(capsys, "namespaces", "--store", str(db), "--json")
    assert [n["name"] for n in json.loads(out)] == ["other"]
    code, _, err = _run(capsys, *base, "--yes")
    assert code == 2 and "namespace 'demo' not found" in err
