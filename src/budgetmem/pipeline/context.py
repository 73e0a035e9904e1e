"""What a module may use while it computes: the encoder, spaCy (see :mod:`budgetmem.nlp`), the
LLMs, the settings.

Heavy parts load lazily and once, so a LOW-only pipeline never loads a network and an
implementation-strategy pipeline never loads an LLM it does not route to.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol

from budgetmem.pipeline.types import ModuleInput, ModuleResult

if TYPE_CHECKING:
    from budgetmem.encoder import Encoder
    from budgetmem.llm import LLM
    from budgetmem.pipeline.tiers import TierSpec
    from budgetmem.settings import PipelineSettings

__all__ = ["RunContext", "Module"]


@dataclass
class RunContext:
    encoder: Encoder
    settings: PipelineSettings
    llm_for: Callable[[TierSpec], LLM]
    """The LLM an LLM tier runs on (resolved from the strategy and the tier's rung)."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @cached_property
    def nlp(self) -> Any:
        """spaCy pipeline, loaded on first use."""
        from budgetmem.nlp import load_nlp

        return load_nlp()


class Module(Protocol):
    """A pipeline stage's non-LLM tiers. The LLM tier is driven generically by the
    executor from the module's prompt (see prompts.py), so every module has the same
    three tiers with one contract."""

    name: str

    def rules(self, inp: ModuleInput, ctx: RunContext) -> ModuleResult:
        """implementation LOW: rules, patterns, light NLP."""
        ...

    def encoder(self, inp: ModuleInput, ctx: RunContext) -> ModuleResult:
        """implementation MID: compact learned encoders."""
        ...
