"""``budgetmem eval``: run a dataset split through one system; resumable, one line per question."""

from __future__ import annotations

import argparse
from pathlib import Path

from budgetmem.cli.common import store_address, add_dataset_args, add_executor_args, dataset_run_settings, executor_settings, print_json


LARGE = "<ladder large>"
"""``--judge`` without a value: the large rung of the configured ladder."""


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from budgetmem.eval.splits import PARTS

    p = sub.add_parser("eval", help="evaluate a policy or baseline on LoCoMo, LongMemEval, HotpotQA or your JSONL")
    p.add_argument("--split", default="test", choices=PARTS, help="which part to evaluate (default test)")
    p.add_argument(
        "--policy", default="mid",
        help="low | mid | high | random | a per-module map | router:PATH | rules[:PATH] | escalate:CHEAP>COSTLY@T | "
        "naive-rag | full-context | packed-rag (default mid)",
    )  # fmt: skip
    p.add_argument("--limit", type=int, metavar="N", help="only the first N questions of the split")
    p.add_argument(
        "--judge", nargs="?", const=LARGE, metavar="PROVIDER",
        help="score answers with an LLM judge too; alone: the ladder's large model (embedded: qwen2.5-coder-1.5b)",
    )  # fmt: skip
    p.add_argument("--adversarial", action="store_true", help="LoCoMo: also score category 5")
    p.add_argument("--cost-weight", type=float, metavar="L", help="performance-cost knob handed to the policy")
    p.add_argument("--target-usd", type=float, metavar="X",
                   help="target-cost mode: mean extraction USD per question, kept per namespace (router:DIR or escalate:)")
    add_executor_args(p)
    add_dataset_args(p, out_help="run directory (re-run the command to resume)",
                     seed_help="seed of the split and of the random policy")  # fmt: skip
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from budgetmem.harness import EvalConfig, run_eval
    from budgetmem.eval.summary import summary_markdown

    settings = dataset_run_settings(args)
    judge = settings.pipeline.ladder[2] if args.judge == LARGE else args.judge
    cfg = EvalConfig(
        dataset=args.dataset, data=Path(args.data), out=Path(args.out), split=args.split, strategy=args.strategy,
        policy=args.policy, limit=args.limit, judge=judge, store=store_address(args.store),
        seed=args.seed, split_file=Path(args.split_file) if args.split_file else None, adversarial=args.adversarial,
        cost_weight=args.cost_weight, target_usd=args.target_usd, executor=executor_settings(args),
    )  # fmt: skip
    result = run_eval(cfg, settings, progress=not args.no_progress)
    if args.json:
        print_json({"out": str(cfg.out), "system": result.system, "split": result.split.to_dict(), "summary": result.summary})
        return 0
    print(summary_markdown(result.summary, f"{args.dataset} {result.split.part}: {result.system}"))
    print(f"rows: {cfg.out / 'results.jsonl'} ({len(result.rows)} questions, {result.resumed} from an earlier run)")
    return 0
