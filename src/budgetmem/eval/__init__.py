"""Evaluation library: datasets and splits, metrics and the LLM judge, baselines, run reports.

Runs themselves (resumable run directories, executors) are the run harness's:

    from budgetmem.eval import dataset_settings
    from budgetmem.harness import EvalConfig, run_eval
    settings = dataset_settings(Settings(), "locomo")
    run = run_eval(EvalConfig("locomo", Path("locomo10.json"), Path("runs/mid"), policy="mid", limit=50), settings)
"""

from budgetmem.eval.datasets import DATASETS, EvalItem, EvalSet, dataset_settings, load_eval_set
from budgetmem.eval.judge import Judge, Judgement
from budgetmem.eval.metrics import best_f1, bootstrap_ci, exact_match, locomo_f1, token_f1
from budgetmem.eval.report import compare_table, load_run, plot_runs
from budgetmem.eval.scoring import namespace_of, score
from budgetmem.eval.splits import Split, make_split
from budgetmem.eval.summary import summarise
from budgetmem.eval.systems import BASELINES, FullContext, NaiveRAG, PackedRAG, PipelineSystem, System, make_system

__all__ = [
    "BASELINES",
    "DATASETS",
    "EvalItem",
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
    "namespace_of",
    "plot_runs",
    "score",
    "summarise",
    "token_f1",
]
