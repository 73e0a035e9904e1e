"""The run harness: run directories with identity and resume, the store and its namespaces,
scoring, progress and logging, and the executor (local, threads, Ray) that the work runs
on. Evaluation runs here (:func:`run_eval`); router training and the frontier
(:mod:`budgetmem.training`) and the benchmarks build on the same pieces."""

from budgetmem.executors import ExecutorSettings
from budgetmem.harness.evaluate import EvalConfig, EvalRun, run_eval
from budgetmem.harness.harness import Harness
from budgetmem.harness.llms import LLMFactory, LLMSource
from budgetmem.harness.rundir import RunDir
from budgetmem.harness.workspace import Workspace, WorkspaceSpec, ingest_needed

__all__ = [
    "EvalConfig",
    "EvalRun",
    "ExecutorSettings",
    "Harness",
    "LLMFactory",
    "LLMSource",
    "RunDir",
    "Workspace",
    "WorkspaceSpec",
    "ingest_needed",
    "run_eval",
]
