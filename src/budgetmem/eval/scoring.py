"""How an answer is scored, and where a question's history is stored: the two per-question
rules every run shares (evaluation, router training, benchmarks)."""

from __future__ import annotations

from budgetmem.eval.datasets import EvalItem, EvalSet
from budgetmem.eval.metrics import best_f1, exact_match, locomo_f1

__all__ = ["score", "namespace_of", "history_namespace"]


def _name(data: EvalSet | str) -> str:
    return data if isinstance(data, str) else data.dataset


def history_namespace(data: EvalSet | str, history: str) -> str:
    """The store namespace of one of the dataset's histories."""
    return f"{_name(data)}/{history}"


def namespace_of(data: EvalSet | str, item: EvalItem) -> str:
    """The store namespace holding the history ``item`` is asked about."""
    return history_namespace(data, item.history)


def score(data: EvalSet | str, item: EvalItem, prediction: str) -> dict[str, float]:
    """F1 and exact match: LoCoMo by its category rules, others against the best gold answer."""
    if _name(data) == "locomo" and item.code is not None:
        return {"f1": locomo_f1(prediction, item.answers[0], item.code), "em": exact_match(prediction, item.answers[0])}
    f1, em = best_f1(prediction, item.answers)
    return {"f1": f1, "em": em}
