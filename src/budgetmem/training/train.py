"""Train a budget-tier router with PPO on the cost-aware reward (routing paper §4.3, App. A.3).

    budgetmem train --dataset locomo --data locomo10.json --strategy implementation \
        --cost-weight 0.1 --out runs/router-0.1

Read top to bottom: the data and its train / validation split; the network, optimiser and
reward windows (restored from ``last.pt`` when the run was interrupted); then per step,
a batch of episodes (one query each, through the routed pipeline, tiers sampled from the
router), their rewards (Eq. 7-10), one PPO update, one log line; every ``eval_every``
steps a greedy pass over the validation questions, and the checkpoint with the best
validation objective is kept as ``best.pt`` (selected on held-out questions, never on
training reward). Module results come from the pipeline's on-disk cache, so a
(query, module, tier, input) seen before costs nothing the second time.

The run directory holds ``train.json`` (what is trained), ``log.csv`` (one row per step:
reward, F1, cost, alpha, entropy, KL, per-module tier ratios, cache hit rate, wall time),
``val.csv``, ``last.pt`` (for resuming), ``best.pt`` (the router to use) and
``curves.png``.
"""

from __future__ import annotations

import csv
import json
import random
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from budgetmem.encoder import Encoder
from budgetmem.errors import ConfigError, InputError
from budgetmem.eval.datasets import EvalItem, EvalSet, load_eval_set
from budgetmem.eval.run import ingest_needed, namespace_of, score
from budgetmem.eval.splits import make_split
from budgetmem.llm import LLM
from budgetmem.memory import BudgetMem
from budgetmem.pipeline.types import MODULES, Tier
from budgetmem.router.network import RouterNet
from budgetmem.router.policy import Decision, RouterPolicy, save_router
from budgetmem.training.ppo import PPOSettings, ppo_update
from budgetmem.training.reward import CostReward, RewardSettings
from budgetmem.router.state import StateEncoder
from budgetmem.settings import Settings
from budgetmem.store import Store

__all__ = ["TrainConfig", "TrainResult", "train_router"]


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
    store: Path | None = None

    def store_path(self) -> Path:
        return self.store or self.out / "store.db"


@dataclass
class TrainResult:
    out: Path
    steps: int
    best_step: int | None
    best_val: float
    seconds: float
    cache_hit_rate: float


LOG_FIELDS = [
    "step", "reward", "f1", "cost_usd", "r_cost", "alpha", "loss", "policy_loss", "value_loss", "entropy",
    "approx_kl", "clip_fraction", *(f"{m}_{t.name.lower()}" for m in MODULES for t in Tier),
    "cache_hit_rate", "decision_ms", "wall_s",
]  # fmt: skip
VAL_FIELDS = ["step", "objective", "f1", "cost_usd", "r_cost", *(f"{m}_{t.name.lower()}" for m in MODULES for t in Tier)]


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


def _tier_ratios(episodes: list[list[Decision]]) -> dict[str, float]:
    """Share of LOW / MID / HIGH per module over a batch (paper Fig. 4's quantity)."""
    out = {}
    for k, m in enumerate(MODULES):
        actions = [ep[k].action for ep in episodes if len(ep) > k]
        for t in Tier:
            out[f"{m}_{t.name.lower()}"] = sum(a == t for a in actions) / max(1, len(actions))
    return out


def _append_csv(path: Path, fields: list[str], row: dict[str, Any]) -> None:
    new = not path.exists()
    with path.open("a", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        if new:
            w.writeheader()
        w.writerow(row)


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _trim_csv(path: Path, fields: list[str], last_step: int) -> None:
    """Drop rows logged after the last saved checkpoint (a kill between the log line and
    last.pt), so a resumed run logs each step once."""
    rows = _read_csv(path)
    keep = [r for r in rows if int(r["step"]) <= last_step]
    if len(keep) == len(rows):
        return
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(keep)
    tmp.replace(path)


def train_router(
    cfg: TrainConfig,
    settings: Settings,
    *,
    llms: Mapping[str, LLM] | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    say = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    started = time.perf_counter()
    if cfg.ppo.batch_size < 2:
        raise ConfigError("batch_size must be at least 2 (advantages are standardised over the batch)")

    # -- data: train and validation parts of one split (conversation-level for LoCoMo)
    data: EvalSet = load_eval_set(cfg.dataset, cfg.data)
    train_items = list(make_split(data, "train", seed=cfg.seed, split_file=cfg.split_file).items)
    val_items = list(make_split(data, "val", seed=cfg.seed, split_file=cfg.split_file).items)
    train_items = train_items[: cfg.train_questions] if cfg.train_questions else train_items
    val_items = val_items[: cfg.val_questions] if cfg.val_questions else val_items
    if len(train_items) < 2 or not val_items:
        raise InputError(f"{cfg.data} gives {len(train_items)} training and {len(val_items)} validation questions",
                         hint="training needs at least 2 and 1")  # fmt: skip

    # -- the run directory: the same run resumes, a different one is refused
    cfg.out.mkdir(parents=True, exist_ok=True)
    identity = _identity(cfg, settings)
    run_file = cfg.out / "train.json"
    if run_file.exists() and json.loads(run_file.read_text(encoding="utf-8")) != identity:
        raise InputError(f"{cfg.out} holds a different training run", hint="use a new --out directory")
    run_file.write_text(json.dumps(identity, indent=2) + "\n", encoding="utf-8")

    # -- router, optimiser, reward windows; restored from last.pt after an interruption
    encoder = Encoder(settings.encoder, settings.models_dir)
    mems: dict[str, BudgetMem] = {}

    def stored_vectors(ids: Sequence[int]) -> np.ndarray | None:
        """Chunk embeddings from whichever namespace's index holds them (chunk ids are store-wide)."""
        return next((v for m in list(mems.values()) if (v := m.searcher.vectors(ids)) is not None), None)

    states = StateEncoder(encoder, vectors=stored_vectors)
    torch.manual_seed(cfg.seed)
    net = RouterNet(encoder.dim, len(MODULES), cfg.hidden, descriptors=states.descriptors())
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
    _trim_csv(cfg.out / "log.csv", LOG_FIELDS, step)
    _trim_csv(cfg.out / "val.csv", VAL_FIELDS, step)
    policy = RouterPolicy(net, states, sample=True, seed=cfg.seed + step, name="router(training)")
    meta = {**identity, "training_questions": len(train_items), "validation_questions": len(val_items)}

    store = Store(cfg.store_path())
    hits = misses = 0

    def mem_for(item: EvalItem) -> BudgetMem:
        ns = namespace_of(data, item)
        if ns not in mems:
            mems[ns] = BudgetMem(store, ns, settings=settings, encoder=encoder, strategy=cfg.strategy, llms=llms)
        return mems[ns]

    def episode(item: EvalItem, greedy: bool) -> tuple[list[Decision], float, float]:
        """One query through the routed pipeline: (decisions, F1, extraction USD)."""
        nonlocal hits, misses
        rollout = policy.rollout(sample=not greedy)
        r = mem_for(item).query(item.question, policy=rollout, cost_weight=cfg.cost_weight, question_date=item.question_date)
        hits += r.cache.get("hits", 0)
        misses += r.cache.get("misses", 0)
        # Eq. 8: the raw cost is what the routed modules are worth at list price, cached or not.
        return rollout.decisions, score(data, item, r.answer)["f1"], r.extraction_usd

    def validate() -> dict[str, Any]:
        results = [episode(item, greedy=True) for item in val_items]
        f1 = [x[1] for x in results]
        costs = [x[2] for x in results]
        r_cost = [reward.normalise(c) for c in costs]  # against the training window, which is not updated
        alpha = reward.alpha()
        objective = float(np.mean([t + cfg.cost_weight * alpha * c for t, c in zip(f1, r_cost)]))
        return {"objective": objective, "f1": float(np.mean(f1)), "cost_usd": float(np.mean(costs)),
                "r_cost": float(np.mean(r_cost)), **_tier_ratios([x[0] for x in results])}  # fmt: skip

    try:
        ingest_needed(store, data, [*train_items, *val_items], settings, say)
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=cfg.ppo.steps, initial=step, unit="step", desc="train", dynamic_ncols=True)
        while step < cfg.ppo.steps:
            # -- rollouts: one batch of episodes with sampled tiers
            t0 = time.perf_counter()
            h0, m0 = hits, misses
            batch = rng.sample(train_items, min(cfg.ppo.batch_size, len(train_items)))
            rollouts = [episode(item, greedy=False) for item in batch]
            episodes = [x[0] for x in rollouts]
            # -- reward (Eq. 7-10) and one PPO update (Eq. 12-13)
            parts = reward([x[1] for x in rollouts], [x[2] for x in rollouts])
            stats = ppo_update(net, optimizer, episodes, list(parts.total), cfg.ppo)
            step += 1
            looked_up = (hits - h0) + (misses - m0)
            decisions = [d.seconds for ep in episodes for d in ep]
            row = {
                "step": step, "reward": float(np.mean(parts.total)), "f1": float(np.mean(parts.task)),
                "cost_usd": float(np.mean(parts.cost_raw)), "r_cost": float(np.mean(parts.cost)), "alpha": parts.alpha,
                **stats, **_tier_ratios(episodes), "cache_hit_rate": (hits - h0) / looked_up if looked_up else 0.0,
                "decision_ms": 1e3 * float(np.mean(decisions)), "wall_s": time.perf_counter() - t0,
            }  # fmt: skip
            _append_csv(cfg.out / "log.csv", LOG_FIELDS, row)
            if bar is not None:
                bar.set_postfix_str(f"reward {row['reward']:.3f} F1 {100 * row['f1']:.1f} ${row['cost_usd']:.5f}", refresh=False)
                bar.update(1)
            # -- model selection on the validation questions
            if step % cfg.eval_every == 0 or step == cfg.ppo.steps:
                val = {"step": step, **validate()}
                _append_csv(cfg.out / "val.csv", VAL_FIELDS, val)
                if val["objective"] > best_val:
                    best_step, best_val = step, val["objective"]
                    save_router(cfg.out / "best.pt", net, {**meta, "step": step, "validation": val})
                say(f"step {step}: validation objective {val['objective']:.4f} (F1 {100 * val['f1']:.1f}, "
                    f"${val['cost_usd']:.6f}/q); best at step {best_step}")  # fmt: skip
            # -- everything needed to resume, written atomically after every step
            tmp = last.with_name("last.pt.tmp")
            torch.save({"state_dict": net.state_dict(), "optimizer": optimizer.state_dict(), "reward": reward.state_dict(),
                        "rng": rng.getstate(), "step": step, "best_step": best_step, "best_val": best_val}, tmp)  # fmt: skip
            tmp.replace(last)
        if bar is not None:
            bar.close()
    finally:
        for m in mems.values():
            m.close()
        store.close()
    plot_training(cfg.out)
    total = hits + misses
    return TrainResult(cfg.out, step, best_step, best_val, time.perf_counter() - started, hits / total if total else 0.0)


def plot_training(out: Path) -> Path | None:
    """curves.png: reward, F1, cost, entropy / KL and the tier ratios over the steps."""
    rows = _read_csv(out / "log.csv")
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    step = [int(r["step"]) for r in rows]
    col = lambda k: [float(r[k]) for r in rows]  # noqa: E731
    val = _read_csv(out / "val.csv")
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
