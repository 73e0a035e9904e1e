"""``budgetmem frontier``: a router per cost weight, evaluated beside the baselines; table + plots."""

from __future__ import annotations

import argparse
from pathlib import Path

from budgetmem.cli.common import (
    store_address,
    add_dataset_args,
    add_executor_args,
    add_training_args,
    dataset_run_settings,
    executor_settings,
    print_json,
)
from budgetmem.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("frontier", help="train (or load) a router per cost weight and draw the performance-cost frontier")
    p.add_argument("--cost-weights", default="0,0.05,0.1,0.3,0.5,0.7,0.9", metavar="L,L,...")
    p.add_argument("--baselines", default="low,mid,high,naive-rag", metavar="P,P,...",
                   help="fixed policies and baselines evaluated on the same questions")  # fmt: skip
    p.add_argument("--alignment-ablation", action="store_true", help="also train every non-zero weight without Eq. 10 (Fig. 3)")
    p.add_argument("--test-questions", type=int, metavar="N", help="evaluate on the first N test questions")
    add_training_args(p)
    add_executor_args(p)
    add_dataset_args(p, out_help="frontier directory (re-run the command to resume)",
                     seed_help="seed of the split, batches and tier sampling")  # fmt: skip
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from budgetmem.training.frontier import FrontierConfig, frontier_markdown, run_frontier
    from budgetmem.training.ppo import PPOSettings

    try:
        weights = tuple(float(x) for x in args.cost_weights.split(",") if x.strip())
    except ValueError:
        raise ConfigError(f"--cost-weights must be numbers, got {args.cost_weights!r}") from None
    settings = dataset_run_settings(args)
    cfg = FrontierConfig(
        dataset=args.dataset, data=Path(args.data), out=Path(args.out), strategy=args.strategy, cost_weights=weights,
        baselines=tuple(b.strip() for b in args.baselines.split(",") if b.strip()),
        ppo=PPOSettings().with_budget(args.steps, args.batch_size, args.lr), train_questions=args.train_questions,
        val_questions=args.val_questions, eval_every=args.eval_every, test_questions=args.test_questions,
        align_ablation=args.alignment_ablation, seed=args.seed, split_file=Path(args.split_file) if args.split_file else None,
        store=store_address(args.store),
        executor=executor_settings(args),
    )  # fmt: skip
    points = run_frontier(cfg, settings, progress=not args.no_progress)
    if args.json:
        print_json({"out": str(cfg.out), "points": [p.__dict__ for p in points]})
        return 0
    print(frontier_markdown(points))
    print(f"\nplots: {cfg.out / 'frontier.png'}, {cfg.out / 'tiers.png'}" + (f", {cfg.out / 'alignment.png'}" if cfg.align_ablation else ""))
    return 0
