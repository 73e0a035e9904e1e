"""Temporal module, implementation LOW and MID: event-time anchors, raw or normalised.

Routing paper Appendix A.4.1 (Temporal Module): LOW "identifies explicit time
expressions and constructs event-time anchors using lightweight NLP"; MID goes on to
"select temporally relevant relations and normalize them into a consistent form". Here
LOW reports each expression with its clause and the session stamp as written; MID
resolves it against the session date ("yesterday" said on 8 May 2023 -> 7 May 2023,
dates.py) and lets the sentence encoder rank the anchors by relevance to the query.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from budgetmem.pipeline.context import RunContext
from budgetmem.pipeline.modules import dates
from budgetmem.pipeline.modules.text import Sentence, embed, overlap, sentences, terms, third_person, unique
from budgetmem.pipeline.types import FactsResult, ModuleInput

__all__ = ["TemporalModule", "Anchor", "anchors"]

_MAX_CLAUSE_TOKENS = 25
_PREPOSITIONS = frozenset({"on", "in", "at", "since", "by", "until", "till", "from", "during", "around", "for", "of"})
_SPACY_TIME_LABELS = ("DATE", "TIME")


@dataclass(frozen=True)
class Anchor:
    """One time expression in one sentence."""

    expression: str
    start: int
    """Character offsets of the expression in the sentence's document."""
    end: int
    sentence: Sentence
    order: int


# ---------------------------------------------------------------- detection (LOW and MID)
_TIME_WORDS = frozenset(
    {
        "ago", "yesterday", "today", "tonight", "tomorrow", "weekend", "weekends", "week", "weeks",
        "month", "months", "year", "years", "days", "decade", "decades", "morning", "evening",
        "afternoon", "night", "noon", "midnight", "hours", "minutes", "recently", "lately",
        "spring", "summer", "autumn", "fall", "winter", "few", "couple", "several",
        "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    }
) | frozenset(m.lower() for m in dates.MONTH_NAMES) | frozenset(
    ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
)  # fmt: skip


def _is_time_like(ent: Any) -> bool:
    """spaCy tags "Opening day" or "my last day" as DATE; a time expression worth anchoring
    has a number or a calendar word in it."""
    return any(t.like_num or t.lower_ in _TIME_WORDS for t in ent)


def _detect(sent: Sentence) -> list[tuple[int, int, str]]:
    """(doc start, doc end, text) of the time expressions in a sentence: the regex rules of
    dates.py first, then spaCy DATE / TIME entities that the rules missed."""
    base = sent.span.start_char
    found = [(base + e.start, base + e.end, e.text) for e in dates.find_expressions(sent.span.text)]
    for ent in sent.span.ents:
        if ent.label_ not in _SPACY_TIME_LABELS or not _is_time_like(ent):
            continue
        if all(ent.end_char <= s or ent.start_char >= e for s, e, _ in found):
            found.append((ent.start_char, ent.end_char, ent.text))
    return sorted(found)


def anchors(sents: Sequence[Sentence]) -> list[Anchor]:
    return [
        Anchor(text, s, e, sent, order)
        for order, sent in enumerate(sents)
        for s, e, text in _detect(sent)
    ]


def _clause_tokens(anchor: Anchor) -> list[Any]:
    """The sentence, or for a long sentence the smallest verb clause around the expression."""
    span = anchor.sentence.span
    if len(span) <= _MAX_CLAUSE_TOKENS:
        return list(span)
    tok = span.doc.char_span(anchor.start, anchor.end, alignment_mode="expand")
    node = tok.root if tok is not None else span.root
    # spaCy makes a new Token object on every access, so the root (its own head) is found
    # by index, never by identity: `node.head is not node` is always true and never ends
    # on a sentence whose root is not a verb.
    while node.head.i != node.i and not (node.pos_ in ("VERB", "AUX") and len(list(node.subtree)) >= 4):
        node = node.head
    subtree = [t for t in node.subtree if span.start <= t.i < span.end]
    return subtree[:_MAX_CLAUSE_TOKENS * 2] if subtree else list(span)


def _said_on(sent: Sentence) -> str:
    return f"said on {sent.session_date}" if sent.session_date else "session date unknown"


def _low_fact(anchor: Anchor) -> str:
    clause = "".join(t.text_with_ws for t in _clause_tokens(anchor)).strip()
    who = f"{anchor.sentence.speaker}: " if anchor.sentence.speaker else ""
    return f"{anchor.expression} — {who}{clause} ({_said_on(anchor.sentence)})"


# ---------------------------------------------------------------- normalisation (MID)
def _tense(toks: Sequence[Any]) -> dates.Tense:
    """Future when the clause says will / 'll / going to / plan; past on a past-tense
    verb; None otherwise (dates.py then takes the nearest reading)."""
    lows = [t.lower_ for t in toks]
    if any(t.tag_ == "MD" and t.lower_ in ("will", "'ll", "shall", "’ll") for t in toks):
        return "future"
    if "gonna" in lows or any(a == "going" and b == "to" for a, b in zip(lows, lows[1:], strict=False)):
        return "future"
    if any(t.lemma_ in ("plan", "schedule", "hope") for t in toks):
        return "future"
    if any(t.tag_ == "VBD" for t in toks):
        return "past"
    return None


def _event(anchor: Anchor, toks: Sequence[Any]) -> str:
    """The clause without the expression (and the preposition that introduced it), told
    in the third person, so "I went there yesterday" becomes "Caroline went there"."""
    drop = {t.i for t in toks if t.idx < anchor.end and t.idx + len(t.text) > anchor.start}
    if drop:
        first = min(drop)
        before = [t for t in toks if t.i == first - 1]
        if before and before[0].lower_ in _PREPOSITIONS:
            drop.add(first - 1)
    kept = [t for t in toks if t.i not in drop]
    while kept and (kept[0].is_punct or kept[0].dep_ in ("cc", "intj")):
        kept.pop(0)
    while kept and kept[-1].is_punct:
        kept.pop()
    return third_person(kept, anchor.sentence.speaker) or anchor.sentence.text


def _mid_fact(anchor: Anchor, question_day: date | None) -> str:
    sent = anchor.sentence
    toks = _clause_tokens(anchor)
    event = _event(anchor, toks)
    if sent.speaker and sent.speaker.lower() not in event.lower():
        event = f"{sent.speaker} said: {event}"
    day = dates.parse_session_date(sent.session_date)
    if day is None and not sent.session_date:
        return f"{event}: {anchor.expression}"  # a document: its dates stand as written
    if day is None:
        return f'{event}: "{anchor.expression}" (session date "{sent.session_date}" not understood, not normalised)'
    res = dates.resolve(anchor.expression, day, _tense(toks))
    said = f"said {dates.format_day(day)}"
    if res is None:
        return f'{event}: "{anchor.expression}" (not a calendar date, {said})'
    note = ""
    if question_day is not None and res.exact and res.start <= question_day:
        note = f", {(question_day - res.start).days} days before the question"
    if res.label == anchor.expression:
        return f"{event}: {res.label} ({said}{note})"
    return f'{event}: {res.label} ("{anchor.expression}", {said}{note})'


class TemporalModule:
    name = "temporal"

    def rules(self, inp: ModuleInput, ctx: RunContext) -> FactsResult:
        """LOW: every explicit time expression with its clause and the session stamp,
        ranked by query-term overlap of the clause, then reading order."""
        found = anchors(sentences(ctx, [c.chunk for c in inp.chunks]))
        q = set(terms(inp.query))
        facts = [(_low_fact(a), a.order) for a in found]
        ranked = sorted(facts, key=lambda f: (-overlap(q, f[0]), f[1]))
        return FactsResult(tuple(unique(f for f, _ in ranked))[: ctx.settings.max_facts])

    def encoder(self, inp: ModuleInput, ctx: RunContext) -> FactsResult:
        """MID: the same expressions normalised to calendar dates, ranked by embedding
        similarity of the fact to the query (one batched encoder call)."""
        found = anchors(sentences(ctx, [c.chunk for c in inp.chunks]))
        question_day = dates.parse_session_date(inp.question_date)
        facts = unique(_mid_fact(a, question_day) for a in found)
        if not facts:
            return FactsResult(())
        q, mat = embed(ctx, inp.query, facts)
        sims = mat @ q
        order = sorted(range(len(facts)), key=lambda i: (-float(sims[i]), i))
        return FactsResult(tuple(facts[i] for i in order[: ctx.settings.max_facts]))
