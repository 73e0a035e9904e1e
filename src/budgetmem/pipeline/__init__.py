"""The budget-tiered memory pipeline (routing paper §4): filter -> {entity, temporal,
topic} -> summary, each module with LOW / MID / HIGH tiers under one of three strategies."""

from budgetmem.pipeline.cache import ModuleCache
from budgetmem.pipeline.policy import FixedPolicy, Policy, PolicyState, RandomPolicy, parse_policy
from budgetmem.pipeline.runner import Pipeline, Stage
from budgetmem.pipeline.tiers import TIERS, TierSpec, tier_spec
from budgetmem.pipeline.trace import QueryResult
from budgetmem.pipeline.types import (
    EXTRACTORS,
    MODULES,
    STRATEGIES,
    CallRecord,
    FactsResult,
    FilterResult,
    ModuleInput,
    ScoredChunk,
    StepRecord,
    SummaryResult,
    Tier,
)

__all__ = [
    "EXTRACTORS",
    "MODULES",
    "STRATEGIES",
    "TIERS",
    "CallRecord",
    "FactsResult",
    "FilterResult",
    "FixedPolicy",
    "ModuleCache",
    "ModuleInput",
    "Pipeline",
    "Policy",
    "PolicyState",
    "QueryResult",
    "RandomPolicy",
    "ScoredChunk",
    "Stage",
    "StepRecord",
    "SummaryResult",
    "Tier",
    "TierSpec",
    "parse_policy",
    "tier_spec",
]
