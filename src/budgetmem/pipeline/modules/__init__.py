"""The five modules' non-LLM tiers (routing paper Appendix A.4.1, implementation tiering):
``rules`` is implementation LOW, ``encoder`` implementation MID. The LLM tier is driven
generically by the executor from the module's prompt."""

from __future__ import annotations

import threading

from budgetmem.errors import ConfigError
from budgetmem.pipeline.modules.entity import EntityModule
from budgetmem.pipeline.modules.filter import FilterModule
from budgetmem.pipeline.modules.summary import SummaryModule
from budgetmem.pipeline.modules.temporal import TemporalModule
from budgetmem.pipeline.modules.topic import TopicModule

__all__ = ["MODULE_CLASSES", "get_module", "FilterModule", "EntityModule", "TemporalModule", "TopicModule", "SummaryModule"]

ModuleClass = type[FilterModule] | type[EntityModule] | type[TemporalModule] | type[TopicModule] | type[SummaryModule]

MODULE_CLASSES: dict[str, ModuleClass] = {
    "filter": FilterModule,
    "entity": EntityModule,
    "temporal": TemporalModule,
    "topic": TopicModule,
    "summary": SummaryModule,
}

_instances: dict[str, object] = {}
_lock = threading.Lock()


def get_module(name: str) -> FilterModule | EntityModule | TemporalModule | TopicModule | SummaryModule:
    """The one shared instance of module ``name`` (modules keep no per-query state)."""
    if name not in MODULE_CLASSES:
        raise ConfigError(f"unknown module {name!r}", hint=f"modules: {', '.join(MODULE_CLASSES)}")
    with _lock:
        if name not in _instances:
            _instances[name] = MODULE_CLASSES[name]()
        return _instances[name]  # type: ignore[return-value]
