"""Sentence encoders from the embedded registry: token counting and L2-normalised embeddings.

Token counting needs only the tokenizer file (fast, no torch), so chunking a history does
not load the network. Texts longer than the encoder reads (all-mpnet-base-v2 reads 384
tokens) are embedded window by window and mean-pooled, so a 1,024-token document chunk
is represented whole rather than by its first third.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import numpy as np

from budgetmem.errors import ConfigError
from budgetmem.models import get_model, model_path
from budgetmem.settings import EncoderSettings

__all__ = ["Encoder"]

# Bit-for-bit results whichever thread or process computes them: without this, MKL (torch's
# CPU matrix library) picks kernels by the memory alignment of its inputs, so the same text
# embedded in another thread can differ in the last bit, and router training on the thread
# executor would drift from the local one. Read when MKL starts, so set before torch runs.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")


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
        self._lock = threading.Lock()

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

    def load(self) -> float:
        """Load the network now (it loads lazily otherwise); returns the seconds it took."""
        import time

        started = time.perf_counter()
        _ = self._model
        return time.perf_counter() - started

    @property
    def max_tokens(self) -> int:
        """Content tokens the network reads in one pass (its limit minus [CLS]/[SEP])."""
        return int(self.spec.max_seq_tokens or 256) - 2

    def _windows(self, text: str) -> list[str]:
        offs = self.offsets(text)
        n, w = len(offs), self.max_tokens
        if n <= w:
            return [text]
        stride = max(1, min(self.settings.window_stride, w))
        starts = list(range(0, n - w, stride)) + [n - w]  # the last window ends at the text's end
        return [text[offs[a][0] : offs[a + w - 1][1]] for a in starts]

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        """Unit-length float32 embeddings, one row per text."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        windows: list[str] = []
        owner: list[int] = []
        for i, t in enumerate(texts):
            for piece in self._windows(t):
                windows.append(piece)
                owner.append(i)
        with self._lock:  # one forward pass at a time; torch already uses every core
            vecs = self._model.encode(
                windows,
                batch_size=self.settings.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=progress,
            ).astype(np.float32)
        self.n_encoded += len(texts)
        if len(windows) == len(texts):
            return vecs
        pooled = np.zeros((len(texts), vecs.shape[1]), dtype=np.float32)
        np.add.at(pooled, np.asarray(owner), vecs)
        return pooled / np.linalg.norm(pooled, axis=1, keepdims=True).clip(min=1e-12)

    def encode_query(self, text: str) -> np.ndarray:
        return self.encode([text])[0]
