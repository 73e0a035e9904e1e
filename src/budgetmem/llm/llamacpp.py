"""Embedded GGUF models run in-process with llama.cpp (``llamacpp:<registry-name>`` or a .gguf path).

A model loads once per process: instances are cached by (path, n_ctx, n_threads, repack
mode) and shared by every ``LlamaCppLLM`` that asks for them. Whether llama.cpp may repack
the weights for this CPU is decided before the load, with a child-process check where it
is not known to be safe (:mod:`budgetmem.llm.native`), so a native crash is an error
message rather than a dead process. Each loaded instance owns one KV cache, and
llama.cpp reuses the longest common prompt prefix of consecutive calls, so calls to one
instance are serialised by a lock rather than interleaved.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from budgetmem.errors import ConfigError, LLMResponseError, ModelError, UnknownPriceError
from budgetmem.llm.base import LLM, Completion, Message, Price, as_messages, usage_counts
from budgetmem.llm.native import model_params
from budgetmem.llm.pricing import PriceTable
from budgetmem.llm.repack import resolve_repack
from budgetmem.models import MODELS, get_model, model_path
from budgetmem.models.prepare import models_dir as resolve_models_dir
from budgetmem.settings import LLMSettings, Settings

__all__ = ["LlamaCppLLM", "is_gguf_path", "clear_model_cache", "default_threads"]


def is_gguf_path(model: str) -> bool:
    """A model given as a file rather than a registry name."""
    return model.lower().endswith(".gguf") or "/" in model or os.sep in model


def default_threads() -> int:
    """All cores this process may run on (the settings' meaning of n_threads=None)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


_STDERR_LOCK = threading.Lock()


@contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence C-level writes to fd 2 (llama.cpp/ggml load chatter) for the block.

    fd 2 is process-wide: the lock stops two threads from saving each other's redirect
    and leaving stderr pointed at /dev/null.
    """
    with _STDERR_LOCK:
        try:
            saved = os.dup(2)
        except OSError:
            yield
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)


def _llama_cpp() -> ModuleType:
    try:
        with _quiet_stderr():
            import llama_cpp
    except ImportError as exc:
        raise ConfigError(
            f"llama-cpp-python is not installed ({exc})", hint="install budgetmem[embedded]"
        ) from None
    return llama_cpp


@dataclass(frozen=True)
class _Loaded:
    llama: Any
    lock: threading.Lock
    repack: bool


_LOADED: dict[tuple[str, int, int, str], _Loaded] = {}
_LOAD_LOCK = threading.Lock()
# Free models while the interpreter is whole: llama-cpp-python's own finaliser, run during
# interpreter teardown, finds its C bindings gone and prints a TypeError on exit.
atexit.register(lambda: clear_model_cache())
_REPACK: dict[tuple[str, str], bool] = {}
"""(model path, repack mode) -> the decision, made once per process."""


def _repack(path: Path, name: str, mode: str, checks: Path) -> bool:
    """The load-mode decision for a model, made once per process (see :mod:`budgetmem.llm.repack`)."""
    memo = (str(path), mode)
    if memo not in _REPACK:
        version = getattr(_llama_cpp(), "__version__", "unknown")
        _REPACK[memo] = resolve_repack(path, name, mode, checks, version=version).enabled
    return _REPACK[memo]


def _load(path: Path, n_ctx: int, n_threads: int, repack_mode: str, name: str, checks: Path) -> _Loaded:
    key = (str(path.resolve()), n_ctx, n_threads, repack_mode)
    with _LOAD_LOCK:  # loads are rare and heavy; one at a time keeps memory predictable
        slot = _LOADED.get(key)
        if slot is None:
            llama_cpp = _llama_cpp()
            repack = _repack(Path(key[0]), name, repack_mode, checks)
            try:
                with _quiet_stderr(), model_params(llama_cpp, repack=repack):
                    llama = llama_cpp.Llama(model_path=key[0], n_ctx=n_ctx, n_threads=n_threads, verbose=False)
            except (ValueError, RuntimeError) as exc:
                raise ModelError(
                    f"llama.cpp could not load {path}: {exc}", hint="check the file is a GGUF model"
                ) from None
            slot = _Loaded(llama, threading.Lock(), repack)
            _LOADED[key] = slot
    return slot


def clear_model_cache() -> None:
    """Drop every loaded model (frees memory; the next call loads again)."""
    with _LOAD_LOCK:
        for slot in _LOADED.values():
            with slot.lock:  # not while a call is running on it
                slot.llama.close()
        _LOADED.clear()
        _GRAMMARS.clear()
        _REPACK.clear()


_GRAMMARS: dict[str, Any] = {}
"""Grammar text -> LlamaGrammar, for grammars llama.cpp has parsed successfully."""


def _grammar(slot: _Loaded, text: str) -> Any:
    """A LlamaGrammar for ``text``, test-parsed by llama.cpp once, then cached.

    llama-cpp-python hands an unparsable grammar to the sampler chain as a null pointer
    (a crash, not an exception), so each new grammar is compiled here first.
    """
    cached = _GRAMMARS.get(text)
    if cached is not None:
        return cached
    llama_cpp = _llama_cpp()
    with _quiet_stderr():
        sampler = llama_cpp.llama_sampler_init_grammar(slot.llama._model.vocab, text.encode("utf-8"), b"root")
    if not sampler:
        raise ConfigError("invalid GBNF grammar (llama.cpp could not parse it)", hint="it needs a 'root ::= ...' rule")
    llama_cpp.llama_sampler_free(sampler)
    grammar = llama_cpp.LlamaGrammar.from_string(text, verbose=False)
    _GRAMMARS[text] = grammar
    return grammar


class LlamaCppLLM(LLM):
    """A GGUF chat model run in this process; the chat template comes from the GGUF file."""

    supports_grammar = True
    supports_logprobs = True

    def __init__(
        self,
        model: str,
        *,
        price: Price,
        settings: LLMSettings | None = None,
        models_dir: str | os.PathLike[str] | None = None,
        name: str | None = None,
        auto_prepare: bool = False,
    ) -> None:
        """``auto_prepare``: prepare a registry model that is missing instead of failing."""
        _llama_cpp()  # fail at construction, and before any download, if the extra is missing
        self.settings = settings or LLMSettings()
        self.model = model
        self.price = price
        self.name = name or f"llamacpp:{model}"
        if is_gguf_path(model):
            self.path = Path(model).expanduser()
            if not self.path.is_file():
                raise ModelError(f"model file not found: {self.path}", hint="check the path after llamacpp:")
        else:
            root = Path(models_dir) if models_dir is not None else None
            self.path = model_path(model, root, prepare_missing=auto_prepare)
        self.n_ctx = self.settings.n_ctx
        self.n_threads = self.settings.n_threads or default_threads()
        self._checks = resolve_models_dir(models_dir) / "native-checks.json"

    @classmethod
    def from_provider(
        cls,
        model: str,
        base_url: str | None,
        *,
        prices: PriceTable,
        settings: Settings,
        models_dir: str | os.PathLike[str] | None = None,
        name: str | None = None,
    ) -> LlamaCppLLM:
        """Validate the model, then its price, then build (the model loads on first use)."""
        if base_url is not None:
            raise ConfigError(
                f"llamacpp:{model} takes no base URL", hint=f"for a server use openai:{model}@{base_url}"
            )
        if is_gguf_path(model):
            price = _file_price(model, prices)
        else:
            spec = MODELS.get(model.lower())
            if spec is None or spec.kind != "llm":
                known = ", ".join(s.name for s in MODELS.values() if s.kind == "llm")
                raise ConfigError(f"unknown embedded LLM {model!r}", hint=f"known: {known}, or a path to a .gguf file")
            model = get_model(model).name
            name = f"llamacpp:{model}"  # canonical case, so reports group by one name
            price = prices.lookup(model)
        return cls(model, price=price, settings=settings.llm, models_dir=models_dir or settings.models_dir, name=name,
                   auto_prepare=settings.auto_prepare)

    def load(self) -> None:
        """Load the model now instead of on the first call (e.g. to time calls fairly)."""
        self._slot()

    def _slot(self) -> _Loaded:
        return _load(self.path, self.n_ctx, self.n_threads, self.settings.repack, self.name, self._checks)

    @property
    def repacked(self) -> bool:
        """Whether the loaded weights were repacked for this CPU (loads the model)."""
        return self._slot().repack

    def count_tokens(self, text: str) -> int:
        slot = self._slot()
        return len(slot.llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def complete(
        self,
        messages: str | Sequence[Message],
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
        stop: Sequence[str] | None = None,
        grammar: str | None = None,
        json_mode: bool = False,
        logprobs: bool = False,
    ) -> Completion:
        """``logprobs``: also measure the generated tokens' mean log-probability (see
        :class:`_TokenLogprobs`)."""
        self._check_request(max_tokens, grammar, json_mode)
        chat = [{"role": m.role, "content": m.content} for m in as_messages(messages)]
        kwargs: dict[str, Any] = {"max_tokens": max_tokens, "temperature": temperature}
        scorer = _TokenLogprobs() if logprobs else None
        if scorer is not None:
            kwargs["logits_processor"] = _llama_cpp().LogitsProcessorList([scorer])
        if stop:
            kwargs["stop"] = list(stop)
        if json_mode:
            kwargs["response_format"] = {"type": "json_object"}
        slot = self._slot()
        if grammar is not None:
            kwargs["grammar"] = _grammar(slot, grammar)
        with slot.lock:
            start = time.perf_counter()  # generation time only, not time spent waiting for the lock
            try:
                result = slot.llama.create_chat_completion(messages=chat, **kwargs)
            except ValueError as exc:  # e.g. the prompt does not fit the context window
                raise LLMResponseError(f"{self.name}: {exc}", hint="shorten the prompt or raise llm.n_ctx") from None
            latency = time.perf_counter() - start
        choice = (result.get("choices") or [{}])[0]
        text = (choice.get("message") or {}).get("content")
        if not isinstance(text, str):
            raise LLMResponseError(f"{self.name} returned no message content")
        prompt_tokens, completion_tokens = usage_counts(result.get("usage"), self.name)
        mean_lp = scorer.mean(completion_tokens) if scorer is not None else None
        return self._completion(text, prompt_tokens, completion_tokens, latency, choice.get("finish_reason"), mean_lp)


class _TokenLogprobs:
    """A logits processor that only watches, to measure the reply's mean token log-probability
    under the model (raw logits: before any grammar or sampling setting).

    At each generation step it keeps the step's logits and their log-sum-exp; at the next
    step the token that was emitted is the last of the input ids, so its log-probability is
    read then (whatever chose it: greedy, sampling, or a grammar's mask). A reply cut by
    ``max_tokens`` never feeds its last token back; that one step counts its most likely
    token instead. llama-cpp-python offers ``logprobs`` only for models loaded with
    ``logits_all=True``, which keeps a context-by-vocabulary matrix (GBs for Qwen's 151k
    vocabulary); this keeps one vocabulary row."""

    def __init__(self) -> None:
        self.steps: list[float] = []
        self._pending: tuple[Any, float] | None = None

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import numpy as np

        if self._pending is not None:
            logits, lse = self._pending
            self.steps.append(float(logits[int(input_ids[-1])]) - lse)
        x = np.asarray(scores, dtype=np.float64)
        top = float(x.max())
        self._pending = (np.array(scores, dtype=np.float32, copy=True), top + float(np.log(np.exp(x - top).sum())))
        return scores

    def mean(self, completion_tokens: int) -> float | None:
        """Over the reply's tokens (the step that chose end-of-text is not one of them)."""
        steps = list(self.steps)
        if len(steps) < completion_tokens and self._pending is not None:
            logits, lse = self._pending
            steps.append(float(logits.max()) - lse)
        steps = steps[: max(1, completion_tokens)]
        return sum(steps) / len(steps) if steps else None


def _file_price(model: str, prices: PriceTable) -> Price:
    """A .gguf file has no default price: the user keys one by its path or file name."""
    for key in (model, Path(model).name):
        try:
            return prices.lookup(key)
        except UnknownPriceError:
            continue
    raise UnknownPriceError(
        f"no price for local model file {model!r}",
        hint="set one keyed by its path or file name in a prices file or with PriceTable.with_price",
    )
