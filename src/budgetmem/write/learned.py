"""The learned write policy: a logistic scorer over the salience features.

Selective-write paper §III-E3: s_i = sigmoid(w^T f_i + b) (Eq. 4), trained on labels
"this chunk holds answer evidence" with binary cross-entropy (Eq. 7) plus a margin ranking
loss max(0, gamma + s_j - s_i) between positives i and hard negatives j (Eq. 8). Hard
negatives are, per history, the highest-scoring chunks that hold no evidence, re-picked
every epoch as the scorer changes.

Two choices the paper leaves open, made here: features are standardised with the training
mean and standard deviation (stored in the model file), and the BCE term weights positives
by negatives/positives, since evidence chunks are a small minority of a history.

The model file is a ``torch.save`` dictionary of plain tensors and metadata, loaded with
``weights_only=True``; it records the feature names, so a file from another feature set
is refused rather than misread.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from budgetmem.errors import InputError
from budgetmem.write.features import FEATURES

__all__ = ["WriterModel", "WriterTrainSettings", "train_writer", "save_writer", "load_writer", "FORMAT"]

FORMAT = "budgetmem-writer/1"


@dataclass(frozen=True)
class WriterModel:
    weights: np.ndarray
    bias: float
    mean: np.ndarray
    std: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def logits(self, feats: np.ndarray) -> np.ndarray:
        return ((feats - self.mean) / self.std) @ self.weights + self.bias

    def score(self, feats: np.ndarray) -> np.ndarray:
        """Eq. 4: the probability that each chunk holds answer evidence."""
        return (1.0 / (1.0 + np.exp(-self.logits(np.asarray(feats, dtype=np.float64))))).astype(np.float32)


@dataclass(frozen=True)
class WriterTrainSettings:
    epochs: int = 300
    """Full-batch passes (the data is a few thousand 7-d rows)."""
    lr: float = 0.05
    """Adam step size."""
    margin: float = 0.1
    """gamma of the ranking loss (Eq. 8), on the probability scale."""
    rank_weight: float = 1.0
    """Weight of the ranking loss against the BCE loss."""
    hard_negatives: int = 10
    """Per history, how many top-scoring non-evidence chunks act as hard negatives."""
    l2: float = 1e-3
    """Weight decay on w (not b)."""
    seed: int = 0


def train_writer(
    groups: Sequence[tuple[np.ndarray, np.ndarray]], settings: WriterTrainSettings | None = None, **meta: Any
) -> WriterModel:
    """Fit the scorer on (features, labels) per history; labels are 0/1 per chunk."""
    import torch

    cfg = settings or WriterTrainSettings()
    groups = [(np.asarray(f, dtype=np.float32), np.asarray(y, dtype=np.float32)) for f, y in groups if len(f)]
    if not groups:
        raise InputError("no chunks to train the write policy on")
    x_all = np.vstack([f for f, _ in groups])
    y_all = np.concatenate([y for _, y in groups])
    n_pos = int(y_all.sum())
    if n_pos == 0 or n_pos == len(y_all):
        raise InputError(
            f"the training chunks need both evidence and non-evidence ones ({n_pos} of {len(y_all)} are evidence)",
            hint="use questions with evidence annotations (LoCoMo evidence, LongMemEval has_answer)",
        )
    mean = x_all.mean(axis=0)
    std = x_all.std(axis=0)
    std[std < 1e-6] = 1.0

    torch.manual_seed(cfg.seed)
    w = torch.zeros(x_all.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([w, b], lr=cfg.lr)
    xs = [torch.tensor((f - mean) / std, dtype=torch.float64) for f, _ in groups]
    ys = [torch.tensor(y, dtype=torch.float64) for _, y in groups]
    pos_weight = torch.tensor((len(y_all) - n_pos) / n_pos, dtype=torch.float64)
    bce_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight, reduction="sum")
    history: list[dict[str, float]] = []
    for _ in range(cfg.epochs):
        opt.zero_grad()
        bce = torch.zeros((), dtype=torch.float64)
        rank = torch.zeros((), dtype=torch.float64)
        pairs = 0
        for x, y in zip(xs, ys):
            logits = x @ w + b
            bce = bce + bce_fn(logits, y)
            s = torch.sigmoid(logits)
            pos, neg = s[y > 0.5], s[y < 0.5]
            if len(pos) and len(neg):
                hard = torch.topk(neg, min(cfg.hard_negatives, len(neg))).values  # Eq. 8 over hard negatives
                rank = rank + torch.clamp(cfg.margin + hard[None, :] - pos[:, None], min=0).sum()
                pairs += len(pos) * len(hard)
        loss = bce / len(y_all) + cfg.rank_weight * rank / max(1, pairs) + cfg.l2 * (w * w).sum()
        loss.backward()
        opt.step()
        history.append({"loss": loss.item(), "bce": bce.item() / len(y_all), "rank": rank.item() / max(1, pairs)})
    info = {
        "chunks": len(y_all), "positives": n_pos, "histories": len(groups), "epochs": cfg.epochs, "margin": cfg.margin,
        "rank_weight": cfg.rank_weight, "hard_negatives": cfg.hard_negatives, "final": history[-1], **meta,
    }  # fmt: skip
    return WriterModel(w.detach().numpy().copy(), float(b.detach()[0]), mean.astype(np.float64), std.astype(np.float64), info)


def save_writer(model: WriterModel, path: str | Path) -> Path:
    """Atomically write the model file (a crash never leaves half a file)."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "features": list(FEATURES),
        "weights": torch.tensor(model.weights, dtype=torch.float64),
        "bias": float(model.bias),
        "mean": torch.tensor(model.mean, dtype=torch.float64),
        "std": torch.tensor(model.std, dtype=torch.float64),
        "meta": model.meta,
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load_writer(path: str | Path) -> WriterModel:
    import torch

    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"write-policy model not found: {path}", hint="train one with budgetmem train-writer")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same one-line error
        raise InputError(f"{path} is not a budgetmem write-policy model ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InputError(f"{path} is not a budgetmem write-policy model (format {payload.get('format')!r})")
    if tuple(payload["features"]) != FEATURES:
        raise InputError(f"{path} was trained on features {payload['features']}, this budgetmem computes {list(FEATURES)}")
    return WriterModel(
        payload["weights"].numpy(), float(payload["bias"]), payload["mean"].numpy(), payload["std"].numpy(),
        dict(payload.get("meta") or {}),
    )  # fmt: skip
