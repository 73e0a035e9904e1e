"""The five modules' non-LLM tiers (routing paper Appendix A.4.1, implementation tiering):
``rules`` is implementation LOW, ``encoder`` implementation MID. The LLM tier is driven
generically by the executor from the module's prompt. Each module's class is named in its
entry of the stage table (:mod:`budgetmem.pipeline.stages`)."""

from __future__ import annotations

from typing import Any

from budgetmem.pipeline.modules.entity import EntityModule
from budgetmem.pipeline.modules.filter import FilterModule
from budgetmem.pipeline.modules.summary import SummaryModule
from budgetmem.pipeline.modules.temporal import TemporalModule
from budgetmem.pipeline.modules.topic import TopicModule

__all__ = ["get_module", "FilterModule", "EntityModule", "TemporalModule", "TopicModule", "SummaryModule"]


def get_module(name: str) -> Any:
    """The one shared instance of module ``name``'s tiers (modules keep no per-query state)."""
    from budgetmem.pipeline.stages import get_stage

    return get_stage(name).tiers
