"""Salience features of a chunk (selective-write paper §III-E1 and §IV-B2).

Seven features, each mapped to [0, 1] by a fixed transform rather than by the batch's own
min and max, so a chunk scores the same whether it arrives alone (streaming) or with a
whole history (batch), and a threshold means the same thing over time:

- ``entity``: share of the chunk's words inside spaCy named entities, saturating at 30%;
- ``tfidf``: mean TF-IDF per token of the chunk (its non-stop-word tokens' idf, averaged),
  with idf over every chunk the namespace has seen, divided by the largest idf (rare,
  specific words score high, the namespace's everyday words low);
- ``number``: share of number-like words (digits, "three", "2019"), saturating at 10%;
- ``position``: U-shaped in the chunk's relative place in its session, 1 at the first and
  last chunk, 0 in the middle ("first/last paragraphs often more important", §III-E1);
- ``question``: questions asked in the chunk, saturating at two;
- ``discourse``: discourse markers of decisions, plans, reasons, contrasts and
  definitions, saturating at three;
- ``novelty``: 1 minus the largest cosine similarity to any earlier chunk of the namespace
  (1 for the first), so a repeat of something already seen scores low.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from budgetmem.chunk import Chunk

__all__ = ["FEATURES", "compute_features", "session_positions"]

FEATURES = ("entity", "tfidf", "number", "position", "question", "discourse", "novelty")

_ENTITY_CAP = 0.30
_NUMBER_CAP = 0.10
_QUESTION_CAP = 2.0
_DISCOURSE_CAP = 3.0

# Phrases that mark reasons, contrasts, conclusions, decisions, plans and definitions: the
# turns where something is settled rather than chatted about.
_MARKERS = (
    "because", "since", "therefore", "so that", "however", "although", "but", "instead",
    "finally", "in the end", "decided", "decision", "plan", "planning", "going to", "will",
    "important", "remember", "means", "defined as", "for example", "first", "then", "after",
    "before", "actually", "realized", "learned", "started", "stopped", "moved", "joined",
)  # fmt: skip
_MARKER_RE = re.compile(r"\b(?:" + "|".join(re.escape(m) for m in _MARKERS) + r")\b", re.IGNORECASE)
_QUESTION_RE = re.compile(r"\?+")


def session_positions(chunks: Sequence[Chunk], session_sizes: dict[tuple[str, str], int]) -> np.ndarray:
    """The position feature: |2p - 1| for p the chunk's relative place in its session."""
    out = np.ones(len(chunks), dtype=np.float32)
    for i, c in enumerate(chunks):
        n = session_sizes.get((c.history, c.session_id), 1)
        if n > 1:
            out[i] = abs(2.0 * c.position / (n - 1) - 1.0)
    return out


def _tfidf(texts: Sequence[str], seen: Sequence[str]) -> np.ndarray:
    """Mean idf-weighted term frequency per token of each text, over the max idf: a chunk of
    words the namespace rarely uses scores near 1, one of its everyday words near 0."""
    from sklearn.feature_extraction.text import CountVectorizer

    corpus = [*seen, *texts]
    vec = CountVectorizer(stop_words="english", token_pattern=r"(?u)\b[a-zA-Z]\w+\b")
    try:
        counts = vec.fit_transform(corpus).tocsr()
    except ValueError:  # nothing but stop words in the whole namespace
        return np.zeros(len(texts), dtype=np.float32)
    df = np.asarray((counts > 0).sum(axis=0)).ravel()
    idf = np.log((1.0 + len(corpus)) / (1.0 + df)) + 1.0  # smoothed idf, as scikit-learn's
    rows = counts[len(seen) :]
    weighted = np.asarray(rows @ idf).ravel()
    tokens = np.asarray(rows.sum(axis=1)).ravel()
    out = np.where(tokens > 0, weighted / np.maximum(tokens, 1) / idf.max(), 0.0)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def _novelty(vectors: np.ndarray, seen_vectors: np.ndarray) -> np.ndarray:
    """1 - max cosine to every earlier chunk (seen ones, then earlier ones of this batch)."""
    n = len(vectors)
    best = np.full(n, -np.inf, dtype=np.float32)
    if len(seen_vectors):
        best = np.max(vectors @ seen_vectors.T, axis=1)
    if n > 1:
        within = vectors @ vectors.T
        within[np.triu_indices(n)] = -np.inf  # only chunks that arrived before
        best = np.maximum(best, within.max(axis=1))
    out = np.where(np.isfinite(best), 1.0 - best, 1.0)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def compute_features(
    chunks: Sequence[Chunk],
    vectors: np.ndarray,
    *,
    nlp: object,
    seen_texts: Sequence[str] = (),
    seen_vectors: np.ndarray | None = None,
    session_sizes: dict[tuple[str, str], int] | None = None,
) -> np.ndarray:
    """An (n, 7) float32 matrix in :data:`FEATURES` order for chunks arriving in this order.

    ``seen_*`` are the namespace's earlier chunks (live or archived): the TF-IDF statistics
    and the novelty comparison include them. ``vectors`` are unit-length embeddings.
    """
    n = len(chunks)
    feats = np.zeros((n, len(FEATURES)), dtype=np.float32)
    if n == 0:
        return feats
    texts = [c.text for c in chunks]
    for i, doc in enumerate(nlp.pipe(texts, batch_size=64)):  # type: ignore[attr-defined]
        words = [t for t in doc if not (t.is_punct or t.is_space)]
        n_words = max(1, len(words))
        in_entity = sum(1 for t in words if t.ent_type_)
        numbers = sum(1 for t in words if t.like_num or any(ch.isdigit() for ch in t.text))
        feats[i, 0] = min(1.0, in_entity / n_words / _ENTITY_CAP)
        feats[i, 2] = min(1.0, numbers / n_words / _NUMBER_CAP)
        feats[i, 4] = min(1.0, len(_QUESTION_RE.findall(texts[i])) / _QUESTION_CAP)
        feats[i, 5] = min(1.0, len(_MARKER_RE.findall(texts[i])) / _DISCOURSE_CAP)
    feats[:, 1] = _tfidf(texts, seen_texts)
    sizes = session_sizes or _sizes(chunks)
    feats[:, 3] = session_positions(chunks, sizes)
    dim = vectors.shape[1] if vectors.ndim == 2 else 0
    prior = seen_vectors if seen_vectors is not None else np.zeros((0, dim), dtype=np.float32)
    feats[:, 6] = _novelty(np.asarray(vectors, dtype=np.float32), np.asarray(prior, dtype=np.float32))
    return feats


def _sizes(chunks: Sequence[Chunk]) -> dict[tuple[str, str], int]:
    sizes: dict[tuple[str, str], int] = {}
    for c in chunks:
        key = (c.history, c.session_id)
        sizes[key] = max(sizes.get(key, 0), c.position + 1)
    return sizes
