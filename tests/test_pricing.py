"""Prices: paper defaults, the embedded ladder's paper-equivalent prices, user overrides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from budgetmem.errors import ConfigError, InputError, UnknownPriceError
from budgetmem.llm import DEFAULT_PRICES, Completion, Price, PriceTable, load_prices, usd_cost


@pytest.mark.parametrize(
    ("price", "prompt", "completion", "expected"),
    [
        (Price(0.06, 0.06, "t"), 1_000_000, 0, 0.06),
        (Price(0.15, 0.60, "t"), 1000, 500, 0.00015 + 0.0003),
        (Price(0.15, 1.50, "t"), 123, 45, 123 * 0.15e-6 + 45 * 1.5e-6),
        (Price(0.88, 0.88, "t"), 0, 0, 0.0),
    ],
)
def test_usd_by_hand(price: Price, prompt: int, completion: int, expected: float) -> None:
    assert usd_cost(price, prompt, completion) == pytest.approx(expected, rel=1e-12, abs=0)


@pytest.mark.parametrize(
    ("model", "inp", "out"),
    [
        ("llama-3.2-3b", 0.06, 0.06),
        ("llama-3.1-8b", 0.18, 0.18),
        ("llama-3.3-70b", 0.88, 0.88),
        ("gpt-oss-120b", 0.15, 0.60),
        ("qwen3-next-80b-a3b", 0.15, 1.50),
    ],
)
def test_paper_defaults(model: str, inp: float, out: float) -> None:
    price = DEFAULT_PRICES.lookup(model)
    assert (price.input_per_m, price.output_per_m) == (inp, out)
    assert "Together AI" in price.source and "routing paper" in price.source


@pytest.mark.parametrize(
    ("embedded", "paper"),
    [("smollm2-135m", "llama-3.2-3b"), ("qwen2.5-coder-0.5b", "llama-3.1-8b"), ("qwen2.5-coder-1.5b", "llama-3.3-70b")],
)
def test_embedded_ladder_is_paper_equivalent(embedded: str, paper: str) -> None:
    price, ref = DEFAULT_PRICES.lookup(embedded), DEFAULT_PRICES.lookup(paper)
    assert (price.input_per_m, price.output_per_m) == (ref.input_per_m, ref.output_per_m)
    assert price.source.startswith("paper-equivalent")
    assert f"priced as {paper}" in price.source and "runs locally" in price.source


def test_aliases_case_insensitive_and_exact_only() -> None:
    assert DEFAULT_PRICES.lookup("meta-llama/Llama-3.3-70B-Instruct-Turbo").input_per_m == 0.88
    assert DEFAULT_PRICES.lookup("GPT-OSS-120B").output_per_m == 0.60
    with pytest.raises(UnknownPriceError):
        DEFAULT_PRICES.lookup("llama-3.3-70b-instruct-turbo-v2")  # no fuzzy matching


def test_unknown_model_names_model_and_fix() -> None:
    with pytest.raises(UnknownPriceError) as info:
        DEFAULT_PRICES.lookup("my-secret-model")
    message = str(info.value)
    assert "my-secret-model" in message and "prices file" in message and "with_price" in message
    assert "\n" not in message


def test_with_price_is_new_table_and_zero_is_visible() -> None:
    table = DEFAULT_PRICES.with_price("local-llm", 0, 0)
    assert "local-llm" not in DEFAULT_PRICES and "local-llm" in table
    zero = table.lookup("LOCAL-LLM")
    assert (zero.input_per_m, zero.output_per_m) == (0.0, 0.0)
    assert zero.source == "explicit zero set by user"
    paid = table.with_price("gpt-oss-120b", 1.0, 2.0, source="contract 2025")
    assert paid.lookup("gpt-oss-120b") == Price(1.0, 2.0, "contract 2025")
    assert table.lookup("gpt-oss-120b").input_per_m == 0.15  # the original is untouched
    with pytest.raises(ConfigError):
        DEFAULT_PRICES.with_price("x", -1, 0)
    with pytest.raises(TypeError):
        DEFAULT_PRICES["x"] = Price(0, 0, "")  # type: ignore[index]


def test_load_prices_toml(tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(
        '[prices."my-model"]\ninput = 0.1\noutput = 0.2\nsource = "our invoice"\n'
        '[prices."gpt-oss-120b"]\ninput = 0.2\noutput = 0.8\n'
        '[prices."free-local"]\ninput = 0\noutput = 0\n'
    )
    table = load_prices(path)
    assert table.lookup("my-model") == Price(0.1, 0.2, "our invoice")
    assert table.lookup("gpt-oss-120b").output_per_m == 0.8
    assert str(path) in table.lookup("gpt-oss-120b").source
    assert table.lookup("free-local").source.startswith("explicit zero set by user")
    assert table.lookup("llama-3.1-8b").input_per_m == 0.18  # defaults kept


def test_load_prices_json(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"prices": {"Hosted/Model-X": {"input": 3, "output": 15}}}))
    table = load_prices(path)
    assert table.lookup("hosted/model-x") == Price(3.0, 15.0, f"user prices file {path}")
    assert isinstance(table, PriceTable) and len(table) == len(DEFAULT_PRICES) + 1


@pytest.mark.parametrize(
    ("name", "text", "error"),
    [
        ("bad.toml", "[prices\ninput=", InputError),
        ("bad.json", "{not json", InputError),
        ("noprices.toml", 'title = "x"\n', ConfigError),
        ("neg.toml", '[prices.m]\ninput = -0.1\noutput = 1\n', ConfigError),
        ("str.json", '{"prices": {"m": {"input": "cheap", "output": 1}}}', ConfigError),
        ("bool.json", '{"prices": {"m": {"input": true, "output": 1}}}', ConfigError),
        ("missing.json", '{"prices": {"m": {"input": 1}}}', ConfigError),
    ],
)
def test_load_prices_malformed(tmp_path: Path, name: str, text: str, error: type[Exception]) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(error) as info:
        load_prices(path)
    assert type(info.value) is error and "\n" not in str(info.value)


def test_load_prices_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="prices file not found"):
        load_prices(tmp_path / "nope.toml")


def test_completion_to_dict_is_json() -> None:
    price = Price(0.15, 0.60, "src")
    c = Completion("hi", 10, 2, 0.5, "openai:gpt-oss-120b", usd_cost(price, 10, 2), price, "stop")
    data = json.loads(json.dumps(c.to_dict()))
    assert data["usd"] == pytest.approx(10 * 0.15e-6 + 2 * 0.6e-6)
    assert data["price"] == {"input_per_m": 0.15, "output_per_m": 0.60, "source": "src"}
    assert data["prompt_tokens"] == 10 and data["finish_reason"] == "stop"


@pytest.mark.parametrize(
    ("name", "data", "match"),
    [
        ("binary.toml", bytes(range(256)), "not UTF-8 text"),
        ("deep.json", b"[" * 50_000 + b"]" * 50_000, "nested too deeply"),
        ("deep.toml", b"x = " + b"[" * 50_000 + b"]" * 50_000, "nested too deeply"),
        ("digits.json", b'{"prices": {"m": {"input": ' + b"7" * 5000 + b"}}}", "number too long"),
    ],
)
def test_load_prices_refuses_what_the_parsers_choke_on(tmp_path: Path, name: str, data: bytes, match: str) -> None:
    # Found by the CLI fuzz campaign: `complete --prices FILE` with a binary file raised
    # UnicodeDecodeError, and JSON nested 50,000 deep RecursionError, both as tracebacks.
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(InputError, match=match) as info:
        load_prices(path)
    assert "\n" not in str(info.value) and "prices file" in str(info.value)
