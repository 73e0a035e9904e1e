"""Training data for the learned write policy: each history's chunks, their features (as a
batch ingest would compute them) and "holds answer evidence" labels from its questions."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from budgetmem.encoder import Encoder
from budgetmem.eval.datasets import EvalItem, EvalSet
from budgetmem.eval.evidence import evidence_labels, normalise_evidence, turn_ids
from budgetmem.chunk import Chunk
from budgetmem.ingest.chunker import chunk_history
from budgetmem.write.features import compute_features
from budgetmem.write.learned import WriterModel, WriterTrainSettings, save_writer, train_writer

__all__ = ["LabelledHistory", "labelled_histories", "ranking_auc", "WriterFit", "fit_writer"]


@dataclass(frozen=True)
class LabelledHistory:
    name: str
    chunks: list[Chunk]
    vectors: np.ndarray
    features: np.ndarray
    labels: np.ndarray
    questions: int


def labelled_histories(
    data: EvalSet,
    items: Sequence[EvalItem],
    encoder: Encoder,
    chunk_tokens: int,
    *,
    nlp: object,
    log: Callable[[str], None] = lambda _m: None,
) -> list[LabelledHistory]:
    """One entry per history the items ask about, in first-seen order."""
    by_history: dict[str, list[EvalItem]] = {}
    for it in items:
        by_history.setdefault(it.history, []).append(it)
    out = []
    for n, (name, its) in enumerate(by_history.items(), start=1):
        h = data.history(name)
        turns = turn_ids(h)
        evidence: set[str] = set()
        for it in its:
            matched, _, _ = normalise_evidence(it.evidence, turns)
            evidence.update(matched)
        chunks = chunk_history(h, encoder, chunk_tokens)
        vectors = encoder.encode([c.text for c in chunks])
        feats = compute_features(chunks, vectors, nlp=nlp)
        labels = np.asarray(evidence_labels(chunks, evidence), dtype=np.float32)
        out.append(LabelledHistory(name, chunks, vectors, feats, labels, len(its)))
        log(f"{name}: {len(chunks)} chunks, {int(labels.sum())} hold evidence ({n}/{len(by_history)})")
    return out


def ranking_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney statistic: the chance that a random evidence chunk scores
    above a random other one (ties count half); NaN without both kinds."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels) > 0.5
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    pos, neg = scores[labels], scores[~labels]
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (n_pos * n_neg))


@dataclass(frozen=True)
class WriterFit:
    model: WriterModel
    path: Path
    auc: dict[str, dict[str, float]]
    """Per split part (train, val): AUC of the learned scorer and of the hand-weighted salience."""


def fit_writer(
    data: EvalSet,
    parts: dict[str, Sequence[EvalItem]],
    encoder: Encoder,
    chunk_tokens: int,
    out: Path,
    *,
    weights: Sequence[float],
    train: WriterTrainSettings | None = None,
    log: Callable[[str], None] = lambda _m: None,
) -> WriterFit:
    """Train on ``parts["train"]``, report AUC on every part next to the hand-weighted
    salience's, and save the model file."""
    from budgetmem.nlp import load_nlp

    nlp = load_nlp()
    groups = {part: labelled_histories(data, items, encoder, chunk_tokens, nlp=nlp, log=log) for part, items in parts.items()}
    model = train_writer(
        [(g.features, g.labels) for g in groups["train"]], train, dataset=data.dataset, source=data.source,
        histories=[g.name for g in groups["train"]], encoder=encoder.name, chunk_tokens=chunk_tokens,
    )  # fmt: skip
    w = np.asarray(weights, dtype=np.float64)
    auc: dict[str, dict[str, float]] = {}
    for part, gs in groups.items():
        if not gs:
            continue
        feats = np.vstack([g.features for g in gs])
        labels = np.concatenate([g.labels for g in gs])
        auc[part] = {"learned": ranking_auc(model.score(feats), labels), "salience": ranking_auc(feats @ w, labels),
                     "chunks": float(len(labels)), "evidence": float(labels.sum())}  # fmt: skip
    model.meta["auc"] = auc
    return WriterFit(model, save_writer(model, out), auc)
