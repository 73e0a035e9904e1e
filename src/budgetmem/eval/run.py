"""One evaluation run: a dataset split through one system, one JSON line per question.

    budgetmem eval --dataset locomo --data locomo10.json --split test \
        --strategy implementation --policy mid --limit 50 --out runs/impl-mid

The run directory holds ``run.json`` (what was run: dataset, split, system, models,
settings), ``results.jsonl`` (a line per question: question, gold, answer, memory, trace,
metrics, cost), ``store.db`` unless ``--store`` names a shared one, and, at the end,
``summary.md`` / ``summary.csv`` / ``summary.json``. Re-running the same command resumes:
questions with a line are skipped. A directory that holds a different run is refused
rather than mixed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from budgetmem.errors import ConfigError, InputError
from budgetmem.eval.datasets import EvalItem, EvalSet, load_eval_set
from budgetmem.eval.judge import JUDGE_PROMPT_VERSION, Judge
from budgetmem.eval.metrics import best_f1, exact_match, locomo_f1
from budgetmem.eval.results import ResultsFile
from budgetmem.eval.splits import Split, make_split
from budgetmem.eval.summary import summarise, summary_csv, summary_markdown
from budgetmem.eval.systems import System, make_system
from budgetmem.ingest.ingest import ingest_histories
from budgetmem.llm import LLM, make_llm
from budgetmem.memory import BudgetMem
from budgetmem.pipeline.trace import QueryResult
from budgetmem.settings import Settings
from budgetmem.store import Store

__all__ = ["EvalConfig", "EvalRun", "run_eval", "score", "namespace_of", "dataset_settings"]


@dataclass(frozen=True)
class EvalConfig:
    dataset: str
    """locomo | longmemeval | hotpotqa | jsonl."""
    data: Path
    out: Path
    """The run directory."""
    split: str = "test"
    """train | val | test | all."""
    strategy: str = "implementation"
    policy: str = "mid"
    """low | mid | high | random | a per-module map | naive-rag | full-context | packed-rag."""
    limit: int | None = None
    """Evaluate only the first N questions of the split (file order)."""
    judge: str | None = None
    """Provider string of the LLM judge; None scores F1 / EM only."""
    store: Path | None = None
    """Store file; default ``out/store.db``. Runs may share one (ingest is idempotent)."""
    seed: int = 0
    """Seed of the split and of the random policy."""
    split_file: Path | None = None
    adversarial: bool = False
    """LoCoMo: score category 5 too."""
    workers: int = 1
    """Questions in flight at once (for API backends; 1 for the embedded models)."""
    cost_weight: float | None = None

    def store_path(self) -> Path:
        return self.store or self.out / "store.db"


def namespace_of(data: EvalSet, item: EvalItem) -> str:
    return f"{data.dataset}/{item.history}"


def score(data: EvalSet, item: EvalItem, prediction: str) -> dict[str, float]:
    """F1 and exact match: LoCoMo by its category rules, others against the best gold answer."""
    if data.dataset == "locomo" and item.code is not None:
        return {"f1": locomo_f1(prediction, item.answers[0], item.code), "em": exact_match(prediction, item.answers[0])}
    f1, em = best_f1(prediction, item.answers)
    return {"f1": f1, "em": em}


def _file_sha(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _identity(cfg: EvalConfig, settings: Settings, split: Split, system: System, data_sha: str) -> dict[str, Any]:
    """What must match for a directory's rows to belong to this run."""
    p = settings.pipeline
    identity = {
        "dataset": cfg.dataset, "data_sha256": data_sha, "split": split.to_dict(), "system": system.name,
        "strategy": cfg.strategy, "policy": cfg.policy, "seed": cfg.seed, "cost_weight": cfg.cost_weight,
        "adversarial": cfg.adversarial, "judge": cfg.judge, "judge_prompt": JUDGE_PROMPT_VERSION if cfg.judge else None,
        "answer_llm": p.answer_llm, "module_llm": p.module_llm, "ladder": list(p.ladder), "answer_style": p.answer_style,
        "encoder": settings.encoder.name, "chunk_tokens": settings.chunking.max_tokens,
        "retriever": settings.retrieval.retriever, "top_k": settings.retrieval.top_k, "filter_keep": p.filter_keep,
        "layout": p.layout, "n_ctx": settings.llm.n_ctx,
    }  # fmt: skip
    if system.name == "packed-rag":  # only this system reads them; other runs keep their identity
        identity["context"] = dataclasses.asdict(settings.context)
    return identity


@dataclass
class EvalRun:
    config: EvalConfig
    split: Split
    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    resumed: int
    """Rows found from an earlier, interrupted run."""
    seconds: float
    system: str
    cache: dict[str, int] = field(default_factory=dict)


def _row(data: EvalSet, item: EvalItem, split: Split, system: System, r: QueryResult, judged: Any) -> dict[str, Any]:
    metrics: dict[str, Any] = score(data, item, r.answer)
    metrics["judge"] = judged.score if judged is not None else None
    trace = r.to_dict()
    p_tok = sum(s.prompt_tokens for s in [*r.steps, r.answer_step])
    c_tok = sum(s.completion_tokens for s in [*r.steps, r.answer_step])
    return {
        "id": item.id, "history": item.history, "category": item.category, "split": split.part, "system": system.name,
        "question": item.question, "gold": list(item.answers), "question_date": item.question_date,
        "answer": r.answer, "memory": r.memory, "tiers": r.tiers, "metrics": metrics,
        "judge": judged.to_dict() if judged is not None else None,
        "cost": {"extraction_usd": r.extraction_usd, "answer_usd": r.answer_usd, "total_usd": r.total_usd,
                 "usd_paid": r.usd_paid, "prompt_tokens": p_tok, "completion_tokens": c_tok, "wall_s": r.wall_s},
        "parse_failures": sum(1 for s in r.steps if s.parse_status == "failed"),
        "trace": trace,
    }  # fmt: skip


def ingest_needed(store: Store, data: EvalSet, items: Iterable[EvalItem], settings: Settings, log: Callable[[str], None]) -> None:
    """Store the histories the questions need (only those: a test split stores a sixth of
    LoCoMo). Idempotent, so a shared store or a resumed run embeds nothing twice."""
    from budgetmem.encoder import Encoder

    needed = list(dict.fromkeys(i.history for i in items))
    todo = []
    for name in needed:
        h = data.history(name)
        ns = f"{data.dataset}/{name}"
        info = store.namespace(ns)
        if info is None or len(store.known_sessions(ns)) < len(h.sessions):
            todo.append((ns, h))
    if not todo:
        return
    encoder = Encoder(settings.encoder, settings.models_dir)
    for n, (ns, h) in enumerate(todo, start=1):
        report = ingest_histories(store, ns, [h], encoder, settings.chunking.max_tokens)
        log(f"stored {ns}: {report.chunks_added} chunks ({n}/{len(todo)})")


def run_eval(
    cfg: EvalConfig,
    settings: Settings,
    *,
    llms: Mapping[str, LLM] | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> EvalRun:
    """Run (or resume) ``cfg``. ``settings`` should already carry the dataset's answer style
    and chunk size (see :func:`dataset_settings`); ``llms`` overrides providers (tests)."""
    say = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    started = time.perf_counter()
    if cfg.workers < 1:
        raise ConfigError(f"workers must be >= 1, got {cfg.workers}")
    if cfg.limit is not None and cfg.limit < 1:
        raise ConfigError(f"--limit must be >= 1, got {cfg.limit}")
    data = load_eval_set(cfg.dataset, cfg.data, adversarial=cfg.adversarial)
    split = make_split(data, cfg.split, seed=cfg.seed, split_file=cfg.split_file)
    items = list(split.items[: cfg.limit] if cfg.limit else split.items)
    system = make_system(cfg.strategy, cfg.policy, seed=cfg.seed, cost_weight=cfg.cost_weight)
    judge_llm = None
    if cfg.judge:
        judge_llm = (llms or {}).get(cfg.judge) or make_llm(cfg.judge, settings=settings, models_dir=settings.models_dir)
    judge = Judge(judge_llm) if judge_llm is not None else None

    cfg.out.mkdir(parents=True, exist_ok=True)
    identity = _identity(cfg, settings, split, system, _file_sha(cfg.data))
    run_file = cfg.out / "run.json"
    if run_file.exists():
        before = json.loads(run_file.read_text(encoding="utf-8")).get("identity")
        if before != identity:
            diff = sorted(k for k in identity if (before or {}).get(k) != identity[k])
            raise InputError(
                f"{cfg.out} holds a different run (differs in: {', '.join(diff)})", hint="use a new --out directory"
            )
    # Written again on resume: a larger --limit extends the same run.
    run_file.write_text(
        json.dumps({"identity": identity, "data": str(cfg.data), "limit": cfg.limit}, indent=2) + "\n", encoding="utf-8"
    )

    results = ResultsFile(cfg.out / "results.jsonl")
    torn = results.repair()
    if torn:
        say(f"dropped a half-written last line ({torn} bytes) from an interrupted run")
    done = {r["id"]: r for r in results.rows()}
    todo = [i for i in items if i.id not in done]
    say(f"{data.dataset} {split.part} ({split.method}): {len(items)} questions, {len(items) - len(todo)} already done; "
        f"system {system.name}")  # fmt: skip

    store = Store(cfg.store_path())
    mems: dict[str, BudgetMem] = {}
    mems_lock = threading.Lock()
    rows = [done[i.id] for i in items if i.id in done]
    cache_totals = {"hits": 0, "misses": 0}
    try:
        ingest_needed(store, data, todo, settings, say)

        def mem_for(item: EvalItem) -> BudgetMem:
            ns = namespace_of(data, item)
            with mems_lock:
                if ns not in mems:
                    mems[ns] = BudgetMem(store, ns, settings=settings, strategy=cfg.strategy, llms=llms)
                return mems[ns]

        def one(item: EvalItem) -> dict[str, Any]:
            result = system.answer(mem_for(item), item)
            judged = judge.judge(item.question, item.answers, result.answer) if judge else None
            return _row(data, item, split, system, result, judged)

        bar = _progress(len(items), len(rows), progress)
        _update(bar, rows)
        if cfg.workers == 1:
            outcomes: Iterable[dict[str, Any]] = map(one, todo)
            for row in outcomes:
                _record(results, rows, row, cache_totals, bar)
        else:
            with ThreadPoolExecutor(max_workers=cfg.workers, thread_name_prefix="budgetmem-eval") as pool:
                for row in pool.map(one, todo):
                    _record(results, rows, row, cache_totals, bar)
        if bar is not None:
            bar.close()
    finally:
        for m in mems.values():
            m.close()
        store.close()

    summary = summarise(rows)
    title = f"{data.dataset} {split.part}: {system.name}"
    notes = _notes(cfg, settings, split, system, rows, time.perf_counter() - started)
    (cfg.out / "summary.md").write_text(summary_markdown(summary, title, notes), encoding="utf-8")
    (cfg.out / "summary.csv").write_text(summary_csv(summary), encoding="utf-8")
    (cfg.out / "summary.json").write_text(
        json.dumps({"title": title, "identity": identity, "summary": summary}, indent=2) + "\n", encoding="utf-8"
    )
    return EvalRun(cfg, split, rows, summary, len(done), time.perf_counter() - started, system.name, cache_totals)


def _record(results: ResultsFile, rows: list[dict[str, Any]], row: dict[str, Any], cache: dict[str, int], bar: Any) -> None:
    results.append(row)
    rows.append(row)
    for k in cache:
        cache[k] += int(row["trace"].get("cache", {}).get(k, 0))
    _update(bar, rows, step=1)


def _progress(total: int, initial: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="q", file=sys.stderr, dynamic_ncols=True, desc="eval")


def _update(bar: Any, rows: list[dict[str, Any]], step: int = 0) -> None:
    if bar is None:
        return
    if rows:
        f1 = sum(r["metrics"]["f1"] for r in rows) / len(rows)
        usd = sum(r["cost"]["total_usd"] for r in rows)
        bar.set_postfix_str(f"F1 {100 * f1:.1f}  cost ${usd:.4f}", refresh=False)
    if step:
        bar.update(step)
    else:
        bar.refresh()


def _notes(cfg: EvalConfig, settings: Settings, split: Split, system: System, rows: list[dict[str, Any]], secs: float) -> list[str]:
    p = settings.pipeline
    notes = [
        f"- data: `{cfg.data}` ({cfg.dataset}); split **{split.part}**: {split.method}; groups: {', '.join(split.groups)}",
        f"- system: `{system.name}`; answer model `{p.answer_llm}`; module LLM `{p.module_llm}`; "
        f"ladder {', '.join(p.ladder)}; encoder `{settings.encoder.name}`; {settings.retrieval.retriever} "
        f"top-{settings.retrieval.top_k}; chunks of {settings.chunking.max_tokens} tokens",
        f"- judge: `{cfg.judge}`" if cfg.judge else "- judge: none (F1 and exact match only)",
        f"- {len(rows)} questions; this invocation took {secs / 60:.1f} min",
        "- cost columns: paper-equivalent USD per question (extraction = the pipeline's modules; answer = the "
        "answer call); the judge's cost is separate and not part of the system's cost",
    ]
    truncated = [r["trace"]["context"] for r in rows if r["trace"].get("context", {}).get("truncated")]
    if truncated:
        share = sum(c["kept_tokens"] / max(1, c["history_tokens"]) for c in truncated) / len(truncated)
        notes.append(
            f"- full context: the history was truncated to the window on {len(truncated)} of {len(rows)} questions; "
            f"on those, {100 * share:.0f}% of the history's tokens were kept on average (the most recent)"
        )
    checks = [r["trace"]["context"]["citations"] for r in rows if "citations" in r["trace"].get("context", {})]
    if checks:
        valid = sum(1 for c in checks if c.get("all_valid"))
        notes.append(
            f"- citations: on {valid} of {len(checks)} questions every cited memory id was a live chunk in the "
            f"context (and at least one was cited); F1 is scored on the answer with the [CITE: id] markers removed"
        )
    return notes


def dataset_settings(settings: Settings, dataset: str, *, style: str | None = None, chunk_tokens: int | None = None) -> Settings:
    """The dataset's answer style and chunk size (routing paper Table 4), unless overridden."""
    from budgetmem.eval.datasets import DEFAULTS

    if dataset not in DEFAULTS:
        raise InputError(f"unknown dataset {dataset!r}", hint=f"use one of: {', '.join(DEFAULTS)}")
    d_style, d_chunk = DEFAULTS[dataset]
    return settings.replace(pipeline__answer_style=style or d_style, chunking__max_tokens=chunk_tokens or d_chunk)
