"""HotpotQA as a first-class dataset: 1,024-token document chunks, a split by question, every
tier, the baselines and the frontier (router training) on a small file in its format, with
the real MiniLM encoder and store and scripted fake LLMs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fakes import ScriptedFakeLLM

from budgetmem.eval import dataset_settings
from budgetmem.eval.datasets import load_eval_set
from budgetmem.eval.splits import make_split
from budgetmem.harness import EvalConfig, run_eval
from budgetmem.pipeline.prompts import task_text
from budgetmem.settings import Settings
from budgetmem.store import Store

ANSWER, MODULE = "fake:answer", "fake:module"

# (city, architect, year): each record asks where the architect of a tower was born.
FACTS = [
    ("Basel", "Marta Keller", 1961), ("Lyon", "Henri Vautrin", 1954), ("Porto", "Rui Magalhaes", 1970),
    ("Ghent", "Lies Van Acker", 1982), ("Turin", "Paolo Cerutti", 1949), ("Cork", "Aoife Brennan", 1991),
    ("Graz", "Stefan Huber", 1966), ("Bergen", "Ingrid Solberg", 1977), ("Leeds", "Tom Whitaker", 1958),
    ("Split", "Ivana Matic", 1985),
]  # fmt: skip
FILLER = "The river valley has farms, orchards and a small railway line that runs along the old canal towpath. "


def _record(i: int) -> dict:
    city, architect, year = FACTS[i]
    long_doc = FILLER * 90 + f"At the very end of this survey: the Grey Annex {i} was added in {year}."  # > 1,024 tokens
    docs = [
        f"Tower {i}\nTower {i} is a landmark designed by {architect} in {year}.",
        f"{architect}\n{architect} (born in {city}) is an architect.",
        f"Valley survey {i}\n{long_doc}",
        "Unrelated\nA bridge in an unrelated town with a long history of ferries.",
    ]
    context = "\n\n".join(f"Document {k + 1}:\n{d}" for k, d in enumerate(docs))
    if i == 9:  # a comparison question: its answer is a verdict
        return {"_id": f"hp-{i}", "input": f"Were Tower {i} and Tower 8 both designed by architects?",
                "context": context, "answers": ["yes"], "type": "comparison"}  # fmt: skip
    return {"_id": f"hp-{i}", "input": f"Where was the architect of Tower {i} born?", "context": context,
            "answers": [city], "type": "bridge"}  # fmt: skip


@pytest.fixture
def hotpot(tmp_path: Path) -> Path:
    path = tmp_path / "hotpot.json"
    path.write_text(json.dumps([_record(i) for i in range(len(FACTS))]), encoding="utf-8")
    return path


def answer_script(prompt: str) -> str:
    question = prompt.rsplit("Question:", 1)[1]
    if "both designed" in question:
        return "Yes, both of them were designed by architects."
    tower = re.search(r"Tower (\d+)", question)
    city = FACTS[int(tower.group(1))][0] if tower else "?"
    # A sentence, as small models write: the answer step must cut it to the span.
    return f"The architect was born in {city}, a city with a long history." if city in prompt.split("Question:")[0] else "unknown"


def module_script(prompt: str) -> str:
    if task_text("filter") in prompt:
        return "<answer>" + json.dumps([7] * len(re.findall(r"<memory index=", prompt))) + "</answer>"
    if task_text("summary") in prompt:
        facts = re.findall(r"born in (\w+)", prompt)
        return f"<answer>The architect was born in {facts[0] if facts else 'an unknown place'}.</answer>"
    return '<answer>["a fact"]</answer>'


def _settings(tmp_path: Path) -> Settings:
    base = Settings().replace(
        encoder__name="all-minilm-l6-v2", pipeline__answer_llm=ANSWER, pipeline__module_llm=MODULE,
        pipeline__cache_path=tmp_path / "cache.sqlite", retrieval__top_k=3,
    )  # fmt: skip
    return dataset_settings(base, "hotpotqa")


def test_hotpotqa_chunks_split_and_every_system(hotpot: Path, tmp_path: Path) -> None:
    data = load_eval_set("hotpotqa", hotpot)
    assert data.chunk_tokens == 1024 and data.answer_style == "hotpotqa"
    split = {p: make_split(data, p, seed=0) for p in ("train", "val", "test")}
    assert all("question-level" in s.method for s in split.values())
    ids = [set(i.id for i in s.items) for s in split.values()]
    assert sum(len(x) for x in ids) == len(FACTS) and not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])

    settings = _settings(tmp_path)
    # The grammar path is covered with a real model elsewhere; here the fake takes none, so
    # long replies go through the shorten call, also scripted.
    llms = {
        ANSWER: ScriptedFakeLLM(ANSWER, lambda p: _shorten(p) if p.startswith("Below is a question") else answer_script(p)),
        MODULE: ScriptedFakeLLM(MODULE, module_script),
    }
    store = tmp_path / "store.db"
    rows = {}
    for policy in ("naive-rag", "full-context", "low", "mid", "high", "random"):
        cfg = EvalConfig(dataset="hotpotqa", data=hotpot, out=tmp_path / policy, split="all", policy=policy, store=store)
        run = run_eval(cfg, settings, llms=llms, progress=False, log=lambda m: None)
        assert len(run.rows) == len(FACTS), policy
        rows[policy] = {r["id"]: r for r in run.rows}

    # 1,024-token document chunks: the long survey is cut into two chunks, none over the size.
    with Store(store) as st:
        chunks = st.chunks("hotpotqa/hp-0")
    assert max(c.n_tokens for c in chunks) <= 1024
    assert len([c for c in chunks if c.session_id == "doc_3"]) == 2
    assert len([c for c in chunks if c.session_id != "doc_3"]) == 3

    for policy, by_id in rows.items():
        assert by_id["hp-9"]["answer"] == "yes", policy  # the verdict, not the sentence
        assert by_id["hp-9"]["trace"]["answer_step"]["raw_output"].startswith("Yes, both")
    # Naive RAG finds the architect's birthplace and answers with the span alone.
    assert rows["naive-rag"]["hp-0"]["answer"] == "Basel" and rows["naive-rag"]["hp-0"]["metrics"]["f1"] == 1.0
    calls = rows["naive-rag"]["hp-0"]["trace"]["answer_step"]["calls"]
    assert [c["purpose"] for c in calls] == ["answer", "shorten"]
    assert rows["naive-rag"]["hp-0"]["cost"]["answer_usd"] == pytest.approx(sum(c["usd"] for c in calls))
    assert set(rows["high"]["hp-0"]["tiers"].values()) == {"HIGH"} and rows["high"]["hp-0"]["cost"]["extraction_usd"] > 0
    assert set(rows["mid"]["hp-0"]["tiers"].values()) == {"MID"} and rows["mid"]["hp-0"]["cost"]["extraction_usd"] == 0


def _shorten(prompt: str) -> str:
    long_answer = prompt.split("Long answer:", 1)[1].split("\n", 1)[0]
    found = re.search(r"born in (\w+)", long_answer)
    return found.group(1) if found else long_answer


def test_frontier_on_hotpotqa_splits_by_question(hotpot: Path, tmp_path: Path) -> None:
    from budgetmem.training.frontier import FrontierConfig, run_frontier
    from budgetmem.training.ppo import PPOSettings as Ppo

    llms = {
        ANSWER: ScriptedFakeLLM(ANSWER, lambda p: _shorten(p) if p.startswith("Below is a question") else answer_script(p)),
        MODULE: ScriptedFakeLLM(MODULE, module_script),
    }
    cfg = FrontierConfig(
        dataset="hotpotqa", data=hotpot, out=tmp_path / "frontier", cost_weights=(0.5,), baselines=("low", "high"),
        ppo=Ppo(steps=2, batch_size=3), eval_every=2,
    )  # fmt: skip
    points = run_frontier(cfg, _settings(tmp_path), llms=llms, progress=False, log=lambda m: None)
    assert [p.label for p in points] == ["router lambda=0.5", "fixed low", "fixed high"]
    test_ids = {i.id for i in make_split(load_eval_set("hotpotqa", hotpot), "test", seed=0).items}
    evaluated = {json.loads(x)["id"] for x in (cfg.out / "eval-router-0.5" / "results.jsonl").read_text().splitlines()}
    assert evaluated == test_ids  # the router is scored on held-out questions only
    assert (cfg.out / "frontier.png").stat().st_size > 100
