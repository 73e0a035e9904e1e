"""Reliability campaigns: kill -9, fuzzing, hostile model servers, exhausted resources.

    .venv/bin/python bench/reliability.py [--only NAME,...] [--trials N] [--redo NAME,...] [--render]

Runs every campaign in ``bench/campaigns/`` (``--list`` names them). Each trial is saved to
``bench/results/reliability/<campaign>.json`` as soon as it ends, so a killed run resumes at the next
trial; ``--redo`` discards a campaign's saved trials first. ``--trials N`` caps every
selected campaign at N trials (a quick look; the published table uses each campaign's own
count). At the end the ``reliability`` section of docs/BENCHMARKS.md is rewritten from the
JSON (``--render`` only rewrites it).

A trial's failures are the promises it found broken: the table counts them, and the data
lost and duplicates columns must read 0. Any failure is a defect to fix with a regression
test, not a number to publish and forget.
"""

from __future__ import annotations

import argparse
import importlib
import json
import random
import shutil
import sys
import tempfile
import time
import zlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

from _report import log, machine_info, save_json, table, write_section  # noqa: E402
from campaigns.common import Campaign, Trial  # noqa: E402

RESULTS = HERE / "results" / "reliability"
"""One JSON file per campaign: its trials, title and plan."""
DOC = ROOT / "docs" / "BENCHMARKS.md"
MODULES = ("kill", "serve_kill", "fuzz", "hostile", "resources")
"""Campaign modules in the order their tables appear."""


def campaigns() -> list[Campaign]:
    found: list[Campaign] = []
    for name in MODULES:
        try:
            module = importlib.import_module(f"campaigns.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"campaigns.{name}":
                raise
            continue
        found.extend(module.CAMPAIGNS)
    return found


def _load(name: str) -> dict[str, Any]:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def _seed(campaign: str, index: int) -> int:
    return zlib.crc32(f"{campaign}/{index}".encode())


def run_campaign(c: Campaign, limit: int | None) -> None:
    saved = {t["index"] for t in _load(c.name).get("trials", [])}
    todo = [i for i in range(min(c.trials, limit or c.trials)) if i not in saved]
    if not todo:
        log(f"{c.name}: {len(saved)} trials saved, nothing to do")
        return
    root = Path(tempfile.mkdtemp(prefix=f"bm-rel-{c.name}-"))
    try:
        shared = c.setup(root / "setup") if c.setup else None
        for n, i in enumerate(todo, 1):
            work = root / f"trial{i}"
            work.mkdir(parents=True)
            t0 = time.perf_counter()
            try:
                trial = c.run(i, work, random.Random(_seed(c.name, i)), shared)
            except Exception as exc:  # noqa: BLE001 - a crashing trial is a finding, recorded as one
                trial = Trial(index=i, failures=[f"trial raised {type(exc).__name__}: {exc}"])
            trial.seconds = time.perf_counter() - t0
            _save_trial(c, trial)
            shutil.rmtree(work, ignore_errors=True)
            state = "ok" if trial.ok else "FAILED: " + "; ".join(trial.failures)[:200]
            log(f"{c.name}: trial {i} ({n}/{len(todo)}) {trial.seconds:.1f} s {state}")
    finally:
        if c.teardown and "shared" in locals():
            c.teardown(shared)
        shutil.rmtree(root, ignore_errors=True)


def _save_trial(c: Campaign, trial: Trial) -> None:
    entry = _load(c.name) or {"trials": []}
    entry["title"], entry["what"], entry["planned"] = c.title, c.what, c.trials
    entry["trials"] = [t for t in entry["trials"] if t["index"] != trial.index] + [trial.to_json()]
    entry["trials"].sort(key=lambda t: t["index"])
    entry["at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    entry["machine"] = machine_info()
    save_json(RESULTS / f"{c.name}.json", entry)


def render() -> None:
    rows, notes, m = [], [], {}
    known = [c.name for c in campaigns()]
    saved = sorted(p.stem for p in RESULTS.glob("*.json"))
    for name in sorted(saved, key=lambda n: known.index(n) if n in known else len(known)):
        e = _load(name)
        m = e.get("machine", m)
        trials = [Trial.from_json(t) for t in e["trials"]]
        failed = [t for t in trials if not t.ok]
        rows.append([e["title"], f"{len(trials)} / {e['planned']}", f"{sum(t.cases for t in trials):,}", len(failed), sum(t.lost for t in trials),
                     sum(t.duplicates for t in trials), f"{sum(t.seconds for t in trials):.0f}", e["at"][:10]])  # fmt: skip
        if e.get("what"):
            notes.append(f"- **{e['title']}**: {e['what']}")
        outcomes = _summed(t.detail.get("outcomes", {}) for t in trials)
        if outcomes:  # a campaign that classifies its cases publishes the count of each class
            notes.append("  - by outcome: " + "; ".join(f"{k}: {v:,}" for k, v in sorted(outcomes.items(), key=lambda kv: -kv[1])))
        for t in failed[:5]:
            notes.append(f"  - trial {t.index} failed: {'; '.join(t.failures)[:300]}")
    body = [
        "## Reliability: kill -9, fuzzing, hostile model servers, exhausted resources", "",
        "`python bench/reliability.py` (resumable; every trial in `bench/results/reliability/`). "
        f"Machine: {m.get('cpu', '?')}, {m.get('cores', '?')} cores. A trial fails when it finds a broken "
        "promise; data lost and duplicates must be 0.", "",
        table(["campaign", "trials run / planned", "cases", "failed trials", "data lost", "duplicates", "time s", "date"], rows),
        "", *notes,
    ]  # fmt: skip
    write_section(DOC, "reliability", "\n".join(body))


def _summed(counts: Any) -> dict[str, int]:
    total: dict[str, int] = {}
    for c in counts:
        for k, v in c.items():
            total[k] = total.get(k, 0) + int(v)
    return total


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default="", help="comma-separated campaign names")
    p.add_argument("--redo", default="", help="discard these campaigns' saved trials first")
    p.add_argument("--trials", type=int, default=None, help="at most this many trials per campaign")
    p.add_argument("--list", action="store_true", help="name the campaigns and stop")
    p.add_argument("--render", action="store_true", help="only rewrite the markdown section")
    a = p.parse_args()
    every = campaigns()
    if a.list:
        for c in every:
            print(f"{c.name:24s} {c.trials:6d}  {c.title}")
        return
    if not a.render:
        only = {s for s in a.only.split(",") if s}
        unknown = only - {c.name for c in every}
        if unknown:
            p.error(f"unknown campaign(s): {', '.join(sorted(unknown))} (see --list)")
        redo = {s for s in a.redo.split(",") if s}
        for name in redo:
            (RESULTS / f"{name}.json").unlink(missing_ok=True)
        for c in every:
            if not only or c.name in only:
                run_campaign(c, a.trials)
    render()
    log(f"wrote the reliability section of {DOC}")


if __name__ == "__main__":
    main()
