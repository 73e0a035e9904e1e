"""A router that serves keeps nothing per decision; training records each episode apart.

Serving a routed query must not grow the process (a server answers millions), and two
episodes rolled out at once must not see each other's decisions.
"""

from __future__ import annotations

import threading
import tracemalloc

import numpy as np
import pytest
from conftest import EXAMPLE
from fakes import ScriptedFakeLLM

from budgetmem import BudgetMem, Settings
from budgetmem.chunk import Chunk
from budgetmem.pipeline.policy import PolicyState
from budgetmem.pipeline.stages import MODULES
from budgetmem.pipeline.types import ModuleInput, ScoredChunk
from budgetmem.router import RouterNet, RouterPolicy, StateEncoder

pytestmark = pytest.mark.models


def _states() -> list[PolicyState]:
    chunks = (ScoredChunk(Chunk("Tomasz opened his bakery in March.", 8, "t", "h", "s1", None, 0, (), ()), 1.0),)
    out = []
    for q in ("When did Tomasz open the bakery?", "Who looked after Pixel?"):
        inp = ModuleInput(q, chunks=chunks, facts={"entity": ("Tomasz owns Zakwas",)})
        out += [PolicyState(q, m, i, inp) for i, m in enumerate(MODULES)]
    return out


def test_serving_10000_routed_decisions_leaves_memory_flat(minilm) -> None:  # type: ignore[no-untyped-def]
    states = StateEncoder(minilm)
    router = RouterPolicy(RouterNet(minilm.dim, len(MODULES), hidden=16, descriptors=states.descriptors()), states)
    sample = _states()
    for s in sample * 20:  # warm: every state's embeddings are in the encoder's cache
        router.decide(s)
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for i in range(10_000):
            router.decide(sample[i % len(sample)])
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # One kept decision holds two 384-d float32 vectors (3 KB): 10,000 would be ~30 MB.
    assert after - before < 256 * 1024, f"serving grew by {(after - before) / 1024:.0f} KiB over 10,000 decisions"
    assert not hasattr(router, "episode")


def _module_script(prompt: str) -> str:
    if "<memory index=" in prompt and "0-10" in prompt:
        return "<answer>[7, 7, 7, 7, 7]</answer>"
    return '<answer>["a fact"]</answer>'


def test_concurrent_training_episodes_each_get_their_own_decisions(tmp_path, minilm) -> None:  # type: ignore[no-untyped-def]
    settings = Settings().replace(
        encoder__name="all-minilm-l6-v2", chunking__max_tokens=64, pipeline__module_llm="fake:m",
        pipeline__answer_llm="fake:a", pipeline__cache_path=tmp_path / "cache.sqlite",
    )  # fmt: skip
    llms = {"fake:m": ScriptedFakeLLM("fake:m", _module_script, latency_s=0.01),
            "fake:a": ScriptedFakeLLM("fake:a", lambda p: "Zakwas", latency_s=0.01)}  # fmt: skip
    states = StateEncoder(minilm)
    router = RouterPolicy(RouterNet(minilm.dim, len(MODULES), hidden=16, descriptors=states.descriptors()), states, seed=3)
    questions = ["What did Tomasz name his bakery?", "Who looked after Pixel while Priya moved?"]
    with BudgetMem(tmp_path / "m.db", "demo", settings=settings, llms=llms, encoder=minilm) as mem:
        mem.add(EXAMPLE)
        rollouts = [router.rollout(sample=True) for _ in questions]
        barrier = threading.Barrier(len(questions))

        def run(i: int) -> None:
            barrier.wait()  # start together, so the two episodes' decisions interleave
            mem.query(questions[i], policy=rollouts[i])

        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(questions))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for q, rollout in zip(questions, rollouts):
        assert sorted(int(d.state[2]) for d in rollout.decisions) == list(range(len(MODULES)))
        want = minilm.encode([q])[0]
        for d in rollout.decisions:  # the query part of every recorded state is this episode's query
            assert np.allclose(d.state[0], want / np.linalg.norm(want), atol=1e-5) or np.allclose(d.state[0], want, atol=1e-5)
