"""Prices per model, so every call reports dollars comparable with the routing paper.

The defaults are the Together AI list prices the routing paper uses for its cost axis
(§5.1, footnote 4). The embedded ladder runs locally for free, but is priced as the paper
model of the same rung so local experiments report paper-comparable dollars; each such
price says so in its ``source``. A model with no price is an error, never zero.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType

from budgetmem.errors import ConfigError, InputError, UnknownPriceError
from budgetmem.llm.base import Price
from budgetmem.userfiles import decode_json, decode_toml

__all__ = ["PriceTable", "DEFAULT_PRICES", "PAPER_PRICES", "EMBEDDED_EQUIVALENTS", "load_prices"]

_PAPER_SOURCE = "Together AI list price used by the routing paper (§5.1, footnote 4)"

PAPER_PRICES: Mapping[str, Price] = MappingProxyType(
    {
        "llama-3.2-3b": Price(0.06, 0.06, _PAPER_SOURCE),
        "llama-3.1-8b": Price(0.18, 0.18, _PAPER_SOURCE),
        "llama-3.3-70b": Price(0.88, 0.88, _PAPER_SOURCE),
        "gpt-oss-120b": Price(0.15, 0.60, _PAPER_SOURCE),
        "qwen3-next-80b-a3b": Price(0.15, 1.50, _PAPER_SOURCE),
    }
)

EMBEDDED_EQUIVALENTS: Mapping[str, str] = MappingProxyType(
    {
        # small / medium / large rung -> the paper model priced for that rung
        "smollm2-135m": "llama-3.2-3b",
        "qwen2.5-coder-0.5b": "llama-3.1-8b",
        "qwen2.5-coder-1.5b": "llama-3.3-70b",
    }
)

# Hosted names for the paper models; exact (case-insensitive) matches only.
_ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "meta-llama/llama-3.2-3b-instruct-turbo": "llama-3.2-3b",
        "meta-llama/llama-3.2-3b-instruct": "llama-3.2-3b",
        "meta-llama/meta-llama-3.1-8b-instruct-turbo": "llama-3.1-8b",
        "meta-llama/llama-3.1-8b-instruct": "llama-3.1-8b",
        "meta-llama/llama-3.3-70b-instruct-turbo": "llama-3.3-70b",
        "meta-llama/llama-3.3-70b-instruct": "llama-3.3-70b",
        "openai/gpt-oss-120b": "gpt-oss-120b",
        "qwen/qwen3-next-80b-a3b-instruct": "qwen3-next-80b-a3b",
    }
)


def _key(model: str) -> str:
    return model.strip().lower()


class PriceTable(Mapping[str, Price]):
    """An immutable mapping model key -> :class:`Price`; keys are matched case-insensitively.

    ``table[key]`` is an exact lookup (KeyError); :meth:`lookup` also resolves the hosted
    aliases and raises :class:`UnknownPriceError` with the fix.
    """

    __slots__ = ("_prices", "_aliases")

    def __init__(self, prices: Mapping[str, Price], aliases: Mapping[str, str] | None = None) -> None:
        self._prices: Mapping[str, Price] = MappingProxyType({_key(k): v for k, v in prices.items()})
        self._aliases: Mapping[str, str] = MappingProxyType(
            {_key(k): _key(v) for k, v in (aliases if aliases is not None else _ALIASES).items()}
        )

    def __getitem__(self, model: str) -> Price:
        return self._prices[_key(model)]

    def __iter__(self) -> Iterator[str]:
        return iter(self._prices)

    def __len__(self) -> int:
        return len(self._prices)

    def __repr__(self) -> str:
        return f"PriceTable({len(self)} models)"

    def lookup(self, model: str) -> Price:
        """The price of ``model`` (an exact entry wins over an alias)."""
        key = _key(model)
        if key in self._prices:
            return self._prices[key]
        target = self._aliases.get(key)
        if target is not None and target in self._prices:
            return self._prices[target]
        raise UnknownPriceError(
            f"no price for model {model!r}",
            hint=f"set one in a prices file ([prices.\"{model}\"] input/output, USD per 1M tokens) "
            f"or with PriceTable.with_price",
        )

    def with_price(self, model: str, input_per_m: float, output_per_m: float, source: str = "user") -> PriceTable:
        """A new table with ``model`` priced; an explicit 0/0 is allowed and labelled as such."""
        price = _make_price(model, input_per_m, output_per_m, source, where="with_price")
        return PriceTable({**self._prices, _key(model): price}, self._aliases)


def _make_price(model: str, input_per_m: object, output_per_m: object, source: str, where: str) -> Price:
    values = []
    for label, value in (("input", input_per_m), ("output", output_per_m)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{where}: {label} price of {model!r} must be a number, got {value!r}")
        if value < 0:
            raise ConfigError(f"{where}: {label} price of {model!r} is negative ({value})")
        values.append(float(value))
    if values == [0.0, 0.0]:
        # Zero is a legitimate choice (e.g. a local model) but must never look like a default.
        source = "explicit zero set by user" if source == "user" else f"explicit zero set by user ({source})"
    return Price(values[0], values[1], source)


def _defaults() -> PriceTable:
    prices = dict(PAPER_PRICES)
    for name, paper in EMBEDDED_EQUIVALENTS.items():
        p = PAPER_PRICES[paper]
        prices[name] = Price(
            p.input_per_m,
            p.output_per_m,
            f"paper-equivalent: priced as {paper} (Together AI list price used by the routing paper); runs locally",
        )
    return PriceTable(prices)


DEFAULT_PRICES: PriceTable = _defaults()


def load_prices(path: str | Path, base: PriceTable | None = None) -> PriceTable:
    """A table from a TOML or JSON prices file, merged over ``base`` (default: the defaults).

    Shape: ``{"prices": {"model": {"input": 0.1, "output": 0.2, "source": "..."}}}``.
    """
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"prices file not found: {p}", hint="check the prices_file path") from None
    except OSError as exc:
        raise InputError(f"cannot read prices file {p}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"prices file {p} is not UTF-8 text (byte {exc.start})") from None
    if p.suffix.lower() == ".json":
        data = decode_json(text, f"prices file {p}")
    else:
        data = decode_toml(text, f"prices file {p}")
    if not isinstance(data, dict) or not isinstance(data.get("prices"), dict):
        raise ConfigError(
            f"prices file {p} has no 'prices' table", hint='expected {"prices": {"model": {"input": .., "output": ..}}}'
        )
    table = base if base is not None else DEFAULT_PRICES
    for model, entry in data["prices"].items():
        if not isinstance(entry, dict):
            raise ConfigError(f"prices file {p}: entry {model!r} must be a table with input and output")
        missing = [k for k in ("input", "output") if k not in entry]
        if missing:
            raise ConfigError(f"prices file {p}: entry {model!r} lacks {' and '.join(missing)}")
        unknown = sorted(set(entry) - {"input", "output", "source"})
        if unknown:
            raise ConfigError(f"prices file {p}: entry {model!r} has unknown key(s) {', '.join(unknown)}")
        source = entry.get("source", f"user prices file {p}")
        if not isinstance(source, str):
            raise ConfigError(f"prices file {p}: source of {model!r} must be a string")
        price = _make_price(model, entry["input"], entry["output"], source, where=f"prices file {p}")
        table = PriceTable({**table, _key(model): price}, table._aliases)
    return table
