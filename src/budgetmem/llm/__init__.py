"""LLM backends with exact token accounting and explicit prices.

Build one from a provider string with :func:`make_llm`, e.g. ``make_llm("llamacpp:smollm2-135m")``
or ``make_llm("openai:gpt-oss-120b@http://127.0.0.1:8080/v1")``. Backend modules load lazily.
"""

from budgetmem.llm.base import LLM, Completion, Message, Price, usd_cost
from budgetmem.llm.pricing import DEFAULT_PRICES, EMBEDDED_EQUIVALENTS, PAPER_PRICES, PriceTable, load_prices
from budgetmem.llm.registry import PROVIDERS, make_llm, parse_provider

__all__ = [
    "DEFAULT_PRICES",
    "EMBEDDED_EQUIVALENTS",
    "LLM",
    "PAPER_PRICES",
    "PROVIDERS",
    "Completion",
    "Message",
    "Price",
    "PriceTable",
    "load_prices",
    "make_llm",
    "parse_provider",
    "usd_cost",
]
