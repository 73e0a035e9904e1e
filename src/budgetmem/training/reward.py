"""The cost-aware reward of routing paper §4.3, Eq. 7-10 (Appendix A.3, Eq. 11).

    c_raw  = sum_k c(M_k, a_k)                                  (Eq. 8, extraction USD)
    c~     = (sqrt(c_raw) - Q5) / (Q95 - Q5)                    (Eq. 9, Q over a sliding window)
    r_cost = 1 - clip(c~, 0, 1)
    alpha  = std(r_task) / (std(r_cost) + eps)                  (Eq. 10, over recent rewards)
    r      = r_task + lambda * alpha * r_cost                   (Eq. 7)

alpha scales the *cost* term, as the paper writes it, so lambda keeps the same meaning
whatever the spread of task scores; ``align=False`` fixes alpha at 1 (the ablation of
paper Fig. 3). The windows hold the most recent episodes' values; the current batch's
costs join the window before it is normalised, so the very first batch is normalised
against itself rather than against nothing.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["RewardSettings", "RewardParts", "CostReward"]


@dataclass(frozen=True)
class RewardSettings:
    cost_weight: float = 0.0
    """lambda in Eq. 7: 0 optimises the task score alone; larger values favour cheaper tiers."""
    window: int = 512
    """How many recent episodes the cost quantiles (Eq. 9) and the stds (Eq. 10) are taken over."""
    align: bool = True
    """Eq. 10 on; False fixes alpha = 1 (the alignment ablation)."""
    eps: float = 1e-6
    """epsilon of Eq. 10."""


@dataclass(frozen=True)
class RewardParts:
    task: tuple[float, ...]
    cost_raw: tuple[float, ...]
    cost: tuple[float, ...]
    """r_cost per episode, in [0, 1]."""
    alpha: float
    total: tuple[float, ...]
    """r per episode (Eq. 7)."""


class CostReward:
    """Stateful: remembers recent raw costs and rewards, as Eq. 9-10 need."""

    def __init__(self, settings: RewardSettings) -> None:
        if settings.window < 2:
            raise ValueError("the reward window must hold at least 2 episodes")
        self.settings = settings
        self._sqrt_costs: deque[float] = deque(maxlen=settings.window)
        self._task: deque[float] = deque(maxlen=settings.window)
        self._cost_rewards: deque[float] = deque(maxlen=settings.window)

    def normalise(self, cost_raw: float) -> float:
        """r_cost of one raw cost against the current window (Eq. 9)."""
        if not self._sqrt_costs:
            return 1.0
        q5, q95 = np.percentile(np.asarray(self._sqrt_costs), [5.0, 95.0])
        spread = q95 - q5
        if spread <= 0.0:
            # Every recent episode cost the same: nothing to prefer, unless this one costs more.
            return 1.0 if math.sqrt(cost_raw) <= q5 else 0.0
        scaled = (math.sqrt(cost_raw) - q5) / spread
        return 1.0 - min(1.0, max(0.0, scaled))

    def __call__(self, task: Sequence[float], cost_raw: Sequence[float]) -> RewardParts:
        """Rewards for one batch of finished episodes; updates the windows."""
        if len(task) != len(cost_raw):
            raise ValueError("one task score and one cost per episode")
        if any(c < 0 for c in cost_raw):
            raise ValueError("a cost cannot be negative")
        self._sqrt_costs.extend(math.sqrt(c) for c in cost_raw)
        cost = [self.normalise(c) for c in cost_raw]
        self._task.extend(task)
        self._cost_rewards.extend(cost)
        s = self.settings
        alpha = self.alpha()
        total = [t + s.cost_weight * alpha * c for t, c in zip(task, cost)]
        return RewardParts(tuple(task), tuple(cost_raw), tuple(cost), alpha, tuple(total))

    def alpha(self) -> float:
        """Eq. 10 over the current windows (1 when alignment is off)."""
        if not self.settings.align or not self._task:
            return 1.0
        return float(np.std(self._task)) / (float(np.std(self._cost_rewards)) + self.settings.eps)

    def state_dict(self) -> dict[str, list[float]]:
        """The windows, so a resumed training run normalises exactly as before."""
        return {"sqrt_costs": list(self._sqrt_costs), "task": list(self._task), "cost_rewards": list(self._cost_rewards)}

    def load_state_dict(self, state: dict[str, list[float]]) -> None:
        self._sqrt_costs.clear()
        self._sqrt_costs.extend(state.get("sqrt_costs", []))
        self._task.clear()
        self._task.extend(state.get("task", []))
        self._cost_rewards.clear()
        self._cost_rewards.extend(state.get("cost_rewards", []))
