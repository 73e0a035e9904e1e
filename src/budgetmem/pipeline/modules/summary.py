"""Summary module, implementation LOW and MID: the memory text handed to the answer model.

Routing paper Appendix A.4.1 (Summary Module): LOW "produces a deterministic evidence
digest (e.g., concise aggregation/concatenation of retrieved memories and cues)"; MID
"outputs a structured synthesis that organizes key evidence, entities, temporal anchors,
and topic cues into a parseable template ... without invoking expensive generative
reasoning".
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from budgetmem.chunk import Chunk
from budgetmem.pipeline.context import RunContext
from budgetmem.pipeline.modules import dates
from budgetmem.pipeline.modules.filter import lexical_scores
from budgetmem.pipeline.modules.text import clip_words, embed, sentences, session_label, terms, tokens, unique
from budgetmem.pipeline.types import ModuleInput, SummaryResult

__all__ = ["SummaryModule", "asks_for", "digest", "timeline"]

DIGEST_WORDS = 250
"""Length cap of the LOW digest, in words."""
_SECTION_ORDER = ("entity", "temporal", "topic")
_HEADINGS = {"entity": "Entities", "temporal": "Time", "topic": "Topics"}
EVIDENCE_WORDS = 150
"""Word budget of MID's evidence section. A fixed two sentences lost multi-hop answers on
document QA (HotpotQA's second document rarely holds the sentence nearest the question)."""
_MIN_EVIDENCE = 2
"""Sentences kept whatever their length."""
_PER_CHUNK = 3
"""At most this many evidence sentences from one chunk, so the budget spans documents."""
_SECTION_FACTS = 5
_FACT_WORDS = 30
"""MID shows at most this many facts per section, each clipped to this many words: the
answer model reads the memory, and the paper's MID is a compact template (App. A.4.1)."""
FACT_WORDS = 100
"""Word budget of MID's entity, time and topic sections together, after the evidence."""
_SEEN = 0.7
"""A fact whose content words are this much already shown (in the evidence or an earlier
fact) adds nothing but length: on HotpotQA most entity and topic facts restated the
evidence sentence they came from, which made MID's memory longer than the documents."""
_RESOLVED = re.compile(r'\("[^"]+", said [^)]*\)$')
"""The temporal module's mark of a relative expression resolved to a date (temporal._mid_fact)."""
RELEVANCE = 0.6
"""Past the first two evidence sentences, a conversation turn is shown only if it scores at
least this share of the best sentence's score, and an entity, time or topic fact likewise.
Taking every chunk's best sentence in turn let chit-chat in ("Nate: Sounds like a plan!",
"Nate: Yep, totally!" on LoCoMo), and a 0.5B answer model took its answer from it: on the
LoCoMo dev test split (25 questions) MID went from 17.0 to 24.6 F1 with a third fewer
prompt tokens. Document sentences are exempt: there the sentence that bridges a multi-hop
question scores low against the question by nature ("She was born in 1871.")."""
_LEXICAL_WEIGHT = 0.5
"""Weight of query-term coverage next to embedding similarity when ranking evidence
sentences: MiniLM alone missed sentences that share the question's rare words
("borders on the south ... coastal area")."""


def _sections(facts: dict[str, tuple[str, ...]]) -> list[str]:
    """The extractors in a fixed order, then any other key alphabetically."""
    return [k for k in _SECTION_ORDER if k in facts] + sorted(k for k in facts if k not in _SECTION_ORDER)


# ---------------------------------------------------------------- LOW
def digest(facts: dict[str, tuple[str, ...]], limit: int = DIGEST_WORDS) -> str:
    """The facts by section, each fact once (the first section that has it keeps it),
    stopping at the first fact that would pass ``limit`` words."""
    seen: set[str] = set()
    lines: list[str] = []
    used = 0
    for section in _sections(facts):
        kept: list[str] = []
        for fact in facts[section]:
            key = " ".join(fact.lower().split())
            if not key or key in seen:
                continue
            n = len(fact.split())
            if used + n > limit:
                break
            seen.add(key)
            kept.append(fact.strip())
            used += n
        if kept:
            lines.append(f"{_HEADINGS.get(section, section.capitalize())}:")
            lines.extend(f"- {f}" for f in kept)
    return "\n".join(lines)


# ---------------------------------------------------------------- MID
_ASKS = (
    (r"^how (many|much)\b", "a number or amount"),
    (r"^how long\b", "a duration"),
    (r"^(when|what (date|day|year|month|time))\b", "a date or time"),
    (r"^(who|whom|whose)\b", "a person"),
    (r"^where\b", "a place"),
    (r"^why\b", "a reason"),
    (r"^how\b", "a manner or way"),
    (r"^(what|which)\b", "a thing or fact"),
    (r"^(is|are|was|were|do|does|did|can|could|has|have|had|will|would|should)\b", "yes or no"),
)


def asks_for(query: str) -> str:
    """What kind of answer the question wants, from its wh-word ("a place" for "where"):
    at the start, else the first one inside it ("Hayden is from Canada, but where does
    Buck-Tick hail from?"). Only a question that starts with an auxiliary is yes/no."""
    q = query.strip().lower()
    for pat, label in _ASKS:
        if re.search(pat, q):
            return label
    inside = [(m.start(), label) for pat, label in _ASKS[:-1] if (m := re.search(pat.replace("^", r"\b"), q))]
    return min(inside)[1] if inside else "information"


def timeline(facts: Sequence[str]) -> list[str]:
    """Facts in calendar order of the first full date each one names; undated facts
    follow in their given order."""
    keyed = [(dates.first_date_in(f), i, f) for i, f in enumerate(facts)]
    dated = sorted((d, i, f) for d, i, f in keyed if d is not None)
    return [f for _, _, f in dated] + [f for d, _, f in keyed if d is None]


def _bullets(facts: Sequence[str]) -> list[str]:
    return [f"- {f}" for f in facts] if facts else ["- (none)"]


def _title(chunk: Chunk) -> str | None:
    """A document chunk's title: its first line (HotpotQA's and our document format's)."""
    return chunk.text.strip().split("\n", 1)[0].strip() if chunk.kind == "document" else None


def _source(chunk: Chunk, session_id: str, session_date: str | None) -> str:
    """Where an evidence sentence comes from: a document's title, else the session and its date."""
    title = _title(chunk)
    if title is not None:
        return f"from: {clip_words(title, 12)}"
    day = dates.parse_session_date(session_date)
    when = dates.format_day(day) if day else (session_date or "date unknown")
    return f"session {session_label(session_id)}, {when}"


@dataclass(frozen=True)
class _Relevance:
    """How near a text is to the question: the better of its cosine to the question and to
    the question's second hop, plus query-term coverage (``_LEXICAL_WEIGHT``)."""

    query: str
    q: np.ndarray
    hop: np.ndarray

    def scores(self, mat: np.ndarray, texts: Sequence[str]) -> np.ndarray:
        lexical = np.asarray(lexical_scores(self.query, texts))
        return np.maximum(mat @ self.q, mat @ self.hop) + _LEXICAL_WEIGHT * lexical


@dataclass(frozen=True)
class _Evidence:
    lines: list[str]
    relevance: _Relevance | None
    floor: float
    """``RELEVANCE`` times the best sentence's score: what a fact must reach to be shown."""


def _evidence(inp: ModuleInput, ctx: RunContext) -> _Evidence:
    """The sentences of the filtered chunks closest to the query by embedding, best first,
    up to ``EVIDENCE_WORDS`` words (at least two sentences, at most three per chunk, and
    past the first two, conversation turns only if they score ``RELEVANCE`` of the best
    sentence or more).

    A sentence is embedded with who said it, or with its document's title: "She was born in
    1871." is evidence about the founder only once it is known to come from "Ada Penrose"
    (the bridge of a multi-hop question); the title line itself is not a candidate."""
    chunks = [c.chunk for c in inp.chunks]
    titles = [_title(c) for c in chunks]
    sents = [
        s for s in sentences(ctx, chunks)
        if len(tokens(s.text)) >= 2 and s.text.strip() != titles[s.chunk_index]  # not "Thanks!", not a title
    ]  # fmt: skip
    if not sents:
        return _Evidence([], None, 0.0)
    shown = [f"{s.speaker}: {s.text}" if s.speaker else s.text for s in sents]
    keyed = [f"{titles[s.chunk_index]}: {s.text}" if titles[s.chunk_index] else t for s, t in zip(sents, shown, strict=True)]
    q, mat = embed(ctx, inp.query, keyed)
    first = int(np.argmax(mat @ q))
    # Second hop, as multi-hop dense retrieval does (Xiong et al., ICLR 2021): the question
    # joined to its best sentence finds what that sentence leads to ("founded by Ada Penrose"
    # -> Ada Penrose's birth). A sentence counts by the better of its two similarities.
    relevance = _Relevance(inp.query, q, ctx.encoder.encode([f"{inp.query} {keyed[first]}"])[0])
    sims = relevance.scores(mat, keyed)
    # Every kept chunk's best sentence first, then every chunk's second best, and so on
    # (best first within each round): a two-hop answer sits in the bridge document, whose
    # sentences are rarely the ones nearest the question.
    by_sim = sorted(range(len(sents)), key=lambda i: (-float(sims[i]), i))
    floor = RELEVANCE * float(sims[by_sim[0]])
    rank_in_chunk: dict[int, int] = {}
    seen_in_chunk = Counter[int]()
    for i in by_sim:
        rank_in_chunk[i] = seen_in_chunk[sents[i].chunk_index]
        seen_in_chunk[sents[i].chunk_index] += 1
    out: list[str] = []
    used, per_chunk = 0, Counter[int]()
    for i in sorted(by_sim, key=lambda i: (rank_in_chunk[i], -float(sims[i]), i)):
        s = sents[i]
        text = clip_words(shown[i], 60)
        n = len(text.split())
        if per_chunk[s.chunk_index] >= _PER_CHUNK:
            continue
        if len(out) >= _MIN_EVIDENCE and used + n > EVIDENCE_WORDS:
            break
        if len(out) >= _MIN_EVIDENCE and titles[s.chunk_index] is None and float(sims[i]) < floor:
            continue  # chit-chat; a document's sentences are all content, and the bridge hides among them
        out.append(f'"{text}" ({_source(chunks[s.chunk_index], s.session_id, s.session_date)})')
        used += n
        per_chunk[s.chunk_index] += 1
    return _Evidence(out, relevance, floor)


def _relevant_facts(sections: Sequence[Sequence[str]], evidence: _Evidence, ctx: RunContext) -> list[list[str]]:
    """Each section's facts that score at least the evidence's floor, scored as evidence is."""
    flat = list(dict.fromkeys(f for facts in sections for f in facts))
    if not flat or evidence.relevance is None:
        return [list(facts) for facts in sections]
    sims = evidence.relevance.scores(ctx.encoder.encode(flat), flat)
    keep = {f for f, v in zip(flat, sims, strict=True) if float(v) >= evidence.floor}
    return [[f for f in facts if f in keep] for facts in sections]


def _novel_facts(sections: Sequence[Sequence[str]], shown: str, budget: int) -> list[list[str]]:
    """Each section's facts that say something not yet shown, clipped, under one word budget
    shared by the sections in order."""
    seen = set(terms(shown))
    out: list[list[str]] = []
    for facts in sections:
        kept: list[str] = []
        for fact in facts:
            if len(kept) >= _SECTION_FACTS:
                break
            words = set(terms(fact))
            # A relative date resolved against its session ('...: 7 May 2023 ("yesterday",
            # said 8 May 2023)') is news however familiar its words: it is what the
            # temporal module is for.
            resolved = _RESOLVED.search(fact) is not None
            if not words or (not resolved and len(words & seen) >= _SEEN * len(words)):
                continue
            text = clip_words(fact, _FACT_WORDS)
            n = len(text.split())
            if n > budget:
                continue
            kept.append(text)
            seen |= words
            budget -= n
        out.append(kept)
    return out


class SummaryModule:
    name = "summary"

    def rules(self, inp: ModuleInput, ctx: RunContext) -> SummaryResult:
        """LOW: the extractors' facts concatenated by section, deduplicated, capped at 250
        words. With no facts at all, the filtered chunks' text stands in (same cap), so the
        answer model is never handed an empty memory."""
        text = digest(inp.facts)
        if not text and inp.chunks:
            text = "Evidence:\n" + clip_words("\n".join(c.chunk.text.strip() for c in inp.chunks), DIGEST_WORDS)
        return SummaryResult(text)

    def encoder(self, inp: ModuleInput, ctx: RunContext) -> SummaryResult:
        """MID: a fixed template - what the question asks for, the sentences most similar
        to the query under a word budget, then the entity, dated timeline and topic facts
        that add to them (at most five each)."""
        entity = list(unique(inp.facts.get("entity", ())))
        temporal = timeline(unique(inp.facts.get("temporal", ())))
        topic = list(unique(inp.facts.get("topic", ())))
        evidence = _evidence(inp, ctx)
        sections = _relevant_facts([entity, temporal, topic], evidence, ctx)
        entity, temporal, topic = _novel_facts(sections, " ".join(evidence.lines), FACT_WORDS)
        # Evidence first and no restated question: with "Question focus: <question>" and
        # a list of the question's own entities on top, a 0.5B answer model answered
        # "where does Buck-Tick hail from?" with "Buck-Tick" (HotpotQA dev).
        lines = [f"The question asks for: {asks_for(inp.query)}", "Most relevant evidence:"]
        lines.extend(_bullets(evidence.lines))
        for heading, facts in (("Entities:", entity), ("Timeline:", temporal), ("Topics:", topic)):
            if facts:
                lines.append(heading)
                lines.extend(_bullets(facts))
        return SummaryResult("\n".join(lines))
