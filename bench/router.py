"""Router benchmark (issue: learned router), on the LoCoMo dev subset.

Two parts:

* ``--part latency``: the router's decision latency per module on CPU (state encoding plus
  the network's forward pass), with the chunk-embedding cache cold and warm, for each
  encoder, next to the hybrid retrieval of the same query measured in the same run (the
  baseline the ratios are taken against).
* ``--part frontier``: ``budgetmem frontier`` on one strategy (``--strategy``, implementation
  by default; a router per cost weight, evaluated beside the fixed tiers and naive RAG on the test split), with the
  training wall time and module-cache hit rate. Resumable: every router and evaluation is
  a run directory under ``bench/results/router/``.

    .venv/bin/python bench/router.py --part latency
    .venv/bin/python bench/router.py --part frontier --cost-weights 0,0.1,0.5 --steps 20
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import CpuMeter, log, machine_info, table, write_section  # noqa: E402

from budgetmem import BudgetMem, Settings  # noqa: E402
from budgetmem.encoder import Encoder  # noqa: E402
from budgetmem.eval.datasets import load_eval_set  # noqa: E402
from budgetmem.eval.results import ResultsFile  # noqa: E402
from budgetmem.eval import dataset_settings  # noqa: E402
from budgetmem.harness import ingest_needed  # noqa: E402
from budgetmem.eval.splits import make_split  # noqa: E402
from budgetmem.pipeline.policy import PolicyState  # noqa: E402
from budgetmem.pipeline.stages import MODULES  # noqa: E402
from budgetmem.pipeline.types import ModuleInput, ScoredChunk  # noqa: E402
from budgetmem.router import RouterNet, RouterPolicy, StateEncoder  # noqa: E402
from budgetmem.store import Store  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "locomo" / "locomo_dev.json"
RESULTS = ROOT / "bench" / "results" / "router"
EVAL_RESULTS = ROOT / "bench" / "results" / "eval"
ROUTING_CACHE = ROOT / "bench" / "results" / "routing" / "module-cache.sqlite"
DOC = ROOT / "docs" / "BENCHMARKS.md"


def _states(mem: BudgetMem, question: str) -> tuple[list[PolicyState], float]:
    """The five states of one query (filter on the candidates, extractors on the top three,
    summary on a few written-out facts), and the retrieval time it took."""
    t0 = time.perf_counter()
    hits = mem.search(question)
    retrieval_s = time.perf_counter() - t0
    cands = tuple(ScoredChunk(h.chunk, h.score) for h in hits)
    kept = cands[:3]
    # A different summary input per question, as in a real run (the first line of each kept chunk).
    facts = {"entity": tuple(c.chunk.text.splitlines()[0][:160] for c in kept), "temporal": (), "topic": ()}
    states = []
    for i, m in enumerate(MODULES):
        chunks = cands if m == "filter" else kept if m != "summary" else ()
        inp = ModuleInput(question, chunks=chunks, facts=facts if m == "summary" else {})
        states.append(PolicyState(question, m, i, inp))
    return states, retrieval_s


def latency(args: argparse.Namespace) -> str:
    meter = CpuMeter()
    data = load_eval_set("locomo", DATA)
    items = list(make_split(data, "test", seed=0).items)[: args.questions]
    settings = dataset_settings(Settings().replace(encoder__name="all-minilm-l6-v2"), "locomo")
    RESULTS.mkdir(parents=True, exist_ok=True)
    ingest_needed(RESULTS / "locomo_dev.db", data, items, settings, log)
    store = Store(RESULTS / "locomo_dev.db")
    rows = []
    mem = BudgetMem(store, f"locomo/{items[0].history}", settings=settings)
    mem.search("warm-up")
    searcher = mem.searcher
    prepared = [_states(mem, it.question) for it in items]
    retrieval_ms = 1e3 * statistics.median(r for _, r in prepared)
    for name in ("all-minilm-l6-v2", "all-mpnet-base-v2"):
        enc = Encoder(Settings().replace(encoder__name=name).encoder)
        enc.encode(["warm-up"])
        # The stored embeddings are those of the MiniLM index; another encoder embeds the texts.
        lookup = searcher.vectors if name == settings.encoder.name else None
        states = StateEncoder(enc, vectors=lookup)
        net = RouterNet(enc.dim, len(MODULES), descriptors=states.descriptors())
        policy = RouterPolicy(net, states)
        for label in ("cold", "warm"):
            per_module: dict[str, list[float]] = {m: [] for m in MODULES}
            for sts, _ in prepared:
                for st in sts:
                    t0 = time.perf_counter()
                    policy.decide(st)
                    per_module[st.module].append(time.perf_counter() - t0)
            med = {m: 1e3 * statistics.median(v) for m, v in per_module.items()}
            per_query = sum(med.values())
            rows.append([name, label, *(f"{med[m]:.1f}" for m in MODULES), f"{per_query:.1f}",
                         f"{per_query / retrieval_ms:.2f}x"])  # fmt: skip
            log(f"{name} {label}: {per_query:.1f} ms per query")
    mem.close()
    store.close()
    busy = meter.stop()
    m = machine_info()
    return "\n".join([
        "## Router: decision latency",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on {m.get('cpu', '?')} ({m.get('cores', '?')} cores), "
        f"{len(items)} LoCoMo dev test-split questions, untrained router (latency does not depend on the "
        "weights). Median ms per decision: state encoding (query, module input, descriptor) plus the "
        "actor-critic forward pass. With MiniLM (the store's encoder) the chunks' embeddings are read from "
        "the retrieval index; MPNet has to encode them. *Cold*: first pass over the questions; *warm*: "
        "second pass, texts already encoded and cached. Ratio: one query's five decisions against the "
        f"query's hybrid retrieval ({retrieval_ms:.1f} ms median, same run). Other processes used "
        f"{busy['others_cores']:.1f} of the 2 cores on average meanwhile.",
        "",
        "Command: `.venv/bin/python bench/router.py --part latency`",
        "",
        table(["encoder", "cache", *(f"{x} ms" for x in MODULES), "per query ms", "vs retrieval"], rows),
    ]) + "\n"  # fmt: skip


def _reuse_baselines(out: Path, baselines: tuple[str, ...], strategy: str) -> list[str]:
    """Seed the frontier's baseline runs with the evaluation benchmark's rows (``bench/eval.py``
    answers the same test questions with the same models), so they are not paid for twice.
    Only the rows move: ``run_eval`` checks the copied run's identity (split, models, encoder,
    chunking, retrieval) against the frontier's and refuses a mismatch."""
    for b in baselines:
        src = EVAL_RESULTS / (b if b in ("naive-rag", "full-context") else f"{strategy}-{b}")
        dst = out / f"eval-{b}"
        if dst.exists() or not (src / "results.jsonl").exists():
            continue
        dst.mkdir(parents=True)
        for name in ("run.json", "results.jsonl"):
            shutil.copyfile(src / name, dst / name)
        (dst / "reused-from.txt").write_text(f"{src.relative_to(ROOT)}\n", encoding="utf-8")
        log(f"baseline {b}: reusing {src.relative_to(ROOT)}")
    # Listed from the markers, so a resumed invocation still says which rows were reused.
    return [b for b in baselines if (out / f"eval-{b}" / "reused-from.txt").exists()]


def _f1_by_id(run_dir: Path) -> dict[str, float]:
    return {r["id"]: r["metrics"]["f1"] for r in ResultsFile(run_dir / "results.jsonl").rows()}


def _paired(a_dir: Path, b_dir: Path) -> tuple[float, float, float]:
    """Mean F1 difference a - b over the questions both runs answered, with its 95% bootstrap interval."""
    from budgetmem.eval.metrics import bootstrap_ci

    a, b = _f1_by_id(a_dir), _f1_by_id(b_dir)
    diffs = [a[i] - b[i] for i in a if i in b]
    lo, hi = bootstrap_ci(diffs)
    return sum(diffs) / len(diffs), lo, hi


def _reading(out: Path, points: list) -> str:
    """The two questions the issue asks, answered from this run: does the lambda=0 router reach
    the best fixed tier's F1 at no more cost (paired over the same test questions), and how
    does cost fall as lambda rises."""
    routers = sorted((p for p in points if p.cost_weight is not None and p.aligned), key=lambda p: p.cost_weight)
    fixed = [p for p in points if p.label.startswith("fixed ")]
    if not routers or not fixed:
        return ""
    best = max(fixed, key=lambda p: (round(p.f1, 6), -p.total_usd))
    r0 = routers[0]
    mean, lo, hi = _paired(out / f"eval-router-{r0.cost_weight:g}", out / f"eval-{best.label.removeprefix('fixed ')}")
    verdict = "matches or beats" if mean >= 0 else "is not distinguishable from" if hi >= 0 else "falls short of"
    cheaper = "no more" if r0.total_usd <= best.total_usd else "more"
    costs = ", ".join(f"λ={p.cost_weight:g}: {p.extraction_usd * 1e6:.0f}" for p in routers)
    return (
        f"Reading: the λ={r0.cost_weight:g} router scores F1 {100 * r0.f1:.1f} against {100 * best.f1:.1f} for the best "
        f"fixed tier ({best.label}); paired over the same {r0.n} questions the difference is "
        f"{100 * mean:+.1f} [{100 * lo:.1f}, {100 * hi:.1f}] (95% bootstrap): it {verdict} that F1, at {cheaper} "
        f"cost ({r0.total_usd * 1e6:.0f} vs {best.total_usd * 1e6:.0f} µ$/q in all). "
        f"Extraction cost by cost weight, µ$/q: {costs}."
    )


def _alignment_reading(out: Path, points: list, logs: dict[str, list[dict[str, str]]]) -> str:
    """The ablation of paper Fig. 3: each non-zero weight with and without Eq. 10, and the alpha
    that alignment actually applied (mean over the aligned run's training steps; ``logs`` maps
    a router directory's name to the rows of its ``log.csv``)."""
    parts = []
    for p in sorted((p for p in points if p.aligned is False), key=lambda p: p.cost_weight):
        with_ = next((q for q in points if q.aligned and q.cost_weight == p.cost_weight), None)
        if with_ is None:
            continue
        alpha = statistics.mean(float(r["alpha"]) for r in logs[f"router-{p.cost_weight:g}"])
        mean, lo, hi = _paired(out / f"eval-router-{p.cost_weight:g}", out / f"eval-router-noalign-{p.cost_weight:g}")
        parts.append(f"λ={p.cost_weight:g}: F1 {100 * with_.f1:.1f} at {with_.extraction_usd * 1e6:.0f} µ$/q with "
                     f"alignment (mean α {alpha:.2f}), {100 * p.f1:.1f} at {p.extraction_usd * 1e6:.0f} µ$/q without, "
                     f"paired difference {100 * mean:+.1f} [{100 * lo:.1f}, {100 * hi:.1f}]")  # fmt: skip
    return ("Alignment ablation (Eq. 10 off fixes α = 1; at λ = 0 the two runs coincide): " + "; ".join(parts) + "."
            if parts else "")


def _frontier_dir(strategy: str) -> Path:
    """Where a strategy's routers and their evaluations live (implementation: ``frontier``)."""
    return RESULTS / ("frontier" if strategy == "implementation" else f"frontier-{strategy}")


def frontier(args: argparse.Namespace) -> str:
    from budgetmem.training.frontier import FrontierConfig, frontier_markdown, run_frontier
    from budgetmem.training.ppo import PPOSettings

    # Reasoning and capacity share the module cache of bench/routing.py, which evaluates the
    # same strategies' baselines on the same test questions: every LLM step is paid once.
    cache = RESULTS / "module-cache.sqlite" if args.strategy == "implementation" else ROUTING_CACHE
    base = Settings().replace(
        encoder__name=args.encoder, pipeline__answer_llm=args.answer_llm, pipeline__module_llm=args.module_llm,
        pipeline__cache_path=cache,
    )  # fmt: skip
    settings = dataset_settings(base, "locomo")
    weights = tuple(float(x) for x in args.cost_weights.split(","))
    cfg = FrontierConfig(
        dataset="locomo", data=DATA, out=_frontier_dir(args.strategy), strategy=args.strategy, cost_weights=weights,
        ppo=PPOSettings().with_budget(args.steps, args.batch_size, args.lr), train_questions=args.train_questions,
        val_questions=args.val_questions, eval_every=args.eval_every, test_questions=args.test_questions,
        align_ablation=args.alignment_ablation, store=RESULTS / "locomo_dev.db",
    )  # fmt: skip
    reused = _reuse_baselines(cfg.out, cfg.baselines, cfg.strategy)
    started = time.perf_counter()
    points = run_frontier(cfg, settings, progress=False, log=log)
    train_rows, logs = [], {}
    for d in sorted(cfg.out.glob("router-*")):
        with (d / "log.csv").open() as fh:
            log_rows = logs[d.name] = list(csv.DictReader(fh))
        wall = sum(float(r["wall_s"]) for r in log_rows)
        hit = statistics.mean(float(r["cache_hit_rate"]) for r in log_rows)
        train_rows.append([d.name, len(log_rows), f"{wall / 60:.1f}", f"{100 * hit:.0f}%",
                           f"{statistics.mean(float(r['decision_ms']) for r in log_rows):.1f}"])  # fmt: skip
    # implementation keeps its points where they always were, beside the strategy's folder
    saved = RESULTS / "frontier.json" if args.strategy == "implementation" else cfg.out / "points.json"
    saved.write_text(json.dumps([p.__dict__ for p in points], indent=2) + "\n", encoding="utf-8")
    m = machine_info()
    return "\n".join([
        f"## Router: frontier, {args.strategy} strategy on LoCoMo dev",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on {m.get('cpu', '?')} ({m.get('cores', '?')} cores); "
        f"answer and module LLM `{args.answer_llm}`, encoder `{args.encoder}`; {args.steps} PPO steps of "
        f"{args.batch_size} episodes (Adam lr {args.lr:g}; the paper's 3e-4 is meant for 600 x 32 episodes) over the first {args.train_questions} training questions, validation on "
        f"{args.val_questions}, test on the first {args.test_questions} test questions (conversation-level "
        f"split, seed 0). This invocation: {(time.perf_counter() - started) / 60:.1f} min."
        + (f" Baseline rows reused from the evaluation benchmark (same questions and models): {', '.join(reused)}."
           if reused else ""),
        "",
        f"Command: `.venv/bin/python bench/router.py --part frontier"
        + ("" if args.strategy == "implementation" else f" --strategy {args.strategy}")
        + f" --cost-weights {args.cost_weights} "
        f"--steps {args.steps} --batch-size {args.batch_size} --lr {args.lr:g} --eval-every {args.eval_every} "
        f"--train-questions {args.train_questions} --val-questions {args.val_questions} "
        f"--test-questions {args.test_questions}" + (" --alignment-ablation`" if args.alignment_ablation else "`"),
        "",
        frontier_markdown(points),
        "",
        _reading(cfg.out, points),
        "",
        *([_alignment_reading(cfg.out, points, logs), ""] if args.alignment_ablation else []),
        table(["router", "steps", "train wall min", "cache hit rate", "decision ms"], train_rows),
        "",
        " ".join(f"![{n}](../bench/results/router/{cfg.out.name}/{n}.png)"
                 for n in ("frontier", "tiers", *(["alignment"] if args.alignment_ablation else []))),
    ]) + "\n"  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--part", choices=["latency", "frontier"], required=True)
    p.add_argument("--questions", type=int, default=20, help="latency: questions timed")
    p.add_argument("--cost-weights", default="0,0.1,0.5")
    p.add_argument("--strategy", default="implementation", choices=["implementation", "reasoning", "capacity"])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate (the paper's 3e-4 assumes 600 x 32 episodes)")
    p.add_argument("--eval-every", type=int, default=5)
    p.add_argument("--train-questions", type=int, default=24)
    p.add_argument("--val-questions", type=int, default=12)
    p.add_argument("--test-questions", type=int, default=50)
    p.add_argument("--alignment-ablation", action="store_true")
    p.add_argument("--encoder", default="all-minilm-l6-v2")
    p.add_argument("--answer-llm", default="llamacpp:qwen2.5-coder-0.5b")
    p.add_argument("--module-llm", default="llamacpp:qwen2.5-coder-0.5b")
    args = p.parse_args(argv)
    if not DATA.exists():
        print(f"LoCoMo dev subset not found at {DATA}", file=sys.stderr)
        return 2
    body = latency(args) if args.part == "latency" else frontier(args)
    strategy = "" if args.part == "latency" or args.strategy == "implementation" else f"-{args.strategy}"
    write_section(DOC, f"router-{args.part}{strategy}", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
