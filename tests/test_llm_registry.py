"""Provider strings: parsing, validation, and price resolution before any call."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from budgetmem.errors import ConfigError, UnknownPriceError
from budgetmem.llm import DEFAULT_PRICES, make_llm, parse_provider
from budgetmem.llm.openai_compat import DEFAULT_BASE_URL, OpenAICompatLLM
from budgetmem.settings import LLMSettings, Settings


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("llamacpp:smollm2-135m", ("llamacpp", "smollm2-135m", None)),
        ("LlamaCpp:Qwen2.5-Coder-1.5B", ("llamacpp", "Qwen2.5-Coder-1.5B", None)),
        ("openai:gpt-oss-120b", ("openai", "gpt-oss-120b", None)),
        ("openai:gpt-oss-120b@http://127.0.0.1:8080/v1/", ("openai", "gpt-oss-120b", "http://127.0.0.1:8080/v1")),
        (
            "openai:meta-llama/Llama-3.3-70B-Instruct-Turbo@https://api.together.xyz/v1",
            ("openai", "meta-llama/Llama-3.3-70B-Instruct-Turbo", "https://api.together.xyz/v1"),
        ),
        ("llamacpp:/models/my model.gguf", ("llamacpp", "/models/my model.gguf", None)),
    ],
)
def test_parse_provider(text: str, expected: tuple[str, str, str | None]) -> None:
    assert parse_provider(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("smollm2-135m", "bad provider string"),
        ("ollama:llama3", "known providers: llamacpp, openai"),
        ("openai:", "no model"),
        ("openai:gpt@localhost:8080", "http:// or https://"),
    ],
)
def test_parse_provider_errors(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        parse_provider(text)


def test_unknown_embedded_model_lists_known() -> None:
    with pytest.raises(ConfigError) as info:
        make_llm("llamacpp:llama-7b")
    assert "llama-7b" in str(info.value)
    assert "smollm2-135m" in str(info.value) and "qwen2.5-coder-1.5b" in str(info.value)
    assert "all-mpnet-base-v2" not in str(info.value)  # encoders are not LLMs


def test_encoder_is_not_an_llm() -> None:
    with pytest.raises(ConfigError, match="unknown embedded LLM"):
        make_llm("llamacpp:all-minilm-l6-v2")


def test_llamacpp_takes_no_url() -> None:
    with pytest.raises(ConfigError, match="takes no base URL"):
        make_llm("llamacpp:smollm2-135m@http://127.0.0.1:8080/v1")


def test_unknown_price_raises_at_construction() -> None:
    with pytest.raises(UnknownPriceError, match="some-unknown-model"):
        make_llm("openai:some-unknown-model@http://127.0.0.1:1/v1")


def test_gguf_path_needs_explicit_price(tmp_path: Path) -> None:
    gguf = tmp_path / "mine.gguf"
    gguf.write_bytes(b"GGUF")
    with pytest.raises(UnknownPriceError, match="mine.gguf"):
        make_llm(f"llamacpp:{gguf}")


def test_openai_build_with_price_and_name() -> None:
    llm = make_llm("openai:Meta-Llama/Llama-3.3-70B-Instruct-Turbo@http://127.0.0.1:1/v1")
    assert isinstance(llm, OpenAICompatLLM)
    assert llm.name == "openai:Meta-Llama/Llama-3.3-70B-Instruct-Turbo@http://127.0.0.1:1/v1"
    assert llm.price == DEFAULT_PRICES.lookup("llama-3.3-70b")
    assert llm.base_url == "http://127.0.0.1:1/v1" and not llm.supports_grammar
    assert make_llm("openai:gpt-oss-120b@http://x:1/v1", grammar_field=True).supports_grammar


def test_explicit_prices_and_prices_file(tmp_path: Path) -> None:
    llm = make_llm("openai:tiny@http://127.0.0.1:1/v1", prices=DEFAULT_PRICES.with_price("tiny", 1, 2))
    assert (llm.price.input_per_m, llm.price.output_per_m) == (1.0, 2.0)
    prices = tmp_path / "p.toml"
    prices.write_text('[prices.tiny]\ninput = 0.5\noutput = 0.25\n')
    llm = make_llm("openai:tiny@http://127.0.0.1:1/v1", settings=Settings(prices_file=prices))
    assert (llm.price.input_per_m, llm.price.output_per_m) == (0.5, 0.25)


def test_base_url_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert make_llm("openai:gpt-oss-120b").base_url == DEFAULT_BASE_URL  # type: ignore[attr-defined]
    monkeypatch.setenv("OPENAI_BASE_URL", "http://env:1/v1")
    assert make_llm("openai:gpt-oss-120b").base_url == "http://env:1/v1"  # type: ignore[attr-defined]
    s = Settings(llm=LLMSettings(openai_base_url="http://settings:2/v1"))
    assert make_llm("openai:gpt-oss-120b", settings=s).base_url == "http://settings:2/v1"  # type: ignore[attr-defined]
    explicit = make_llm("openai:gpt-oss-120b@http://explicit:3/v1", settings=s)
    assert explicit.base_url == "http://explicit:3/v1"  # type: ignore[attr-defined]


def test_missing_llama_cpp_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gguf = tmp_path / "mine.gguf"
    gguf.write_bytes(b"GGUF")
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # makes `import llama_cpp` fail
    with pytest.raises(ConfigError, match=r"install budgetmem\[embedded\]"):
        make_llm(f"llamacpp:{gguf}", prices=DEFAULT_PRICES.with_price("mine.gguf", 0, 0))
