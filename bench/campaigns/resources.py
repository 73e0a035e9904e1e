"""Exhausted resources: the ``budgetmem`` commands, in child processes, against a store on a
full disk, a read-only store, a store another process holds locked, and a store a newer
budgetmem wrote. How each condition is made is tests/exhaust.py's (shared with the fast
regression tests in tests/test_store_resources.py).

Every trial starts from a copy of one template store (the example conversation plus a
generated document, embedded with all-MiniLM-L6-v2) and attacks it once, at a random size
or moment:

- ``disk_full``: ``budgetmem ingest`` of 1-3 generated documents of random length (a third of
  the trials under a write budget, so the ingest also evicts) with a random room left: a
  file size limit of 4-96 KiB, or a tmpfs a few pages larger than the store where the
  machine lets us mount one. It must either succeed (everything stored once) or fail with one
  line, and then the store must pass ``integrity_check`` with exactly its previous rows.
  The same ingest is then repeated with room: it must store the rest, nothing twice.
- ``store_readonly``: a ``chmod 444`` store (sometimes its folder too): writes (ingest,
  forget) fail with one line, reads work or fail with one line, and no byte changes.
- ``store_locked``: another process holds ``BEGIN IMMEDIATE`` and lets go at a random
  moment, or never: a write either waits and succeeds (its rows there once) or gives up
  after the busy timeout with one line and no change; reads go on meanwhile.
- ``store_future``: the schema version raised to a random newer one (a table this version
  does not know, another journal mode): every command fails with one line naming the
  versions, and no byte changes.

A trial's ``lost`` counts chunks that were stored before and are missing after;
``duplicates`` counts chunks stored more than once.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import stat
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from campaigns.common import Campaign, Trial
from exhaust import (
    Locker, can_write, chunk_keys, cli, content, file_digest, file_size_limit, integrity, make_future, one_line_error,
    small_filesystem, without_root_override,
)  # fmt: skip

from budgetmem.encoder import Encoder
from budgetmem.memory import BudgetMem
from budgetmem.settings import EncoderSettings, Settings
from budgetmem.store.sqlite_store import BUSY_TIMEOUT_S, SCHEMA_VERSION

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "conversation.json"
ENCODER = "all-minilm-l6-v2"
NAMESPACE = "demo"
WORDS = (
    "river mountain coffee paris london train music book garden letter winter market doctor bakery sister "
    "concert museum bicycle harbour island recipe lantern orchard violin meadow cousin festival engine"
).split()  # fmt: skip


@dataclass(frozen=True)
class Shared:
    template: Path
    sessions: tuple[str, ...]
    """Session ids stored in the template (what a forget may name)."""
    can_mount: bool
    """Whether a tmpfs can be mounted here (root in a permissive container): a real ENOSPC."""


def setup(work: Path) -> Shared:
    work.mkdir(parents=True, exist_ok=True)
    settings = Settings(encoder=EncoderSettings(name=ENCODER))
    template = work / "template.db"
    doc = _document(random.Random(0), work / "seed-notes.txt")
    with BudgetMem(template, NAMESPACE, settings=settings, encoder=Encoder(settings.encoder, settings.models_dir)) as mem:
        mem.add(EXAMPLE)
        mem.add(doc)
        sessions = tuple(sorted({c.session_id for c in mem.store.chunks(NAMESPACE)}))
    try:
        with small_filesystem(work / "probe", 1 << 20):
            pass
        can_mount = True
    except OSError:
        can_mount = False
    return Shared(template, sessions, can_mount)


def _document(rng: random.Random, path: Path) -> Path:
    paragraphs = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 200))) + "." for _ in range(rng.randint(2, 30))]
    path.write_text("\n\n".join(paragraphs) + "\n", encoding="utf-8")
    return path


def _documents(rng: random.Random, folder: Path, tag: str) -> Path:
    """1-3 generated documents: one file, or a folder of them."""
    n = rng.randint(1, 3)
    if n == 1:
        return _document(rng, folder / f"{tag}.txt")
    sub = folder / tag
    sub.mkdir(parents=True)
    for k in range(n):
        _document(rng, sub / f"{tag}-{k}.txt")
    return sub


def _copy_store(shared: Shared, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "memory.db"
    shutil.copy(shared.template, path)
    return path


def _compare(before: Counter[Any], after: Counter[Any], trial: Trial) -> None:
    """Count what the store lost and holds twice."""
    lost = sum((before - after).values())
    dups = sum(n - 1 for n in after.values() if n > 1)
    trial.lost += lost
    trial.duplicates += dups
    if lost:
        trial.failures.append(f"{lost} chunks stored before are gone")
    if dups:
        trial.failures.append(f"{dups} chunks stored twice")


def _ingest_args(source: Path, store: Path, budget: str | None) -> list[str]:
    """Into the template's namespace, or under a write budget into a new one (a budget is
    set when a namespace begins)."""
    namespace = f"{NAMESPACE}-budgeted" if budget else NAMESPACE
    args = ["ingest", str(source), "--store", str(store), "--namespace", namespace, "--encoder", ENCODER, "--json"]
    return args + (["--write-policy", "salience", "--write-budget", budget] if budget else [])


def _check_ingest(done: Any, before_keys: Counter[Any], before: str, store: Path, trial: Trial, what: str) -> int | None:
    """An ingest that ran into trouble: success with every chunk stored once, or one line and
    the store exactly as before. Returns the chunks it says it added (None: it failed)."""
    if "Traceback" in done.stderr or done.returncode not in (0, 2):
        trial.failures.append(f"{what}: exit {done.returncode}: {done.stderr.strip()[-240:]}")
        return None
    check = integrity(store)
    if check != "ok":
        trial.failures.append(f"{what}: integrity_check says {check[:200]}")
    after = chunk_keys(store)
    _compare(before_keys, after, trial)
    if done.returncode == 0:
        added = int(json.loads(done.stdout)["chunks_added"])
        grown = sum(after.values()) - sum(before_keys.values())
        if grown != added:
            trial.failures.append(f"{what}: it reported {added} chunks added, the store has {grown} more")
        return added
    problem = one_line_error(done)
    if problem:
        trial.failures.append(f"{what}: {problem}")
    if content(store) != before:
        trial.failures.append(f"{what}: failed, but the store's rows changed")
    return None


# --------------------------------------------------------------------------- full disk
def run_disk_full(index: int, work: Path, rng: random.Random, shared: Shared) -> Trial:
    source = _documents(rng, work, f"t{index}")
    budget = rng.choice([None, None, "0.5", "0.7"])
    tmpfs = shared.can_mount and rng.random() < 0.5
    room = rng.randint(1, 24) * 4096 + (0 if tmpfs else rng.randint(0, 4095))
    trial = Trial(index=index, detail={"how": "tmpfs" if tmpfs else "ulimit -f", "room_bytes": room, "budget": budget,
                                       "input_bytes": sum(p.stat().st_size for p in ([source] if source.is_file() else source.iterdir()))})  # fmt: skip
    if tmpfs:
        # Read before and after off the small disk: a checking connection needs room of its own (the -shm).
        before, keys = content(shared.template), chunk_keys(shared.template)
        size = shared.template.stat().st_size + room
        with small_filesystem(work / "disk", size) as disk:
            on_disk = _copy_store(shared, disk)
            done = cli(_ingest_args(source, on_disk, budget))
            # Carried off the small disk with whatever WAL the child left behind.
            spare = work / "spare"
            spare.mkdir()
            for p in disk.iterdir():
                shutil.copy(p, spare / p.name)
        store = spare / "memory.db"
        added = _check_ingest(done, keys, before, store, trial, "ingest on a full tmpfs")
    else:
        store = _copy_store(shared, work / "store")
        before, keys = content(store), chunk_keys(store)
        done = cli(_ingest_args(source, store, budget), preexec=file_size_limit(room))
        added = _check_ingest(done, keys, before, store, trial, f"ingest under ulimit -f {room} B")
    trial.detail.update(exit=done.returncode, error=done.stderr.strip()[-200:] if done.returncode else None, added=added)
    # With room: the rest of the input goes in, nothing twice.
    before, keys = content(store), chunk_keys(store)
    again = cli(_ingest_args(source, store, budget))
    more = _check_ingest(again, keys, before, store, trial, "the same ingest with room")
    if again.returncode != 0:
        trial.failures.append(f"the ingest with room failed: {again.stderr.strip()[-200:]}")
    elif added is not None and more:
        trial.failures.append(f"the ingest with room stored {more} chunks the first one had already stored")
    elif added is None and not more:
        trial.failures.append("the ingest with room stored nothing after the first one failed")
    trial.detail["added_with_room"] = more
    return trial


# --------------------------------------------------------------------------- read-only
def run_readonly(index: int, work: Path, rng: random.Random, shared: Shared) -> Trial:
    store = _copy_store(shared, work / "store")
    folder_too = rng.random() < 0.3
    os.chmod(store, 0o444)
    if folder_too:
        os.chmod(store.parent, 0o555)
    trial = Trial(index=index, detail={"folder_read_only": folder_too, "commands": []})
    try:
        if can_write(store):
            trial.failures.append("could not make the store read-only for the child (it can still write it)")
            return trial
        before = file_digest(store)
        writes = [
            _ingest_args(_documents(rng, work, f"t{index}"), store, rng.choice([None, "0.5"])),
            ["forget", "--session", rng.choice(shared.sessions), "--store", str(store), "--namespace", NAMESPACE],
            ["forget", "--yes", "--store", str(store), "--namespace", NAMESPACE],
        ]
        reads = [["stats", "--store", str(store), "--namespace", NAMESPACE], ["namespaces", "--store", str(store)]]
        for args in rng.sample(writes, 2) + [rng.choice(reads)]:
            done = cli(args, preexec=without_root_override)
            trial.detail["commands"].append({"command": args[0], "exit": done.returncode, "error": done.stderr.strip()[-160:] or None})
            is_write = args[0] in ("ingest", "forget")
            if is_write or done.returncode != 0:
                problem = one_line_error(done)
                if problem:
                    trial.failures.append(f"{args[0]} on a read-only store: {problem}")
                elif is_write and not any(w in done.stderr for w in ("read-only", "cannot open")):
                    trial.failures.append(f"{args[0]} on a read-only store: the error does not say so: {done.stderr.strip()[:200]}")
            if file_digest(store) != before:
                trial.failures.append(f"{args[0]} changed the bytes of a read-only store")
                before = file_digest(store)
        trial.cases = 3
    finally:
        os.chmod(store.parent, stat.S_IRWXU)
        os.chmod(store, 0o644)
    check = integrity(store)
    if check != "ok":
        trial.failures.append(f"integrity_check says {check[:200]}")
    return trial


# --------------------------------------------------------------------------- locked
def run_locked(index: int, work: Path, rng: random.Random, shared: Shared) -> Trial:
    store = _copy_store(shared, work / "store")
    # Let go at a random moment from "at once" to "well after the writer gives up", or never.
    hold = rng.choice([-1.0, rng.uniform(0.2, BUSY_TIMEOUT_S * 1.4)])
    command = rng.choice(["ingest", "forget", "forget"])
    trial = Trial(index=index, cases=2, detail={"hold_s": round(hold, 2), "command": command})
    before, keys = content(store), chunk_keys(store)
    session = rng.choice(shared.sessions)
    if command == "ingest":
        args = _ingest_args(_documents(rng, work, f"t{index}"), store, rng.choice([None, "0.5"]))
    else:
        args = ["forget", "--session", session, "--store", str(store), "--namespace", NAMESPACE, "--json"]
    with Locker(store, hold_s=hold):
        t0 = time.monotonic()
        read = cli(["stats", "--store", str(store), "--namespace", NAMESPACE, "--json"])
        if read.returncode != 0:
            trial.failures.append(f"stats while another process writes: exit {read.returncode}: {read.stderr.strip()[-200:]}")
        done = cli(args)
        trial.detail.update(exit=done.returncode, seconds=round(time.monotonic() - t0, 1), error=done.stderr.strip()[-160:] or None)
    if command == "ingest":
        _check_ingest(done, keys, before, store, trial, "ingest on a locked store")
    elif done.returncode == 0:
        after = chunk_keys(store)
        gone = {k for k in keys if k[2] == session}
        if not gone or set(keys - after) != gone or any(k[2] == session for k in after):
            trial.failures.append(f"forget of {session} took {sum((keys - after).values())} chunks, expected {len(gone)}")
        _compare(Counter({k: n for k, n in keys.items() if k not in gone}), after, trial)
    else:
        problem = one_line_error(done)
        if problem:
            trial.failures.append(f"forget on a locked store: {problem}")
        if content(store) != before:
            trial.failures.append("forget failed, but the store's rows changed")
        _compare(keys, chunk_keys(store), trial)
    if done.returncode == 2 and "locked by another writer" not in done.stderr:
        trial.failures.append(f"the error does not say the store is locked: {done.stderr.strip()[:200]}")
    if hold < 0 and done.returncode != 2:
        trial.failures.append("the lock was never released, yet the write reported success")
    check = integrity(store)
    if check != "ok":
        trial.failures.append(f"integrity_check says {check[:200]}")
    return trial


# --------------------------------------------------------------------------- newer schema
def run_future(index: int, work: Path, rng: random.Random, shared: Shared) -> Trial:
    store = _copy_store(shared, work / "store")
    version = rng.choice([SCHEMA_VERSION + 1, rng.randint(SCHEMA_VERSION + 2, 1000)])
    journal = rng.choice(["wal", "delete", "truncate"])
    make_future(store, version, journal=journal, extra_table=rng.random() < 0.5)
    before = file_digest(store)
    commands = [
        _ingest_args(_documents(rng, work, f"t{index}"), store, None),
        ["forget", "--session", rng.choice(shared.sessions), "--store", str(store), "--namespace", NAMESPACE],
        ["stats", "--store", str(store), "--namespace", NAMESPACE],
        ["search", "coffee", "--store", str(store), "--namespace", NAMESPACE],
        ["namespaces", "--store", str(store)],
    ]
    picked = rng.sample(commands, 3)
    trial = Trial(index=index, cases=len(picked), detail={"version": version, "journal": journal, "commands": [a[0] for a in picked]})
    for args in picked:
        done = cli(args)
        problem = one_line_error(done)
        if problem:
            trial.failures.append(f"{args[0]} on a version-{version} store: {problem}")
        elif f"schema version {version}, this budgetmem reads up to {SCHEMA_VERSION}" not in done.stderr:
            trial.failures.append(f"{args[0]}: the error does not name the versions: {done.stderr.strip()[:200]}")
        if file_digest(store) != before:
            trial.failures.append(f"{args[0]} changed the bytes of a version-{version} store")
            before = file_digest(store)
    return trial


CAMPAIGNS = [
    Campaign(
        name="disk_full", title="Full disk during ingest", trials=6, run=run_disk_full, setup=setup,
        what=(
            "budgetmem ingest of 1-3 generated documents (some under a write budget, so it evicts) with 4-96 KiB "
            "of room: a file size limit (ulimit -f) or a small tmpfs; it must succeed or fail with one line, the "
            "store passing integrity_check with exactly its previous rows; the same ingest with room then stores "
            "the rest, nothing twice."
        ),
    ),
    Campaign(
        name="store_readonly", title="Read-only store", trials=4, run=run_readonly, setup=setup,
        what=(
            "two of ingest / forget a session / forget the namespace, and one of stats / namespaces, on a chmod 444 "
            "store (sometimes in a read-only folder; root's override dropped): writes fail with one line, reads "
            "work or fail with one line, no byte changes."
        ),
    ),
    Campaign(
        name="store_locked", title="Store locked by another writer", trials=4, run=run_locked, setup=setup,
        what=(
            "another process holds BEGIN IMMEDIATE and lets go at a random moment up to 1.4x the 30 s busy timeout, "
            "or never: stats still reads; an ingest or forget either waits and succeeds (rows exactly right) or "
            "gives up with one 'locked' line and no change."
        ),
    ),
    Campaign(
        name="store_future", title="Store from a newer schema", trials=4, run=run_future, setup=setup,
        what=(
            "three of ingest / forget / stats / search / namespaces on a store whose schema version is raised (a "
            "table this version does not know, WAL, delete or truncate journal): one line naming both versions, "
            "and the file's bytes unchanged."
        ),
    ),
]
