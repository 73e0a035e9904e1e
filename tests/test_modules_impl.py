"""Implementation LOW (rules) and MID (encoder) of the five modules, on real spaCy and the
real all-MiniLM-L6-v2 encoder. No LLM may be touched: the context's llm_for raises."""

from __future__ import annotations

import itertools
import re
import threading
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from budgetmem.encoder import Encoder
from budgetmem.errors import ConfigError
from budgetmem.ingest import Chunk, chunk_history, load_histories
from budgetmem.pipeline.context import RunContext
from budgetmem.pipeline.modules import get_module
from budgetmem.pipeline.stages import STAGES
from budgetmem.pipeline.modules.entity import triples
from budgetmem.pipeline.modules import dates
from budgetmem.pipeline.modules.summary import DIGEST_WORDS, EVIDENCE_WORDS, asks_for, timeline
from budgetmem.pipeline.modules.text import sentences, split_lines, terms
from budgetmem.pipeline.stages import MODULES
from budgetmem.pipeline.types import FactsResult, ModuleInput, ScoredChunk, keep_count
from budgetmem.settings import PipelineSettings

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "conversation.json"

pytestmark = pytest.mark.models


def _no_llm(spec: Any) -> Any:
    raise AssertionError("no LLM in implementation LOW/MID")


@pytest.fixture(scope="module")
def ctx(minilm: Encoder) -> RunContext:
    return RunContext(encoder=minilm, settings=PipelineSettings(cache_path=None), llm_for=_no_llm)


def _chunk(text: str, session: str, stamp: str | None, position: int = 0) -> Chunk:
    speakers = tuple(dict.fromkeys(line.split(":", 1)[0] for line in text.strip().split("\n")))
    return Chunk(
        text=text.strip() + "\n",
        n_tokens=len(text.split()),
        source="test",
        history="caroline-melanie",
        session_id=session,
        session_date=stamp,
        position=position,
        dia_ids=(),
        speakers=speakers,
    )


# LoCoMo-style chat, written for these tests.
CHUNKS = (
    _chunk(
        """
Caroline: Hey Mel! Good to see you! How have you been?
Melanie: Hey Caroline! I'm swamped with the kids and work. Anything new with you?
Caroline: I went to an LGBTQ support group yesterday and it was so powerful.
Melanie: Wow, that's cool! Did you hear any inspiring stories?
Caroline: The transgender stories were so inspiring. I'm keen on counseling now, maybe at a clinic in Boston.
Melanie: Last March I painted a sunrise over Lake Tahoe with my kids.
""",
        "session_1",
        "1:56 pm on 8 May, 2023",
    ),
    _chunk(
        """
Caroline: Last Friday I went to an LGBTQ+ counseling workshop in Boston and it was really enlightening.
Melanie: That sounds amazing. I ran a charity race for mental health last Sunday.
Caroline: I have been researching adoption agencies, since I want to build a family.
Melanie: Adoption agencies can be slow, but you'll be an amazing mom. We're going camping next month.
""",
        "session_2",
        "10:37 am on 27 June, 2023",
    ),
    _chunk(
        """
Melanie: My daughter Emma started pottery classes two weeks ago.
Caroline: Emma will love it! I'm reading a book by Toni Morrison next week.
""",
        "session_3",
        "the day after the wedding",
    ),
)
QUERY = "When did Caroline go to the LGBTQ support group?"


def _inp(query: str = QUERY, **kw: Any) -> ModuleInput:
    return ModuleInput(query=query, chunks=tuple(ScoredChunk(c, 1.0) for c in CHUNKS), **kw)


@pytest.fixture(scope="module")
def outputs(ctx: RunContext) -> dict[tuple[str, str], FactsResult]:
    """Both tiers of the three extractors on the same input (computed once)."""
    return {
        (m, tier): getattr(get_module(m), tier)(_inp(), ctx)
        for m in ("entity", "temporal", "topic")
        for tier in ("rules", "encoder")
    }


# ---------------------------------------------------------------- registry
def test_registry_and_singletons() -> None:
    assert [s.name for s in STAGES] == list(MODULES)
    for name in MODULES:
        assert get_module(name) is get_module(name)
        assert get_module(name).name == name
    with pytest.raises(ConfigError):
        get_module("memory")


def test_split_lines_keeps_multiline_turns_together() -> None:
    c = _chunk("user: first line\nstill the user\nassistant: a reply", "s", None)
    lines = split_lines(c)
    assert [(line.speaker, line.text) for line in lines] == [("user", "first line\nstill the user"), ("assistant", "a reply")]


def test_a_sentence_with_an_open_bracket_runs_on(ctx: RunContext) -> None:
    text = ("Gerald R. Ford International Airport\nGerald R. Ford International Airport (IATA: GRR, ICAO: KGRR, FAA LID: GRR) "
            "is a commercial airport near Grand Rapids, Michigan. It is owned by Kent County.\n")  # fmt: skip
    doc = Chunk(text=text, n_tokens=40, source="test", history="docs", session_id="doc_0", session_date=None,
                position=0, kind="document", dia_ids=(), speakers=())  # fmt: skip
    said = [s.text for s in sentences(ctx, [doc])]
    assert "Gerald R. Ford International Airport (IATA: GRR, ICAO: KGRR, FAA LID: GRR) is a commercial airport near " \
        "Grand Rapids, Michigan." in said
    assert said[-1] == "It is owned by Kent County."  # closed brackets end sentences as before
    # An unclosed bracket at the very end keeps what is there.
    tail = replace(doc, text="Notes\nThe club (founded 1871. It races on the Tamar.\n")
    assert " ".join(s.text for s in sentences(ctx, [tail])).endswith("It races on the Tamar.")


# ---------------------------------------------------------------- filter
@pytest.fixture(scope="module")
def example_chunks(minilm: Encoder) -> list[Chunk]:
    history = load_histories(EXAMPLE)[0]
    return chunk_history(history, minilm, 64)


@pytest.mark.parametrize(
    ("query", "evidence"),
    [
        ("Who is Priya's Portuguese tutor?", "D3:8"),
        ("Who looked after Pixel while Priya moved?", "D1:9"),
    ],
)
def test_filter_keeps_k_and_ranks_the_answer_first(
    ctx: RunContext, example_chunks: list[Chunk], query: str, evidence: str
) -> None:
    # Five candidates as retrieval hands them over (K = 5), the answer chunk ranked last.
    answer = next(c for c in example_chunks if evidence in c.dia_ids)
    others = [c for c in example_chunks if c is not answer][::3][:4]
    inp = ModuleInput(query=query, chunks=tuple(ScoredChunk(c, 0.5) for c in [*others, answer]))
    count_only = replace(ctx, settings=replace(ctx.settings, filter_tokens=0))
    low = get_module("filter").rules(inp, count_only)
    mid = get_module("filter").encoder(inp, count_only)
    for res in (low, mid):
        assert len(res.chunks) == ctx.settings.filter_keep == 3
        assert res.chunks[0].chunk is answer
        scores = [c.score for c in res.chunks]
        assert scores == sorted(scores, reverse=True)
        assert all(0.0 <= s <= 1.0 for s in scores)
    assert [c.score for c in low.chunks] != pytest.approx([c.score for c in mid.chunks])


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("Hayden is a singer-songwriter from Canada, but where does Buck-Tick hail from?", "a place"),
        ("Are both Dictyosperma and Huernia described as a genus?", "yes or no"),
        ("A physicist that has worked in France since what year?", "a date or time"),
        ("Who founded the club?", "a person"),
        ("Tell me about the club.", "information"),
    ],
)
def test_asks_for(question: str, kind: str) -> None:
    assert asks_for(question) == kind


@pytest.mark.parametrize(
    ("n_tokens", "keep", "budget", "expected"),
    [
        ([256, 256, 256, 256, 256], 3, 768, 3),  # chat chunks: the count decides
        ([100, 80, 120, 90, 110], 3, 768, 5),  # short paragraphs: all fit in three chunks' worth
        ([100, 80, 120, 500, 10], 3, 768, 3),  # in rank order: the fourth passes the budget, so it stops
        ([700, 300, 300], 1, 768, 1),  # the best one always, however long
        ([10, 10, 10], 3, 0, 3),  # a budget of 0 keeps exactly the count
        ([10, 10], 3, 768, 2),  # never more than there are
    ],
)
def test_keep_count(n_tokens: list[int], keep: int, budget: int, expected: int) -> None:
    assert keep_count(n_tokens, keep, budget) == expected


def test_filter_keeps_short_documents_whole(ctx: RunContext) -> None:
    # Five 40-token paragraphs weigh less than filter_tokens: both tiers keep all five, ranked.
    docs = [Chunk(text=f"Title {i}\nParagraph {i} about rowing clubs and boats.\n", n_tokens=40, source="test",
                  history="docs", session_id=f"doc_{i}", session_date=None, position=0, kind="document",
                  dia_ids=(), speakers=()) for i in range(5)]  # fmt: skip
    inp = ModuleInput(query="Which rowing club?", chunks=tuple(ScoredChunk(c, 0.5) for c in docs))
    assert 5 * 40 <= ctx.settings.filter_tokens
    for method in ("rules", "encoder"):
        res = getattr(get_module("filter"), method)(inp, ctx)
        assert sorted(c.chunk.session_id for c in res.chunks) == [f"doc_{i}" for i in range(5)]


def test_filter_low_ties_keep_the_retrieval_order(ctx: RunContext) -> None:
    inp = ModuleInput(query="the of and", chunks=tuple(ScoredChunk(c, 1.0) for c in CHUNKS))
    res = get_module("filter").rules(inp, ctx)
    assert [c.chunk.session_id for c in res.chunks] == ["session_1", "session_2", "session_3"]
    assert all(c.score == 0.0 for c in res.chunks)


def test_filter_low_and_mid_disagree_on_a_paraphrase(ctx: RunContext) -> None:
    # No content word is shared with the pottery chunk; only the encoder sees the link.
    inp = ModuleInput(query="Which hobby did the daughter take up with clay?", chunks=_inp().chunks)
    low = get_module("filter").rules(inp, ctx)
    mid = get_module("filter").encoder(inp, ctx)
    assert mid.chunks[0].chunk.session_id == "session_3"
    assert [c.chunk.session_id for c in low.chunks] != [c.chunk.session_id for c in mid.chunks]


# ---------------------------------------------------------------- entity
def test_entity_low_dependency_triples(outputs: dict[tuple[str, str], FactsResult], ctx: RunContext) -> None:
    facts = outputs[("entity", "rules")].facts
    assert len(facts) == ctx.settings.max_facts == 8
    assert all(len(f.split(" | ")) == 3 for f in facts)
    # first person resolved to the speaker; the triple sharing most query terms ranks first
    assert facts[0] == "Caroline | went to | LGBTQ support group"
    every = [t.render() for t in triples(sentences(ctx, CHUNKS))]
    assert set(facts) <= set(every) and len(every) > len(facts)
    assert "Melanie | painted | sunrise over Lake Tahoe" in every
    assert "Caroline | am keen on | counseling" in every  # clitic spelled out, "now" left out
    assert "Melanie's daughter | started | pottery classes" in every
    assert "Caroline | reading | book by Toni Morrison" in every
    assert not any(t.startswith(("Hey", "It |", "That |")) for t in every)


def test_entity_mid_ranks_wider_candidates_by_embedding(outputs: dict[tuple[str, str], FactsResult]) -> None:
    low = outputs[("entity", "rules")].facts
    mid = outputs[("entity", "encoder")].facts
    assert 0 < len(mid) <= 8
    assert mid != low
    # MID adds entity-anchored sentences that LOW cannot produce, told in the third person
    sentence_facts = [f for f in mid if " | " not in f]
    assert sentence_facts
    assert not any(re.search(r"\bI\b", f) for f in sentence_facts)
    assert any("support group" in f for f in mid[:2])


# ---------------------------------------------------------------- temporal
def test_temporal_low_anchors(outputs: dict[tuple[str, str], FactsResult]) -> None:
    facts = outputs[("temporal", "rules")].facts
    assert facts[0] == (
        "yesterday — Caroline: I went to an LGBTQ support group yesterday and it was so powerful. "
        "(said on 1:56 pm on 8 May, 2023)"
    )
    expressions = {f.split(" — ")[0] for f in facts}
    assert {"Last March", "Last Friday", "last Sunday", "next month"} <= expressions


def test_temporal_mid_normalises_against_the_session_date(outputs: dict[tuple[str, str], FactsResult]) -> None:
    facts = outputs[("temporal", "encoder")].facts
    joined = "\n".join(facts)
    assert 'Caroline went to an LGBTQ support group and it was so powerful: 7 May 2023 ("yesterday", said 8 May 2023)' in facts
    assert 'March 2023 ("Last March", said 8 May 2023)' in joined
    # 27 June 2023 is a Tuesday: last Friday = 23 June, last Sunday = 25 June, next month = July
    assert '23 June 2023 ("Last Friday", said 27 June 2023)' in joined
    assert '25 June 2023 ("last Sunday", said 27 June 2023)' in joined
    assert 'July 2023 ("next month", said 27 June 2023)' in joined
    assert facts[0].endswith('7 May 2023 ("yesterday", said 8 May 2023)')
    assert facts != outputs[("temporal", "rules")].facts


def test_temporal_mid_keeps_unparseable_session_dates_unnormalised(ctx: RunContext) -> None:
    inp = ModuleInput(query="When did Emma start pottery?", chunks=(ScoredChunk(CHUNKS[2], 1.0),))
    facts = get_module("temporal").encoder(inp, ctx).facts
    assert facts[0] == (
        "Melanie's daughter Emma started pottery classes: \"two weeks ago\" "
        '(session date "the day after the wedding" not understood, not normalised)'
    )


def test_temporal_uses_the_question_date_when_given(ctx: RunContext) -> None:
    inp = ModuleInput(query=QUERY, chunks=(ScoredChunk(CHUNKS[0], 1.0),), question_date="2023/05/17 (Wed) 10:00")
    facts = get_module("temporal").encoder(inp, ctx).facts
    assert facts[0].endswith('7 May 2023 ("yesterday", said 8 May 2023, 10 days before the question)')


def test_temporal_ends_on_a_long_sentence_whose_root_is_not_a_verb(ctx: RunContext) -> None:
    # A document sentence of 40+ tokens built around a noun: the climb towards a verb clause
    # must stop at the root (it once compared spaCy tokens by identity and never stopped).
    text = ("The men's basketball tournament of the 2004 Summer Olympics, the sixteenth edition of the event, "
            "one of many events held in Athens, Greece, in August 2004 among teams from the whole world "
            "including Argentina, Italy and the United States of America and several others.")  # fmt: skip
    chunk = Chunk(text=text, n_tokens=len(text.split()), source="test", history="docs", session_id="d1",
                  session_date="2024-01-01", position=0, kind="document", dia_ids=(), speakers=())  # fmt: skip
    inp = ModuleInput(query="When was the tournament held?", chunks=(ScoredChunk(chunk, 1.0),))
    done: dict[str, tuple[str, ...]] = {}

    def work() -> None:
        done["low"] = get_module("temporal").rules(inp, ctx).facts
        done["mid"] = get_module("temporal").encoder(inp, ctx).facts

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive(), "the temporal module did not finish on a verbless long sentence"
    assert any("August 2004" in f for f in done["low"]), done["low"]
    assert any("August 2004" in f for f in done["mid"]), done["mid"]


# ---------------------------------------------------------------- topic
def test_topic_low_keywords(outputs: dict[tuple[str, str], FactsResult]) -> None:
    facts = outputs[("topic", "rules")].facts
    assert 0 < len(facts) <= 8
    assert all(re.fullmatch(r"topic: .+ \(sessions? [\d, ]+\)", f) for f in facts)
    assert "topic: adoption agencies (session 2)" in facts


def test_topic_mid_keyphrases_with_mmr(outputs: dict[tuple[str, str], FactsResult]) -> None:
    low = outputs[("topic", "rules")].facts
    mid = outputs[("topic", "encoder")].facts
    assert 0 < len(mid) <= 8
    assert all(re.fullmatch(r"topic: .+ — .+", f) for f in mid)
    phrases = [f.split(" — ")[0].removeprefix("topic: ") for f in mid]
    stem_sets = [frozenset(terms(p)) for p in phrases]
    assert len(set(stem_sets)) == len(stem_sets)
    assert any("support group" in p for p in phrases[:3])
    assert [f.split(" (")[0] for f in low] != [f.split(" — ")[0] for f in mid]


# ---------------------------------------------------------------- summary
def test_summary_low_digest_has_every_fact_once(outputs: dict[tuple[str, str], FactsResult], ctx: RunContext) -> None:
    facts = {
        "entity": outputs[("entity", "rules")].facts[:6],
        "temporal": outputs[("temporal", "rules")].facts[:3],
        "topic": outputs[("topic", "rules")].facts[:5] + outputs[("entity", "rules")].facts[:1],  # a repeat
    }
    text = get_module("summary").rules(_inp(facts=facts), ctx).text
    lines = text.split("\n")
    for fact in {f for fs in facts.values() for f in fs}:
        assert lines.count(f"- {fact}") == 1, fact
    assert len(lines) == 3 + 6 + 3 + 5  # three headings, each distinct fact once
    assert [line for line in lines if not line.startswith("- ")] == ["Entities:", "Time:", "Topics:"]


def test_summary_low_caps_the_length(ctx: RunContext) -> None:
    many = {"entity": tuple(f"fact number {i} about something rather long and wordy here" for i in range(60))}
    text = get_module("summary").rules(ModuleInput(query="q", facts=many), ctx).text
    words = [w for w in text.split() if w not in ("-", "Entities:")]
    assert 240 <= len(words) <= DIGEST_WORDS


def test_summary_mid_template(outputs: dict[tuple[str, str], FactsResult], ctx: RunContext) -> None:
    facts = {m: outputs[(m, "encoder")].facts for m in ("entity", "temporal", "topic")}
    low = get_module("summary").rules(_inp(facts=facts), ctx).text
    mid = get_module("summary").encoder(_inp(facts=facts), ctx).text
    assert mid != low
    heads = [line.split(":")[0] for line in mid.split("\n") if not line.startswith("- ")]
    assert heads[:2] == ["The question asks for", "Most relevant evidence"]  # evidence first
    assert set(heads[2:]) <= {"Entities", "Timeline", "Topics"} and "Timeline" in heads
    assert mid.startswith("The question asks for: a date or time\n")
    assert QUERY not in mid  # the answer prompt has the question already
    shown = list(itertools.takewhile(lambda line: line.startswith("- "), mid.split("Timeline:\n")[1].split("\n")))
    # The fact the question is about, resolved to its date; then the other workshop, in
    # calendar order. Facts far from the question (Melanie's painting, her charity race)
    # score under RELEVANCE of the best evidence sentence and are left out.
    assert shown[0].startswith("- Caroline went to an LGBTQ support group") and "7 May 2023" in shown[0]
    assert "painted a sunrise" not in mid and "charity race" not in mid
    dates_shown = [dates.first_date_in(line) for line in shown]
    assert [d for d in dates_shown if d] == sorted(d for d in dates_shown if d)
    evidence = list(itertools.takewhile(lambda line: line.startswith("- "), mid.split("Most relevant evidence:\n")[1].split("\n")))
    said = '"Caroline: I went to an LGBTQ support group yesterday and it was so powerful."'
    assert evidence[0] == f"- {said} (session 1, 8 May 2023)"
    quoted = [line.split('"')[1] for line in evidence]
    assert len(evidence) >= 2
    # The budget: every sentence but the last fits in EVIDENCE_WORDS; the last one is the
    # one that would pass it, so it is not there.
    assert sum(len(q.split()) for q in quoted) <= EVIDENCE_WORDS
    sessions = Counter(line.rsplit("(session ", 1)[1].split(",")[0] for line in evidence)
    assert max(sessions.values()) <= 3, sessions  # each CHUNKS entry is one session
    for section in [h + ":" for h in heads[2:]]:
        block = mid.split(section)[1].split("\n")[1:]
        bullets = list(itertools.takewhile(lambda line: line.startswith("- "), block))
        assert 1 <= len(bullets) <= 5, (section, bullets)


def test_summary_mid_leaves_chit_chat_out(ctx: RunContext, monkeypatch: pytest.MonkeyPatch) -> None:
    news = _chunk("Nate: I just got a new addition to the family, this is Max!\nJoanna: Wow, congrats!\n"
                  "Nate: He is adopted and so full of energy.", "session_12", "1:00 pm on 20 May, 2022")
    chat = _chunk("Nate: Sounds like a plan!\nJoanna: Thanks for the invite, Nate!\nNate: See you soon!",
                  "session_11", "2:00 pm on 12 May, 2022")  # fmt: skip
    inp = ModuleInput(query="Who was the new addition to Nate's family?", chunks=(ScoredChunk(news, 1.0), ScoredChunk(chat, 0.9)))

    def evidence() -> list[str]:
        mid = get_module("summary").encoder(inp, ctx).text
        return list(itertools.takewhile(lambda line: line.startswith("- "), mid.split("Most relevant evidence:\n")[1].split("\n")))

    def chit_chat(lines: list[str]) -> int:
        return sum("session 11" in line for line in lines)

    shown = evidence()
    assert "this is Max!" in shown[0] and any("adopted" in line for line in shown)
    # The other chunk's best turn may fill the second of the two sentences always shown, no more.
    assert chit_chat(shown) <= 1, shown
    monkeypatch.setattr("budgetmem.pipeline.modules.summary.RELEVANCE", 0.0)  # every chunk's turns in turn, however weak
    assert chit_chat(evidence()) >= 2


def test_timeline_is_in_calendar_order() -> None:
    facts = ["the workshop: 23 June 2023", "an undated remark", "the painting: March 2023", "the group: 7 May 2023"]
    assert timeline(facts) == ["the painting: March 2023", "the group: 7 May 2023", "the workshop: 23 June 2023",
                               "an undated remark"]  # fmt: skip


def test_summary_mid_evidence_names_documents_and_spans_them(ctx: RunContext) -> None:
    docs = [
        ("Rivermouth Rowing Club", "Rivermouth Rowing Club is a rowing club on the Tamar estuary. "
         "The club was founded by the shipwright Ada Penrose. It races in blue and white."),
        ("Ada Penrose", "Ada Penrose was a Cornish shipwright and boat designer. "
         "She was born in 1871 in Saltash. She designed the club's first racing four."),
    ]  # fmt: skip
    chunks = tuple(
        ScoredChunk(Chunk(text=f"{title}\n{body}\n", n_tokens=40, source="test", history="docs", session_id=f"doc_{i}",
                          session_date=None, position=0, kind="document", dia_ids=(), speakers=()), 1.0)
        for i, (title, body) in enumerate(docs)
    )  # fmt: skip
    mid = get_module("summary").encoder(ModuleInput(query="When was the founder of Rivermouth Rowing Club born?",
                                                    chunks=chunks), ctx).text  # fmt: skip
    evidence = list(itertools.takewhile(lambda line: line.startswith("- "), mid.split("Most relevant evidence:\n")[1].split("\n")))
    sources = [line.rsplit("(from: ", 1)[1].rstrip(")") for line in evidence]
    assert set(sources) == {"Rivermouth Rowing Club", "Ada Penrose"}  # both hops, titled
    assert Counter(sources)["Rivermouth Rowing Club"] <= 3
    assert any("1871" in line for line in evidence)


def test_summary_mid_with_no_chunks_and_no_facts(ctx: RunContext) -> None:
    text = get_module("summary").encoder(ModuleInput(query="Who is Marta?"), ctx).text
    assert text == "The question asks for: a person\nMost relevant evidence:\n- (none)"  # empty sections left out


def test_tiers_are_deterministic(ctx: RunContext) -> None:
    inp = ModuleInput(query="What did Emma start?", chunks=(ScoredChunk(CHUNKS[2], 1.0),))
    for tier in ("rules", "encoder"):
        first = getattr(get_module("entity"), tier)(inp, ctx)
        assert getattr(get_module("entity"), tier)(inp, ctx) == first


def test_summary_mid_drops_facts_that_repeat_the_evidence(ctx: RunContext) -> None:
    chunk = Chunk(text="Ada Penrose\nAda Penrose was a Cornish shipwright. She was born in 1871 in Saltash.\n", n_tokens=20,
                  source="test", history="docs", session_id="doc_0", session_date=None, position=0, kind="document",
                  dia_ids=(), speakers=())  # fmt: skip
    repeat = "Ada Penrose: Ada Penrose was a Cornish shipwright."
    news = "Ada Penrose | was baptised in | St Nicholas church, Saltash"
    resolved = 'Ada Penrose was born in Saltash: 4 May 1871 ("last week", said 11 May 1871)'
    far = "Rivermouth Rowing Club | races in | blue and white"
    facts = {"entity": (repeat, news, far), "temporal": ("Ada Penrose was born in Saltash: 1871", resolved)}
    inp = ModuleInput(query="Where was Ada Penrose born?", chunks=(ScoredChunk(chunk, 1.0),), facts=facts)
    mid = get_module("summary").encoder(inp, ctx).text
    evidence = mid.split("Most relevant evidence:\n")[1].split("\nEntities:")[0].split("\nTimeline:")[0]
    assert "born in 1871 in Saltash" in evidence and "Cornish shipwright" in evidence
    assert f"- {repeat}" not in mid and "- Ada Penrose was born in Saltash: 1871" not in mid  # said already
    assert f"- {news}" in mid and f"- {resolved}" in mid  # new words; a resolved date is always news
    assert far not in mid  # new, but nowhere near the question


def test_temporal_mid_leaves_an_undated_documents_dates_as_written(ctx: RunContext) -> None:
    text = "Dirleton Castle\nThe oldest parts of the castle date to 1240, and it was abandoned in 1663.\n"
    chunk = Chunk(text=text, n_tokens=20, source="test", history="docs", session_id="doc_0", session_date=None,
                  position=0, kind="document", dia_ids=(), speakers=())  # fmt: skip
    facts = get_module("temporal").encoder(ModuleInput(query="When was the castle abandoned?",
                                                       chunks=(ScoredChunk(chunk, 1.0),)), ctx).facts  # fmt: skip
    assert facts and any(f.endswith(": 1663") for f in facts), facts
    assert not any("session date" in f or "not normalised" in f for f in facts)
