"""The performance-cost frontier: one router per cost weight, evaluated on the test split
beside the fixed-tier and naive-RAG baselines (routing paper §6, Fig. 2-4).

    budgetmem frontier --dataset locomo --data locomo10.json --strategy implementation \
        --cost-weights 0,0.05,0.1,0.3,0.5,0.7,0.9 --out runs/frontier

Every piece is an ordinary, resumable run directory under ``out``: ``router-<lambda>``
(training; a finished one is loaded, not retrained), ``eval-router-<lambda>`` and
``eval-<baseline>`` (evaluation). With ``align_ablation`` each non-zero weight is trained a
second time with reward-scale alignment off (``router-noalign-<lambda>``; at zero the two
runs coincide). Written at the end:
``frontier.md`` / ``frontier.csv`` and three plots: ``frontier.png`` (score vs cost with
the baselines, Fig. 2), ``tiers.png`` (per-module LOW / MID / HIGH selection ratios by
cost weight, Fig. 4) and, with the ablation, ``alignment.png`` (Fig. 3).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from budgetmem.errors import ConfigError
from budgetmem.eval.datasets import load_eval_set
from budgetmem.eval.summary import summarise
from budgetmem.executors import ExecutorSettings
from budgetmem.harness import EvalConfig, LLMSource, run_eval
from budgetmem.harness.progress import stderr_log
from budgetmem.pipeline.stages import MODULES
from budgetmem.pipeline.types import Tier
from budgetmem.training.ppo import PPOSettings
from budgetmem.training.train import TrainConfig, train_router
from budgetmem.settings import Settings

__all__ = ["FrontierConfig", "FrontierPoint", "run_frontier"]


@dataclass(frozen=True)
class FrontierConfig:
    dataset: str
    data: Path
    out: Path
    strategy: str = "implementation"
    cost_weights: tuple[float, ...] = (0.0, 0.05, 0.1, 0.3, 0.5, 0.7, 0.9)
    baselines: tuple[str, ...] = ("low", "mid", "high", "naive-rag")
    """Fixed policies of the strategy and baselines, evaluated on the same questions."""
    ppo: PPOSettings = field(default_factory=PPOSettings)
    train_questions: int | None = None
    val_questions: int | None = None
    eval_every: int = 10
    test_questions: int | None = None
    """Evaluate on the first N test questions only."""
    align_ablation: bool = False
    seed: int = 0
    split_file: Path | None = None
    store: str | Path | None = None
    """Store file shared by every training and evaluation run (default ``out/store.db``)."""
    executor: ExecutorSettings = field(default_factory=ExecutorSettings)
    """Where every training episode and test question runs."""

    def store_path(self) -> str | Path:
        return self.store or self.out / "store.db"


@dataclass(frozen=True)
class FrontierPoint:
    label: str
    """e.g. ``router lambda=0.1``, ``router (no alignment) lambda=0.1``, ``fixed high``, ``naive-rag``."""
    cost_weight: float | None
    aligned: bool | None
    n: int
    f1: float
    judge: float
    extraction_usd: float
    total_usd: float
    tier_ratios: dict[str, dict[str, float]]
    """module -> {LOW, MID, HIGH} -> share of test questions."""
    f1_ci: tuple[float, float] = (float("nan"), float("nan"))
    """95% percentile-bootstrap interval of the F1 mean over the test questions."""


def _lam(x: float) -> str:
    return f"{x:g}"


def _point(label: str, rows: list[dict[str, Any]], cost_weight: float | None, aligned: bool | None) -> FrontierPoint:
    o = summarise(rows)["overall"]
    ratios = {
        m: {t.name: sum(r["tiers"].get(m) == t.name for r in rows) / len(rows) for t in Tier}
        for m in MODULES
        if any(m in r["tiers"] for r in rows)
    }
    return FrontierPoint(label, cost_weight, aligned, o["n"], o["f1"], o["judge"], o["extraction_usd"], o["total_usd"], ratios,
                         tuple(o["f1_ci"]))  # fmt: skip


def run_frontier(
    cfg: FrontierConfig,
    settings: Settings,
    *,
    llms: LLMSource = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> list[FrontierPoint]:
    say = log or stderr_log
    if not cfg.cost_weights:
        raise ConfigError("no cost weights given", hint="e.g. --cost-weights 0,0.1,0.5")
    if any(w < 0 for w in cfg.cost_weights):
        raise ConfigError("cost weights cannot be negative")
    # Read the dataset before announcing the first router: a file that cannot be loaded is
    # then the one line the command prints, not an error after "frontier: router-0".
    load_eval_set(cfg.dataset, cfg.data)
    cfg.out.mkdir(parents=True, exist_ok=True)

    def evaluate(policy: str, name: str) -> list[dict[str, Any]]:
        ec = EvalConfig(
            dataset=cfg.dataset, data=cfg.data, out=cfg.out / f"eval-{name}", split="test", strategy=cfg.strategy,
            policy=policy, limit=cfg.test_questions, store=cfg.store_path(), seed=cfg.seed, split_file=cfg.split_file,
            executor=cfg.executor,
        )  # fmt: skip
        return run_eval(ec, settings, llms=llms, progress=progress, log=say).rows

    points: list[FrontierPoint] = []
    for aligned in (True, False) if cfg.align_ablation else (True,):
        for lam in cfg.cost_weights:
            if not aligned and lam == 0:
                # Eq. 7 at lambda = 0 is r = r_task whatever alpha is: the run would repeat the aligned
                # one exactly, so the ablation shares that point instead of training it again.
                continue
            tag = ("router-" if aligned else "router-noalign-") + _lam(lam)
            say(f"frontier: {tag}")
            tc = TrainConfig(
                dataset=cfg.dataset, data=cfg.data, out=cfg.out / tag, strategy=cfg.strategy, cost_weight=lam,
                ppo=cfg.ppo, align=aligned, seed=cfg.seed, split_file=cfg.split_file,
                train_questions=cfg.train_questions, val_questions=cfg.val_questions, eval_every=cfg.eval_every,
                store=cfg.store_path(), executor=cfg.executor,
            )  # fmt: skip
            train_router(tc, settings, llms=llms, progress=progress, log=say)  # resumes, or returns at once if done
            rows = evaluate(f"router:{cfg.out / tag / 'best.pt'}", tag)
            label = f"router{'' if aligned else ' (no alignment)'} lambda={_lam(lam)}"
            points.append(_point(label, rows, lam, aligned))
    for b in cfg.baselines:
        rows = evaluate(b, b)
        points.append(_point(b if b in ("naive-rag", "full-context") else f"fixed {b}", rows, None, None))

    (cfg.out / "frontier.csv").write_text(frontier_csv(points), encoding="utf-8")
    (cfg.out / "frontier.md").write_text(frontier_markdown(points) + "\n", encoding="utf-8")
    plot_frontier(points, cfg.out)
    return points


def _rows(points: list[FrontierPoint]) -> list[list[Any]]:
    out = []
    for p in points:
        high = {m: r["HIGH"] for m, r in p.tier_ratios.items()}
        lo, hi = p.f1_ci
        out.append([p.label, p.n, f"{100 * p.f1:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]",
                    "-" if p.judge != p.judge else f"{100 * p.judge:.1f}",
                    f"{p.extraction_usd * 1e6:.1f}", f"{p.total_usd * 1e6:.1f}",
                    " ".join(f"{m[:3]}:{100 * high.get(m, 0):.0f}" for m in MODULES)])  # fmt: skip
    return out


HEADER = ["system", "n", "F1 [95% CI]", "judge", "extraction µ$/q", "total µ$/q", "HIGH % per module"]


def frontier_markdown(points: list[FrontierPoint]) -> str:
    from budgetmem.tables import markdown_table

    return markdown_table(HEADER, _rows(points))


def frontier_csv(points: list[FrontierPoint]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["label", "cost_weight", "aligned", "n", "f1", "f1_lo", "f1_hi", "judge", "extraction_usd", "total_usd",
                *(f"{m}_{t.name.lower()}" for m in MODULES for t in Tier)])  # fmt: skip
    for p in points:
        w.writerow([p.label, p.cost_weight, p.aligned, p.n, p.f1, *p.f1_ci, p.judge, p.extraction_usd, p.total_usd,
                    *(p.tier_ratios.get(m, {}).get(t.name, "") for m in MODULES for t in Tier)])  # fmt: skip
    return buf.getvalue()


def _label_lambdas(ax: Any, routers: list[FrontierPoint]) -> None:
    for p in routers:
        ax.annotate(f"λ={_lam(p.cost_weight or 0)}", (p.extraction_usd * 1e6, 100 * p.f1), xytext=(4, 4),
                    textcoords="offset points", fontsize=8)  # fmt: skip


def plot_frontier(points: list[FrontierPoint], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drawn = []
    routers = sorted((p for p in points if p.cost_weight is not None and p.aligned), key=lambda p: p.cost_weight or 0.0)
    others = [p for p in points if p.cost_weight is None]
    # Fig. 2: score vs extraction cost; the routers joined in order of lambda.
    fig, ax = plt.subplots(figsize=(7, 5))
    ax.plot([p.extraction_usd * 1e6 for p in routers], [100 * p.f1 for p in routers], "o-", label="router (by lambda)")
    _label_lambdas(ax, routers)
    for p in others:
        ax.scatter([p.extraction_usd * 1e6], [100 * p.f1], marker="s", s=50, label=p.label)
    ax.set_xlabel("extraction cost per question (µ$)")
    ax.set_ylabel("F1 (%)")
    ax.set_title("performance-cost frontier")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    drawn.append(out / "frontier.png")
    fig.savefig(drawn[-1], dpi=110)
    plt.close(fig)
    # Fig. 4: per-module tier selection ratios as lambda grows.
    if routers:
        fig, axes = plt.subplots(1, len(MODULES), figsize=(3.2 * len(MODULES), 3.4), sharey=True)
        lams = [_lam(p.cost_weight or 0) for p in routers]
        for ax, m in zip(axes, MODULES):
            bottom = [0.0] * len(routers)
            for t in Tier:
                vals = [100 * p.tier_ratios.get(m, {}).get(t.name, 0.0) for p in routers]
                ax.bar(lams, vals, bottom=bottom, label=t.name)
                bottom = [b + v for b, v in zip(bottom, vals)]
            ax.set_title(m)
            ax.set_xlabel("λ")
        axes[0].set_ylabel("share of questions (%)")
        axes[-1].legend(fontsize=8)
        fig.tight_layout()
        drawn.append(out / "tiers.png")
        fig.savefig(drawn[-1], dpi=110)
        plt.close(fig)
    # Fig. 3: the same frontier with and without reward-scale alignment.
    plain = [p for p in points if p.cost_weight is not None and p.aligned is False]
    if plain:
        # The lambda = 0 router is the same with or without alignment (see run_frontier).
        plain = sorted(plain + [p for p in routers if p.cost_weight == 0], key=lambda p: p.cost_weight or 0.0)
        fig, ax = plt.subplots(figsize=(7, 5))
        for group, label in ((routers, "with alignment (Eq. 10)"), (plain, "without alignment")):
            ax.plot([p.extraction_usd * 1e6 for p in group], [100 * p.f1 for p in group], "o-", label=label)
            _label_lambdas(ax, group)
        ax.set_xlabel("extraction cost per question (µ$)")
        ax.set_ylabel("F1 (%)")
        ax.set_title("reward-scale alignment ablation")
        ax.grid(True, alpha=0.3)
        ax.legend()
        fig.tight_layout()
        drawn.append(out / "alignment.png")
        fig.savefig(drawn[-1], dpi=110)
        plt.close(fig)
    return drawn
