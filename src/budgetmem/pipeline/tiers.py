"""Tiers as data: one table maps (strategy, module, tier) to how the module computes.

Routing paper §4.2 and Appendix A.4:
- implementation: LOW rules / patterns / light NLP, MID compact encoders, HIGH the LLM;
- reasoning: one LLM; LOW direct, MID chain of thought, HIGH plan -> act -> reflect;
- capacity: the same direct prompt on the small / medium / large model of the ladder.
Adding a tier edits this table; a module is added in the stage table (stages.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from budgetmem.errors import ConfigError
from budgetmem.pipeline.stages import MODULES
from budgetmem.pipeline.types import STRATEGIES, Tier

__all__ = ["TierSpec", "TIERS", "tier_spec", "provider_of"]

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


# (method, behaviour, rung) per strategy and tier: the same for every module, so a module
# added to the stage table gets its three tiers under each strategy with no edit here.
_PATTERN: dict[str, tuple[tuple[Method, Behaviour, Rung], ...]] = {
    "implementation": (("rules", "direct", "default"), ("encoder", "direct", "default"), ("llm", "direct", "default")),
    "reasoning": (("llm", "direct", "default"), ("llm", "cot", "default"), ("llm", "reflect", "default")),
    "capacity": (("llm", "direct", "small"), ("llm", "direct", "medium"), ("llm", "direct", "large")),
}


def tier_spec(strategy: str, module: str, tier: Tier) -> TierSpec:
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown strategy {strategy!r}", hint=f"use one of: {', '.join(STRATEGIES)}")
    method, behaviour, rung = _PATTERN[strategy][Tier(tier)]
    return TierSpec(strategy, module, Tier(tier), method, behaviour, rung)


def provider_of(spec: TierSpec, module_llm: str, ladder: tuple[str, str, str]) -> str:
    """The provider string an LLM tier runs on: its rung of the ladder, else the module LLM."""
    if spec.rung in ("small", "medium", "large"):
        return ladder[("small", "medium", "large").index(spec.rung)]
    return module_llm


TIERS: dict[tuple[str, str, Tier], TierSpec] = {
    (s, m, t): tier_spec(s, m, t) for s in STRATEGIES for m in MODULES for t in Tier
}
"""Every (strategy, module, tier) of the standard modules, for listings."""
