"""kill -9 of the CLI's writers: ``ingest`` and ``compress`` here, ``eval`` and ``train`` in
:mod:`campaigns.kill_runs`; the service is :mod:`campaigns.serve_kill`.

Every trial starts from a copy of a template made once in ``setup``, kills the command at a
random point, checks what the kill left, runs the same command again to completion, and
compares the result with an uninterrupted reference run made once in ``setup`` from the same
template. The encoder is the embedded all-MiniLM-L6-v2 and the inputs are LoCoMo dev
conversations and ``examples/conversation.json``.

The promises checked:

- ingest: the store file is sound; a kill leaves each namespace exactly as it was before the
  command or exactly as the reference left it (one transaction: a session is wholly present
  or absent, the archive and the live chunks add up to what was seen); the re-run stores
  what the reference stored, each chunk once.
- compress: each compressed version is committed whole as it is made; the re-run makes
  exactly the calls still owed (none repeated, none skipped) and ends where the reference did.
"""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from campaigns import killing
from campaigns.common import Campaign, Trial
from campaigns.kill_runs import EVAL, TRAIN

ROOT = killing.ROOT
LOCOMO = Path("/work/shared/data/locomo/locomo_dev.json")
EXAMPLE = ROOT / "examples" / "conversation.json"
ENCODER = "all-minilm-l6-v2"


def locomo_file() -> Path:
    """The LoCoMo dev file: the shared copy, or $BUDGETMEM_LOCOMO_DEV."""
    import os

    return Path(os.environ.get("BUDGETMEM_LOCOMO_DEV", LOCOMO))


def conversation(sample_id: str, sessions: int) -> dict[str, Any]:
    """A LoCoMo sample cut to its first ``sessions`` sessions, without questions or summaries."""
    source = EXAMPLE if sample_id == "priya-tomasz" else locomo_file()
    sample = next(s for s in json.loads(source.read_text(encoding="utf-8")) if s["sample_id"] == sample_id)
    conv = {}
    for key, value in sample["conversation"].items():
        if key.startswith("session_"):
            n = int(key.split("_")[1])
            if n > sessions:
                continue
        conv[key] = value
    return {"sample_id": sample_id, "conversation": conv, "qa": []}


def write_conversations(path: Path, cuts: dict[str, int]) -> Path:
    path.write_text(json.dumps([conversation(name, n) for name, n in cuts.items()]), encoding="utf-8")
    return path


# ============================================================================ ingest


@dataclass(frozen=True)
class IngestPlan:
    trials: int = 100
    before: dict[str, int] = field(default_factory=lambda: {"conv-26": 2, "priya-tomasz": 1})
    """Sessions per conversation in the template store."""
    after: dict[str, int] = field(default_factory=lambda: {"conv-26": 3, "priya-tomasz": 2, "conv-30": 1})
    """Sessions per conversation the killed ingest offers: the template's again (skipped as
    stored), later ones (scored against the stored chunks, evicting some), and a new
    conversation (a namespace created inside the transaction)."""
    budget: str = "20"
    """Live chunks per namespace: small enough that the later sessions evict earlier chunks.
    The sessions are few on purpose: a trial is two processes that each load the encoder, and
    100 trials must fit in well under an hour on two cores."""
    chunk_tokens: int = 64
    modes: tuple[tuple[str, float], ...] = (("timer", 0.55), ("store.batch", 0.15), ("store.evict", 0.2), ("store.committed", 0.1))
    """How a trial picks its kill: a timer over the whole run, or a point inside the store
    transaction (after a session's rows, part-way through the evictions, after the commit)."""


@dataclass
class IngestContext:
    plan: IngestPlan
    data: Path
    template: Path
    seconds: float
    """How long the uninterrupted reference ingest took (the timer's range)."""
    sessions: int
    """Sessions the reference added (the transaction's batches)."""
    evicted: int
    before: dict[str, Any]
    after: dict[str, Any]

    def argv(self, store: Path) -> list[str]:
        p = self.plan
        return ["ingest", str(self.data), "--store", str(store), "--namespace", "mem", "--encoder", ENCODER,
                "--chunk-tokens", str(p.chunk_tokens), "--write-policy", "salience", "--write-budget", p.budget, "--json"]  # fmt: skip


def _vector(blob: bytes | None) -> str | None:
    """A digest of an embedding, rounded so that float noise between two runs does not count."""
    if blob is None:
        return None
    v = np.round(np.frombuffer(blob, dtype="<f4"), 4) + 0.0  # + 0.0: -0.0 and 0.0 hash alike
    return hashlib.sha1(v.tobytes()).hexdigest()[:12]


def snapshot(db: Path) -> dict[str, Any]:
    """What a reader of the file sees, per namespace: its settings and counters, its sessions,
    and its chunks, live and archived, by (history, session, position) with text and vector."""
    con = sqlite3.connect(db)
    try:
        out: dict[str, Any] = {}
        for name, *meta in con.execute("SELECT name, encoder, dim, chunk_tokens, write_policy, write_budget, seen_chunks, "
                                       "seen_tokens FROM namespaces"):  # fmt: skip
            out[name] = {"meta": meta, "sessions": [], "live": [], "archived": []}
        for ns, key, history, sid, n in con.execute("SELECT namespace, key, history, session_id, n_chunks FROM sessions"):
            out[ns]["sessions"].append((history, sid, n, key))
        for ns, history, sid, pos, text, vec in con.execute(
            "SELECT c.namespace, c.history, c.session_id, c.position, c.text, e.vector FROM chunks c "
            "LEFT JOIN embeddings e ON e.chunk_id = c.id"
        ):
            out[ns]["live"].append((history, sid, pos, text, _vector(vec)))
        for ns, row, vec, reason in con.execute("SELECT namespace, row, vector, reason FROM archive"):
            r = json.loads(row)
            out[ns]["archived"].append((r["history"], r["session_id"], r["position"], r["text"], _vector(vec), reason))
    finally:
        con.close()
    for ns in out.values():
        for k in ("sessions", "live", "archived"):
            ns[k].sort(key=repr)
    return out


def broken_sessions(snap: dict[str, Any]) -> list[str]:
    """Partial state, read from the file alone: a session whose chunks (live plus archived) do
    not number what its row says, chunks of no stored session, a live chunk without its
    vector, counters that disagree with the chunks."""
    found = []
    for ns, s in snap.items():
        have = Counter((h, sid) for h, sid, *_ in s["live"] + s["archived"])
        rows = {(h, sid): n for h, sid, n, _ in s["sessions"]}
        for (h, sid), n in rows.items():
            if have[(h, sid)] != n:
                found.append(f"{ns}: session {sid} has {have[(h, sid)]} of its {n} chunks")
        for h, sid in set(have) - set(rows):
            found.append(f"{ns}: {have[(h, sid)]} chunks of session {sid}, which is not stored")
        if any(v is None for *_, v in s["live"]):
            found.append(f"{ns}: live chunks without a vector")
        seen = s["meta"][5]
        if seen != len(s["live"]) + len(s["archived"]):
            found.append(f"{ns}: seen_chunks {seen} but {len(s['live'])} live + {len(s['archived'])} archived")
    return found


def _items(snap: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Every chunk and session row by its identity, for counting losses and duplicates."""
    out: list[tuple[Any, ...]] = []
    for ns, s in snap.items():
        out += [(ns, "chunk", h, sid, pos) for h, sid, pos, *_ in s["live"] + s["archived"]]
        out += [(ns, "session", h, sid) for h, sid, *_ in s["sessions"]]
    return out


def _differs(snap: dict[str, Any], want: dict[str, Any]) -> str:
    parts = []
    for ns in sorted(set(snap) | set(want)):
        a, b = snap.get(ns), want.get(ns)
        if a is None or b is None:
            parts.append(f"{ns} {'missing' if a is None else 'unexpected'}")
            continue
        for k in ("meta", "sessions", "live", "archived"):
            if a[k] != b[k]:
                n = len(a[k]) if k != "meta" else a[k]
                m = len(b[k]) if k != "meta" else b[k]
                parts.append(f"{ns} {k} {n} vs {m}")
    return "; ".join(parts) or "equal"


def ingest_setup(root: Path, plan: IngestPlan | None = None) -> IngestContext:
    plan = plan or IngestPlan()
    root.mkdir(parents=True, exist_ok=True)
    first = write_conversations(root / "before.json", plan.before)
    data = write_conversations(root / "after.json", plan.after)
    template, reference = root / "template.db", root / "reference.db"
    ctx = IngestContext(plan, data, template, 0.0, 0, 0, {}, {})
    made = killing.run(ctx.argv(template)[:1] + [str(first)] + ctx.argv(template)[2:], root, "template")
    if made.failure():
        raise RuntimeError(f"template ingest: {made.failure()}")
    killing.copy_db(template, reference)
    ref = killing.run(ctx.argv(reference), root, "reference")
    if ref.failure():
        raise RuntimeError(f"reference ingest: {ref.failure()}")
    report = json.loads(ref.stdout)
    ctx.seconds = ref.seconds
    ctx.sessions = sum(n["sessions_added"] for n in report["namespaces"])
    ctx.evicted = sum(n["chunks_evicted"] for n in report["namespaces"])
    if not ctx.sessions or not ctx.evicted:
        raise RuntimeError(f"the reference ingest added {ctx.sessions} sessions and evicted {ctx.evicted} chunks; "
                           "the plan must do both for the kill points to exist")  # fmt: skip
    ctx.before, ctx.after = snapshot(template), snapshot(reference)
    return ctx


def _pick(modes: tuple[tuple[str, float], ...], rng: random.Random) -> str:
    return rng.choices([m for m, _ in modes], weights=[w for _, w in modes])[0]


def ingest_trial(index: int, work: Path, rng: random.Random, ctx: IngestContext) -> Trial:
    t = Trial(index)
    store = work / "memory.db"
    killing.copy_db(ctx.template, store)
    mode = _pick(ctx.plan.modes, rng)
    if mode == "timer":
        r = killing.run(ctx.argv(store), work, "killed", kill_after=rng.uniform(0.0, ctx.seconds))
    else:
        n = {"store.batch": rng.randint(1, ctx.sessions), "store.evict": rng.randint(0, ctx.evicted)}.get(mode)
        r = killing.run(ctx.argv(store), work, "killed", point=mode if n is None else f"{mode}:{n}")
    t.detail = {"mode": mode, "phase": r.phase if r.killed else "finished first", "at_s": round(r.seconds, 2), "rc": r.rc}
    if not r.killed:
        if mode != "timer":
            t.failures.append(f"the kill point {mode} was never reached (exit {r.rc})")
        elif r.failure():
            t.failures.append(r.failure() or "")
    if r.orphans:
        t.failures.append(f"{r.orphans} process(es) of the killed ingest were still running")

    ok = killing.integrity(store)
    if ok != "ok":
        t.failures.append(f"integrity_check after the kill: {ok}")
    snap = snapshot(store)
    state = "before" if snap == ctx.before else "after" if snap == ctx.after else "partial"
    t.detail["state"] = state
    if state == "partial":
        t.failures.append(f"the kill left neither the old nor the new store: {_differs(snap, ctx.after)}")
    t.failures += [f"after the kill: {b}" for b in broken_sessions(snap)]
    inside = mode in ("store.batch", "store.evict")
    if (inside and state == "after") or (mode == "store.committed" and state == "before"):
        t.failures.append(f"a kill at {mode} left the store {state} the transaction")

    again = killing.run(ctx.argv(store), work, "again")
    if again.failure():
        t.failures.append(f"re-run: {again.failure()}")
    else:
        added = sum(n["sessions_added"] for n in json.loads(again.stdout)["namespaces"])
        want = {"before": ctx.sessions, "after": 0}.get(state)
        t.detail["rerun_added"] = added
        if want is not None and added != want:
            t.failures.append(f"the re-run added {added} sessions, expected {want}")
    ok = killing.integrity(store)
    if ok != "ok":
        t.failures.append(f"integrity_check after the re-run: {ok}")
    final = snapshot(store)
    t.failures += [f"after the re-run: {b}" for b in broken_sessions(final)]
    if final != ctx.after:
        t.failures.append(f"the re-run's store differs from the reference: {_differs(final, ctx.after)}")
    items, want_items = Counter(_items(final)), Counter(_items(ctx.after))
    t.lost = sum((want_items - items).values())
    t.duplicates = killing.duplicates(_items(final))
    return t


def make_ingest(plan: IngestPlan | None = None) -> Campaign:
    plan = plan or IngestPlan()
    return Campaign(
        name="kill_ingest", title="kill -9 of ingest (budgeted writes)", trials=plan.trials,
        setup=lambda root: ingest_setup(root, plan), run=ingest_trial,
        what="kill -9 of `budgetmem ingest --write-policy salience --write-budget 20` (MiniLM, LoCoMo dev and the "
        "example conversation) at a random time or at a point inside its one transaction (after a session's rows, "
        "mid-eviction, just after the commit); the file must pass integrity_check, hold the old or the new state "
        "and nothing between, and a re-run must store exactly what an uninterrupted run did, each chunk once.",
    )  # fmt: skip


# ============================================================================ compress


@dataclass(frozen=True)
class CompressPlan:
    trials: int = 20
    sessions: int = 3
    """Sessions of LoCoMo conv-30 in the namespace (each chunk outside the episodic window is a call)."""
    chunk_tokens: int = 128
    target_tokens: int = 48
    delay_s: float = 0.2
    """Latency of each LLM call. The LLM is the deterministic OpenAI-compatible server of the
    tests on loopback (a prefix of the excerpt as the note; an empty reply, so a rejection,
    for every fourth excerpt): the same prompt gives the same note in every process, and a
    run is a few seconds of calls rather than minutes of a local model."""


@dataclass
class CompressContext:
    plan: CompressPlan
    template: Path
    server: Any
    seconds: float = 0.0
    calls: int = 0
    """LLM calls the uninterrupted run made: one per chunk that needed a note."""
    notes: dict[tuple[str, int], str] = field(default_factory=dict)
    """The reference's notes by (session, position)."""
    rejected: int = 0
    live: list[tuple[str, int, str]] = field(default_factory=list)

    def argv(self, store: Path) -> list[str]:
        p = self.plan
        return ["compress", "--store", str(store), "--namespace", "notes", "--llm", self.server.provider,
                "--target-tokens", str(p.target_tokens), "--no-progress", "--json"]  # fmt: skip


def _notes(db: Path) -> tuple[dict[tuple[str, int], str], list[tuple[str, int, str]]]:
    con = sqlite3.connect(db)
    try:
        rows = con.execute("SELECT session_id, position, text, compressed FROM chunks WHERE namespace='notes'").fetchall()
    finally:
        con.close()
    return {(s, p): c for s, p, _, c in rows if c is not None}, sorted((s, p, t) for s, p, t, _ in rows)


def compress_setup(root: Path, plan: CompressPlan | None = None) -> CompressContext:
    plan = plan or CompressPlan()
    root.mkdir(parents=True, exist_ok=True)
    data = write_conversations(root / "conv.json", {"conv-30": plan.sessions})
    template, reference = root / "template.db", root / "reference.db"
    made = killing.run(["ingest", str(data), "--store", str(template), "--namespace", "notes", "--encoder", ENCODER,
                        "--chunk-tokens", str(plan.chunk_tokens)], root, "template")  # fmt: skip
    if made.failure():
        raise RuntimeError(f"template ingest: {made.failure()}")
    killing.copy_db(template, reference)
    from fake_openai import FakeOpenAIServer

    ctx = CompressContext(plan, template, FakeOpenAIServer(delay_s=plan.delay_s).__enter__())
    ref = killing.run(ctx.argv(reference), root, "reference")
    if ref.failure():
        compress_teardown(ctx)
        raise RuntimeError(f"reference compress: {ref.failure()}")
    report = json.loads(ref.stdout)
    ctx.seconds, ctx.calls, ctx.rejected = ref.seconds, report["calls"], len(report["rejected"])
    ctx.notes, ctx.live = _notes(reference)
    if ctx.calls < 2 or not ctx.notes or not ctx.rejected:
        compress_teardown(ctx)
        raise RuntimeError(f"the reference compress made {ctx.calls} calls, {len(ctx.notes)} notes and {ctx.rejected} "
                           "rejections; the plan needs all three")  # fmt: skip
    return ctx


def compress_teardown(ctx: CompressContext) -> None:
    ctx.server.__exit__(None, None, None)


def compress_trial(index: int, work: Path, rng: random.Random, ctx: CompressContext) -> Trial:
    t = Trial(index)
    store = work / "memory.db"
    killing.copy_db(ctx.template, store)
    r = killing.run(ctx.argv(store), work, "killed", kill_after=rng.uniform(0.0, ctx.seconds))
    t.detail = {"phase": r.phase if r.killed else "finished first", "at_s": round(r.seconds, 2), "rc": r.rc,
                "calls_before_kill": r.count("llm<")}  # fmt: skip
    if not r.killed and r.failure():
        t.failures.append(r.failure() or "")
    if r.orphans:
        t.failures.append(f"{r.orphans} process(es) of the killed compress were still running")
    ok = killing.integrity(store)
    if ok != "ok":
        t.failures.append(f"integrity_check after the kill: {ok}")
    notes, live = _notes(store)
    if live != ctx.live:
        t.failures.append(f"the kill changed the chunks themselves ({len(live)} rows, expected {len(ctx.live)})")
    wrong = [k for k, v in notes.items() if ctx.notes.get(k) != v]
    if wrong:
        t.failures.append(f"{len(wrong)} note(s) after the kill differ from the reference's")
    # Each note commits on its own: what the kill left is every note stored before it, plus
    # at most the one whose commit finished before its return was logged.
    committed = r.count("set_compressed<")
    if not committed <= len(notes) <= committed + 1:
        t.failures.append(f"{len(notes)} notes stored, but the killed run had committed {committed}")
    t.detail["notes_before_rerun"] = len(notes)

    again = killing.run(ctx.argv(store), work, "again")
    if again.failure():
        t.failures.append(f"re-run: {again.failure()}")
    else:
        report = json.loads(again.stdout)
        # The calls still owed: every chunk without a note, rejected ones included (a
        # rejected reply is tried again on the next run, by design).
        owed = ctx.calls - len(notes)
        t.detail["rerun_calls"] = report["calls"]
        if report["already"] != len(notes) or report["calls"] != owed:
            t.failures.append(f"the re-run found {report['already']} notes and made {report['calls']} calls; "
                              f"expected {len(notes)} and {owed} (nothing repeated, nothing skipped)")  # fmt: skip
        if len(report["rejected"]) != ctx.rejected:
            t.failures.append(f"the re-run rejected {len(report['rejected'])} replies, the reference {ctx.rejected}")
    final, live = _notes(store)
    if live != ctx.live:
        t.failures.append("the re-run changed the chunks themselves")
    if final != ctx.notes:
        t.failures.append(f"after the re-run {len(final)} notes, {sum(final.get(k) != v for k, v in ctx.notes.items())} "
                          f"differing from the reference's {len(ctx.notes)}")  # fmt: skip
    t.lost = len(set(ctx.notes) - set(final))
    t.duplicates = max(0, len(live) - len(ctx.live))
    return t


def make_compress(plan: CompressPlan | None = None) -> Campaign:
    plan = plan or CompressPlan()
    return Campaign(
        name="kill_compress", title="kill -9 of compress", trials=plan.trials,
        setup=lambda root: compress_setup(root, plan), teardown=compress_teardown, run=compress_trial,
        what="kill -9 of `budgetmem compress` (LoCoMo dev, MiniLM token counts, a deterministic OpenAI-compatible server "
        "on loopback that rejects every fourth note) at a random time over its run; every note stored is whole and "
        "the reference's, and the re-run makes exactly the calls still owed and ends with the uninterrupted run's notes.",
    )  # fmt: skip


CAMPAIGNS: list[Campaign] = [make_ingest(), EVAL, TRAIN, make_compress()]
