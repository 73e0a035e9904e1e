"""Pipeline benchmark (issue: budget-tiered pipeline), on LoCoMo dev questions.

For each strategy and each fixed policy (all LOW / MID / HIGH): F1 against the gold
answers, USD (extraction and answer), tokens and wall time per query. Plus, on the
implementation-HIGH configuration: the wall-time ratio of running the three extractors
concurrently vs one after another, of prefix-first vs instruction-first prompt layout,
and the framework's own overhead per query (wall time minus retrieval and LLM calls).

Every answered question is appended to a JSONL file per configuration as it finishes,
so an interrupted run resumes where it stopped; the questions run on the run harness's
executor (``--executor``, default local: the wall times below are one question at a time).
The module cache is off: wall times are real. Usage:

    .venv/bin/python bench/pipeline.py [--questions 20] [--configs implementation:low,...]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import log, machine_info, table, write_section  # noqa: E402

from budgetmem import BudgetMem, Settings  # noqa: E402
from budgetmem.eval.metrics import bootstrap_ci, locomo_f1  # noqa: E402
from budgetmem.eval.results import ResultsFile  # noqa: E402
from budgetmem.executors import ExecutorSettings  # noqa: E402
from budgetmem.harness import Harness, Workspace, WorkspaceSpec  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "locomo" / "locomo_dev.json"
RESULTS = ROOT / "bench" / "results" / "pipeline"
# Cheap configurations first, so an interrupted run has the most rows per minute.
ALL_CONFIGS = [
    "implementation:low", "implementation:mid", "capacity:low", "implementation:high", "reasoning:low",
    "capacity:mid", "reasoning:mid", "capacity:high", "reasoning:high",
]  # fmt: skip
ABLATIONS = ("concurrent", "sequential", "instruction-first")


def same_as(name: str, settings: Settings) -> str | None:
    """A configuration that is literally another one on this set-up, so it is not run twice.

    capacity:mid runs the direct prompt on the ladder's medium model; when that model is also
    the module LLM, that is exactly implementation:high (and reasoning:low): same model, same
    prompts, same outputs (checked: identical answers and costs on the first 3 questions)."""
    if name == "capacity:mid" and settings.pipeline.ladder[1] == settings.pipeline.module_llm:
        return "implementation:high"
    return None


def pick_questions(n: int, seed: int = 13) -> list[dict[str, Any]]:
    """A seeded sample of category 1-4 questions, spread over the dev conversations."""
    samples = json.loads(DATA.read_text(encoding="utf-8"))
    pool = [
        {"sample_id": s["sample_id"], "index": i, "question": q["question"], "answer": q["answer"], "category": q["category"]}
        for s in samples
        for i, q in enumerate(s["qa"])
        if q.get("category") in (1, 2, 3, 4) and "answer" in q
    ]
    return random.Random(seed).sample(pool, n)


def base_settings(args: argparse.Namespace) -> Settings:
    s = Settings().replace(
        encoder__name=args.encoder,
        pipeline__answer_llm=args.answer_llm,
        pipeline__module_llm=args.module_llm,
        pipeline__answer_style="locomo",
        llm__n_threads=args.threads,
    )
    return dataclasses.replace(s, pipeline=dataclasses.replace(s.pipeline, cache_path=None))


def ensure_store(path: Path, settings: Settings) -> None:
    with BudgetMem(path, "locomo", settings=settings) as mem:
        report = mem.add(DATA)
    log(f"store ready: {report.chunks_added} new chunks ({report.encoder})")


def answer_one(ws: Workspace, q: dict[str, Any], job: tuple[str, str, str]) -> dict[str, Any]:
    """One question through one configuration: its row (a task on the harness's executor)."""
    name, _strategy, policy = job
    r = ws.mem(f"locomo/{q['sample_id']}").query(q["question"], policy=policy)
    return {
        # Keys only: the question and gold text stay in the dataset, not in this repo.
        "sample_id": q["sample_id"], "index": q["index"], "category": q["category"],
        "config": name,
        "prediction": r.answer,
        "f1": locomo_f1(r.answer, q["answer"], q["category"]),
        "extraction_usd": r.extraction_usd,
        "answer_usd": r.answer_usd,
        "prompt_tokens": sum(s.prompt_tokens for s in [*r.steps, r.answer_step]),
        "completion_tokens": sum(s.completion_tokens for s in [*r.steps, r.answer_step]),
        "wall_s": r.wall_s,
        "retrieval_s": r.retrieval_s,
        "llm_s": r.llm_seconds,
        "module_wall_s": {s.module: s.wall_s for s in r.steps},
        "parse": {s.module: s.parse_status + (f"->{s.fallback}" if s.fallback else "") for s in r.steps},
    }  # fmt: skip


def run_config(name: str, settings: Settings, questions: list[dict[str, Any]], store: Path,
               executor: ExecutorSettings | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """Every question of one configuration, through the run harness: rows are appended in
    question order as they finish, so an interrupted run resumes where it stopped."""
    results = ResultsFile(RESULTS / f"{name.replace(':', '_')}.jsonl")
    results.path.parent.mkdir(parents=True, exist_ok=True)
    results.repair()
    done = {(r["sample_id"], r["index"]): r for r in results.rows()}
    strategy, policy = name.split(":") if name.split(":")[0] in ("implementation", "capacity", "reasoning") else ("implementation", "high")
    todo = [q for q in questions if (q["sample_id"], q["index"]) not in done]
    if todo:
        harness = Harness(RESULTS, executor=executor, progress=False, log=log)
        with harness.workers(WorkspaceSpec(settings, store, strategy)) as pool:
            for i, row in enumerate(pool.map(answer_one, todo, (name, strategy, policy)), start=1):
                results.append(row)
                done[(row["sample_id"], row["index"])] = row
                log(f"{name} {i}/{len(todo)} f1={row['f1']:.2f} wall={row['wall_s']:.1f}s :: {row['prediction'][:50]!r}")
    return [done[(q["sample_id"], q["index"])] for q in questions]


def summarise(rows: list[dict[str, Any]]) -> dict[str, float]:
    n = len(rows)
    mean = lambda k: sum(r[k] for r in rows) / n  # noqa: E731
    fails = sum(1 for r in rows for v in r["parse"].values() if "failed" in v)
    lo, hi = bootstrap_ci([r["f1"] for r in rows])
    return {
        "n": n,
        "f1": 100 * mean("f1"),
        "f1_ci": (100 * lo, 100 * hi),
        "extraction_usd": mean("extraction_usd"),
        "answer_usd": mean("answer_usd"),
        "tokens": mean("prompt_tokens") + mean("completion_tokens"),
        "wall_s": mean("wall_s"),
        "llm_s": mean("llm_s"),
        "overhead_s": mean("wall_s") - mean("llm_s") - mean("retrieval_s"),
        "parse_failures": fails,
    }


def render(summary: dict[str, dict[str, float]], args: argparse.Namespace, wall: float) -> str:
    m = machine_info()
    rows = []
    settings = base_settings(args)
    for name, s in summary.items():
        if name in ABLATIONS:
            continue
        equal = same_as(name, settings)
        rows.append(
            [f"{name} (= {equal}, shared row)" if equal else name, s["n"], f"{s['f1']:.1f} [{s['f1_ci'][0]:.1f}, {s['f1_ci'][1]:.1f}]", f"{s['extraction_usd'] * 1e6:.1f}", f"{s['answer_usd'] * 1e6:.1f}",
             f"{s['tokens']:.0f}", f"{s['wall_s']:.1f}", s["parse_failures"]]
        )  # fmt: skip
    lines = [
        "## Pipeline: strategies x fixed tiers on LoCoMo dev questions",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on {m.get('cpu', '?')} ({m.get('cores', '?')} cores), "
        f"answer model `{args.answer_llm}`, module LLM `{args.module_llm}` (implementation HIGH, reasoning), "
        "capacity ladder SmolLM2-135M / Qwen2.5-Coder-0.5B / Qwen2.5-Coder-1.5B; retrieval hybrid top-5 over "
        f"256-token chunks ({args.encoder}, also the MID-tier encoder); module cache off. Dollars are paper-equivalent prices "
        "(the embedded models run locally; each is priced as the paper model of its rung). Wall times are "
        "on 2 cores and include contention from other work: test suites and other benchmarks ran beside "
        "these runs at times (2026-11-22 and 2026-11-23), so treat them as upper bounds.",
        "",
        f"Command: `.venv/bin/python bench/pipeline.py --questions {args.questions}` ("
        + (f"total wall {wall / 60:.1f} min; " if wall == wall else "")
        + "resumable: rows are appended to `bench/results/pipeline/*.jsonl`).",
        "",
        table(
            ["strategy:policy", "questions", "F1 [95% CI]", "extraction µ$/q", "answer µ$/q", "tokens/q", "wall s/q", "parse failures"],
            rows,
        ),
    ]
    if same_as("capacity:mid", settings) and "reasoning:low" in summary:
        lines += [
            "",
            "implementation:high, reasoning:low and capacity:mid are one computation on this set-up (the direct "
            "prompt on the module LLM, which is also the ladder's medium rung): reasoning:low, measured on its own, "
            "gave the same answers, tokens and dollars as implementation:high, so capacity:mid shares that row. "
            "Only the wall times differ (contention).",
        ]
    if all(a in summary for a in ABLATIONS):
        c, s, i = (summary[a] for a in ABLATIONS)
        lines += [
            "",
            f"Implementation HIGH on the first {c['n']} questions: concurrent extractors {c['wall_s']:.1f} s/q vs "
            f"sequential {s['wall_s']:.1f} s/q (ratio {c['wall_s'] / s['wall_s']:.2f}); prefix-first layout "
            f"{c['wall_s']:.1f} s/q vs instruction-first {i['wall_s']:.1f} s/q (ratio {c['wall_s'] / i['wall_s']:.2f}). "
            f"Framework overhead (wall minus retrieval and LLM calls, sequential run): {s['overhead_s'] * 1e3:.0f} ms/q. "
            "With the embedded backend the three extractors share one llama.cpp instance, whose calls run one at a "
            "time on 2 cores, so concurrency cannot help here (it pays off with API backends); the prefix-first "
            "layout lets llama.cpp reuse the cached memories across the extractors' prompts.",
        ]
    return "\n".join(lines) + "\n"


def render_saved(args: argparse.Namespace) -> int:
    """Summarise whatever rows are saved; name the configurations still missing or partial."""
    summary: dict[str, dict[str, float]] = {}
    missing = []
    settings = base_settings(args)
    for name in [*filter(None, args.configs.split(",")), *ABLATIONS]:
        path = RESULTS / f"{(same_as(name, settings) or name).replace(':', '_')}.jsonl"
        rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []
        if rows:
            summary[name] = summarise(rows)
        want = args.ablation_questions if name in ABLATIONS else args.questions
        if len(rows) < want:
            missing.append(f"{name} ({len(rows)}/{want})")
    body = render(summary, args, wall=float("nan"))
    if missing:
        body += (
            "\n**Incomplete run.** Not yet measured or partial: " + ", ".join(missing) + ". "
            "Re-running the command resumes from the saved rows.\n"
        )
    write_section(Path(args.out), "pipeline", body)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--questions", type=int, default=20)
    p.add_argument("--configs", default=",".join(ALL_CONFIGS), help="strategy:policy list")
    p.add_argument("--ablation-questions", type=int, default=5, help="0 skips the concurrency / layout runs")
    p.add_argument("--encoder", default="all-minilm-l6-v2", help="retrieval and MID-tier encoder")
    p.add_argument("--answer-llm", default="llamacpp:qwen2.5-coder-0.5b")
    p.add_argument("--module-llm", default="llamacpp:qwen2.5-coder-0.5b")
    p.add_argument("--store", default=str(RESULTS / "locomo_dev.db"))
    p.add_argument("--out", default=str(ROOT / "docs" / "BENCHMARKS.md"))
    p.add_argument("--render-only", action="store_true", help="rewrite the doc section from the saved rows, run nothing")
    p.add_argument("--threads", type=int, help="llama.cpp threads (default: all cores; 1 when sharing the CPU)")
    p.add_argument("--executor", default="local", choices=["local", "threads", "ray"])
    p.add_argument("--workers", type=int, default=1)
    args = p.parse_args(argv)
    if args.render_only:
        return render_saved(args)
    if not DATA.exists():
        print(f"LoCoMo dev subset not found at {DATA}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    store = Path(args.store)
    store.parent.mkdir(parents=True, exist_ok=True)
    settings = base_settings(args)
    ensure_store(store, settings)
    questions = pick_questions(args.questions)
    summary: dict[str, dict[str, float]] = {}
    for name in filter(None, args.configs.split(",")):
        executor = ExecutorSettings(args.executor, workers=args.workers)  # type: ignore[arg-type]
        summary[name] = summarise(run_config(same_as(name, settings) or name, settings, questions, store, executor))
        write_section(Path(args.out), "pipeline", render(summary, args, time.perf_counter() - started))
    if args.ablation_questions:
        few = questions[: args.ablation_questions]
        variants = {
            "concurrent": settings,
            "sequential": settings.replace(pipeline__concurrent=False),
            "instruction-first": settings.replace(pipeline__layout="instruction-first"),
        }
        for name, s in variants.items():
            summary[name] = summarise(run_config(name, s, few, store))
    (RESULTS / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    write_section(Path(args.out), "pipeline", render(summary, args, time.perf_counter() - started))
    log(f"done in {(time.perf_counter() - started) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
