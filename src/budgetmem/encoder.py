"""Sentence encoders from the embedded registry: token counting and L2-normalised embeddings.

Token counting needs only the tokenizer file (fast, no torch), so chunking a history does
not load the network. Texts longer than the encoder reads (all-mpnet-base-v2 reads 384
tokens) are embedded window by window and mean-pooled, so a 1,024-token document chunk
is represented whole rather than by its first third.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import Any
from functools import cached_property
from pathlib import Path

import numpy as np
from tqdm import tqdm

from budgetmem.errors import ConfigError
from budgetmem.llm.native import CpuInfo, cpu_info
from budgetmem.models import get_model, model_path
from budgetmem.settings import EncoderSettings

__all__ = ["Encoder", "query_precision"]

# Bit-for-bit results whichever thread or process computes them: without this, MKL (torch's
# CPU matrix library) picks kernels by the memory alignment of its inputs, so the same text
# embedded in another thread can differ in the last bit, and router training on the thread
# executor would drift from the local one. Read when MKL starts, so set before torch runs.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")


_BATCHES_PER_SLICE = 1
"""Batches encoded per hold of the encoder lock (see :meth:`Encoder.encode`)."""

_NATIVE_BF16 = frozenset({"avx512_bf16", "amx_bf16"})


def query_precision(setting: str, cpu: CpuInfo | None = None) -> str:
    """The number format queries are embedded in: ``auto`` is bfloat16 only on a CPU with
    native bfloat16 dot products; elsewhere torch emulates it, slower than float32."""
    if setting != "auto":
        return setting
    return "bfloat16" if (cpu or cpu_info()).flags & _NATIVE_BF16 else "float32"


class _TurnLock:
    """A lock taken in arrival order. ``threading.Lock`` is not fair: a thread encoding slice
    after slice re-takes it at once, and a waiting search can lose every time; in turns, it
    waits for one slice at most."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._issued = 0
        self._serving = 0

    def __enter__(self) -> None:
        with self._cond:
            turn = self._issued
            self._issued += 1
            self._cond.wait_for(lambda: self._serving == turn)

    def __exit__(self, *exc: object) -> None:
        with self._cond:
            self._serving += 1
            self._cond.notify_all()


class _QueryBatcher:
    """Encodes concurrent one-line queries together: one forward pass for all that wait.

    Forward passes run one at a time (the encoder lock), so under concurrent searches each
    query would wait for every query ahead of it. Instead, a caller that finds no pass in
    flight leads one: it encodes everything queued at that moment (at most ``max_batch``),
    hands each caller its row, and passes the lead to the first caller that arrived
    meanwhile, which then does the same. A leader is always in its own pass and leads only
    that one, so no caller waits behind more than the pass in flight and its own. Alone, a
    query is encoded at once, in a pass of its own: the result is the unbatched one, bit for
    bit. A failed pass raises its error in every caller it held; the next pass still runs.
    """

    def __init__(self, encode_many: Callable[[list[str]], np.ndarray], max_batch: int = 32) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self._encode_many = encode_many
        self._max = max_batch
        self._lock = threading.Lock()
        self._waiting: list[_Slot] = []
        self._busy = False

    def __call__(self, text: str) -> np.ndarray:
        mine = _Slot(text)
        with self._lock:
            self._waiting.append(mine)
            if not self._busy:  # nothing in flight, so nothing queued either: lead at once
                self._busy = mine.lead = True
        if not mine.lead:
            mine.wake.wait()  # set when this caller's row is ready, or when it is to lead
        if mine.lead:
            self._pass()
        if mine.error is not None:
            raise mine.error
        assert mine.vector is not None
        return mine.vector

    def _pass(self) -> None:
        """One forward pass over the queue's head (the leader is its first slot)."""
        with self._lock:
            batch = self._waiting[: self._max]
            del self._waiting[: self._max]
        vectors: np.ndarray | None = None
        error: BaseException | None = None
        try:
            vectors = self._encode_many([s.text for s in batch])
            if len(vectors) != len(batch):
                raise RuntimeError(f"the encoder returned {len(vectors)} rows for {len(batch)} queries")
        except BaseException as exc:  # every caller in the pass learns of it, none hangs
            error = exc
        with self._lock:  # the lead goes on before the rows go out: the next pass starts first
            if self._waiting:
                self._waiting[0].lead = True
                self._waiting[0].wake.set()
            else:
                self._busy = False
        for i, s in enumerate(batch):
            if error is not None:
                s.error = error
            else:
                s.vector = vectors[i]  # type: ignore[index]
            s.wake.set()


class _Slot:
    __slots__ = ("text", "vector", "error", "lead", "wake")

    def __init__(self, text: str) -> None:
        self.text = text
        self.vector: np.ndarray | None = None
        self.error: BaseException | None = None
        self.lead = False
        self.wake = threading.Event()


class Encoder:
    def __init__(self, settings: EncoderSettings | None = None, models_dir: Path | None = None) -> None:
        self.settings = settings or EncoderSettings()
        self.spec = get_model(self.settings.name)
        if self.spec.kind != "encoder":
            raise ConfigError(f"{self.spec.name} is an LLM, not a sentence encoder", hint="use all-mpnet-base-v2 or all-minilm-l6-v2")
        self.name = self.spec.name
        self.dim = int(self.spec.dim or 0)
        self.path = model_path(self.spec.name, models_dir)
        self.n_encoded = 0
        """Texts embedded by this instance (lets tests prove that re-opening never re-embeds)."""
        self._lock = _TurnLock()
        self._queries = _QueryBatcher(self._encode_queries, max_batch=self.settings.batch_size)
        self.batch_queries = False
        self.query_precision = query_precision(self.settings.query_precision)
        """``float32``, ``bfloat16`` or ``int8``: what :meth:`encode_query` runs in on this machine."""

    # ------------------------------------------------------------------ tokens
    @cached_property
    def _tokenizer(self):  # type: ignore[no-untyped-def]
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(self.path / "tokenizer.json"))
        tok.no_truncation()  # we count every token; the file ships with truncation on
        tok.no_padding()
        return tok

    def offsets(self, text: str) -> list[tuple[int, int]]:
        return list(self._tokenizer.encode(text, add_special_tokens=False).offsets)

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    # ------------------------------------------------------------------ vectors
    @cached_property
    def _model(self):  # type: ignore[no-untyped-def]
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise ConfigError(
                "sentence-transformers is not installed", hint="pip install 'budgetmem[embedded]'"
            ) from None
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # a weight-loading bar on every start is noise
        return SentenceTransformer(str(self.path), device="cpu")

    @cached_property
    def _query_model(self):  # type: ignore[no-untyped-def]
        """The network that embeds queries: the float32 one, or a copy of it in bfloat16 or
        with int8 linear layers when :attr:`query_precision` says so."""
        if self.query_precision == "float32":
            return self._model
        import copy

        import torch

        if self.query_precision == "int8":
            import warnings

            from torch.ao.quantization import quantize_dynamic

            # Dynamic quantisation: the linear layers' weights are stored as int8 (one scale
            # per matrix) and each pass quantises its activations on the fly, so no calibration
            # data is needed. torch marks this API as moving to torchao; it still works.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return quantize_dynamic(copy.deepcopy(self._model), {torch.nn.Linear}, dtype=torch.qint8)
        return copy.deepcopy(self._model).to(torch.bfloat16)

    def load(self) -> float:
        """Load the network now (it loads lazily otherwise); returns the seconds it took."""
        import time

        started = time.perf_counter()
        _ = self._model
        return time.perf_counter() - started

    @property
    def max_tokens(self) -> int:
        """Content tokens per window: the network's limit minus [CLS]/[SEP], or the settings'
        smaller ``window_tokens``."""
        limit = int(self.spec.max_seq_tokens or 256) - 2
        return min(limit, self.settings.window_tokens) if self.settings.window_tokens else limit

    def _windows(self, text: str) -> list[str]:
        offs = self.offsets(text)
        n, w = len(offs), self.max_tokens
        if n <= w:
            return [text]
        stride = max(1, min(self.settings.window_stride, w))
        starts = list(range(0, n - w, stride)) + [n - w]  # the last window ends at the text's end
        return [text[offs[a][0] : offs[a + w - 1][1]] for a in starts]

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        """Unit-length float32 embeddings, one row per text (a float32 forward pass)."""
        return self._encode(texts, self._model, progress=progress)

    def _encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, self._query_model)

    def _encode(self, texts: Sequence[str], model: Any, *, progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        windows: list[str] = []
        owner: list[int] = []
        for i, t in enumerate(texts):
            for piece in self._windows(t):
                windows.append(piece)
                owner.append(i)
        # One forward pass at a time (torch already uses every core), but the lock is taken
        # per slice of a few batches, not for the whole list: a long ingest then lets a
        # search's one-line query through between slices instead of after the last one.
        step = self.settings.batch_size * _BATCHES_PER_SLICE
        slices = range(0, len(windows), step)
        parts = []
        for start in tqdm(slices, desc="embedding", unit="slice", disable=not progress or len(slices) < 2):
            with self._lock:
                parts.append(
                    model.encode(
                        windows[start : start + step],
                        batch_size=self.settings.batch_size,
                        normalize_embeddings=True,
                        convert_to_numpy=True,
                        show_progress_bar=False,
                    ).astype(np.float32)
                )
        vecs = np.concatenate(parts) if len(parts) > 1 else parts[0]
        self.n_encoded += len(texts)
        if len(windows) == len(texts):
            return vecs
        pooled = np.zeros((len(texts), vecs.shape[1]), dtype=np.float32)
        np.add.at(pooled, np.asarray(owner), vecs)
        return pooled / np.linalg.norm(pooled, axis=1, keepdims=True).clip(min=1e-12)

    def encode_query(self, text: str) -> np.ndarray:
        """One query's embedding. With :attr:`batch_queries` on, concurrent calls share forward
        passes (:class:`_QueryBatcher`): the service turns it on for throughput. Off (the
        default), a query is encoded alone, so its embedding is bit-for-bit the same whoever
        else is searching: evaluation and training on several threads stay reproducible
        (padding in a shared batch can move the last bit)."""
        if self.batch_queries:
            return self._queries(text)
        return self._encode_queries([text])[0]
