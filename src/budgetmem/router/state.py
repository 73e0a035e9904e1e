"""The router's state s_k (routing paper §4.3 and App. A.3): embeddings of the query, of the
module's current input, and of a descriptor of the module being routed.

    filter              input = mean embedding of the retrieved candidate chunks
    entity/temporal/topic input = mean embedding of the filtered chunks
    summary             input = embedding of the extractors' facts, written out
    (which module reads what comes from the stage table, so an added module fits in)

The summary's input is always a real embedding of what it is about to read: when the
extractors found nothing, the text that says so is embedded (a fixed, non-zero vector),
never a zero vector. Stored chunks' embeddings are read from the retrieval index when a
lookup is given (no chunk is encoded twice); other texts are encoded once and cached by
text, since the same ones come back across modules and training epochs.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np

from budgetmem.encoder import Encoder
from budgetmem.pipeline.policy import PolicyState
from budgetmem.pipeline.stages import STAGES, Stage

__all__ = ["MODULE_DESCRIPTIONS", "StateEncoder", "RouterState"]

# What each module does, from the stage table; their embeddings initialise the learnable
# module descriptors (the network may move them during training).
MODULE_DESCRIPTIONS: dict[str, str] = {s.name: s.description for s in STAGES}
NO_FACTS = "No facts were extracted."

RouterState = tuple[np.ndarray, np.ndarray, int]
"""(query embedding, module-input embedding, module index)."""


VectorLookup = Callable[[Sequence[int]], "np.ndarray | None"]
"""Stored chunk ids -> their embeddings (one row each), or None when not all are indexed."""


class StateEncoder:
    def __init__(
        self, encoder: Encoder, cache_size: int = 4096, vectors: VectorLookup | None = None, stages: Sequence[Stage] = STAGES
    ) -> None:
        """``stages``: the pipeline's module table (the state reads each module's description
        and what it reads from it)."""
        self.encoder = encoder
        self.stages = tuple(stages)
        self._reads = {s.name: s.reads for s in self.stages}
        self.vectors = vectors
        self.dim = encoder.dim
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def descriptors(self) -> np.ndarray:
        """(number of stages, dim): the descriptor initialisation, in pipeline order."""
        return self.encoder.encode([s.description for s in self.stages])

    def _embed(self, texts: list[str]) -> np.ndarray:
        keys = [hashlib.blake2b(t.encode("utf-8"), digest_size=16).hexdigest() for t in texts]
        with self._lock:
            todo = [(k, t) for k, t in dict(zip(keys, texts)).items() if k not in self._cache]
        if todo:
            vecs = self.encoder.encode([t for _, t in todo])
            with self._lock:
                for (k, _), v in zip(todo, vecs):
                    self._cache[k] = v
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        with self._lock:
            out = []
            for k, t in zip(keys, texts):
                v = self._cache.get(k)
                out.append(v if v is not None else self.encoder.encode([t])[0])
        return np.stack(out)

    def input_texts(self, state: PolicyState) -> list[str]:
        inp = state.inputs
        if self._reads[state.module] == "facts":
            # Every fact the stages before it found, in pipeline order (the facts dict's order).
            lines = [f"{m}: {f}" for m, fs in inp.facts.items() for f in fs]
            return ["\n".join(lines) if lines else NO_FACTS]
        texts = [c.chunk.text for c in inp.chunks]
        return texts or ["No memories were retrieved."]

    def _stored(self, state: PolicyState) -> np.ndarray | None:
        ids = [c.chunk.id for c in state.inputs.chunks]
        if self.vectors is None or self._reads[state.module] == "facts" or not ids or any(i is None for i in ids):
            return None
        return self.vectors([int(i) for i in ids if i is not None])

    def __call__(self, state: PolicyState) -> RouterState:
        query = self._embed([state.query])[0]
        vecs = self._stored(state)
        if vecs is None:
            vecs = self._embed(self.input_texts(state))
        mean = vecs.mean(axis=0)
        norm = float(np.linalg.norm(mean))
        module_input = mean / norm if norm > 1e-12 else vecs[0]
        return query.astype(np.float32), module_input.astype(np.float32), state.module_index
