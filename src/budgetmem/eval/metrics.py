"""Answer metrics as the LoCoMo evaluation defines them (Maharana et al., 2024).

Normalisation: remove commas, lower-case, strip punctuation, drop the words a / an / the
/ and, collapse whitespace; then Porter-stem each token. F1 is token-overlap F1 between
prediction and gold. Category 1 (multi-hop) golds list several answers separated by
commas: each gold part is matched by its best prediction part, and the scores averaged.
Category 3 (open-domain) golds are cut at the first ';'. Category 5 (adversarial) counts
as correct only when the answer says the information is not available.
"""

from __future__ import annotations

import re
import string
import random
import threading
from collections import Counter
from collections.abc import Sequence

__all__ = ["normalize_answer", "answer_tokens", "token_f1", "exact_match", "locomo_f1", "best_f1", "bootstrap_ci"]

_ARTICLES = re.compile(r"\b(a|an|the|and)\b")
_PUNCT = str.maketrans("", "", string.punctuation)
_local = threading.local()


def _stem(word: str) -> str:
    stemmer = getattr(_local, "stemmer", None)
    if stemmer is None:
        import Stemmer

        stemmer = _local.stemmer = Stemmer.Stemmer("porter")  # the original Porter algorithm
    return str(stemmer.stemWord(word))


def normalize_answer(text: str) -> str:
    text = str(text).replace(",", "").lower().translate(_PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def answer_tokens(text: str) -> list[str]:
    return [_stem(w) for w in normalize_answer(text).split()]


def token_f1(prediction: str, gold: str) -> float:
    pred, ref = answer_tokens(prediction), answer_tokens(gold)
    same = sum((Counter(pred) & Counter(ref)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


_NOT_AVAILABLE = ("no information available", "not mentioned")


def locomo_f1(prediction: str, gold: str | int | float, category: int) -> float:
    """F1 of one LoCoMo answer by its question category (1-5)."""
    gold = str(gold)
    if category == 5:
        low = prediction.lower()
        return float(any(p in low for p in _NOT_AVAILABLE))
    if category == 3:
        gold = gold.split(";")[0].strip()
    if category == 1:
        preds = [p.strip() for p in prediction.split(",")]
        golds = [g.strip() for g in gold.split(",")]
        return sum(max(token_f1(p, g) for p in preds) for g in golds) / len(golds)
    return token_f1(prediction, gold)


def best_f1(prediction: str, golds: Sequence[str]) -> tuple[float, float]:
    """(F1, exact match) against the best-matching gold answer (LongMemEval, HotpotQA, JSONL)."""
    if not golds:
        return 0.0, 0.0
    return max(token_f1(prediction, g) for g in golds), max(exact_match(prediction, g) for g in golds)


def bootstrap_ci(values: Sequence[float], *, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean: resample the values with replacement
    ``n_boot`` times and take the (1-level)/2 and (1+level)/2 quantiles of the means."""
    n = len(values)
    if n == 0:
        return float("nan"), float("nan")
    if n == 1:
        return float(values[0]), float(values[0])
    rng = random.Random(seed)
    means = sorted(sum(rng.choices(values, k=n)) / n for _ in range(n_boot))
    lo = means[int((1 - level) / 2 * (n_boot - 1))]
    hi = means[int(round((1 + level) / 2 * (n_boot - 1)))]
    return lo, hi
