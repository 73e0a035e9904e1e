"""Train a budget-tier router with PPO on the cost-aware reward (routing paper §4.3, App. A.3).

    budgetmem train --dataset locomo --data locomo10.json --strategy implementation \
        --cost-weight 0.1 --out runs/router-0.1 [--executor ray --workers 4]

Read top to bottom, as CleanRL's ppo.py: one frozen config; the data and its train /
validation split; the run directory; the executor's workers; the agent (network,
optimiser, reward windows, restored from ``last.pt`` after an interruption); then per
step: **rollout** (a batch of episodes, each one query through the routed pipeline with
tiers sampled from the router, run on the executor and returned as data), **reward**
(Eq. 7-10), **advantage**, **update** (PPO epochs, Eq. 12-13), **log** (a line per step in
``log.csv``, a line per epoch in ``ppo.csv``); every ``eval_every`` steps a greedy pass
over the validation questions keeps the best router as ``best.pt`` (selected on held-out
questions, never on training reward). Module results come from the pipeline's on-disk
cache, shared by every worker, so a revisited question costs no new LLM calls.

Writes ``train.json`` (the run's identity), ``log.csv`` (per step: reward, F1, cost,
alpha, the last epoch's losses, entropy, KL, per-module tier ratios, cache hit rate, wall
time), ``ppo.csv`` (every epoch's statistics), ``val.csv``, ``last.pt`` (for resuming),
``best.pt`` (the router to use) and ``curves.png``. For a fixed seed every executor gives
the same episodes and so the same updates.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from budgetmem.encoder import Encoder
from budgetmem.errors import ConfigError, InputError
from budgetmem.eval.datasets import load_eval_set
from budgetmem.eval.splits import make_split
from budgetmem.executors import ExecutorSettings
from budgetmem.harness import Harness, LLMSource, WorkspaceSpec
from budgetmem.harness.progress import Log
from budgetmem.harness.rundir import append_csv, read_csv, trim_csv
from budgetmem.pipeline.stages import MODULES
from budgetmem.pipeline.types import Tier
from budgetmem.router.network import RouterNet
from budgetmem.router.policy import save_router
from budgetmem.settings import Settings
from budgetmem.training.buffer import Episode, RolloutBuffer
from budgetmem.training.episodes import EpisodeTask, EpisodeWorkerSpec, Weights, describe_modules, episode_seed, run_episode
from budgetmem.training.ppo import PPOSettings, advantages, ppo_update
from budgetmem.training.reward import CostReward, RewardSettings

__all__ = ["TrainConfig", "TrainResult", "train_router", "LOG_FIELDS", "PPO_FIELDS", "VAL_FIELDS"]


@dataclass(frozen=True)
class TrainConfig:
    dataset: str
    data: Path
    out: Path
    strategy: str = "implementation"
    cost_weight: float = 0.0
    """lambda of Eq. 7."""
    ppo: PPOSettings = field(default_factory=PPOSettings)
    align: bool = True
    """Reward-scale alignment (Eq. 10); False for the ablation."""
    reward_window: int = 512
    hidden: int = 256
    """Width of the router's two hidden layers."""
    seed: int = 0
    """Seed of the split, the batches and the tier sampling."""
    split_file: Path | None = None
    train_questions: int | None = None
    """Use only the first N training questions (a smaller pool revisits the cache more)."""
    val_questions: int | None = None
    eval_every: int = 10
    """Validate (and maybe keep best.pt) every N steps, and after the last."""
    store: str | Path | None = None
    executor: ExecutorSettings = field(default_factory=ExecutorSettings)
    """Where the episodes run; not part of the run's identity (every executor gives the same run)."""

    def store_path(self) -> str | Path:
        return self.store or self.out / "store.db"


@dataclass
class TrainResult:
    out: Path
    steps: int
    best_step: int | None
    best_val: float
    seconds: float
    cache_hit_rate: float


TIER_FIELDS = [f"{m}_{t.name.lower()}" for m in MODULES for t in Tier]
LOG_FIELDS = [
    "step", "reward", "f1", "cost_usd", "r_cost", "alpha", "loss", "policy_loss", "value_loss", "entropy",
    "approx_kl", "clip_fraction", *TIER_FIELDS, "cache_hit_rate", "decision_ms", "wall_s",
]  # fmt: skip
PPO_FIELDS = ["step", "epoch", "loss", "policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction"]
VAL_FIELDS = ["step", "objective", "f1", "cost_usd", "r_cost", *TIER_FIELDS]


def _identity(cfg: TrainConfig, settings: Settings) -> dict[str, Any]:
    return {
        "dataset": cfg.dataset, "data": str(cfg.data), "strategy": cfg.strategy, "cost_weight": cfg.cost_weight,
        "align": cfg.align, "reward_window": cfg.reward_window, "hidden": cfg.hidden, "seed": cfg.seed,
        "split_file": str(cfg.split_file) if cfg.split_file else None, "train_questions": cfg.train_questions,
        "val_questions": cfg.val_questions,
        # steps is left out: asking for more steps extends the same run
        "ppo": {k: v for k, v in asdict(cfg.ppo).items() if k != "steps"}, "encoder": settings.encoder.name,
        "answer_llm": settings.pipeline.answer_llm, "module_llm": settings.pipeline.module_llm,
        "ladder": list(settings.pipeline.ladder), "top_k": settings.retrieval.top_k,
    }  # fmt: skip


def _tier_ratios(episodes: list[Episode]) -> dict[str, float]:
    """Share of LOW / MID / HIGH per module over a batch (paper Fig. 4's quantity)."""
    out = {}
    for k, m in enumerate(MODULES):
        actions = [e.decisions[k].action for e in episodes if len(e.decisions) > k]
        for t in Tier:
            out[f"{m}_{t.name.lower()}"] = sum(a == t for a in actions) / max(1, len(actions))
    return out


def train_router(
    cfg: TrainConfig, settings: Settings, *, llms: LLMSource = None, progress: bool = True, log: Log | None = None
) -> TrainResult:
    started = time.perf_counter()
    if cfg.ppo.batch_size < 2:
        raise ConfigError("batch_size must be at least 2 (advantages are standardised over the batch)")
    harness = Harness(cfg.out, executor=cfg.executor, progress=progress, log=log)
    say = harness.say

    # -- data: train and validation parts of one split (conversation-level for LoCoMo)
    data = load_eval_set(cfg.dataset, cfg.data)
    train_items = list(make_split(data, "train", seed=cfg.seed, split_file=cfg.split_file).items)
    val_items = list(make_split(data, "val", seed=cfg.seed, split_file=cfg.split_file).items)
    train_items = train_items[: cfg.train_questions] if cfg.train_questions else train_items
    val_items = val_items[: cfg.val_questions] if cfg.val_questions else val_items
    if len(train_items) < 2 or not val_items:
        raise InputError(f"{cfg.data} gives {len(train_items)} training and {len(val_items)} validation questions",
                         hint="training needs at least 2 and 1")  # fmt: skip

    # -- the run directory: the same run resumes, a different one is refused
    identity = _identity(cfg, settings)
    harness.run_dir.claim(identity, file="train.json", what="training run")
    meta = {**identity, "training_questions": len(train_items), "validation_questions": len(val_items)}

    # -- the agent: router, optimiser, reward windows, batch RNG; restored from last.pt
    torch.manual_seed(cfg.seed)
    net = RouterNet(Encoder(settings.encoder, settings.models_dir).dim, len(MODULES), cfg.hidden)
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.ppo.lr)
    reward = CostReward(RewardSettings(cfg.cost_weight, cfg.reward_window, cfg.align))
    rng = random.Random(cfg.seed)
    step, best_step, best_val = 0, None, float("-inf")
    last = cfg.out / "last.pt"
    if last.exists():
        state = torch.load(last, map_location="cpu", weights_only=False)  # our own file: optimiser + RNG state
        net.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        reward.load_state_dict(state["reward"])
        rng.setstate(state["rng"])
        step, best_step, best_val = state["step"], state["best_step"], state["best_val"]
        say(f"resuming after step {step} (best validation {best_val:.4f} at step {best_step})")
    for name, fields in (("log.csv", LOG_FIELDS), ("ppo.csv", PPO_FIELDS), ("val.csv", VAL_FIELDS)):
        trim_csv(cfg.out / name, fields, step)
    if step >= cfg.ppo.steps:
        return TrainResult(cfg.out, step, best_step, best_val, time.perf_counter() - started, 0.0)

    # -- the workers: each holds the store, the pipeline's models and a copy of the router
    harness.ingest(cfg.store_path(), data, [*train_items, *val_items], settings)
    spec = EpisodeWorkerSpec(WorkspaceSpec(settings, cfg.store_path(), cfg.strategy, llms), data.dataset,
                             cfg.cost_weight, cfg.hidden)  # fmt: skip
    say(f"training on {len(train_items)} questions, validating on {len(val_items)}; executor {cfg.executor.describe()}")
    hits = misses = 0
    with harness.workers(spec) as pool, harness.progress(cfg.ppo.steps, step, unit="step", desc="train") as bar:
        if step == 0:
            # Descriptors start at the encoder's embeddings of the module descriptions.
            with torch.no_grad():
                net.descriptors.copy_(torch.tensor(next(pool.map(describe_modules, [None]))))

        def weights() -> Weights:
            return Weights(step, {k: v.detach().clone() for k, v in net.state_dict().items()})

        while step < cfg.ppo.steps:
            t0 = time.perf_counter()
            # -- rollout: the batch's episodes run on the executor and come back as data
            batch = rng.sample(train_items, min(cfg.ppo.batch_size, len(train_items)))
            tasks = [EpisodeTask(item, sample=True, seed=episode_seed(cfg.seed, step, i)) for i, item in enumerate(batch)]
            episodes: list[Episode] = list(pool.map(run_episode, tasks, weights()))
            buffer = RolloutBuffer.from_episodes(episodes)

            # -- reward: r = r_task + lambda * alpha * r_cost (Eq. 7-10)
            parts = reward([e.f1 for e in episodes], [e.cost_usd for e in episodes])

            # -- advantage: A = r - mean_k V_old(s_k), standardised over the batch
            adv = advantages(buffer, parts.total, cfg.ppo.normalise_advantages)

            # -- update: PPO epochs over the batch (Eq. 12-13)
            epochs = ppo_update(net, optimizer, buffer, parts.total, adv, cfg.ppo)
            step += 1

            # -- log: one line per step, one per epoch
            h = sum(e.cache_hits for e in episodes)
            looked_up = h + sum(e.cache_misses for e in episodes)
            hits, misses = hits + h, misses + looked_up - h
            decisions = [d.seconds for e in episodes for d in e.decisions]
            row = {
                "step": step, "reward": float(np.mean(parts.total)), "f1": float(np.mean(parts.task)),
                "cost_usd": float(np.mean(parts.cost_raw)), "r_cost": float(np.mean(parts.cost)), "alpha": parts.alpha,
                **epochs[-1], **_tier_ratios(episodes), "cache_hit_rate": h / looked_up if looked_up else 0.0,
                "decision_ms": 1e3 * float(np.mean(decisions)), "wall_s": time.perf_counter() - t0,
            }  # fmt: skip
            append_csv(cfg.out / "log.csv", LOG_FIELDS, row)
            for k, stats in enumerate(epochs, start=1):
                append_csv(cfg.out / "ppo.csv", PPO_FIELDS, {"step": step, "epoch": k, **stats})
            bar.update(1, f"reward {row['reward']:.3f} F1 {100 * row['f1']:.1f} ${row['cost_usd']:.5f}")

            # -- model selection on the validation questions (greedy tiers)
            if step % cfg.eval_every == 0 or step == cfg.ppo.steps:
                val_eps = list(pool.map(run_episode, [EpisodeTask(item, sample=False) for item in val_items], weights()))
                f1 = [e.f1 for e in val_eps]
                costs = [e.cost_usd for e in val_eps]
                r_cost = [reward.normalise(c) for c in costs]  # against the training window, which is not updated
                alpha = reward.alpha()
                objective = float(np.mean([t + cfg.cost_weight * alpha * c for t, c in zip(f1, r_cost)]))
                val = {"step": step, "objective": objective, "f1": float(np.mean(f1)), "cost_usd": float(np.mean(costs)),
                       "r_cost": float(np.mean(r_cost)), **_tier_ratios(val_eps)}  # fmt: skip
                append_csv(cfg.out / "val.csv", VAL_FIELDS, val)
                if objective > best_val:
                    best_step, best_val = step, objective
                    save_router(cfg.out / "best.pt", net, {**meta, "step": step, "validation": val})
                say(f"step {step}: validation objective {objective:.4f} (F1 {100 * val['f1']:.1f}, "
                    f"${val['cost_usd']:.6f}/q); best at step {best_step}")  # fmt: skip

            # -- checkpoint: everything needed to resume, written atomically after every step
            tmp = last.with_name("last.pt.tmp")
            torch.save({"state_dict": net.state_dict(), "optimizer": optimizer.state_dict(), "reward": reward.state_dict(),
                        "rng": rng.getstate(), "step": step, "best_step": best_step, "best_val": best_val}, tmp)  # fmt: skip
            tmp.replace(last)
    plot_training(cfg.out)
    total = hits + misses
    return TrainResult(cfg.out, step, best_step, best_val, time.perf_counter() - started, hits / total if total else 0.0)


def plot_training(out: Path) -> Path | None:
    """curves.png: reward, F1, cost, entropy / KL and the tier ratios over the steps."""
    rows = read_csv(out / "log.csv")
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    step = [int(r["step"]) for r in rows]
    col = lambda k: [float(r[k]) for r in rows]  # noqa: E731
    val = read_csv(out / "val.csv")
    fig, axes = plt.subplots(2, 3, figsize=(15, 8))
    panels = [("reward", "reward (Eq. 7)"), ("f1", "F1 (train batch)"), ("cost_usd", "extraction USD / query")]
    for ax, (key, title) in zip(axes[0], panels):
        ax.plot(step, col(key), label="train")
        if key in ("f1", "cost_usd") and val:
            ax.plot([int(v["step"]) for v in val], [float(v[key]) for v in val], "o-", label="validation")
            ax.legend()
        ax.set_title(title)
    axes[1][0].plot(step, col("entropy"), label="entropy")
    axes[1][0].plot(step, col("approx_kl"), label="approx. KL")
    axes[1][0].legend()
    axes[1][0].set_title("policy entropy and KL")
    for t in ("low", "mid", "high"):
        axes[1][1].plot(step, np.mean([col(f"{m}_{t}") for m in MODULES], axis=0), label=t.upper())
    axes[1][1].legend()
    axes[1][1].set_title("tier ratio, all modules")
    axes[1][2].plot(step, col("cache_hit_rate"))
    axes[1][2].set_title("module-cache hit rate")
    for ax in axes.flat:
        ax.set_xlabel("PPO step")
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    png = out / "curves.png"
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return png
