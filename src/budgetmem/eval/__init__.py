"""Evaluation: datasets and splits, metrics and the LLM judge, baselines, resumable runs, reports.

    from budgetmem.eval import EvalConfig, run_eval, dataset_settings
    settings = dataset_settings(Settings(), "locomo")
    run = run_eval(EvalConfig("locomo", Path("locomo10.json"), Path("runs/mid"), policy="mid", limit=50), settings)
"""

from budgetmem.eval.datasets import DATASETS, EvalItem, EvalSet, load_eval_set
from budgetmem.eval.judge import Judge, Judgement
from budgetmem.eval.metrics import best_f1, bootstrap_ci, exact_match, locomo_f1, token_f1
from budgetmem.eval.report import compare_table, load_run, plot_runs
from budgetmem.eval.run import EvalConfig, EvalRun, dataset_settings, run_eval, score
from budgetmem.eval.splits import Split, make_split
from budgetmem.eval.summary import summarise
from budgetmem.eval.systems import BASELINES, FullContext, NaiveRAG, PackedRAG, PipelineSystem, System, make_system

__all__ = [
    "BASELINES",
    "DATASETS",
    "EvalConfig",
    "EvalItem",
    "EvalRun",
    "EvalSet",
    "FullContext",
    "Judge",
    "Judgement",
    "NaiveRAG",
    "PackedRAG",
    "PipelineSystem",
    "Split",
    "System",
    "best_f1",
    "bootstrap_ci",
    "compare_table",
    "dataset_settings",
    "exact_match",
    "load_eval_set",
    "load_run",
    "locomo_f1",
    "make_split",
    "make_system",
    "plot_runs",
    "run_eval",
    "score",
    "summarise",
    "token_f1",
]
