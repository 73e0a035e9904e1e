"""``budgetmem train``: train a budget-tier router with PPO; re-run the command to resume."""

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


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("train", help="train a learned router (PPO, cost-aware reward) on a dataset's train split")
    p.add_argument("--cost-weight", type=float, default=0.0, metavar="L", help="lambda of the reward (default 0)")
    p.add_argument("--no-align", action="store_true", help="turn reward-scale alignment (Eq. 10) off: the ablation")
    add_training_args(p)
    add_executor_args(p)
    add_dataset_args(p, out_help="run directory (re-run the command to resume)",
                     seed_help="seed of the split, batches and tier sampling")  # fmt: skip
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from budgetmem.training.ppo import PPOSettings
    from budgetmem.training.train import TrainConfig, train_router

    settings = dataset_run_settings(args)
    ppo = PPOSettings().with_budget(args.steps, args.batch_size, args.lr)
    cfg = TrainConfig(
        dataset=args.dataset, data=Path(args.data), out=Path(args.out), strategy=args.strategy,
        cost_weight=args.cost_weight, ppo=ppo, align=not args.no_align, seed=args.seed,
        split_file=Path(args.split_file) if args.split_file else None, train_questions=args.train_questions,
        val_questions=args.val_questions, eval_every=args.eval_every, store=store_address(args.store),
        executor=executor_settings(args),
    )  # fmt: skip
    result = train_router(cfg, settings, progress=not args.no_progress)
    info = {"out": str(result.out), "steps": result.steps, "best_step": result.best_step, "best_validation": result.best_val,
            "seconds": round(result.seconds, 1), "cache_hit_rate": round(result.cache_hit_rate, 4),
            "router": str(result.out / "best.pt")}  # fmt: skip
    if args.json:
        print_json(info)
        return 0
    print(f"trained {result.steps} steps in {result.seconds / 60:.1f} min; best validation objective "
          f"{result.best_val:.4f} at step {result.best_step}; module-cache hit rate {100 * result.cache_hit_rate:.1f}%")  # fmt: skip
    print(f"router: {result.out / 'best.pt'} (use --policy router:{result.out / 'best.pt'}); log: {result.out / 'log.csv'}")
    return 0
