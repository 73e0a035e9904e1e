"""What a worker holds between tasks: the store, a ``BudgetMem`` per namespace, the encoder
and the LLMs, loaded once.

:class:`WorkspaceSpec` is the picklable recipe (settings, paths, where LLMs come from);
calling it builds the :class:`Workspace` inside whichever process runs the tasks. Every
namespace embedded with the configured encoder shares one encoder instance, so a run over
ten conversations loads the network once, not ten times. Thread-safe: the thread executor
shares one workspace between its threads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from budgetmem.encoder import Encoder
from budgetmem.eval.datasets import EvalItem, EvalSet
from budgetmem.eval.scoring import history_namespace
from budgetmem.harness.llms import LLMSource, resolve_llms
from budgetmem.ingest.ingest import ingest_histories
from budgetmem.llm import LLM, make_llm
from budgetmem.memory import BudgetMem
from budgetmem.settings import Settings
from budgetmem.store import open_store

__all__ = ["WorkspaceSpec", "Workspace", "ingest_needed"]


@dataclass(frozen=True)
class WorkspaceSpec:
    settings: Settings
    store: str | Path
    strategy: str
    llms: LLMSource = None
    extra_providers: tuple[str, ...] = ()
    """Providers beyond the pipeline's that a factory should be asked for (the judge)."""

    def __call__(self) -> Workspace:
        return Workspace(self)


class Workspace:
    def __init__(self, spec: WorkspaceSpec) -> None:
        self.spec = spec
        self.settings = spec.settings
        p = spec.settings.pipeline
        self.llms = resolve_llms(spec.llms, [p.answer_llm, p.module_llm, *p.ladder, *spec.extra_providers])
        self.store = open_store(spec.store)
        self.encoder = Encoder(spec.settings.encoder, spec.settings.models_dir)
        self._mems: dict[str, BudgetMem] = {}
        self._lock = threading.Lock()

    def mem(self, namespace: str) -> BudgetMem:
        with self._lock:
            if namespace not in self._mems:
                info = self.store.namespace(namespace)
                # A namespace embedded with another encoder keeps it (BudgetMem builds that one).
                shared = info is None or info.encoder == self.encoder.name
                self._mems[namespace] = BudgetMem(
                    self.store, namespace, settings=self.settings, encoder=self.encoder if shared else None,
                    strategy=self.spec.strategy, llms=self.llms,
                )  # fmt: skip
            return self._mems[namespace]

    def vectors(self, ids: Sequence[int]) -> np.ndarray | None:
        """Stored chunk embeddings from whichever open namespace indexes them (ids are store-wide)."""
        with self._lock:
            mems = list(self._mems.values())
        return next((v for m in mems if (v := m.searcher.vectors(ids)) is not None), None)

    def llm(self, provider: str) -> LLM:
        if provider not in self.llms:
            with self._lock:
                if provider not in self.llms:
                    self.llms[provider] = make_llm(provider, settings=self.settings, models_dir=self.settings.models_dir)
        return self.llms[provider]

    def close(self) -> None:
        with self._lock:
            for m in self._mems.values():
                m.close()
            self._mems.clear()
        self.store.close()


def ingest_needed(store_path: str | Path, data: EvalSet, items: Iterable[EvalItem], settings: Settings, log: Callable[[str], None]) -> None:
    """Store the histories the questions need (only those: a test split stores a sixth of
    LoCoMo). Idempotent, so a shared store or a resumed run embeds nothing twice. Runs in
    the driver before any worker starts, so workers only read."""
    needed = list(dict.fromkeys(i.history for i in items))
    with open_store(store_path) as store:
        todo = []
        for name in needed:
            h = data.history(name)
            ns = history_namespace(data, name)
            info = store.namespace(ns)
            if info is None or len(store.known_sessions(ns)) < len(h.sessions):
                todo.append((ns, h))
        if not todo:
            return
        encoder = Encoder(settings.encoder, settings.models_dir)
        for n, (ns, h) in enumerate(todo, start=1):
            report = ingest_histories(store, ns, [h], encoder, settings.chunking.max_tokens)
            log(f"stored {ns}: {report.chunks_added} chunks ({n}/{len(todo)})")
