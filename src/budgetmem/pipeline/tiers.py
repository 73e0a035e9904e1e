"""Tiers as data: one table maps (strategy, module, tier) to how the module computes.

Routing paper §4.2 and Appendix A.4:
- implementation: LOW rules / patterns / light NLP, MID compact encoders, HIGH the LLM;
- reasoning: one LLM; LOW direct, MID chain of thought, HIGH plan -> act -> reflect;
- capacity: the same direct prompt on the small / medium / large model of the ladder.
Adding a tier or a module edits this table, nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from budgetmem.errors import ConfigError
from budgetmem.pipeline.types import MODULES, STRATEGIES, Tier

__all__ = ["TierSpec", "TIERS", "tier_spec"]

Method = Literal["rules", "encoder", "llm"]
Behaviour = Literal["direct", "cot", "reflect"]
Rung = Literal["small", "medium", "large", "default"]


@dataclass(frozen=True)
class TierSpec:
    strategy: str
    module: str
    tier: Tier
    method: Method
    behaviour: Behaviour = "direct"
    """How an LLM tier reasons (reasoning strategy); 'direct' elsewhere."""
    rung: Rung = "default"
    """Which model of the ladder an LLM tier uses; 'default' = the strategy's model."""

    @property
    def key(self) -> str:
        return f"{self.strategy}/{self.module}/{self.tier.name}"


def _table() -> dict[tuple[str, str, Tier], TierSpec]:
    rows: dict[tuple[str, str, Tier], TierSpec] = {}
    for m in MODULES:
        for tier, method in zip(Tier, ("rules", "encoder", "llm")):
            rows[("implementation", m, tier)] = TierSpec("implementation", m, tier, method)  # type: ignore[arg-type]
        for tier, behaviour in zip(Tier, ("direct", "cot", "reflect")):
            rows[("reasoning", m, tier)] = TierSpec("reasoning", m, tier, "llm", behaviour)  # type: ignore[arg-type]
        for tier, rung in zip(Tier, ("small", "medium", "large")):
            rows[("capacity", m, tier)] = TierSpec("capacity", m, tier, "llm", "direct", rung)  # type: ignore[arg-type]
    return rows


TIERS: dict[tuple[str, str, Tier], TierSpec] = _table()


def tier_spec(strategy: str, module: str, tier: Tier) -> TierSpec:
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown strategy {strategy!r}", hint=f"use one of: {', '.join(STRATEGIES)}")
    if module not in MODULES:
        raise ConfigError(f"unknown module {module!r}", hint=f"modules: {', '.join(MODULES)}")
    return TIERS[(strategy, module, tier)]
