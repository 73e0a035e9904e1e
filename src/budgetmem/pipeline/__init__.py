"""The budget-tiered memory pipeline (routing paper §4): filter -> {entity, temporal,
topic} -> summary, each module with LOW / MID / HIGH tiers under one of three strategies.
The modules are the entries of one table, :data:`STAGES` (stages.py)."""

from budgetmem.pipeline.cache import ModuleCache
from budgetmem.pipeline.policy import FixedPolicy, Policy, PolicyState, RandomPolicy, parse_policy
from budgetmem.pipeline.runner import Pipeline, StagePlan
from budgetmem.pipeline.stages import EXTRACTORS, MODULES, STAGES, Stage
from budgetmem.pipeline.tiers import TIERS, TierSpec, tier_spec
from budgetmem.pipeline.trace import QueryResult
from budgetmem.pipeline.types import (
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
    "STAGES",
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
    "StagePlan",
    "StepRecord",
    "SummaryResult",
    "Tier",
    "TierSpec",
    "parse_policy",
    "tier_spec",
]
