"""One evaluation run: a dataset split through one system, one JSON line per question.

    budgetmem eval --dataset locomo --data locomo10.json --split test \
        --strategy implementation --policy mid --limit 50 --out runs/impl-mid [--executor ray --workers 4]

The run directory holds ``run.json`` (what was run: dataset, split, system, models,
settings), ``results.jsonl`` (a line per question: question, gold, answer, memory, trace,
metrics, cost), ``store.db`` unless ``--store`` names a shared one, and, at the end,
``summary.md`` / ``summary.csv`` / ``summary.json``. Re-running the same command resumes:
questions with a line are skipped, whichever executor wrote them. A directory that holds a
different run is refused rather than mixed.

Each question is one task on the harness's executor; the worker that answers it holds
the store, a ``BudgetMem`` per conversation, the system and the judge.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from budgetmem.errors import ConfigError
from budgetmem.eval.datasets import EvalItem, load_eval_set
from budgetmem.eval.judge import JUDGE_PROMPT_VERSION, Judge
from budgetmem.eval.scoring import namespace_of, score
from budgetmem.eval.splits import Split, make_split
from budgetmem.eval.summary import summarise, summary_csv, summary_markdown
from budgetmem.eval.systems import System, make_system
from budgetmem.executors import ExecutorSettings
from budgetmem.harness.harness import Harness
from budgetmem.harness.llms import LLMSource
from budgetmem.harness.progress import Log
from budgetmem.harness.rundir import write_atomic
from budgetmem.harness.workspace import Workspace, WorkspaceSpec
from budgetmem.pipeline.answers import ANSWER_PROMPT_VERSION
from budgetmem.pipeline.executor import IMPLEMENTATION_VERSION
from budgetmem.pipeline.trace import QueryResult
from budgetmem.settings import Settings

__all__ = ["EvalConfig", "EvalRun", "run_eval"]


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
    store: str | Path | None = None
    """Store file; default ``out/store.db``. Runs may share one (ingest is idempotent)."""
    seed: int = 0
    """Seed of the split and of the random policy."""
    split_file: Path | None = None
    adversarial: bool = False
    """LoCoMo: score category 5 too."""
    cost_weight: float | None = None
    target_usd: float | None = None
    """Target-cost mode: mean extraction USD per query, kept by each namespace's controller
    (state in the store, so a resumed run continues where its controller was)."""
    executor: ExecutorSettings = field(default_factory=ExecutorSettings)
    """Where the questions run (local, threads, ray); not part of the run's identity."""

    def store_path(self) -> str | Path:
        return self.store or self.out / "store.db"


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


# ----------------------------------------------------------------------------- worker side


@dataclass(frozen=True)
class EvalWorkerSpec:
    """What a worker needs to answer and score questions; picklable (Ray sends it)."""

    workspace: WorkspaceSpec
    dataset: str
    split_part: str
    strategy: str
    policy: str
    seed: int
    cost_weight: float | None
    judge: str | None
    target_usd: float | None = None

    def __call__(self) -> EvalWorker:
        return EvalWorker(self)


class EvalWorker:
    def __init__(self, spec: EvalWorkerSpec) -> None:
        self.spec = spec
        self.ws = Workspace(spec.workspace)
        self.system = make_system(spec.strategy, spec.policy, seed=spec.seed, cost_weight=spec.cost_weight,
                                  target_usd=spec.target_usd)  # fmt: skip
        self.judge = Judge(self.ws.llm(spec.judge)) if spec.judge else None

    def close(self) -> None:
        self.ws.close()


def answer_question(worker: EvalWorker, item: EvalItem, _shared: object = None) -> dict[str, Any]:
    """One question through the system (and the judge): its results row."""
    s = worker.spec
    result = worker.system.answer(worker.ws.mem(namespace_of(s.dataset, item)), item)
    judged = worker.judge.judge(item.question, item.answers, result.answer) if worker.judge else None
    return _row(s.dataset, item, s.split_part, worker.system.name, result, judged)


def _row(dataset: str, item: EvalItem, part: str, system: str, r: QueryResult, judged: Any) -> dict[str, Any]:
    metrics: dict[str, Any] = score(dataset, item, r.answer)
    metrics["judge"] = judged.score if judged is not None else None
    trace = r.to_dict()
    p_tok = sum(s.prompt_tokens for s in r.all_steps)  # every pass's steps (escalation runs two)
    c_tok = sum(s.completion_tokens for s in r.all_steps)
    return {
        "id": item.id, "history": item.history, "category": item.category, "split": part, "system": system,
        "question": item.question, "gold": list(item.answers), "question_date": item.question_date,
        "answer": r.answer, "memory": r.memory, "tiers": r.tiers, "metrics": metrics,
        "judge": judged.to_dict() if judged is not None else None,
        "cost": {"extraction_usd": r.extraction_usd, "answer_usd": r.answer_usd, "total_usd": r.total_usd,
                 "usd_paid": r.usd_paid, "prompt_tokens": p_tok, "completion_tokens": c_tok, "wall_s": r.wall_s},
        "parse_failures": sum(1 for s in r.steps if s.parse_status == "failed"),
        "trace": trace,
    }  # fmt: skip


# ----------------------------------------------------------------------------- driver side


def _file_sha(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _identity(cfg: EvalConfig, settings: Settings, split: Split, system: System, data_sha: str) -> dict[str, Any]:
    """What must match for a directory's rows to belong to this run (the executor need not)."""
    p = settings.pipeline
    identity = {
        "dataset": cfg.dataset, "data_sha256": data_sha, "split": split.to_dict(), "system": system.name,
        "strategy": cfg.strategy, "policy": cfg.policy, "seed": cfg.seed, "cost_weight": cfg.cost_weight,
        "adversarial": cfg.adversarial, "judge": cfg.judge, "judge_prompt": JUDGE_PROMPT_VERSION if cfg.judge else None,
        "answer_llm": p.answer_llm, "module_llm": p.module_llm, "ladder": list(p.ladder), "answer_style": p.answer_style,
        "encoder": settings.encoder.name, "chunk_tokens": settings.chunking.max_tokens,
        "retriever": settings.retrieval.retriever, "top_k": settings.retrieval.top_k, "filter_keep": p.filter_keep,
        "filter_tokens": p.filter_tokens, "layout": p.layout, "n_ctx": settings.llm.n_ctx,
        # Rows written by an older implementation tier, or an older answer contract (prompts,
        # grammars, shaping rules), must not mix with this one's on resume.
        "implementation": IMPLEMENTATION_VERSION, "answer_prompt": ANSWER_PROMPT_VERSION,
    }  # fmt: skip
    if system.name == "packed-rag":  # only this system reads them; other runs keep their identity
        identity["context"] = dataclasses.asdict(settings.context)
    spec = cfg.policy.strip().lower()
    named = re.search(r"(?:^|>|escalate:)rules(?::(?P<path>[^>@]+))?(?=$|>|@)", cfg.policy.strip(), re.I)
    if named:
        # A refitted rules file is a different system: the run's identity names the file's content.
        from budgetmem.router.rules import default_rules_path

        chosen = named["path"] or (str(settings.routing.rules) if settings.routing.rules else None)
        identity["rules_sha256"] = _file_sha(Path(chosen) if chosen else default_rules_path())
    if spec.startswith("escalate:"):
        from budgetmem.router.escalate import default_calibration_path

        cal = Path(settings.routing.calibration) if settings.routing.calibration else default_calibration_path()
        identity["calibration_sha256"] = _file_sha(cal)
    if cfg.target_usd is not None:  # only then, so other runs keep their identity
        identity["target_eta"] = settings.routing.target_eta
        identity["target_usd"] = cfg.target_usd
    if "random(" in system.name:
        # Random tiers are drawn per question since executors came in; a directory of rows
        # drawn from one stream (older runs) is a different run.
        identity["random_draws"] = "per-question"
    return identity


def run_eval(
    cfg: EvalConfig, settings: Settings, *, llms: LLMSource = None, progress: bool = True, log: Log | None = None
) -> EvalRun:
    """Run (or resume) ``cfg``. ``settings`` should already carry the dataset's answer style
    and chunk size (see :func:`~budgetmem.eval.dataset_settings`); ``llms`` overrides
    providers (a mapping for in-process executors, a picklable factory for any)."""
    started = time.perf_counter()
    if cfg.limit is not None and cfg.limit < 1:
        raise ConfigError(f"--limit must be >= 1, got {cfg.limit}")
    harness = Harness(cfg.out, executor=cfg.executor, progress=progress, log=log)
    data = load_eval_set(cfg.dataset, cfg.data, adversarial=cfg.adversarial)
    split = make_split(data, cfg.split, seed=cfg.seed, split_file=cfg.split_file)
    items = list(split.items[: cfg.limit] if cfg.limit else split.items)
    system = make_system(cfg.strategy, cfg.policy, seed=cfg.seed, cost_weight=cfg.cost_weight,
                         target_usd=cfg.target_usd)  # bad policies fail here  # fmt: skip

    identity = _identity(cfg, settings, split, system, _file_sha(cfg.data))
    # Written again on resume: a larger --limit extends the same run.
    harness.run_dir.claim(identity, file="run.json", extra={"data": str(cfg.data), "limit": cfg.limit})
    results, done, torn = harness.run_dir.results()
    if torn:
        harness.say(f"dropped a half-written last line ({torn} bytes) from an interrupted run")
    todo = [i for i in items if i.id not in done]
    harness.say(f"{data.dataset} {split.part} ({split.method}): {len(items)} questions, {len(items) - len(todo)} already "
                f"done; system {system.name}; executor {cfg.executor.describe()}")  # fmt: skip

    rows = [done[i.id] for i in items if i.id in done]
    cache_totals = {"hits": 0, "misses": 0}
    if todo:
        harness.ingest(cfg.store_path(), data, todo, settings)
        spec = EvalWorkerSpec(
            WorkspaceSpec(settings, cfg.store_path(), cfg.strategy, llms, (cfg.judge,) if cfg.judge else ()),
            data.dataset, split.part, cfg.strategy, cfg.policy, cfg.seed, cfg.cost_weight, cfg.judge, cfg.target_usd,
        )  # fmt: skip
        with harness.progress(len(items), len(rows), unit="q", desc="eval") as bar, harness.workers(spec) as pool:
            bar.update(0, _postfix(rows))
            for row in pool.map(answer_question, todo):
                results.append(row)  # in question order, so a killed run has written a prefix
                rows.append(row)
                for k in cache_totals:
                    cache_totals[k] += int(row["trace"].get("cache", {}).get(k, 0))
                bar.update(1, _postfix(rows))

    summary = summarise(rows)
    title = f"{data.dataset} {split.part}: {system.name}"
    notes = _notes(cfg, settings, split, system, rows, time.perf_counter() - started)
    write_atomic(cfg.out / "summary.md", summary_markdown(summary, title, notes))
    write_atomic(cfg.out / "summary.csv", summary_csv(summary))
    write_atomic(cfg.out / "summary.json", json.dumps({"title": title, "identity": identity, "summary": summary}, indent=2) + "\n")
    return EvalRun(cfg, split, rows, summary, len(done), time.perf_counter() - started, system.name, cache_totals)


def _postfix(rows: list[dict[str, Any]]) -> str | None:
    if not rows:
        return None
    f1 = sum(r["metrics"]["f1"] for r in rows) / len(rows)
    usd = sum(r["cost"]["total_usd"] for r in rows)
    return f"F1 {100 * f1:.1f}  cost ${usd:.4f}"


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
