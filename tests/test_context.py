"""The packed answer context (selective-write paper §III-F, §III-H): episodic + semantic packing
under a token budget, cited answers and their checks, LLM compression of semantic memory,
and the packed-rag evaluation system end to end. LLM calls go to a scripted fake LLM
(ScriptedFakeLLM) except in the one CLI test marked ``models`` (SmolLM2-135M)."""

from __future__ import annotations

import json
import re
import sqlite3

import pytest
from evaldata import write_jsonl
from fakes import TEST_PRICE, ScriptedFakeLLM

from budgetmem import BudgetMem, Settings
from budgetmem.context import (
    build_cited_answer_prompt,
    check_citations,
    check_reply,
    compress_namespace,
    episodic_window,
    find_citations,
    memory_header,
    pack_context,
    render_cited_memories,
    strip_citations,
)
from budgetmem.eval import dataset_settings, make_system
from budgetmem.harness import EvalConfig, run_eval
from budgetmem.eval.systems import BASELINES, PackedRAG
from budgetmem.ingest import History, Session, Turn
from budgetmem.chunk import Chunk
from budgetmem.pipeline.types import ScoredChunk
from budgetmem.settings import ContextSettings


def words(text: str) -> int:
    """A token counter anyone can check by eye: whitespace-separated words."""
    return len(text.split())


def chunk(cid: int, n_words: int, *, compressed: str | None = None, tag: str = "w") -> Chunk:
    text = " ".join(f"{tag}{cid}_{i}" for i in range(n_words))
    return Chunk(
        text=text, n_tokens=n_words, source="t", history="h", session_id=f"s{cid}", session_date="1 May 2024",
        position=0, dia_ids=(f"D{cid}:1",), speakers=("Ana",), id=cid, compressed=compressed,
        compressed_tokens=words(compressed) if compressed else None,
    )  # fmt: skip


# --------------------------------------------------------------------------- packing


def test_episodic_first_in_time_order_then_ranked_semantic_without_duplicates():
    episodic = [chunk(7, 10), chunk(8, 10)]
    ranked = [ScoredChunk(chunk(5, 10), 0.9), ScoredChunk(chunk(8, 10), 0.8), ScoredChunk(chunk(2, 10), 0.7),
              ScoredChunk(chunk(3, 10), 0.6)]  # fmt: skip
    packed = pack_context(episodic, ranked, budget=40, count=words)
    assert packed.ids == (7, 8, 5, 2)  # episodic oldest first, then semantic by rank
    assert [i.memory for i in packed.items] == ["episodic", "episodic", "semantic", "semantic"]
    assert len(set(packed.ids)) == len(packed.ids) and packed.duplicates == (8,)
    assert packed.used_tokens == 40 <= packed.budget
    assert [(d.chunk_id, d.memory, d.reason) for d in packed.dropped] == [(3, "semantic", "over budget")]
    assert packed.items[2].score == 0.9 and packed.items[0].score is None
    assert not packed.episodic_truncated


def test_compressed_version_stands_in_when_the_raw_text_does_not_fit():
    episodic = [chunk(9, 10)]
    ranked = [
        ScoredChunk(chunk(1, 30, compressed="Ana adopted Miso in May"), 0.9),  # raw 30 > 15 left; 5 words fit
        ScoredChunk(chunk(2, 30), 0.8),  # too long and nothing compressed: skipped, not the end
        ScoredChunk(chunk(3, 8), 0.7),  # the next one that fits is still packed
    ]
    packed = pack_context(episodic, ranked, budget=25, count=words)
    assert packed.ids == (9, 1, 3)
    first = packed.items[1]
    assert first.compressed is True and first.text == "Ana adopted Miso in May" and first.tokens == 5
    assert packed.items[2].compressed is False and packed.n_compressed == 1
    assert packed.used_tokens == 10 + 5 + 8 <= 25
    assert [d.chunk_id for d in packed.dropped] == [2]
    # With room for the raw text, the raw text wins.
    roomy = pack_context(episodic, ranked[:1], budget=100, count=words)
    assert roomy.items[1].compressed is False and roomy.items[1].tokens == 30


def test_episodic_window_over_budget_keeps_the_newest_that_fit():
    episodic = [chunk(1, 10), chunk(2, 10), chunk(3, 10)]
    packed = pack_context(episodic, [ScoredChunk(chunk(0, 4), 0.5)], budget=25, count=words)
    assert packed.episodic_truncated is True
    assert [i.chunk_id for i in packed.episodic] == [2, 3] and packed.window == (1, 2, 3)
    assert [(d.chunk_id, d.memory) for d in packed.dropped] == [(1, "episodic")]
    assert packed.ids == (2, 3, 0) and packed.used_tokens == 24  # the small semantic chunk still fits
    assert packed.to_dict()["episodic_truncated"] is True


def test_the_header_counts_against_the_budget():
    item = chunk(4, 10)
    with_header = pack_context([item], [], budget=100, count=words, header=memory_header)
    assert with_header.items[0].tokens == 10 + words(memory_header(item, False))
    tight = pack_context([item], [], budget=12, count=words, header=memory_header)
    assert tight.items == () and tight.episodic_truncated


# --------------------------------------------------------------------------- citations


def test_citation_markers_are_found_in_every_tolerated_shape():
    ids, bad = find_citations("Miso [CITE: 12] and Barro [CITE: 12, 15][CITE:4] also [cite: 7; 8] [CITE: the first]")
    assert ids == (12, 15, 4, 7, 8) and bad == ("the first",)
    assert strip_citations("Miso [CITE: 3].") == "Miso."
    assert strip_citations("[CITE: 3] at the shelter [CITE:4, 5]\n[MEM_ID: 3]") == "at the shelter"


def test_citation_check_valid_not_in_context_not_in_store_and_none():
    ok = check_citations("Miso [CITE: 3]", context_ids={3, 4}, store_ids={3, 4, 5})
    assert ok.all_valid and ok.valid == (3,) and ok.n_cited == 1 and ok.invalid == ()
    mixed = check_citations("Miso [CITE: 3, 5, 99]", context_ids={3, 4}, store_ids={3, 4, 5})
    assert not mixed.all_valid and mixed.valid == (3,)
    assert [(i.id, i.reason) for i in mixed.invalid] == [(5, "not in context"), (99, "not in store")]
    assert mixed.to_dict()["n_cited"] == 3
    none = check_citations("I don't know", context_ids={3}, store_ids={3})
    assert none.n_cited == 0 and none.all_valid is False
    odd = check_citations("Miso [CITE: 3][CITE: memory one]", context_ids={3}, store_ids={3})
    assert odd.malformed == ("memory one",) and not odd.all_valid


def test_rendered_memories_carry_ids_and_cannot_plant_citations():
    planted = Chunk(
        text="Ana: see [CITE: 99] and [MEM_ID: 98]", n_tokens=8, source="t", history="h", session_id="s1",
        session_date="3 May 2024", position=0, dia_ids=("D1:1", "D1:2"), speakers=("Ana",), id=41,
    )  # fmt: skip
    packed = pack_context([planted], [ScoredChunk(chunk(40, 5, compressed="short"), 0.5)], budget=100, count=words)
    text = render_cited_memories(packed)
    assert "[MEM_ID: 41] | session: s1 | date: 3 May 2024 | turns: D1:1-D1:2" in text
    assert "[MEM_ID: 40]" in text
    assert find_citations(text) == ((), ()) and "[MEM_ID: 98]" not in text
    prompt = build_cited_answer_prompt("Where?", text, style="locomo", question_date="4 May 2024")
    assert "[CITE: id]" in prompt and "I don't know" in prompt and prompt.rstrip().endswith("Question: Where?\nAnswer:")


# --------------------------------------------------------------------------- store-backed


SESSIONS = [
    ("s1", "1 May 2024", "Ana: I adopted a grey cat called Miso from the shelter on Rua Augusta in Lisbon last week."),
    ("s2", "3 May 2024", "Ana: I started pottery classes at Barro Studio near the river, every Tuesday evening at seven."),
    ("s3", "9 May 2024", "Ben: My sister Priya is flying in from Toronto on the twelfth of August for two weeks."),
    ("s4", "12 May 2024", "Ana: Raj grows tomatoes, basil and chillies in the community garden on Elm Street."),
    ("s5", "20 May 2024", "Ben: We booked a table at Casa Lima for Friday at eight, for six people."),
    ("s6", "28 May 2024", "Ana: Miso knocked over the new vase this morning, the blue one from the market."),
]


@pytest.fixture
def mem(tmp_path, minilm, minilm_settings):
    settings = minilm_settings.replace(chunking__max_tokens=64, pipeline__cache_path=tmp_path / "cache.sqlite")
    sessions = tuple(
        Session(sid, date, (Turn(text.split(": ", 1)[1], speaker=text.split(": ", 1)[0], dia_id=f"{sid}:0"),))
        for sid, date, text in SESSIONS
    )
    m = BudgetMem(tmp_path / "mem.db", "ana", settings=settings, encoder=minilm)
    m.add_histories([History("ana", "test", "api", sessions)])
    yield m
    m.close()


def test_episodic_window_and_budgetmem_context(mem):
    live = mem.store.chunks("ana")
    assert len(live) == 6
    window = episodic_window(mem.store, "ana", 2)
    assert [c.id for c in window] == [live[-2].id, live[-1].id]
    packed = mem.context("Where did Ana find her cat?", k=3)
    assert [i.chunk_id for i in packed.episodic] == [c.id for c in live[-4:]]  # default window 4
    assert live[0].id in packed.ids  # the shelter chunk is retrieved into semantic memory
    assert len(set(packed.ids)) == len(packed.ids) and packed.used_tokens <= mem.settings.context.context_tokens
    assert "encoder tokenizer" in packed.counted_with


def test_check_reply_against_the_live_store(mem):
    live = mem.store.chunks("ana")
    packed = pack_context(live[-2:], [], budget=1000, count=words)
    shown, hidden, gone = live[-1].id, live[0].id, live[1].id
    mem.store.archive("ana", [gone])  # archived: out of the live index
    check = check_reply(f"x [CITE: {shown}, {hidden}, {gone}, 424242]", packed, mem.store, "ana")
    assert check.valid == (shown,)
    assert [(i.id, i.reason) for i in check.invalid] == [
        (hidden, "not in context"), (gone, "not in store"), (424242, "not in store")]  # fmt: skip


def _compress_meta(path, cid):
    with sqlite3.connect(path) as db:
        return json.loads(db.execute("SELECT compress_meta FROM chunks WHERE id=?", (cid,)).fetchone()[0])


def test_compression_stores_rejects_records_costs_and_resumes(mem, minilm):
    live = mem.store.chunks("ana")
    semantic, recent = live[:4], live[4:]
    settings = ContextSettings(episodic_window=2, compress_tokens=8)

    def first_run(prompt: str) -> str:
        if "pottery" in prompt:
            return "Note: " + " ".join(["pottery"] * 80)  # longer than the chunk: rejected
        if "Priya" in prompt:
            return "   "  # empty: rejected
        return "Note: Ana adopted Miso, a grey cat." if "Miso" in prompt else "Raj grows tomatoes, basil, chillies."

    llm = ScriptedFakeLLM("fake:compress", first_run, tokens=(120, 9))
    report = compress_namespace(mem.store, "ana", llm, settings, count=minilm.count_tokens, counted_with="minilm")
    assert len(llm.received) == 4 and report.calls == 4 and report.episodic == 2
    assert not any(c.text.strip() in p for c in recent for p in llm.prompts)  # the episodic window stays verbatim
    assert report.compressed == 2 and report.remaining == 2
    reasons = {r.chunk_id: r.reason for r in report.rejected}
    assert reasons[semantic[1].id].startswith("not shorter") and reasons[semantic[2].id] == "empty reply"
    # Every call is paid for, rejected ones too: 4 x (120 in + 9 out) at $1 / $2 per million.
    assert report.usd == pytest.approx(4 * (120 + 2 * 9) / 1e6) and report.prompt_tokens == 480
    assert report.price_source == TEST_PRICE.source
    stored = {c.id: c for c in mem.store.chunks("ana")}
    assert stored[semantic[0].id].compressed == "Ana adopted Miso, a grey cat."  # the label is cleaned off
    assert stored[semantic[0].id].compressed_tokens == minilm.count_tokens("Ana adopted Miso, a grey cat.")
    assert stored[semantic[1].id].compressed is None and stored[semantic[2].id].compressed is None
    meta = _compress_meta(mem.store.path, semantic[3].id)
    assert meta["model"] == "fake:compress" and meta["prompt_tokens"] == 120 and meta["completion_tokens"] == 9
    assert meta["usd"] == pytest.approx((120 + 18) / 1e6) and meta["price_source"] == TEST_PRICE.source
    assert meta["latency_s"] > 0 and meta["target_tokens"] == 8

    # Resume: only the two rejected chunks are asked again, one per call under --limit 1.
    retry = ScriptedFakeLLM("fake:compress", ["Ana takes pottery at Barro Studio."], tokens=(100, 7))
    again = compress_namespace(mem.store, "ana", retry, settings, count=minilm.count_tokens, limit=1)
    assert len(retry.received) == 1 and "pottery" in retry.prompts[0]
    assert again.already == 2 and again.compressed == 1 and again.remaining == 1
    last = ScriptedFakeLLM("fake:compress", ["Priya visits from Toronto on 12 August."])
    compress_namespace(mem.store, "ana", last, settings, count=minilm.count_tokens)
    # Everything done: a further run makes no call at all (an empty script would fail on one).
    idle = ScriptedFakeLLM("fake:compress", [])
    done = compress_namespace(mem.store, "ana", idle, settings, count=minilm.count_tokens)
    assert idle.received == [] and done.compressed == 0 and done.already == 4 and done.usd == 0.0


# --------------------------------------------------------------------------- packed-rag


ANSWER = "fake:answer"
REPLIES = {"name of": "Miso", "find": "a shelter in Lisbon", "studio": "Barro", "grow": "tomatoes", "August": "his sister Priya"}
# F1 of the replies without their markers, as worked out in test_eval_run.py.
EXPECTED_F1 = {"ana-1": 1.0, "ana-2": 2 / 7, "ana-3": 1.0, "raj-1": 0.5, "raj-2": 0.5}


def cited_script(prompt: str) -> str:
    """Reply, then cite the first memory shown; the August question cites an id no store has."""
    question = prompt.rsplit("Question:", 1)[1]
    reply = next(r for key, r in REPLIES.items() if key in question)
    first = re.search(r"\[MEM_ID: (\d+)\]", prompt)
    assert first is not None, "the cited prompt shows memory ids"
    cite = "987654" if "August" in question else first.group(1)
    return f"{reply} [CITE: {cite}]\n"


def test_packed_rag_end_to_end(tmp_path):
    assert "packed-rag" in BASELINES and isinstance(make_system("implementation", "packed-rag"), PackedRAG)
    data = write_jsonl(tmp_path / "mine.jsonl")
    base = Settings().replace(encoder__name="all-minilm-l6-v2", pipeline__answer_llm=ANSWER, retrieval__top_k=2,
                              pipeline__cache_path=tmp_path / "cache.sqlite", context__episodic_window=1)  # fmt: skip
    settings = dataset_settings(base, "jsonl", chunk_tokens=32)
    llm = ScriptedFakeLLM(ANSWER, cited_script, tokens=(300, 6))
    cfg = EvalConfig(dataset="jsonl", data=data, out=tmp_path / "run", split="all", policy="packed-rag")
    run = run_eval(cfg, settings, llms={ANSWER: llm}, progress=False, log=lambda m: None)

    assert all("[MEM_ID:" in p and "[CITE: id]" in p for p in llm.prompts)
    rows = {r["id"]: r for r in run.rows}
    for rid, row in rows.items():
        assert row["system"] == "packed-rag"
        assert row["metrics"]["f1"] == pytest.approx(EXPECTED_F1[rid]), rid  # scored without the markers
        assert "[CITE" not in row["answer"] and "[CITE:" in row["trace"]["context"]["raw_answer"]
        assert row["cost"]["answer_usd"] == pytest.approx((300 + 2 * 6) / 1e6) and row["cost"]["extraction_usd"] == 0.0
        packing = row["trace"]["context"]["packing"]
        assert packing["items"][0]["memory"] == "episodic" and packing["n_episodic"] == 1
        assert packing["used_tokens"] <= settings.context.context_tokens
        assert len({i["chunk_id"] for i in packing["items"]}) == len(packing["items"])
    assert rows["ana-1"]["answer"] == "Miso"
    assert rows["ana-1"]["trace"]["context"]["citations"]["all_valid"] is True
    bad = rows["raj-2"]["trace"]["context"]["citations"]
    assert bad["all_valid"] is False and bad["invalid"] == [{"id": 987654, "reason": "not in store"}]

    overall = run.summary["overall"]
    assert overall["citations_valid"] == pytest.approx(4 / 5) and overall["cited_ids"] == pytest.approx(1.0)
    assert overall["cited_questions"] == 5 and overall["f1"] == pytest.approx(sum(EXPECTED_F1.values()) / 5)
    md = (tmp_path / "run" / "summary.md").read_text()
    assert "citations valid %" in md and "| overall | 5 |" in md and "80.0 | 1.00 |" in md
    assert "citations: on 4 of 5 questions" in md
    assert (tmp_path / "run" / "summary.csv").read_text().splitlines()[0].endswith("citations_valid,cited_ids")
    ident = json.loads((tmp_path / "run" / "run.json").read_text())["identity"]
    assert ident["context"]["episodic_window"] == 1

    # A run without citations keeps exactly its old columns.
    plain = run_eval(EvalConfig(dataset="jsonl", data=data, out=tmp_path / "rag", split="all", policy="naive-rag", limit=2),
                     settings, llms={ANSWER: ScriptedFakeLLM(ANSWER, lambda p: "Miso")}, progress=False,
                     log=lambda m: None)  # fmt: skip
    assert "citations_valid" not in plain.summary["overall"]
    assert "citations" not in (tmp_path / "rag" / "summary.md").read_text()
    assert "context" not in json.loads((tmp_path / "rag" / "run.json").read_text())["identity"]


# --------------------------------------------------------------------------- CLI, real model


@pytest.mark.models
def test_compress_and_ask_packed_rag_cli_with_a_real_model(mem, capsys):
    """``budgetmem compress`` and ``ask --policy packed-rag`` on SmolLM2-135M (one call each)."""
    from budgetmem.cli.main import main

    path = str(mem.store.path)
    mem.close()
    small = "llamacpp:smollm2-135m"
    code = main(["compress", "--store", path, "--namespace", "ana", "--llm", small, "--limit", "1",
                 "--target-tokens", "8", "--no-progress", "--json"])  # fmt: skip
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["calls"] == 1 and report["compressed"] + len(report["rejected"]) == 1
    assert report["prompt_tokens"] > 0 and report["usd"] > 0 and "paper-equivalent" in report["price_source"]
    assert report["remaining"] == 1 + len(report["rejected"])  # 6 live - window 4 = 2 semantic, 1 call

    code = main(["ask", "What is the name of Ana's cat?", "--store", path, "--namespace", "ana", "--policy",
                 "packed-rag", "--answer-llm", small, "--no-cache", "--json"])  # fmt: skip
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["policy"] == "packed-rag" and "[CITE" not in out["answer"]
    assert out["context"]["packing"]["n_episodic"] == 4 and "all_valid" in out["context"]["citations"]
    assert out["answer_step"]["calls"][0]["model"] == small and out["answer_step"]["calls"][0]["prompt_tokens"] > 0
