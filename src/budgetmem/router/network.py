"""The router network: one actor-critic shared by all modules (routing paper App. A.3).

    x      = [query embedding ; module-input embedding ; descriptor of module k]
    h      = MLP(x)
    pi(.|s) = softmax(actor(h))  over LOW / MID / HIGH
    V(s)   = critic(h)

The module identity enters only through its descriptor, a learnable vector per module
initialised from the encoder's embedding of the module's description, so one set of
weights routes every module and still learns module-specific behaviour.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

__all__ = ["RouterNet"]


class RouterNet(nn.Module):
    def __init__(self, dim: int, n_modules: int, hidden: int = 256, descriptors: np.ndarray | None = None) -> None:
        super().__init__()
        self.dim, self.n_modules, self.hidden = dim, n_modules, hidden
        init = torch.zeros(n_modules, dim) if descriptors is None else torch.as_tensor(descriptors, dtype=torch.float32)
        if init.shape != (n_modules, dim):
            raise ValueError(f"descriptors must be ({n_modules}, {dim}), got {tuple(init.shape)}")
        self.descriptors = nn.Parameter(init.clone())
        self.body = nn.Sequential(nn.Linear(3 * dim, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh())
        self.actor = nn.Linear(hidden, 3)
        self.critic = nn.Linear(hidden, 1)
        # Small actor weights: the untrained router starts near uniform over the tiers, so
        # early episodes explore all three.
        nn.init.orthogonal_(self.actor.weight, gain=0.01)
        nn.init.zeros_(self.actor.bias)

    def forward(self, query: torch.Tensor, module_input: torch.Tensor, module: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Batched: (B, dim), (B, dim), (B,) module indices -> logits (B, 3), values (B,)."""
        h = self.body(torch.cat([query, module_input, self.descriptors[module]], dim=-1))
        return self.actor(h), self.critic(h).squeeze(-1)
