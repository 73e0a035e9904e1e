"""The module table: a sixth module is added in one place (one Stage entry) and runs through
the pipeline (its LOW tier, its LLM tier with its own prompt, its facts reaching the
summary) and through the router's state, with nothing else edited."""

from __future__ import annotations

import json
import re

import numpy as np
import torch
from fakes import ScriptedFakeLLM

from budgetmem import Settings
from budgetmem.chunk import Chunk
from budgetmem.pipeline.context import RunContext
from budgetmem.pipeline.outputs import FACT_LIST
from budgetmem.pipeline.policy import FixedPolicy, PolicyState
from budgetmem.pipeline.runner import Pipeline, llm_resolver
from budgetmem.pipeline.stages import STAGES, Stage
from budgetmem.pipeline.types import FactsResult, ModuleInput, ScoredChunk, Tier
from budgetmem.router.network import RouterNet
from budgetmem.router.policy import RouterPolicy
from budgetmem.router.state import StateEncoder

MODEL, ANSWER = "fake:module", "fake:answer"


class NumberTiers:
    """The toy module's non-LLM tiers: every number written in digits, with its sentence."""

    name = "numbers"

    def rules(self, inp: ModuleInput, ctx: RunContext) -> FactsResult:
        found = [f"{m.group(0)} ({c.chunk.session_id})" for c in inp.chunks for m in re.finditer(r"\d+", c.chunk.text)]
        return FactsResult(tuple(dict.fromkeys(found))[: ctx.settings.max_facts])

    encoder = rules


NUMBERS = Stage(
    name="numbers",
    description="Numbers: the quantities, amounts and counts the kept memories mention.",
    reads="chunks",
    shows="query + filtered chunks",
    output=FACT_LIST,
    tiers=NumberTiers(),
    task="Task: list every number in the memories that helps answer the question, with what it counts.",
    check="Check each number against the memories.",
    answer_tokens=120,
    version="toy-numbers-1",
)
SIX = (*STAGES[:4], NUMBERS, STAGES[4])


def _script(prompt: str) -> str:
    if NUMBERS.task in prompt:
        return '<answer>["3 loaves a day"]</answer>'
    if STAGES[0].task in prompt:
        return "<answer>" + json.dumps([5] * len(set(re.findall(r'<memory index="(\d+)"', prompt)))) + "</answer>"
    if STAGES[4].task in prompt:
        return "<answer>Summary from the facts.</answer>"
    return '<answer>["a fact"]</answer>'


def _candidates() -> list[ScoredChunk]:
    texts = ["Tomasz bakes 3 loaves a day at Zakwas.", "Priya moved to Lisbon in 2024 with 2 cats."]
    return [ScoredChunk(Chunk(t, 10, "t", "h", f"s{i}", None, 0, (), (), id=None), 1.0) for i, t in enumerate(texts)]


def test_a_sixth_module_runs_through_the_pipeline_and_the_router_state(minilm, tmp_path):
    settings = Settings().replace(encoder__name="all-minilm-l6-v2", pipeline__module_llm=MODEL, pipeline__answer_llm=ANSWER)
    llm = ScriptedFakeLLM(MODEL, _script)
    llms = {MODEL: llm, ANSWER: ScriptedFakeLLM(ANSWER, lambda p: "Zakwas")}
    pipe = Pipeline(minilm, settings.pipeline, llm_resolver(llms, lambda p: llms[p]), stages=SIX)
    assert [s.module for s in pipe.stages()] == ["filter", "entity", "temporal", "topic", "numbers", "summary"]

    # LOW: the toy's rules run beside the three extractors and the summary reads its facts.
    low = pipe.run("How many loaves does Tomasz bake?", _candidates(), FixedPolicy.all(Tier.LOW))
    assert tuple(s.module for s in low.steps) == pipe.modules
    assert "3 (s0)" in low.facts["numbers"] and "3 (s0)" in low.memory

    # HIGH: its LLM tier is prompted with its own task and format, and the summary's prompt
    # shows its facts as a section of their own.
    high = pipe.run("How many loaves does Tomasz bake?", _candidates(), FixedPolicy.all(Tier.HIGH))
    assert high.facts["numbers"] == ("3 loaves a day",) and high.tiers["numbers"] == "HIGH"
    numbers_prompt = next(p for p in llm.prompts if NUMBERS.task in p)
    assert "JSON array of strings" in numbers_prompt
    summary_prompt = next(p for p in llm.prompts if STAGES[4].task in p)
    assert "<numbers_facts>\n- 3 loaves a day" in summary_prompt

    # The router: one descriptor per stage (from the toy's description), a decision per
    # stage, and the summary's state reads the toy's facts too.
    states = StateEncoder(minilm, stages=SIX)
    descriptors = states.descriptors()
    assert descriptors.shape == (6, minilm.dim)
    assert np.allclose(descriptors[4], minilm.encode([NUMBERS.description])[0], atol=1e-6)
    torch.manual_seed(0)
    router = RouterPolicy(RouterNet(minilm.dim, len(SIX), 16, descriptors=descriptors), states, seed=0)
    rollout = router.rollout(sample=True, seed=1)
    routed = pipe.run("How many loaves does Tomasz bake?", _candidates(), rollout)
    assert [d.state[2] for d in rollout.decisions] == list(range(6)) and set(routed.tiers) == set(pipe.modules)
    summary_input = ModuleInput("q", facts={"entity": ("e",), "numbers": ("3 loaves a day",)})
    assert "numbers: 3 loaves a day" in states.input_texts(PolicyState("q", "summary", 5, summary_input))[0]
