"""One command over every dataset: LoCoMo dev, HotpotQA dev and a LongMemEval-format file.

Runs the baselines (naive RAG, full context), the fixed LOW / MID / HIGH tiers of a
strategy and any routers given on each dataset, through ``budgetmem eval``'s own code path
(the run harness), all with the same answer model, and writes one table and one PNG per
dataset into ``docs/BENCHMARKS.md`` and the README. The table reports F1 with its
bootstrap interval, the LLM judge (the ladder's large model) where ``--judge`` is on,
extraction / answer / total cost per question, and the share of answers longer than the
gold answer plus 10 tokens.

- LoCoMo dev: the conversation-level test split (seed 0), the first ``--locomo`` questions.
- HotpotQA dev: every question of ``../shared/data/hotpotqa/hotpotqa_dev.json`` (split
  ``all``: a development file, each question with its own ~17,000-word context, chunked
  at 1,024 tokens).
- LongMemEval: no real LongMemEval data can be downloaded here, so the file is
  six questions we wrote in its format (``bench/longmemeval_mini.py`` writes the file).

Each (dataset, system) is a run directory under ``bench/results/datasets/<dataset>/``, so
an interrupted benchmark resumes where it stopped; systems run in the order given,
dataset by dataset within a system, so the first systems finish everywhere first. Usage:

    .venv/bin/python bench/datasets.py [--systems naive-rag,implementation:mid,...] [--judge]
        [--datasets hotpotqa,locomo,longmemeval] [--locomo 50] [--router router:PATH]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import longmemeval_mini  # noqa: E402
from _report import log, machine_info, table, write_section  # noqa: E402

from budgetmem import Settings  # noqa: E402
from budgetmem.eval import dataset_settings  # noqa: E402
from budgetmem.eval.datasets import load_eval_set  # noqa: E402
from budgetmem.eval.metrics import answer_tokens  # noqa: E402
from budgetmem.eval.report import RunSummary, compare_table, load_run, plot_runs  # noqa: E402
from budgetmem.harness import EvalConfig, run_eval  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "bench" / "results" / "datasets"


@dataclasses.dataclass(frozen=True)
class DatasetPlan:
    name: str
    path: Path
    split: str
    title: str
    note: str


LME_FILE = RESULTS / "longmemeval" / "longmemeval_mini.json"
"""Written by ``longmemeval_mini.write`` before a run (kept out of git: generated)."""

DATASETS = {
    "hotpotqa": DatasetPlan(
        "hotpotqa", SHARED / "hotpotqa" / "hotpotqa_dev.json", "all", "HotpotQA dev",
        "27 long-context questions (20 bridge, 7 comparison), ~17,000 words of documents each, 1,024-token chunks.",
    ),
    "locomo": DatasetPlan(
        "locomo", SHARED / "locomo" / "locomo_dev.json", "test", "LoCoMo dev",
        "Conversation-level test split (seed 0: conv-42), categories 1-4, 256-token chunks.",
    ),
    "longmemeval": DatasetPlan(
        "longmemeval", LME_FILE, "all", "LongMemEval format (our own file)",
        "**Not LongMemEval data**: six questions we wrote in the LongMemEval format (`bench/longmemeval_mini.py` writes them), "
        "since the real set cannot be downloaded here; it shows the path works, not how good the systems are.",
    ),
}  # fmt: skip
SYSTEMS = ["naive-rag", "implementation:mid", "implementation:low", "full-context", "implementation:high"]


def run_name(system: str) -> str:
    return system.replace(":", "-").replace("/", "_")


def settings_for(dataset: str, system: str, args: argparse.Namespace) -> Settings:
    s = Settings().replace(
        encoder__name=args.encoder, pipeline__answer_llm=args.answer_llm, pipeline__module_llm=args.module_llm
    )
    s = dataclasses.replace(s, pipeline=dataclasses.replace(s.pipeline, cache_path=None))  # wall times are real
    if system == "full-context":
        s = s.replace(llm__n_ctx=args.full_context_window)
    return dataset_settings(s, dataset)


def limit_for(dataset: str, args: argparse.Namespace) -> int | None:
    return {"locomo": args.locomo, "hotpotqa": args.hotpotqa}.get(dataset)


def run_one(dataset: str, system: str, args: argparse.Namespace) -> None:
    plan = DATASETS[dataset]
    strategy, policy = system.split(":", 1) if ":" in system and not system.startswith("router:") else ("implementation", system)
    cfg = EvalConfig(
        dataset=dataset, data=plan.path, out=RESULTS / dataset / run_name(system), split=plan.split, strategy=strategy,
        policy=policy, limit=limit_for(dataset, args), store=RESULTS / dataset / "store.db", seed=0,
        judge=args.judge_llm if args.judge else None,
    )  # fmt: skip
    result = run_eval(cfg, settings_for(dataset, system, args), progress=False, log=log)
    log(f"{dataset} {system}: {len(result.rows)} questions ({len(result.rows) - result.resumed} new) in {result.seconds / 60:.1f} min")


def _rows(run_dir: Path) -> list[dict]:
    path = run_dir / "results.jsonl"
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()] if path.exists() else []


def too_long_share(rows: list[dict]) -> float:
    """Share of answers longer than the shortest gold answer plus 10 tokens (F1's tokens)."""
    if not rows:
        return float("nan")
    over = [len(answer_tokens(r["answer"])) > min(len(answer_tokens(str(g))) for g in r["gold"]) + 10 for r in rows]
    return sum(over) / len(rows)


def render_dataset(dataset: str, systems: list[str], args: argparse.Namespace) -> tuple[str, str]:
    """(the BENCHMARKS.md block, the README table) of one dataset."""
    plan = DATASETS[dataset]
    runs: list[RunSummary] = []
    missing: list[str] = []
    base = RESULTS / dataset
    saved = sorted(p.name for p in base.glob("*") if (p / "results.jsonl").exists()) if base.exists() else []
    order = [run_name(s) for s in systems] + [n for n in saved if n not in {run_name(s) for s in systems}]
    for name in order:
        d = base / name
        if (d / "results.jsonl").exists():
            runs.append(load_run(d))
        else:
            missing.append(name)
    title = f"### {plan.title}"
    if not runs:
        return f"{title}\n\nNot yet measured.\n", f"**{plan.title}**: not yet measured.\n"
    png = ROOT / "docs" / f"datasets_{dataset}.png"
    plot_runs(runs, png, title=plan.title)
    long_share = {r.path.name: too_long_share(_rows(r.path)) for r in runs}
    table_md = compare_table(runs, markdown=True)
    lines = table_md.splitlines()
    lines[0] += " answers > gold+10 tok |"
    lines[1] += " ---: |"
    for i, r in enumerate(runs):
        lines[2 + i] += f" {100 * long_share[r.path.name]:.0f}% |"
    partial = [f"{r.path.name} ({r.n}/{r.planned})" for r in runs if r.partial]
    shown = max(r.n for r in runs)
    scope = f"Run here on {shown} question{'s' if shown != 1 else ''}" + (
        f" (the first {shown} of {len(load_eval_set(dataset, plan.path).items)} in the file)" if plan.split == "all" else " of the split"
    ) + "."
    body = [title, "", f"{plan.note} {scope}", "", *lines, "", f"![{plan.title}: score vs cost](datasets_{dataset}.png)"]
    if missing or partial:
        body += ["", "Not yet run: " + (", ".join(missing) or "none") + ". Partial: " + (", ".join(partial) or "none")
                 + ". Re-running the command resumes from the saved rows."]  # fmt: skip
    readme = [f"**{plan.title}** ({plan.note.split(':')[0] if dataset == 'longmemeval' else plan.note} {scope})", ""]
    head = ["system", "n", "F1", "F1 95% CI", "judge", "total µ$/q", "answers > gold+10 tok"]
    rows = []
    for r in runs:
        o = r.overall
        judge = "-" if o["judge"] is None or o["judge"] != o["judge"] else f"{100 * o['judge']:.1f}"
        rows.append([r.label, r.n, f"{100 * o['f1']:.1f}", f"[{100 * o['f1_ci'][0]:.1f}, {100 * o['f1_ci'][1]:.1f}]",
                     judge, f"{1e6 * o['total_usd']:.1f}", f"{100 * long_share[r.path.name]:.0f}%"])  # fmt: skip
    readme.append(table(head, rows))
    return "\n".join(body) + "\n", "\n".join(readme) + "\n"


def render(datasets: list[str], systems: list[str], args: argparse.Namespace) -> tuple[str, str]:
    m = machine_info()
    load = os.getloadavg()
    blocks, readme = [], []
    for d in datasets:
        b, r = render_dataset(d, systems, args)
        blocks.append(b)
        readme.append(r)
    judge = f"LLM judge: `{args.judge_llm}`." if args.judge else "No LLM judge in this run (F1 only; `--judge` adds it)."
    head = [
        "## Datasets: LoCoMo, HotpotQA and a LongMemEval-format file, every system",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on {m.get('cpu', '?')} ({m.get('cores', '?')} cores); 1-minute load "
        f"average {load[0]:.1f} when this table was written; what else ran: {args.note}. "
        f"Answer model `{args.answer_llm}` for every system, module LLM `{args.module_llm}`, encoder `{args.encoder}`, "
        f"hybrid top-5; every answer goes through the same short-answer step (prompt per kind of question, "
        f"grammar on llama.cpp, shorten call when still long). {judge} USD is paper-equivalent pricing; "
        "module cache off.",
        "",
        "Command: `.venv/bin/python bench/datasets.py` (resumable; each dataset x system is a run directory under "
        "`bench/results/datasets/`, and `budgetmem report bench/results/datasets/<dataset>/*` reproduces a table).",
        "",
    ]
    return "\n".join(head + blocks), "\n".join(readme)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--systems", default=",".join(SYSTEMS), help="baselines, strategy:policy and router:PATH, comma-separated")
    p.add_argument("--datasets", default="hotpotqa,locomo,longmemeval")
    p.add_argument("--locomo", type=int, default=50, help="LoCoMo test-split questions (first N)")
    p.add_argument("--hotpotqa", type=int, default=None, help="HotpotQA dev questions (first N; default all 27)")
    p.add_argument("--judge", action="store_true", help="score with the LLM judge too")
    p.add_argument("--judge-llm", default="llamacpp:qwen2.5-coder-1.5b")
    p.add_argument("--encoder", default="all-minilm-l6-v2")
    p.add_argument("--answer-llm", default="llamacpp:qwen2.5-coder-0.5b")
    p.add_argument("--module-llm", default="llamacpp:qwen2.5-coder-0.5b")
    p.add_argument("--full-context-window", type=int, default=16384)
    p.add_argument("--note", default="what else ran is not recorded", help="what else was running, for the table's text")
    p.add_argument("--render-only", action="store_true", help="rewrite the doc sections from the saved runs")
    args = p.parse_args(argv)
    systems = [s for s in args.systems.split(",") if s]
    datasets = [d for d in args.datasets.split(",") if d]
    longmemeval_mini.write(LME_FILE)  # its table is rendered whichever datasets run
    for d in datasets:
        if d not in DATASETS:
            print(f"unknown dataset {d!r}: use {', '.join(DATASETS)}", file=sys.stderr)
            return 2
        if not DATASETS[d].path.exists():
            print(f"{DATASETS[d].title} not found at {DATASETS[d].path}", file=sys.stderr)
            return 2

    def publish() -> None:  # every dataset's table, run now or earlier
        doc, readme = render(list(DATASETS), systems, args)
        write_section(ROOT / "docs" / "BENCHMARKS.md", "datasets", doc)
        write_section(ROOT / "README.md", "datasets", readme)

    if not args.render_only:
        for s in systems:
            for d in datasets:
                run_one(d, s, args)
                publish()
    publish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
