"""The worker side of router training: one episode (one query through the routed pipeline)
per task, sent back as data.

A worker keeps its workspace (store, a ``BudgetMem`` per conversation, the encoder, the
LLMs) and a copy of the router network for as long as the run lasts; the trainer ships the
current weights with every batch (:class:`Weights`, tagged with the step they belong to),
and the worker loads them when the step changes. Each episode samples its tiers from a
generator seeded by (run seed, step, position in the batch), so the batch is the same on
every executor.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from budgetmem.eval.datasets import EvalItem
from budgetmem.eval.scoring import namespace_of, score
from budgetmem.harness.workspace import Workspace, WorkspaceSpec
from budgetmem.pipeline.stages import MODULES
from budgetmem.router.network import RouterNet
from budgetmem.router.policy import RouterPolicy
from budgetmem.router.state import StateEncoder
from budgetmem.training.buffer import Episode

__all__ = ["EpisodeWorkerSpec", "EpisodeWorker", "EpisodeTask", "Weights", "run_episode", "describe_modules", "episode_seed"]


def episode_seed(seed: int, step: int, index: int) -> int:
    """The sampling seed of the index-th episode of a step's batch (independent streams)."""
    return int(np.random.SeedSequence([seed, step, index]).generate_state(1)[0])


@dataclass(frozen=True)
class Weights:
    step: int
    state_dict: dict[str, Any]


@dataclass(frozen=True)
class EpisodeTask:
    item: EvalItem
    sample: bool
    """True: tiers sampled (a training episode); False: greedy (validation)."""
    seed: int = 0


@dataclass(frozen=True)
class EpisodeWorkerSpec:
    workspace: WorkspaceSpec
    dataset: str
    cost_weight: float
    hidden: int

    def __call__(self) -> EpisodeWorker:
        return EpisodeWorker(self)


class EpisodeWorker:
    def __init__(self, spec: EpisodeWorkerSpec) -> None:
        self.spec = spec
        self.ws = Workspace(spec.workspace)
        self.states = StateEncoder(self.ws.encoder, vectors=self.ws.vectors)
        self.net = RouterNet(self.ws.encoder.dim, len(MODULES), spec.hidden)
        self.net.eval()
        self._step: int | None = None
        self._lock = threading.Lock()  # the thread executor's episodes share this worker
        self.router = RouterPolicy(self.net, self.states, name="router(training)")

    def load(self, weights: Weights) -> RouterPolicy:
        with self._lock:
            if weights.step != self._step:
                self.net.load_state_dict(weights.state_dict)
                self._step = weights.step
        return self.router

    def close(self) -> None:
        self.ws.close()


def run_episode(worker: EpisodeWorker, task: EpisodeTask, weights: Weights) -> Episode:
    """One query through the routed pipeline: its decisions, F1 and extraction cost."""
    rollout = worker.load(weights).rollout(sample=task.sample, seed=task.seed)
    item, spec = task.item, worker.spec
    mem = worker.ws.mem(namespace_of(spec.dataset, item))
    r = mem.query(item.question, policy=rollout, cost_weight=spec.cost_weight, question_date=item.question_date)
    # Eq. 8: the raw cost is what the routed modules are worth at list price, cached or not.
    return Episode(tuple(rollout.decisions), score(spec.dataset, item, r.answer)["f1"], r.extraction_usd,
                   r.cache.get("hits", 0), r.cache.get("misses", 0))  # fmt: skip


def describe_modules(worker: EpisodeWorker, _item: object = None, _shared: object = None) -> np.ndarray:
    """The module descriptors' initialisation: the encoder's embeddings of their descriptions."""
    return worker.states.descriptors()
