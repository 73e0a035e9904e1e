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
import threading
from collections import Counter

__all__ = ["normalize_answer", "answer_tokens", "token_f1", "exact_match", "locomo_f1"]

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
