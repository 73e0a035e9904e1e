"""Evaluation benchmark (issue: evaluation harness), on the LoCoMo dev subset.

Runs the baselines (naive RAG, full context) and the fixed tiers of the implementation
strategy (plus seeded random tiers) through ``budgetmem eval``'s own code path on the
first N questions of the conversation-level test split (seed 0), all on the same
backbone, and writes the side-by-side table, per-category F1 and a score-vs-cost PNG to
``docs/BENCHMARKS.md``.

Each system is an ordinary run directory under ``bench/results/eval/`` (``run.json`` +
``results.jsonl``), so an interrupted benchmark resumes where it stopped and
``budgetmem report bench/results/eval/*`` reproduces the table. The module cache is off:
wall times are real. Usage:

    .venv/bin/python bench/eval.py [--questions 50] [--systems naive-rag,implementation:low,...]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import log, machine_info, table, write_section  # noqa: E402

from budgetmem import Settings  # noqa: E402
from budgetmem.eval.datasets import LOCOMO_CATEGORIES  # noqa: E402
from budgetmem.eval.report import RunSummary, compare_table, load_run, plot_runs  # noqa: E402
from budgetmem.eval import dataset_settings  # noqa: E402
from budgetmem.harness import EvalConfig, run_eval  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "locomo" / "locomo_dev.json"
RESULTS = ROOT / "bench" / "results" / "eval"
PNG = ROOT / "docs" / "eval_locomo_dev.png"
# Cheap systems first, so an interrupted run has the most rows per minute.
ALL_SYSTEMS = [
    "naive-rag", "implementation:low", "implementation:mid", "full-context", "implementation:high",
    "implementation:random",
]  # fmt: skip


def run_name(system: str) -> str:
    return system.replace(":", "-")


def settings_for(system: str, args: argparse.Namespace) -> Settings:
    s = Settings().replace(
        encoder__name=args.encoder, pipeline__answer_llm=args.answer_llm, pipeline__module_llm=args.module_llm
    )
    s = dataclasses.replace(s, pipeline=dataclasses.replace(s.pipeline, cache_path=None))
    if system == "full-context":
        # The answer model's window for the full-context baseline (Qwen2.5 takes 32k; the
        # history is truncated to this, most recent first, and the truncation is reported).
        s = s.replace(llm__n_ctx=args.full_context_window)
    return dataset_settings(s, "locomo")


def run_system(system: str, args: argparse.Namespace) -> None:
    strategy, policy = system.split(":") if ":" in system else ("implementation", system)
    cfg = EvalConfig(
        dataset="locomo", data=DATA, out=RESULTS / run_name(system), split="test", strategy=strategy,
        policy=policy, limit=args.questions, store=RESULTS / "locomo_dev.db", seed=0,
    )  # fmt: skip
    result = run_eval(cfg, settings_for(system, args), progress=False, log=log)
    new = result.rows[result.resumed :]
    log(f"{system}: {len(result.rows)} questions ({len(new)} new) in {result.seconds / 60:.1f} min")


def per_category(runs: list[RunSummary]) -> str:
    names = [n for n in LOCOMO_CATEGORIES.values() if any(n in r.categories for r in runs)]
    rows = []
    for r in runs:
        cells = [f"{100 * g['f1']:.1f} ({g['n']})" if (g := r.categories.get(n)) else "-" for n in names]
        rows.append([r.label, *cells])
    return table(["system", *(f"{n} F1 (n)" for n in names)], rows)


def _saved_wall(system: str) -> float:
    rows = RESULTS / run_name(system) / "results.jsonl"
    if not rows.exists():
        return 0.0
    return sum(json.loads(x)["cost"]["wall_s"] for x in rows.read_text(encoding="utf-8").splitlines() if x.strip())


def render(args: argparse.Namespace, systems: list[str]) -> str:
    m = machine_info()
    runs, missing = [], []
    # Every system with saved rows is shown, not only this invocation's: one table.
    shown = [*systems, *(s for s in ALL_SYSTEMS if s not in systems and (RESULTS / run_name(s) / "results.jsonl").exists())]
    for s in shown:
        d = RESULTS / run_name(s)
        if (d / "results.jsonl").exists():
            r = load_run(d)
            runs.append(r)
            if r.n < args.questions:
                missing.append(f"{s} ({r.n}/{args.questions})")
        else:
            missing.append(f"{s} (0/{args.questions})")
    runs.sort(key=lambda r: [run_name(s) for s in ALL_SYSTEMS + shown].index(r.path.name))
    if not runs:
        return "## Evaluation: baselines and implementation tiers on LoCoMo dev\n\nNot yet measured.\n"
    plot_runs(runs, PNG, title="LoCoMo dev test split")
    total_min = sum(_saved_wall(s) for s in shown) / 60
    fc = RESULTS / "full-context" / "summary.md"
    trunc = [ln[2:] for ln in fc.read_text(encoding="utf-8").splitlines() if ln.startswith("- full context:")] if fc.exists() else []
    lines = [
        "## Evaluation: baselines and implementation tiers on LoCoMo dev",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on {m.get('cpu', '?')} ({m.get('cores', '?')} cores). "
        f"LoCoMo dev subset, conversation-level test split (seed 0: conversation conv-42), the first "
        f"{args.questions} questions of categories 1-4; answer model `{args.answer_llm}`, module LLM "
        f"`{args.module_llm}` (implementation HIGH), encoder `{args.encoder}`, hybrid top-5 over 256-token "
        f"chunks; the full-context baseline gives the answer model a {args.full_context_window}-token window. "
        "No LLM judge in this run (F1 only). USD is paper-equivalent pricing; module cache off.",
        "",
        f"Command: `.venv/bin/python bench/eval.py --questions {args.questions}` (resumable; each system is a "
        "run directory under `bench/results/eval/`, so `budgetmem report bench/results/eval/*` reproduces the "
        "table; the per-question rows quote the dataset, so only `run.json` and the summaries are committed). "
        f"Wall time of the question loop, summed over the systems: {total_min:.1f} min "
        "on 2 cores, with other work sometimes running beside it.",
        "",
        compare_table(runs, markdown=True),
        "",
        "F1 per LoCoMo category:",
        "",
        per_category(runs),
        "",
        f"![score vs cost]({PNG.relative_to(ROOT / 'docs')})",
    ]
    if trunc:
        lines += ["", f"Full context: {trunc[0].removeprefix('full context: ')}."]
    if missing:
        lines += ["", "**Incomplete run.** Not yet measured or partial: " + ", ".join(missing) + ". "
                  "Re-running the command resumes from the saved rows."]  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--questions", type=int, default=50)
    p.add_argument("--systems", default=",".join(ALL_SYSTEMS), help="baselines and strategy:policy, comma-separated")
    p.add_argument("--encoder", default="all-minilm-l6-v2")
    p.add_argument("--answer-llm", default="llamacpp:qwen2.5-coder-0.5b")
    p.add_argument("--module-llm", default="llamacpp:qwen2.5-coder-0.5b")
    p.add_argument("--full-context-window", type=int, default=16384)
    p.add_argument("--out", default=str(ROOT / "docs" / "BENCHMARKS.md"))
    p.add_argument("--render-only", action="store_true", help="rewrite the doc section from the saved runs")
    args = p.parse_args(argv)
    systems = [s for s in args.systems.split(",") if s]
    if not args.render_only:
        if not DATA.exists():
            print(f"LoCoMo dev subset not found at {DATA}", file=sys.stderr)
            return 2
        for s in systems:
            run_system(s, args)
            write_section(Path(args.out), "eval", render(args, systems))
    write_section(Path(args.out), "eval", render(args, systems))
    return 0


if __name__ == "__main__":
    sys.exit(main())
