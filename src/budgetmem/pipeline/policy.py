"""Policies decide the tier at each stage from the state (routing paper §4.3: the state is
the query, the module's current input and the module's identity).

Built in: fixed (all LOW / MID / HIGH, or a per-module map) and random (seeded). The
learned router implements the same ``decide`` and plugs in unchanged.
"""

from __future__ import annotations

import hashlib
import random
import threading
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from budgetmem.errors import ConfigError
from budgetmem.pipeline.stages import MODULES
from budgetmem.pipeline.types import ModuleInput, Tier

__all__ = ["PolicyState", "Policy", "FixedPolicy", "RandomPolicy", "parse_policy"]


@dataclass(frozen=True)
class PolicyState:
    query: str
    module: str
    module_index: int
    """Position of the module in the pipeline's stage list."""
    inputs: ModuleInput
    """What the module is about to read (candidates, filtered chunks, or upstream facts)."""
    cost_weight: float | None = None
    """The user's performance-cost knob (lambda); learned routers are trained per value."""


@runtime_checkable
class Policy(Protocol):
    name: str

    def decide(self, state: PolicyState) -> Tier: ...


class FixedPolicy:
    """The same tier every time for each module."""

    def __init__(self, tiers: dict[str, Tier], default: Tier | None = None) -> None:
        """``default``: the tier of any module ``tiers`` does not name (a module added to the
        stage table included); without one, every standard module must be named."""
        missing = [m for m in MODULES if m not in tiers]
        if missing and default is None:
            raise ConfigError(f"fixed policy has no tier for {', '.join(missing)}")
        self.tiers = {**{m: default for m in missing}, **tiers} if default is not None else dict(tiers)
        self.default = default
        names = {t.name.lower() for t in self.tiers.values()}
        self.name = names.pop() if len(names) == 1 else ",".join(f"{m}={self.tiers[m].name.lower()}" for m in MODULES)

    @classmethod
    def all(cls, tier: Tier) -> FixedPolicy:
        return cls({m: tier for m in MODULES}, default=tier)

    def decide(self, state: PolicyState) -> Tier:
        tier = self.tiers.get(state.module, self.default)
        if tier is None:
            raise ConfigError(f"fixed policy {self.name!r} has no tier for module {state.module!r}")
        return tier


class RandomPolicy:
    """Uniformly random tiers from a seeded generator (a baseline, and a sanity check)."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.name = f"random(seed={seed})"
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def for_question(self, key: str) -> RandomPolicy:
        """A policy of the same name whose draws depend only on (seed, key): an evaluation
        gets the same tiers per question whatever order, thread or process answers it."""
        digest = hashlib.blake2b(f"{self.seed}:{key}".encode(), digest_size=8).digest()
        fork = RandomPolicy(int.from_bytes(digest, "big"))
        fork.name = self.name
        return fork

    def decide(self, state: PolicyState) -> Tier:
        with self._lock:
            return Tier(self._rng.randrange(3))


def parse_policy(text: str, *, seed: int = 0) -> Policy:
    """``low`` | ``mid`` | ``high`` | ``random`` | a map such as ``mid,filter=high,summary=low``
    (a bare tier sets the default for modules the map does not name)."""
    spec = text.strip().lower()
    if spec == "random":
        return RandomPolicy(seed)
    default: Tier | None = None
    tiers: dict[str, Tier] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        if "=" in part:
            module, _, tier = part.partition("=")
            module = module.strip()
            if module not in MODULES:
                raise ConfigError(f"unknown module {module!r} in policy {text!r}", hint=f"modules: {', '.join(MODULES)}")
            tiers[module] = Tier.parse(tier)
        else:
            if default is not None:
                raise ConfigError(f"policy {text!r} names two default tiers")
            default = _tier_or_policy_error(part, text)
    for m in MODULES:
        if m not in tiers:
            if default is None:
                raise ConfigError(
                    f"policy {text!r} gives no tier for {m}", hint="add a default, e.g. 'mid,filter=high'"
                )
            tiers[m] = default
    return FixedPolicy(tiers)


def _tier_or_policy_error(part: str, text: str) -> Tier:
    try:
        return Tier.parse(part)
    except ConfigError:
        raise ConfigError(
            f"unknown policy {text!r}", hint="use low, mid, high, random, or a map like 'mid,filter=high'"
        ) from None
