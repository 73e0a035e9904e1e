"""Apply a namespace's write policy to the sessions an ingest is about to store.

Called by the ingest after chunking and embedding, before the one store transaction: it
scores the new chunks against everything the namespace has seen, plans admissions and
evictions under the budget, and hands back the batches with their scores and flags plus
the ids to evict, so the store writes all of it atomically.

A namespace remembers its policy: the first budgeted ingest records it, later ingests
without ``--write-policy`` keep applying it, and asking for a different policy is refused
(the stored scores would not be comparable).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from budgetmem.errors import ConfigError
from budgetmem.settings import WriteSettings
from budgetmem.store import SessionBatch, Store
from budgetmem.write.budget import parse_budget, plan_writes
from budgetmem.write.features import compute_features
from budgetmem.write.policies import WritePolicy, make_write_policy, policy_spec, settings_from_spec

__all__ = ["NamespaceWrite", "effective_write_settings", "apply_write_policy"]


@dataclass(frozen=True)
class NamespaceWrite:
    batches: list[SessionBatch]
    evict: list[int]
    spec: tuple[str, str | None] | None
    """(policy spec, budget) to record, or None for a store-all namespace."""
    admitted: int
    rejected: int


def effective_write_settings(store: Store, namespace: str, asked: WriteSettings) -> WriteSettings:
    """The policy to apply: the one asked for, or the one the namespace already uses."""
    info = store.namespace(namespace)
    recorded = info.write_policy if info is not None else None
    if recorded is None:
        if asked.policy != "all" and info is not None and info.n_chunks:
            raise ConfigError(
                f"namespace {namespace!r} already holds {info.n_chunks} chunks stored without a write policy",
                hint="budgeted writes start with a new namespace",
            )
        return asked
    before = settings_from_spec(recorded, info.write_budget if info else None)
    if asked.policy == "all":
        return before
    if asked.policy != before.policy:
        raise ConfigError(
            f"namespace {namespace!r} uses the {before.policy!r} write policy, not {asked.policy!r}",
            hint="keep its policy (omit --write-policy) or use another namespace",
        )
    return asked if asked.budget is not None else dataclasses.replace(asked, budget=before.budget)


def apply_write_policy(
    store: Store,
    namespace: str,
    batches: Sequence[SessionBatch],
    settings: WriteSettings,
    *,
    policy: WritePolicy | None = None,
    nlp: object | None = None,
) -> NamespaceWrite:
    """Scores, admission flags and evictions for one namespace's new batches."""
    if settings.policy == "all":
        n = sum(len(b.chunks) for b in batches)
        return NamespaceWrite(list(batches), [], None, n, 0)
    policy = policy or make_write_policy(settings)
    budget = parse_budget(settings.budget)
    info = store.namespace(namespace)
    seen_before = info.seen_chunks if info is not None else 0
    chunks = [c for b in batches for c in b.chunks]
    vectors = np.vstack([b.embeddings for b in batches]) if batches else np.zeros((0, 0), dtype=np.float32)
    seq = np.arange(seen_before, seen_before + len(chunks))
    feats = None
    if policy.needs_features and chunks:
        if nlp is None:
            from budgetmem.nlp import load_nlp

            nlp = load_nlp()
        seen_texts, seen_vectors = store.seen(namespace) if info is not None else ([], None)
        feats = compute_features(chunks, vectors, nlp=nlp, seen_texts=seen_texts, seen_vectors=seen_vectors)
    scores = policy.scores(feats, seq) if chunks else np.zeros(0, dtype=np.float32)
    live = store.write_state(namespace) if info is not None else []
    plan = plan_writes(
        scores.tolist(), live, budget, seen_before=seen_before, threshold=settings.threshold,
        access_weight=settings.access_weight,
    )  # fmt: skip
    out, start = [], 0
    for b in batches:
        end = start + len(b.chunks)
        out.append(dataclasses.replace(b, scores=scores[start:end].tolist(), admitted=plan.admitted[start:end]))
        start = end
    admitted = sum(plan.admitted)
    return NamespaceWrite(out, plan.evict, (policy_spec(settings), str(budget) if budget else None), admitted, len(chunks) - admitted)
