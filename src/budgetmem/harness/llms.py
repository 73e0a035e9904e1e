"""Where a run's LLMs come from: the provider registry, ready objects, or a factory.

A run names its providers by string (``settings.pipeline``, ``--judge``). By default each is
built by the registry. Callers may instead hand over

- a mapping ``provider -> LLM`` (custom clients, test doubles), used as it is by the local
  and thread executors, which run in this process; or
- a factory ``provider -> LLM | None``: a picklable callable each worker calls for itself,
  which is what a Ray worker in another process can receive (None: use the registry).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from budgetmem.llm import LLM

__all__ = ["LLMFactory", "LLMSource", "resolve_llms"]

LLMFactory = Callable[[str], "LLM | None"]
LLMSource = Mapping[str, LLM] | LLMFactory | None


def resolve_llms(source: LLMSource, providers: Iterable[str | None]) -> dict[str, LLM]:
    """The ready LLMs for ``providers``; providers missing from the result use the registry."""
    if source is None:
        return {}
    if isinstance(source, Mapping):
        return dict(source)
    built = {}
    for p in dict.fromkeys(x for x in providers if x):
        llm = source(p)
        if llm is not None:
            built[p] = llm
    return built
