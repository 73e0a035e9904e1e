"""The learned router as a pipeline policy: ``--policy router:PATH`` anywhere a policy goes.

Inference needs this file, the network and the state encoder, nothing from training.
Decisions are greedy (the most probable tier) unless ``sample=True``. Serving records
nothing: a process that answers a million routed queries holds no more than after one.
Training asks for a :class:`Rollout` per episode, a policy view that shares the network
and records that episode's decisions (state, action, log-probability) for PPO; two
episodes run at once each keep their own. A rollout given a seed samples from its own
generator, so an episode's tiers depend on its seed alone, not on which episodes ran
before it or beside it (the same batch on any executor gives the same episodes).

A checkpoint is one ``torch.save`` file: the network weights plus what it was trained
for (strategy, encoder, cost weight, training data, step, validation score). It loads
with ``weights_only=True``: no pickled code runs.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from budgetmem.encoder import Encoder
from budgetmem.errors import ConfigError, InputError
from budgetmem.pipeline.policy import PolicyState
from budgetmem.pipeline.stages import MODULES
from budgetmem.pipeline.types import Tier
from budgetmem.router.network import RouterNet
from budgetmem.router.state import RouterState, StateEncoder, VectorLookup

__all__ = [
    "CHECKPOINT_FORMAT", "Decision", "Rollout", "RouterPolicy", "RouterFamily", "load_router", "load_routers", "save_router",
]  # fmt: skip

CHECKPOINT_FORMAT = "budgetmem-router/1"


@dataclass(frozen=True)
class Decision:
    state: RouterState
    action: int
    logp: float
    value: float
    seconds: float
    """Wall time of the decision: state encoding plus the forward pass."""


@dataclass
class RouterPolicy:
    net: RouterNet
    states: StateEncoder
    meta: dict[str, Any] = field(default_factory=dict)
    sample: bool = False
    seed: int = 0
    name: str = "router"

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._gen = torch.Generator().manual_seed(self.seed)

    def act(self, state: PolicyState, *, sample: bool, generator: torch.Generator | None = None) -> Decision:
        """One decision with what PPO needs to learn from it; nothing is kept here.
        ``generator``: where a sampled tier is drawn from (default: this router's own)."""
        started = time.perf_counter()
        s = self.states(state)
        with self._lock, torch.no_grad():  # the lock also orders draws from the one generator
            logits, value = self.net(
                torch.from_numpy(s[0])[None], torch.from_numpy(s[1])[None], torch.tensor([s[2]])
            )
            probs = torch.softmax(logits[0], dim=-1)
            if sample:
                action = int(torch.multinomial(probs, 1, generator=generator if generator is not None else self._gen).item())
            else:
                action = int(torch.argmax(probs).item())
            logp = float(torch.log(probs[action]).item())
        return Decision(s, action, logp, float(value[0]), time.perf_counter() - started)

    def decide(self, state: PolicyState) -> Tier:
        return Tier(self.act(state, sample=self.sample).action)

    def rollout(self, *, sample: bool = True, seed: int | None = None) -> Rollout:
        """A policy for one training episode: it records its decisions, this router does not.
        With ``seed``, the episode's sampled tiers come from a generator of its own."""
        return Rollout(self, sample, None if seed is None else torch.Generator().manual_seed(seed))

    def probabilities(self, state: PolicyState) -> np.ndarray:
        """pi(.|s) over LOW / MID / HIGH, for inspection."""
        q, x, m = self.states(state)
        with torch.no_grad():
            logits, _ = self.net(torch.from_numpy(q)[None], torch.from_numpy(x)[None], torch.tensor([m]))
        return torch.softmax(logits[0], dim=-1).numpy()


class Rollout:
    """One episode's view of a router: decides through it and keeps the decisions.

    The trainer makes one per episode and reads :attr:`decisions` after the query; it is
    dropped with the episode, so nothing accumulates in the router itself.
    """

    def __init__(self, router: RouterPolicy, sample: bool, generator: torch.Generator | None = None) -> None:
        self.router = router
        self.sample = sample
        self.generator = generator
        self.name = router.name
        self.meta = router.meta
        self.decisions: list[Decision] = []

    def decide(self, state: PolicyState) -> Tier:
        d = self.router.act(state, sample=self.sample, generator=self.generator)
        self.decisions.append(d)
        return Tier(d.action)


def save_router(path: str | Path, net: RouterNet, meta: dict[str, Any]) -> Path:
    """Write atomically (temp file, then rename): an interrupted save leaves the old file."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    payload = {
        "format": CHECKPOINT_FORMAT,
        "dims": {"dim": net.dim, "modules": net.n_modules, "hidden": net.hidden},
        "state_dict": net.state_dict(),
        "meta": meta,
    }
    torch.save(payload, tmp)
    tmp.replace(p)
    return p


def load_router(
    path: str | Path, encoder: Encoder, *, sample: bool = False, seed: int = 0, vectors: VectorLookup | None = None
) -> RouterPolicy:
    """A router checkpoint as a policy. ``encoder`` must be the one it was trained with;
    ``vectors`` reads stored chunks' embeddings from the retrieval index."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"router checkpoint {p} not found", hint="train one with budgetmem train")
    try:
        payload = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file
        raise InputError(f"{p} is not a router checkpoint ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise InputError(f"{p} is not a {CHECKPOINT_FORMAT} checkpoint")
    meta = payload.get("meta", {})
    trained_with = meta.get("encoder")
    if trained_with and trained_with != encoder.settings.name:
        raise ConfigError(
            f"router {p.name} was trained with encoder {trained_with}, not {encoder.settings.name}",
            hint=f"use --encoder {trained_with}",
        )
    dims = payload["dims"]
    if dims["dim"] != encoder.dim or dims["modules"] != len(MODULES):
        raise ConfigError(f"router {p.name} expects {dims['dim']}-d states, the encoder gives {encoder.dim}-d")
    net = RouterNet(dims["dim"], dims["modules"], dims["hidden"])
    net.load_state_dict(payload["state_dict"])
    net.eval()
    name = f"router:{p.name}" + (f"(lambda={meta['cost_weight']})" if "cost_weight" in meta else "")
    return RouterPolicy(net, StateEncoder(encoder, vectors=vectors), meta, sample=sample, seed=seed, name=name)


class RouterFamily:
    """Routers trained at several cost weights, behind one knob: each query is routed by the
    router whose lambda is nearest the query's ``cost_weight`` (the smallest lambda, i.e.
    the most accurate router, when the query gives none). ``budgetmem frontier`` writes
    such a family: ``--policy router:DIR`` loads every ``DIR/router-*/best.pt``."""

    def __init__(self, routers: dict[float, RouterPolicy]) -> None:
        if not routers:
            raise ConfigError("a router family needs at least one router")
        self.routers = dict(sorted(routers.items()))
        self.name = "routers(lambda=" + ",".join(f"{w:g}" for w in self.routers) + ")"
        self.meta = next(iter(self.routers.values())).meta

    def pick(self, cost_weight: float | None) -> RouterPolicy:
        weights = list(self.routers)
        w = weights[0] if cost_weight is None else min(weights, key=lambda x: (abs(x - cost_weight), x))
        return self.routers[w]

    def decide(self, state: PolicyState) -> Tier:
        return self.pick(state.cost_weight).decide(state)


def load_routers(path: str | Path, encoder: Encoder, *, vectors: VectorLookup | None = None) -> RouterPolicy | RouterFamily:
    """A checkpoint file, or a directory of ``router-*/best.pt`` (a frontier) as a family."""
    p = Path(path)
    if not p.is_dir():
        return load_router(p, encoder, vectors=vectors)
    found = sorted(p.glob("router-*/best.pt"))
    found = [f for f in found if not f.parent.name.startswith("router-noalign-")]
    if not found:
        raise InputError(f"{p} holds no router-*/best.pt", hint="point at a checkpoint, or run budgetmem frontier")
    family: dict[float, RouterPolicy] = {}
    for f in found:
        router = load_router(f, encoder, vectors=vectors)
        weight = router.meta.get("cost_weight")
        if weight is None:
            raise InputError(f"{f} does not record its cost weight")
        family[float(weight)] = router
    return RouterFamily(family)
