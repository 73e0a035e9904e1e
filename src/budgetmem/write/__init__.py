"""Budgeted memory writes (selective-write paper §III-E): score each chunk, store the most
salient under a storage budget, archive the rest (recoverable until ``budgetmem gc``)."""

from budgetmem.write.budget import Budget, WritePlan, parse_budget, plan_writes
from budgetmem.write.features import FEATURES, compute_features
from budgetmem.write.learned import WriterModel, WriterTrainSettings, load_writer, save_writer, train_writer
from budgetmem.write.policies import WritePolicy, make_write_policy

__all__ = [
    "FEATURES",
    "Budget",
    "WritePlan",
    "WritePolicy",
    "WriterModel",
    "WriterTrainSettings",
    "compute_features",
    "load_writer",
    "make_write_policy",
    "parse_budget",
    "plan_writes",
    "save_writer",
    "train_writer",
]
