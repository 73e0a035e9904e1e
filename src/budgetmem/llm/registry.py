"""Provider strings -> LLM backends: ``llamacpp:<model>`` and ``openai:<model>[@<base_url>]``.

The one place that knows which backends exist. Backends are imported only when used, so
an OpenAI-only install never touches llama.cpp.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from budgetmem.errors import ConfigError
from budgetmem.llm.base import LLM
from budgetmem.llm.pricing import DEFAULT_PRICES, PriceTable, load_prices
from budgetmem.settings import Settings

__all__ = ["PROVIDERS", "parse_provider", "make_llm"]

PROVIDERS: Mapping[str, str] = MappingProxyType(
    {
        "llamacpp": "budgetmem.llm.llamacpp:LlamaCppLLM",
        "openai": "budgetmem.llm.openai_compat:OpenAICompatLLM",
    }
)
"""Provider prefix -> 'module:Class'. Each class has a ``from_provider`` classmethod."""

_FORMS = "use llamacpp:<model> or openai:<model>[@<base_url>]"
_WITH_URL = re.compile(r"^(?P<model>.+?)@(?P<url>https?://\S+)$")


def parse_provider(provider: str) -> tuple[str, str, str | None]:
    """Split 'kind:model[@base_url]' into (kind, model, base_url or None), validating each part."""
    text = provider.strip()
    kind, sep, rest = text.partition(":")
    kind = kind.strip().lower()
    if not sep or not kind:
        raise ConfigError(f"bad provider string {provider!r}", hint=_FORMS)
    if kind not in PROVIDERS:
        raise ConfigError(f"unknown provider {kind!r} in {provider!r}", hint=f"known providers: {', '.join(PROVIDERS)}")
    rest = rest.strip()
    base_url: str | None = None
    match = _WITH_URL.match(rest)
    if match:
        rest, base_url = match["model"], match["url"].rstrip("/")
    elif "@" in rest and not os.path.exists(rest):
        _, _, url = rest.rpartition("@")
        raise ConfigError(f"bad base URL {url!r} in {provider!r}", hint="it must start with http:// or https://")
    if not rest:
        raise ConfigError(f"no model in provider string {provider!r}", hint=_FORMS)
    return kind, rest, base_url


def _backend(kind: str) -> Any:
    module, _, cls = PROVIDERS[kind].partition(":")
    return getattr(importlib.import_module(module), cls)


def make_llm(
    provider: str,
    *,
    settings: Settings | None = None,
    prices: PriceTable | None = None,
    models_dir: str | os.PathLike[str] | None = None,
    **options: Any,
) -> LLM:
    """Build the backend for ``provider``; its price is resolved now, before any call is made.

    ``prices`` defaults to ``settings.prices_file`` merged over the defaults, else the
    defaults. ``options`` go to the backend (e.g. ``grammar_field=True`` for openai).
    """
    settings = settings or Settings()
    if prices is None:
        prices = load_prices(settings.prices_file) if settings.prices_file else DEFAULT_PRICES
    kind, model, base_url = parse_provider(provider)
    name = f"{kind}:{model}" + (f"@{base_url}" if base_url else "")
    llm: LLM = _backend(kind).from_provider(
        model, base_url, prices=prices, settings=settings, models_dir=models_dir, name=name, **options
    )
    return llm
