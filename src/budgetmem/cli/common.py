"""Helpers shared by the CLI commands: settings from flags, JSON output."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from budgetmem.errors import ConfigError

from budgetmem.settings import Settings, load_settings

if TYPE_CHECKING:
    from budgetmem.executors import ExecutorSettings

__all__ = [
    "settings_from",
    "add_store_option",
    "resolve_store",
    "store_address",
    "print_json",
    "add_store_args",
    "add_pipeline_args",
    "pipeline_settings",
    "add_dataset_args",
    "add_training_args",
    "dataset_run_settings",
    "add_executor_args",
    "executor_settings",
]


def settings_from(args: argparse.Namespace, **overrides: Any) -> Settings:
    settings = load_settings(args.config)
    if args.models_dir:
        overrides["models_dir"] = Path(args.models_dir)
    return settings.replace(**overrides)


STORE_HELP = "the store: a SQLite file, or postgresql://user@host:port/db (default $BUDGETMEM_STORE, or store in --config)"


def add_store_option(p: argparse.ArgumentParser, *, required: bool = True, help: str = STORE_HELP) -> None:
    """``--store``. When it is not given, :func:`resolve_store` fills it from $BUDGETMEM_STORE or
    the settings file; a command that needs a store and finds none is a usage error."""
    p.add_argument("--store", metavar="STORE", help=help)
    p.set_defaults(store_required=required)


def resolve_store(args: argparse.Namespace) -> None:
    """Fill ``args.store`` from $BUDGETMEM_STORE, then the settings file's ``store``."""
    import os

    from budgetmem.store import ENV_STORE

    if not hasattr(args, "store") or args.store:
        return
    args.store = os.environ.get(ENV_STORE) or load_settings(args.config).store
    if args.store is None and getattr(args, "store_required", False):
        raise ConfigError("no store given", hint=f"pass --store FILE|postgresql://..., set ${ENV_STORE}, or store in --config")
    if args.store is not None:
        args.store = str(args.store)


def store_address(value: str | None) -> str | Path | None:
    """A --store value as the harness takes it: a URL stays a string, a file is a Path."""
    from budgetmem.store import is_postgres

    if value is None:
        return None
    return value if is_postgres(value) else Path(value)


def add_store_args(p: argparse.ArgumentParser) -> None:
    add_store_option(p)
    p.add_argument("--namespace", required=True, metavar="NAME", help="whose memory: a user or agent id")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


def add_pipeline_args(p: argparse.ArgumentParser) -> None:
    """The flags that choose models, retrieval and pipeline execution (ask, eval)."""
    from budgetmem.retrieval import RETRIEVERS

    p.add_argument("-k", "--top-k", type=int, metavar="K", help="candidate chunks retrieved (default 5)")
    p.add_argument("--retriever", choices=RETRIEVERS, help="dense, bm25 or hybrid (default hybrid)")
    p.add_argument("--answer-llm", metavar="PROVIDER", help="answer model (default llamacpp:qwen2.5-coder-1.5b; "
                   "`make demo` prepares it, and a missing embedded model is prepared on first use)")
    p.add_argument("--module-llm", metavar="PROVIDER",
                   help="LLM of implementation HIGH and reasoning tiers (default llamacpp:qwen2.5-coder-1.5b)")
    p.add_argument("--ladder", metavar="S,M,L", help="three providers for capacity tiers, small to large")
    p.add_argument("--style", choices=["locomo", "longmemeval", "hotpotqa", "plain"], help="answer prompt style")
    p.add_argument("--layout", choices=["prefix-first", "instruction-first"], help="module prompt layout")
    p.add_argument("--sequential", action="store_true", help="run the three extractors one after another")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the module cache")


def pipeline_settings(args: argparse.Namespace, **overrides: Any) -> Settings:
    """Settings from --config, then the flags of :func:`add_pipeline_args`, then ``overrides``."""
    import dataclasses

    ladder = tuple(x.strip() for x in args.ladder.split(",")) if args.ladder else None
    if ladder is not None and len(ladder) != 3:
        raise ConfigError(f"--ladder needs three providers, got {len(ladder)}", hint="e.g. --ladder A,B,C")
    settings = settings_from(
        args,
        pipeline__answer_llm=args.answer_llm,
        pipeline__module_llm=args.module_llm,
        pipeline__ladder=ladder,
        pipeline__answer_style=args.style,
        pipeline__layout=args.layout,
        pipeline__concurrent=False if args.sequential else None,
        retrieval__top_k=args.top_k,
        retrieval__retriever=args.retriever,
        **overrides,
    )
    if args.no_cache:  # replace() skips None values, so set it directly
        settings = dataclasses.replace(settings, pipeline=dataclasses.replace(settings.pipeline, cache_path=None))
    return settings


def add_dataset_args(p: argparse.ArgumentParser, *, out_help: str, seed_help: str) -> None:
    """The flags of commands that run a dataset (eval, train, frontier); then the pipeline
    flags and --no-progress / --json. Each command adds its own flags before calling this."""
    from budgetmem.eval.datasets import DATASETS
    from budgetmem.pipeline.types import STRATEGIES

    p.add_argument("--dataset", required=True, choices=sorted(DATASETS))
    p.add_argument("--data", required=True, metavar="PATH", help="the dataset file")
    p.add_argument("--out", required=True, metavar="DIR", help=out_help)
    p.add_argument("--strategy", default="implementation", choices=STRATEGIES)
    p.add_argument("--seed", type=int, default=0, help=seed_help)
    p.add_argument("--split-file", metavar="FILE", help='JSON {"train": [...], "val": [...], "test": [...]}')
    add_store_option(p, required=False, help="store to share between runs: a file or postgresql://... (default DIR/store.db)")
    p.add_argument("--chunk-tokens", type=int, metavar="N", help="chunk size (default per dataset: 256, HotpotQA 1024)")
    p.add_argument("--encoder", metavar="NAME", help="sentence encoder: retrieval, MID tiers and the router's state")
    add_pipeline_args(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def add_training_args(p: argparse.ArgumentParser) -> None:
    """Router training budget (train, frontier)."""
    p.add_argument("--steps", type=int, help="PPO updates per router (default 600)")
    p.add_argument("--batch-size", type=int, help="episodes per update (default 32)")
    p.add_argument("--lr", type=float, help="Adam learning rate (default 3e-4, the paper's; a short run may need more)")
    p.add_argument("--eval-every", type=int, default=10, metavar="N", help="validate every N steps (default 10)")
    p.add_argument("--train-questions", type=int, metavar="N", help="only the first N training questions")
    p.add_argument("--val-questions", type=int, metavar="N", help="only the first N validation questions")


def dataset_run_settings(args: argparse.Namespace) -> Settings:
    """Settings for a dataset run: config file, pipeline flags, then the dataset's defaults."""
    from budgetmem.eval.datasets import dataset_settings

    settings = pipeline_settings(args, encoder__name=args.encoder)
    return dataset_settings(settings, args.dataset, style=args.style, chunk_tokens=args.chunk_tokens)


def add_executor_args(p: argparse.ArgumentParser) -> None:
    """Where the questions / training episodes run (eval, train, frontier)."""
    from budgetmem.executors import KINDS

    p.add_argument("--executor", choices=KINDS,
                   help="local (one at a time; the default), threads (N in flight in this process: API backends) or "
                        "ray (N Ray actors, each with its own models; pip install 'budgetmem[ray]'). "
                        "--workers above 1 alone means threads")  # fmt: skip
    p.add_argument("--workers", type=int, default=1, metavar="N", help="tasks in flight (threads) or Ray actors (default 1)")
    p.add_argument("--ray-address", metavar="A", help="join this Ray cluster (default: start a local Ray)")


def executor_settings(args: argparse.Namespace) -> ExecutorSettings:
    from budgetmem.executors import ExecutorSettings

    kind = args.executor or ("threads" if args.workers > 1 else "local")
    return ExecutorSettings(kind=kind, workers=args.workers, ray_address=args.ray_address)
