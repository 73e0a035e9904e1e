"""Budgeted writes: salience features, budgets, batch and streaming plans, the archive,
schema upgrade, the learned policy, and the CLI (ingest --write-*, stats, gc, restore)."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest
from conftest import EXAMPLE

from budgetmem import BudgetMem, Store
from budgetmem.cli.main import main
from budgetmem.errors import ConfigError, InputError
from budgetmem.ingest import Chunk, load_histories
from budgetmem.ingest.ingest import ingest_histories
from budgetmem.nlp import load_nlp
from budgetmem.settings import WriteSettings
from budgetmem.store import WriteState
from budgetmem.write import FEATURES, compute_features, parse_budget, plan_writes
from budgetmem.write.budget import Budget
from budgetmem.write.learned import WriterTrainSettings, load_writer, save_writer, train_writer
from budgetmem.training.writer import ranking_auc


def _chunk(text: str, position: int = 0, session: str = "s1") -> Chunk:
    return Chunk(text=text, n_tokens=len(text.split()), source="t", history="h", session_id=session,
                 session_date=None, position=position, dia_ids=(), speakers=())  # fmt: skip


def _unit(rows: list[list[float]]) -> np.ndarray:
    m = np.asarray(rows, dtype=np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


# ---------------------------------------------------------------------------- features
def test_features_follow_their_definitions():
    nlp = load_nlp()
    chunks = [
        _chunk("Melanie met Caroline in Paris with John Smith on Monday.", 0),
        _chunk("ok ok ok ok ok ok ok ok ok ok", 1),
        _chunk("Did you go? Why not? Where?", 2),
        _chunk("I paid 45 dollars for 3 tickets in 2019 and 12 more.", 3),
        _chunk("We decided to move because the plan changed, however I will stay.", 4),
    ]
    vecs = _unit([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 0]])
    seen = ["ok thanks", "ok sure ok", "ok"] * 3  # "ok" is this namespace's everyday word
    f = compute_features(chunks, vecs, nlp=nlp, seen_texts=seen, seen_vectors=_unit([[0, 0.1, 1]] * 9))
    col = {n: i for i, n in enumerate(FEATURES)}
    assert f.shape == (5, 7) and f.min() >= 0.0 and f.max() <= 1.0
    assert f[0, col["entity"]] > 0.5 and f[1, col["entity"]] == 0.0
    assert f[3, col["number"]] == 1.0 and f[1, col["number"]] == 0.0  # 4 numbers in 12 words saturates
    assert f[2, col["question"]] == 1.0 and f[0, col["question"]] == 0.0
    assert f[4, col["discourse"]] == 1.0 and f[1, col["discourse"]] == 0.0
    # U-shaped position over a 5-chunk session: |2p - 1| = 1, .5, 0, .5, 1
    assert f[:, col["position"]].tolist() == pytest.approx([1.0, 0.5, 0.0, 0.5, 1.0])
    # novelty: the first chunk is orthogonal to what was seen -> 1; the last repeats it -> 0
    assert f[0, col["novelty"]] == pytest.approx(1.0) and f[4, col["novelty"]] == pytest.approx(0.0, abs=1e-6)
    # cos([1,1,0]/sqrt2, [1,0,0]) = 0.7071 -> novelty 0.2929
    assert f[3, col["novelty"]] == pytest.approx(1 - 2**-0.5, abs=1e-5)
    # idf over 14 texts: "ok" in 10 -> log(15/11) + 1; names once -> log(15/2) + 1 = the max
    assert f[1, col["tfidf"]] == pytest.approx((np.log(15 / 11) + 1) / (np.log(15 / 2) + 1), abs=1e-5)
    assert f[0, col["tfidf"]] == pytest.approx(1.0)


def test_novelty_counts_chunks_seen_before():
    nlp = load_nlp()
    c = [_chunk("Kiwi the parrot", 0)]
    vec = _unit([[0, 1]])
    alone = compute_features(c, vec, nlp=nlp)
    after = compute_features(c, vec, nlp=nlp, seen_texts=["Kiwi the parrot"], seen_vectors=_unit([[0, 1]]))
    assert alone[0, FEATURES.index("novelty")] == 1.0 and after[0, FEATURES.index("novelty")] == pytest.approx(0.0, abs=1e-6)


# ---------------------------------------------------------------------------- budgets and plans
def test_parse_budget():
    assert parse_budget("0.3") == Budget(ratio=0.3) and parse_budget("30%") == Budget(ratio=0.3)
    assert parse_budget("200") == Budget(chunks=200) and parse_budget("1") == Budget(ratio=1.0)
    assert parse_budget(None) is None
    assert Budget(ratio=0.3).capacity(10) == 3 and Budget(ratio=0.25).capacity(10) == 3  # 2.5 rounds half up
    assert Budget(ratio=0.01).capacity(10) == 1 and Budget(chunks=7).capacity(1000) == 7
    for bad in ("0", "1.5", "-0.2", "lots", "0%"):
        with pytest.raises(ConfigError):
            parse_budget(bad)


def test_batch_plan_is_top_k():
    scores = [0.1, 0.9, 0.5, 0.7, 0.3, 0.8, 0.2, 0.6, 0.4, 0.05]
    plan = plan_writes(scores, [], Budget(ratio=0.3), seen_before=0, threshold=None, access_weight=0.3)
    assert [i for i, keep in enumerate(plan.admitted) if keep] == [1, 3, 5]  # the three best, by hand
    assert plan.evict == [] and plan.capacity == 3


def test_batch_plan_against_stored_chunks_evicts_the_weakest():
    live = [WriteState(10, 0.2, 0, 5), WriteState(11, 0.9, 0, 5)]
    plan = plan_writes([0.5, 0.1], live, Budget(chunks=2), seen_before=2, threshold=None, access_weight=0.0)
    assert plan.admitted == [True, False] and plan.evict == [10]


def test_access_counts_protect_used_chunks():
    # Same scores; w = 1 means access counts alone decide: the never-used chunk 10 goes.
    live = [WriteState(10, 0.5, 0, 5), WriteState(11, 0.5, 9, 5)]
    used = plan_writes([0.5], live, Budget(chunks=2), seen_before=2, threshold=None, access_weight=1.0)
    assert used.evict == [10] and used.admitted == [True]
    # w = 0 and a higher new score: the oldest of the tied live chunks goes first.
    tie = plan_writes([0.9], live, Budget(chunks=2), seen_before=2, threshold=None, access_weight=0.0)
    assert tie.evict == [10]


def test_streaming_plan_by_hand():
    # threshold 0.3, cap 2: 0.5 in; 0.2 rejected; 0.9 in; 0.4 in -> over cap, lowest (0.4) out;
    # 0.95 in -> over cap, lowest live (0.5) out.
    plan = plan_writes([0.5, 0.2, 0.9, 0.4, 0.95], [], Budget(chunks=2), seen_before=0, threshold=0.3, access_weight=0.0)
    assert plan.admitted == [False, False, True, False, True]


def test_write_settings_are_checked(tmp_path):
    with pytest.raises(ConfigError):
        WriteSettings(policy="learned")
    with pytest.raises(ConfigError):
        WriteSettings(policy="nope")
    with pytest.raises(ConfigError):
        WriteSettings(policy="all", budget="0.3")
    with pytest.raises(ConfigError):
        WriteSettings(policy="last", threshold=0.2)


# ---------------------------------------------------------------------------- store: archive, upgrade
def _ingest(store, ns, encoder, write, tokens=32):
    return ingest_histories(store, ns, load_histories(EXAMPLE), encoder, tokens, write=write)


def test_budgeted_ingest_keeps_the_top_scores_and_archives_the_rest(tmp_path, minilm):
    with Store(tmp_path / "m.db") as store:
        report = _ingest(store, "a", minilm, WriteSettings(policy="salience", budget="0.4"))
        r = report.namespaces[0]
        info = store.require_namespace("a")
        assert info.seen_chunks == r.chunks_added > 5
        assert info.n_chunks == r.chunks_stored == round(0.4 * r.chunks_added + 1e-9)
        assert info.n_archived == r.chunks_added - info.n_chunks
        assert info.n_tokens + info.archived_tokens == info.seen_tokens
        kept = [s.score for s in store.write_state("a")]
        gone = [a.score for a in store.archived("a")]
        assert min(kept) >= max(gone) and {a.reason for a in store.archived("a")} == {"rejected"}
        # Re-ingesting the same file changes nothing.
        again = _ingest(store, "a", minilm, WriteSettings(policy="salience", budget="0.4"))
        assert again.chunks_added == 0 and store.require_namespace("a").n_chunks == info.n_chunks
        # The namespace remembers its policy: another one is refused, none keeps it.
        with pytest.raises(ConfigError, match="salience"):
            _ingest(store, "a", minilm, WriteSettings(policy="random", budget="0.4"))
        assert json.loads(store.require_namespace("a").write_policy)["policy"] == "salience"
        # Budgeted writes do not start in a namespace stored without a policy.
        _ingest(store, "plain", minilm, None)
        with pytest.raises(ConfigError, match="without a write policy"):
            _ingest(store, "plain", minilm, WriteSettings(policy="salience", budget="0.5"))


def test_archive_restore_purge_round_trip_and_search(tmp_path, minilm_settings):
    s = minilm_settings.replace(chunking__max_tokens=32, write__policy="first", write__budget="0.5")
    with BudgetMem(tmp_path / "m.db", "a", settings=s) as mem:
        mem.add(EXAMPLE)
        store = mem.store
        before = {c.id: c.text for c in store.chunks("a")}
        archived = store.archived("a")
        assert archived and all(a.chunk.id not in before for a in archived)
        # first-N keeps the oldest chunks
        assert max(before) < min(a.chunk.id for a in archived)
        hits = mem.search("Tomasz bakery", k=50)
        assert {h.chunk.id for h in hits} <= set(before)  # archived chunks are out of the index
        ids, vecs = store.embeddings("a")
        n_restored = store.restore("a", [archived[0].chunk.id])
        assert n_restored == 1
        back = store.chunks("a", [archived[0].chunk.id])[0]
        assert back.text == archived[0].chunk.text and back.dia_ids == archived[0].chunk.dia_ids
        ids2, vecs2 = store.embeddings("a")
        assert archived[0].chunk.id in ids2.tolist()
        hits = mem.search(archived[0].chunk.text, k=1, retriever="dense")  # the index was rebuilt
        assert hits[0].chunk.id == archived[0].chunk.id
        assert store.purge("a") == len(archived) - 1 and store.archived("a") == []


def test_search_counts_access_in_budgeted_namespaces(tmp_path, minilm_settings):
    s = minilm_settings.replace(chunking__max_tokens=32, write__policy="salience", write__budget="0.5")
    with BudgetMem(tmp_path / "m.db", "a", settings=s) as mem:
        mem.add(EXAMPLE)
        hits = mem.search("bakery", k=2)
        counts = {w.id: w.access_count for w in mem.store.write_state("a")}
        assert [counts[h.chunk.id] for h in hits] == [1, 1] and sum(counts.values()) == 2


def test_streaming_sessions_with_threshold_evict_by_priority(tmp_path, minilm_settings):
    s = minilm_settings.replace(write__policy="salience", write__budget="3", write__threshold=0.05)
    with BudgetMem(tmp_path / "m.db", "a", settings=s) as mem:
        texts = ["Priya moved to Lisbon on 3 May 2023 because of her new job.", "ok", "Tomasz named his bakery Rye & Shine.",
                 "lol", "Caroline adopted a cat called Pixel in June 2022.", "Jon opened a dance studio in Chicago."]  # fmt: skip
        for i, t in enumerate(texts):
            mem.add_session([("A", t)], session_id=f"s{i}")
        info = mem.store.require_namespace("a")
        assert info.seen_chunks == 6 and info.n_chunks == 3 and info.n_archived == 3
        kept = {c.text.split(": ", 1)[1].strip() for c in mem.store.chunks("a")}
        assert "ok" not in kept and "lol" not in kept
        reasons = {a.chunk.text.split(": ", 1)[1].strip(): a.reason for a in mem.store.archived("a")}
        assert set(reasons.values()) <= {"rejected", "evicted"} and len(reasons) == 3


def test_version_1_store_upgrades_in_place(tmp_path):
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema_version', '1');
        CREATE TABLE namespaces (name TEXT PRIMARY KEY, encoder TEXT NOT NULL, dim INTEGER NOT NULL,
            chunk_tokens INTEGER NOT NULL, created_at REAL NOT NULL);
        CREATE TABLE sessions (namespace TEXT NOT NULL, key TEXT NOT NULL, source TEXT NOT NULL, history TEXT NOT NULL,
            session_id TEXT NOT NULL, n_chunks INTEGER NOT NULL, added_at REAL NOT NULL, PRIMARY KEY (namespace, key));
        CREATE TABLE chunks (id INTEGER PRIMARY KEY AUTOINCREMENT, namespace TEXT NOT NULL, source TEXT NOT NULL,
            history TEXT NOT NULL, session_id TEXT NOT NULL, session_date TEXT, position INTEGER NOT NULL,
            kind TEXT NOT NULL, text TEXT NOT NULL, n_tokens INTEGER NOT NULL, dia_ids TEXT NOT NULL,
            speakers TEXT NOT NULL, meta TEXT NOT NULL);
        CREATE TABLE embeddings (chunk_id INTEGER PRIMARY KEY, vector BLOB NOT NULL);
        INSERT INTO namespaces VALUES ('old', 'enc', 2, 256, 0);
        INSERT INTO chunks VALUES (1, 'old', 'src', 'h', 's1', NULL, 0, 'chat', 'kept text', 2, '["D1:1"]', '[]', '{}');
        """
    )
    db.execute("INSERT INTO embeddings VALUES (1, ?)", (np.array([0.6, 0.8], dtype="<f4").tobytes(),))
    db.commit()
    db.close()
    with Store(path) as store:
        info = store.require_namespace("old")
        assert (info.n_chunks, info.seen_chunks, info.write_policy, info.n_archived) == (1, 0, None, 0)
        assert store.chunks("old")[0].text == "kept text" and store.write_state("old")[0].access_count == 0
        assert store.archive("old", [1]) == 1 and store.restore("old") == 1
    raw = sqlite3.connect(path)
    assert raw.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "2"
    raw.close()


# ---------------------------------------------------------------------------- learned policy
def _toy_groups(seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    groups = []
    for _ in range(3):
        x = rng.random((80, len(FEATURES))).astype(np.float32)
        y = ((x[:, 0] + 0.5 * x[:, 2] - 0.3 * x[:, 5]) > 0.8).astype(np.float32)  # a known direction
        groups.append((x, y))
    return groups


def test_learned_policy_learns_and_round_trips(tmp_path):
    groups = _toy_groups()
    model = train_writer(groups, WriterTrainSettings(epochs=200), dataset="toy")
    test_x, test_y = _toy_groups(seed=1)[0]
    assert ranking_auc(model.score(test_x), test_y) > 0.9
    assert model.weights[0] > 0 and model.weights[5] < 0  # the signs of the true direction
    path = save_writer(model, tmp_path / "w.pt")
    back = load_writer(path)
    assert np.allclose(back.score(test_x), model.score(test_x)) and back.meta["dataset"] == "toy"
    (tmp_path / "bad.pt").write_bytes(b"not a model")
    with pytest.raises(InputError, match="not a budgetmem write-policy model"):
        load_writer(tmp_path / "bad.pt")
    with pytest.raises(InputError, match="not found"):
        load_writer(tmp_path / "missing.pt")
    with pytest.raises(InputError, match="both"):
        train_writer([(test_x, np.zeros(len(test_x)))])


def test_ranking_auc_by_hand():
    # pairs (pos, neg): (0.9 > 0.1), (0.9 > 0.5), (0.5 = 0.5 -> half), (0.5 > 0.1) -> 3.5 / 4
    assert ranking_auc(np.array([0.9, 0.5, 0.5, 0.1]), np.array([1, 1, 0, 0])) == pytest.approx(0.875)


def test_random_policy_is_seeded_and_learned_needs_a_model(tmp_path, minilm):
    with Store(tmp_path / "m.db") as store:
        _ingest(store, "r1", minilm, WriteSettings(policy="random", budget="0.5", seed=3))
        _ingest(store, "r2", minilm, WriteSettings(policy="random", budget="0.5", seed=3))
        _ingest(store, "r3", minilm, WriteSettings(policy="random", budget="0.5", seed=4))
        texts = {ns: sorted(c.text for c in store.chunks(ns)) for ns in ("r1", "r2", "r3")}
        assert texts["r1"] == texts["r2"] and texts["r1"] != texts["r3"]
    with pytest.raises(InputError, match="not found"):
        with Store(tmp_path / "m.db") as store:
            _ingest(store, "l", minilm, WriteSettings(policy="learned", budget="0.5", model=tmp_path / "none.pt"))


# ---------------------------------------------------------------------------- CLI
def test_cli_ingest_stats_gc_restore(tmp_path, capsys):
    db = str(tmp_path / "m.db")
    base = ["--store", db, "--namespace", "n"]
    assert main(["ingest", str(EXAMPLE), *base, "--encoder", "all-minilm-l6-v2", "--chunk-tokens", "32",
                 "--write-policy", "salience", "--write-budget", "30%"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "salience" in out
    assert main(["stats", "--store", db, "--namespace", "n", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["stored_chunks"] == round(0.3 * stats["seen_chunks"] + 1e-9)
    assert stats["archived_chunks"] == stats["seen_chunks"] - stats["stored_chunks"]
    assert stats["saved_chunks_pct"] == round(100 * stats["archived_chunks"] / stats["seen_chunks"], 1)
    assert stats["write_policy"]["policy"] == "salience" and stats["write_budget"] == "0.3"
    assert main(["gc", "--store", db, "--dry-run"]) == 0
    assert f"would delete {stats['archived_chunks']}" in capsys.readouterr().out
    assert main(["restore", "--store", db, "--namespace", "n"]) == 0
    assert f"restored {stats['archived_chunks']}" in capsys.readouterr().out
    assert main(["ingest", str(EXAMPLE), *base, "--write-budget", "0.3"]) == 2  # a budget needs a policy
    assert "--write-policy" in capsys.readouterr().err
    with Store(db) as store:
        store.archive("n", [c.id for c in store.chunks("n")][:2], "evicted")
    assert main(["gc", "--store", db, "--vacuum"]) == 0
    assert "deleted 2 archived chunks" in capsys.readouterr().out
    assert main(["stats", "--store", str(tmp_path / "missing.db")]) == 2


def test_train_writer_cli_on_a_trimmed_locomo(tmp_path, capsys, locomo_dev):
    """Evidence labels from LoCoMo, a model file that the learned policy then loads."""
    samples = json.loads(locomo_dev.read_text(encoding="utf-8"))
    trimmed = []
    for s in samples:
        conv = {k: v for k, v in s["conversation"].items() if not k.startswith("session_") or
                k.split("_")[1] in ("1", "2") }  # fmt: skip
        keep = {t["dia_id"] for k, v in conv.items() if isinstance(v, list) for t in v}
        qa = [q for q in s["qa"] if q.get("evidence") and set(q["evidence"]) <= keep and q.get("category") in (1, 2, 3, 4)]
        trimmed.append({**s, "conversation": conv, "qa": qa})
    data = tmp_path / "locomo_small.json"
    data.write_text(json.dumps(trimmed), encoding="utf-8")
    out = tmp_path / "writer.pt"
    assert main(["train-writer", "--dataset", "locomo", "--data", str(data), "--out", str(out),
                 "--encoder", "all-minilm-l6-v2", "--chunk-tokens", "64", "--epochs", "50", "--json"]) == 0  # fmt: skip
    info = json.loads(capsys.readouterr().out)
    assert set(info["auc"]) == {"train", "val"} and 0.0 <= info["auc"]["train"]["learned"] <= 1.0
    assert info["auc"]["train"]["evidence"] > 0 and len(info["weights"]) == len(FEATURES)
    model = load_writer(out)
    assert model.meta["auc"]["train"]["chunks"] == info["auc"]["train"]["chunks"]
    db = str(tmp_path / "m.db")
    assert main(["ingest", str(EXAMPLE), "--store", db, "--namespace", "n", "--encoder", "all-minilm-l6-v2",
                 "--chunk-tokens", "32", "--write-policy", "learned", "--write-model", str(out),
                 "--write-budget", "0.5"]) == 0  # fmt: skip
    with Store(db) as store:
        info_ns = store.require_namespace("n")
        assert info_ns.n_chunks == round(0.5 * info_ns.seen_chunks + 1e-9)
        assert json.loads(info_ns.write_policy)["model"] == str(out)
