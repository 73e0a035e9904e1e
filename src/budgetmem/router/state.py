"""The router's state s_k (routing paper §4.3 and App. A.3): embeddings of the query, of the
module's current input, and of a descriptor of the module being routed.

    filter              input = mean embedding of the retrieved candidate chunks
    entity/temporal/topic input = mean embedding of the filtered chunks
    summary             input = embedding of the three extractors' facts, written out

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
from budgetmem.pipeline.types import EXTRACTORS, MODULES

__all__ = ["MODULE_DESCRIPTIONS", "StateEncoder", "RouterState"]

# Short descriptions of what each module does; their embeddings initialise the learnable
# module descriptors (the network may move them during training).
MODULE_DESCRIPTIONS: dict[str, str] = {
    "filter": "Filter: score the retrieved memory chunks for relevance to the question and keep the best ones.",
    "entity": "Entity extraction: people, places, objects and the relations between them in the kept memories.",
    "temporal": "Temporal extraction: dates, times and the order of events in the kept memories.",
    "topic": "Topic extraction: the themes and subjects the kept memories talk about.",
    "summary": "Summary: merge the entity, temporal and topic facts into one short memory for the answer.",
}
NO_FACTS = "No facts were extracted."

RouterState = tuple[np.ndarray, np.ndarray, int]
"""(query embedding, module-input embedding, module index)."""


VectorLookup = Callable[[Sequence[int]], "np.ndarray | None"]
"""Stored chunk ids -> their embeddings (one row each), or None when not all are indexed."""


class StateEncoder:
    def __init__(self, encoder: Encoder, cache_size: int = 4096, vectors: VectorLookup | None = None) -> None:
        self.encoder = encoder
        self.vectors = vectors
        self.dim = encoder.dim
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def descriptors(self) -> np.ndarray:
        """(len(MODULES), dim): the descriptor initialisation, in pipeline order."""
        return self.encoder.encode([MODULE_DESCRIPTIONS[m] for m in MODULES])

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
        if state.module == "summary":
            lines = [f"{m}: {f}" for m in EXTRACTORS for f in inp.facts.get(m, ())]
            return ["\n".join(lines) if lines else NO_FACTS]
        texts = [c.chunk.text for c in inp.chunks]
        return texts or ["No memories were retrieved."]

    def _stored(self, state: PolicyState) -> np.ndarray | None:
        ids = [c.chunk.id for c in state.inputs.chunks]
        if self.vectors is None or state.module == "summary" or not ids or any(i is None for i in ids):
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
        return query.astype(np.float32), module_input.astype(np.float32), MODULES.index(state.module)
