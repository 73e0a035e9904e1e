"""The embedded backend on the real SmolLM2-135M model (in-process llama.cpp)."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest

from budgetmem.errors import ConfigError, ModelError
from budgetmem.llm import DEFAULT_PRICES, Message, make_llm
from budgetmem.llm.llamacpp import LlamaCppLLM, _LOADED
from budgetmem.models import model_path

pytestmark = pytest.mark.models


@pytest.fixture(scope="module")
def smol_path() -> Path:
    import llama_cpp  # noqa: F401  (the embedded extra; make test installs it)
    try:
        return model_path("smollm2-135m")
    except ModelError as exc:
        pytest.fail(f"smollm2-135m is not prepared (make models prepares it): {exc}")


@pytest.fixture(scope="module")
def smol(smol_path: Path) -> LlamaCppLLM:
    llm = make_llm("llamacpp:smollm2-135m")
    assert isinstance(llm, LlamaCppLLM)
    return llm


def _chatml_prompt_tokens(path: Path, user: str) -> int:
    """Token count of the prompt as SmolLM2's GGUF chat template renders it, counted by the
    model's own tokenizer (written out by hand, independently of budgetmem and of
    llama-cpp-python's chat formatter)."""
    from llama_cpp import Llama

    vocab = Llama(model_path=str(path), vocab_only=True, verbose=False)
    prompt = (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
    )
    return len(vocab.tokenize(prompt.encode(), add_bos=False, special=True))


def test_completion_text_usage_and_usd(smol: LlamaCppLLM, smol_path: Path) -> None:
    question = "What is the capital of France? Answer in one word."
    first = smol.complete(question, max_tokens=12)
    second = smol.complete([Message("user", question)], max_tokens=12)
    assert first.text.strip() and first.model == "llamacpp:smollm2-135m"
    assert first.prompt_tokens == _chatml_prompt_tokens(smol_path, question)
    assert (second.prompt_tokens, second.completion_tokens, second.text) == (
        first.prompt_tokens,
        first.completion_tokens,
        first.text,
    )  # greedy decoding: identical calls, identical answers and counts
    assert 1 <= first.completion_tokens <= 12
    price = DEFAULT_PRICES.lookup("llama-3.2-3b")
    assert first.price.source.startswith("paper-equivalent")
    by_hand = first.prompt_tokens * price.input_per_m / 1e6 + first.completion_tokens * price.output_per_m / 1e6
    assert first.usd == pytest.approx(by_hand, rel=1e-12)
    assert first.usd > 0 and first.latency_s > 0


def test_max_tokens_caps_output(smol: LlamaCppLLM) -> None:
    c = smol.complete("Write a long story about a dragon.", max_tokens=5)
    assert c.completion_tokens == 5 and c.finish_reason == "length"


def test_grammar_forces_format(smol: LlamaCppLLM) -> None:
    grammar = 'root ::= "<answer>" [0-9] "</answer>"'
    c = smol.complete("What is 3 + 4?", max_tokens=32, grammar=grammar)
    assert re.fullmatch(r"<answer>[0-9]</answer>", c.text), c.text
    assert c.completion_tokens >= 3


def test_invalid_grammar_is_config_error(smol: LlamaCppLLM) -> None:
    with pytest.raises(ConfigError, match="invalid GBNF grammar"):
        smol.complete("hi", max_tokens=4, grammar="this is not gbnf")


def test_model_loads_once_and_calls_serialise(smol: LlamaCppLLM) -> None:
    other = make_llm("llamacpp:SmolLM2-135M")
    assert other.name == "llamacpp:smollm2-135m"
    other.complete("hi", max_tokens=2)
    smol.complete("hi", max_tokens=2)
    # Other tests may load the same file with other settings (e.g. one thread); for these
    # settings there is exactly one shared instance, used by both objects.
    keys = [k for k in _LOADED if k[0] == str(smol.path.resolve()) and k[1:3] == (smol.n_ctx, smol.n_threads)]
    assert len(keys) == 1
    results: list[str] = []
    def call() -> None:
        results.append(smol.complete("Say yes.", max_tokens=3).text)

    threads = [threading.Thread(target=call) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 3 and len(set(results)) == 1  # serialised, so greedy answers agree


def test_gguf_path_with_explicit_price(smol_path: Path) -> None:
    prices = DEFAULT_PRICES.with_price(smol_path.name, 0, 0)
    llm = make_llm(f"llamacpp:{smol_path}", prices=prices)
    c = llm.complete("Hi", max_tokens=3)
    assert c.usd == 0.0 and c.price.source == "explicit zero set by user" and c.prompt_tokens > 0


def test_mean_token_logprob_matches_llama_cpp_logits_all(smol: LlamaCppLLM, smol_path: Path) -> None:
    """The watching logits processor against llama-cpp-python's own log-probabilities, which
    need the model loaded with logits_all=True (the reference keeps every position's logits)."""
    from llama_cpp import Llama

    question = "What is the capital of France? Answer in one word."
    ours = smol.complete(question, max_tokens=12, logprobs=True)
    ref_llm = Llama(model_path=str(smol_path), n_ctx=512, logits_all=True, verbose=False, n_threads=2)
    ref = ref_llm.create_chat_completion(
        messages=[{"role": "user", "content": question}], max_tokens=12, temperature=0.0, logprobs=True, top_logprobs=1
    )
    content = ref["choices"][0]["logprobs"]["content"]
    assert ref["choices"][0]["message"]["content"] == ours.text
    want = sum(c["logprob"] for c in content[: ours.completion_tokens]) / ours.completion_tokens
    assert ours.mean_logprob is not None and ours.mean_logprob == pytest.approx(want, abs=2e-3)
    assert smol.complete(question, max_tokens=12).mean_logprob is None  # only when asked
