"""One PPO update of the router from a batch of finished episodes (routing paper App. A.3).

An episode is one query: its routing decisions (state, action, behaviour log-probability,
critic value) and one scalar reward r (Eq. 7). Per update, for ``epochs`` passes over the
batch:

    log pi(a|s) = sum_k log pi(a_k|s_k)                   joint over the episode's modules (Eq. 12)
    rho         = exp(log pi_new(a|s) - log pi_old(a|s))
    A           = r - b,  b = mean_k V_old(s_k)            one-step Monte-Carlo return, critic baseline
    L_policy    = -mean(min(rho A, clip(rho, 1-eps, 1+eps) A))
    L_value     = mean_k (V(s_k) - r)^2                    every decision's value regresses on r
    H           = entropy averaged over decisions          (not summed: no scaling with module count)
    L           = L_policy + c_v L_value - c_e H           (Eq. 13)

Advantages are standardised over the batch (a common PPO practice; it leaves the sign of
each episode's advantage unchanged).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from budgetmem.router.network import RouterNet
from budgetmem.router.policy import Decision

__all__ = ["PPOSettings", "ppo_update"]


@dataclass(frozen=True)
class PPOSettings:
    """Defaults are the paper's (App. A.3)."""

    lr: float = 3e-4
    """Adam learning rate."""
    clip: float = 0.2
    """epsilon of the clipped surrogate."""
    value_coef: float = 0.5
    """c_v, weight of the value loss."""
    entropy_coef: float = 0.01
    """c_e, weight of the entropy bonus (entropy averaged over decisions)."""
    epochs: int = 4
    """Passes over each batch per update."""
    max_grad_norm: float = 0.5
    """Gradient-norm clip."""
    batch_size: int = 32
    """Episodes (queries) per update."""
    steps: int = 600
    """Upper bound on updates in one training run."""
    normalise_advantages: bool = True
    """Standardise advantages over the batch."""

    def with_budget(self, steps: int | None = None, batch_size: int | None = None, lr: float | None = None) -> PPOSettings:
        """A copy with another step count, batch size or learning rate (None keeps the current one)."""
        return dataclasses.replace(self, steps=steps or self.steps, batch_size=batch_size or self.batch_size, lr=lr or self.lr)


def _stack(episodes: Sequence[Sequence[Decision]]) -> dict[str, torch.Tensor]:
    flat = [d for ep in episodes for d in ep]
    owner = torch.tensor([i for i, ep in enumerate(episodes) for _ in ep])
    return {
        "query": torch.stack([torch.from_numpy(d.state[0]) for d in flat]),
        "input": torch.stack([torch.from_numpy(d.state[1]) for d in flat]),
        "module": torch.tensor([d.state[2] for d in flat]),
        "action": torch.tensor([d.action for d in flat]),
        "old_logp": torch.tensor([d.logp for d in flat], dtype=torch.float32),
        "old_value": torch.tensor([d.value for d in flat], dtype=torch.float32),
        "owner": owner,
    }


def _per_episode(x: torch.Tensor, owner: torch.Tensor, n: int, mean: bool = False) -> torch.Tensor:
    total = torch.zeros(n, dtype=x.dtype).index_add(0, owner, x)
    if mean:
        total = total / torch.bincount(owner, minlength=n).clamp(min=1).to(x.dtype)
    return total


def ppo_update(
    net: RouterNet,
    optimizer: torch.optim.Optimizer,
    episodes: Sequence[Sequence[Decision]],
    rewards: Sequence[float],
    settings: PPOSettings,
) -> dict[str, float]:
    """Update ``net`` in place; return the losses, entropy, approximate KL and clip fraction."""
    if len(episodes) != len(rewards) or not episodes:
        raise ValueError("one reward per episode, and at least one episode")
    if any(len(ep) == 0 for ep in episodes):
        raise ValueError("an episode without decisions cannot be learned from")
    b = _stack(episodes)
    n = len(episodes)
    r = torch.tensor(list(rewards), dtype=torch.float32)
    old_joint = _per_episode(b["old_logp"], b["owner"], n)
    baseline = _per_episode(b["old_value"], b["owner"], n, mean=True)
    adv = r - baseline
    if settings.normalise_advantages and n > 1:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    stats: dict[str, float] = {}
    net.train()
    for _ in range(settings.epochs):
        logits, values = net(b["query"], b["input"], b["module"])
        dist = torch.distributions.Categorical(logits=logits)
        joint = _per_episode(dist.log_prob(b["action"]), b["owner"], n)
        ratio = torch.exp(joint - old_joint)
        surrogate = torch.min(ratio * adv, torch.clamp(ratio, 1 - settings.clip, 1 + settings.clip) * adv)
        policy_loss = -surrogate.mean()
        value_loss = ((values - r[b["owner"]]) ** 2).mean()
        entropy = dist.entropy().mean()
        loss = policy_loss + settings.value_coef * value_loss - settings.entropy_coef * entropy
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), settings.max_grad_norm)
        optimizer.step()
        with torch.no_grad():
            log_ratio = joint - old_joint
            stats = {
                "loss": float(loss),
                "policy_loss": float(policy_loss),
                "value_loss": float(value_loss),
                "entropy": float(entropy),
                # KL(old || new) estimate per episode, (rho - 1) - log rho (always >= 0)
                "approx_kl": float(((ratio - 1) - log_ratio).mean()),
                "clip_fraction": float(((ratio - 1).abs() > settings.clip).float().mean()),
            }
    net.eval()
    return stats
