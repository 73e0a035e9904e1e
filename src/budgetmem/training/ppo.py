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
from budgetmem.training.buffer import RolloutBuffer

__all__ = ["PPOSettings", "advantages", "ppo_update"]


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


def advantages(buffer: RolloutBuffer, rewards: Sequence[float], normalise: bool = True) -> torch.Tensor:
    """A = r - b per episode, b = mean_k V_old(s_k): a one-step Monte-Carlo return against the
    critic's baseline; standardised over the batch when ``normalise`` (signs unchanged)."""
    if len(rewards) != buffer.n_episodes:
        raise ValueError("one reward per episode")
    r = torch.tensor(list(rewards), dtype=torch.float32)
    adv = r - buffer.per_episode(buffer.values, mean=True)
    if normalise and buffer.n_episodes > 1:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    return adv


def ppo_update(
    net: RouterNet,
    optimizer: torch.optim.Optimizer,
    buffer: RolloutBuffer,
    rewards: Sequence[float],
    adv: torch.Tensor,
    settings: PPOSettings,
) -> list[dict[str, float]]:
    """Update ``net`` in place, ``settings.epochs`` passes over the batch; returns each
    epoch's losses, entropy, approximate KL and clip fraction (one dict per epoch)."""
    if len(rewards) != buffer.n_episodes or adv.shape != (buffer.n_episodes,):
        raise ValueError("one reward and one advantage per episode")
    b = buffer
    r = torch.tensor(list(rewards), dtype=torch.float32)
    old_joint = b.per_episode(b.logprobs)  # Eq. 12: the episode's action is the joint over its modules
    per_epoch: list[dict[str, float]] = []
    net.train()
    for _ in range(settings.epochs):
        logits, values = net(b.query, b.module_input, b.module)
        dist = torch.distributions.Categorical(logits=logits)
        joint = b.per_episode(dist.log_prob(b.actions))
        log_ratio = joint - old_joint
        ratio = torch.exp(log_ratio)
        surrogate = torch.min(ratio * adv, torch.clamp(ratio, 1 - settings.clip, 1 + settings.clip) * adv)
        policy_loss = -surrogate.mean()
        value_loss = ((values - r[b.owner]) ** 2).mean()
        entropy = dist.entropy().mean()
        loss = policy_loss + settings.value_coef * value_loss - settings.entropy_coef * entropy  # Eq. 13
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), settings.max_grad_norm)
        optimizer.step()
        with torch.no_grad():
            per_epoch.append({
                "loss": float(loss), "policy_loss": float(policy_loss), "value_loss": float(value_loss),
                "entropy": float(entropy),
                # KL(old || new) estimate per episode, (rho - 1) - log rho (always >= 0)
                "approx_kl": float(((ratio - 1) - log_ratio).mean()),
                "clip_fraction": float(((ratio - 1).abs() > settings.clip).float().mean()),
            })  # fmt: skip
    net.eval()
    return per_epoch
