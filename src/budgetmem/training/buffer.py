"""Episodes as data, and the rollout buffer PPO learns from (routing paper App. A.3).

An :class:`Episode` is one query through the routed pipeline as a worker sends it back:
the router's decisions (state s_k, action a_k, behaviour log-probability, critic value) and
the reward's inputs (task score r_task, extraction cost c_raw of Eq. 8). Nothing is kept
in the policy: the trainer gathers a batch of episodes from the executor and flattens it
into a :class:`RolloutBuffer`, one row per decision, as CleanRL's ``b_obs`` / ``b_actions``
/ ``b_logprobs`` / ``b_values``, plus ``owner``, the episode each decision belongs to
(the reward is per episode; the decisions are per module).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from budgetmem.router.policy import Decision

__all__ = ["Episode", "RolloutBuffer"]


@dataclass(frozen=True)
class Episode:
    decisions: tuple[Decision, ...]
    f1: float
    """r_task: the answer's F1 against the gold answers."""
    cost_usd: float
    """c_raw (Eq. 8): what the routed modules are worth at list price, cached or not."""
    cache_hits: int = 0
    cache_misses: int = 0


@dataclass(frozen=True)
class RolloutBuffer:
    query: torch.Tensor
    """(D, dim) query embeddings, one row per decision."""
    module_input: torch.Tensor
    """(D, dim) module-input embeddings."""
    module: torch.Tensor
    """(D,) module indices."""
    actions: torch.Tensor
    """(D,) tiers chosen (0 LOW, 1 MID, 2 HIGH)."""
    logprobs: torch.Tensor
    """(D,) log pi_old(a_k | s_k) when the episode ran."""
    values: torch.Tensor
    """(D,) V_old(s_k) when the episode ran."""
    owner: torch.Tensor
    """(D,) the episode each decision belongs to."""
    n_episodes: int

    @classmethod
    def from_decisions(cls, episodes: Sequence[Sequence[Decision]]) -> RolloutBuffer:
        if not episodes:
            raise ValueError("a rollout buffer needs at least one episode")
        if any(len(ep) == 0 for ep in episodes):
            raise ValueError("an episode without decisions cannot be learned from")
        flat = [d for ep in episodes for d in ep]
        return cls(
            # np.stack copies: states that came back from another process are read-only views.
            query=torch.from_numpy(np.stack([d.state[0] for d in flat])),
            module_input=torch.from_numpy(np.stack([d.state[1] for d in flat])),
            module=torch.tensor([d.state[2] for d in flat]),
            actions=torch.tensor([d.action for d in flat]),
            logprobs=torch.tensor([d.logp for d in flat], dtype=torch.float32),
            values=torch.tensor([d.value for d in flat], dtype=torch.float32),
            owner=torch.tensor([i for i, ep in enumerate(episodes) for _ in ep]),
            n_episodes=len(episodes),
        )

    @classmethod
    def from_episodes(cls, episodes: Sequence[Episode]) -> RolloutBuffer:
        return cls.from_decisions([e.decisions for e in episodes])

    def per_episode(self, x: torch.Tensor, *, mean: bool = False) -> torch.Tensor:
        """Sum (or mean) of a per-decision quantity over each episode's decisions."""
        total = torch.zeros(self.n_episodes, dtype=x.dtype).index_add(0, self.owner, x)
        if mean:
            total = total / torch.bincount(self.owner, minlength=self.n_episodes).clamp(min=1).to(x.dtype)
        return total
