"""Summary module, implementation LOW and MID: the memory text handed to the answer model.

Routing paper Appendix A.4.1 (Summary Module): LOW "produces a deterministic evidence
digest (e.g., concise aggregation/concatenation of retrieved memories and cues)"; MID
"outputs a structured synthesis that organizes key evidence, entities, temporal anchors,
and topic cues into a parseable template ... without invoking expensive generative
reasoning".
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from budgetmem.pipeline.context import RunContext
from budgetmem.pipeline.modules import dates
from budgetmem.pipeline.modules.text import clip_words, embed, sentences, session_label, tokens, unique
from budgetmem.pipeline.types import ModuleInput, SummaryResult

__all__ = ["SummaryModule", "digest", "question_focus", "timeline"]

DIGEST_WORDS = 250
"""Length cap of the LOW digest, in words."""
_SECTION_ORDER = ("entity", "temporal", "topic")
_HEADINGS = {"entity": "Entities", "temporal": "Time", "topic": "Topics"}
_EVIDENCE_SENTENCES = 2


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


def question_focus(query: str) -> str:
    """What the question asks for (from its wh-word) and which content words it is about."""
    q = query.strip()
    asks = next((label for pat, label in _ASKS if re.search(pat, q.lower())), "information")
    about = ", ".join(unique(tokens(q))[:6]) or "-"
    return f"{q} (asks for: {asks}; about: {about})"


def _entity_names(facts: Sequence[str]) -> list[str]:
    """The subject of each entity fact ("Caroline | went to | ..." or "Lisbon: ...")."""
    names = []
    for fact in facts:
        head = re.split(r" \| |: ", fact, maxsplit=1)[0].strip()
        if head != fact.strip() and 0 < len(head.split()) <= 4:
            names.append(head)
    return unique(names)


def timeline(facts: Sequence[str]) -> list[str]:
    """Facts in calendar order of the first full date each one names; undated facts
    follow in their given order."""
    keyed = [(dates.first_date_in(f), i, f) for i, f in enumerate(facts)]
    dated = sorted((d, i, f) for d, i, f in keyed if d is not None)
    return [f for _, _, f in dated] + [f for d, _, f in keyed if d is None]


def _bullets(facts: Sequence[str]) -> list[str]:
    return [f"- {f}" for f in facts] if facts else ["- (none)"]


def _evidence(inp: ModuleInput, ctx: RunContext) -> list[str]:
    """The sentences of the filtered chunks closest to the query by embedding."""
    chunks = [c.chunk for c in inp.chunks]
    sents = [s for s in sentences(ctx, chunks) if len(tokens(s.text)) >= 2]  # not "Thanks!"
    if not sents:
        return []
    texts = [f"{s.speaker}: {s.text}" if s.speaker else s.text for s in sents]
    q, mat = embed(ctx, inp.query, texts)
    sims = mat @ q
    best = sorted(range(len(sents)), key=lambda i: (-float(sims[i]), i))[:_EVIDENCE_SENTENCES]
    out = []
    for i in best:
        s = sents[i]
        day = dates.parse_session_date(s.session_date)
        when = dates.format_day(day) if day else (s.session_date or "date unknown")
        out.append(f'"{clip_words(texts[i], 60)}" (session {session_label(s.session_id)}, {when})')
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
        """MID: a fixed template - question focus, key entities, a dated timeline, topics,
        and the two sentences most similar to the query (one batched encoder call)."""
        entity = list(unique(inp.facts.get("entity", ())))
        temporal = timeline(unique(inp.facts.get("temporal", ())))
        topic = list(unique(inp.facts.get("topic", ())))
        names = _entity_names(entity)
        evidence = _evidence(inp, ctx)
        lines = [f"Question focus: {question_focus(inp.query)}"]
        lines.append(f"Key entities: {', '.join(names) if names else '-'}")
        lines.extend(_bullets(entity))
        lines.append("Timeline:")
        lines.extend(_bullets(temporal))
        lines.append("Topics:")
        lines.extend(_bullets(topic))
        lines.append("Most relevant evidence:")
        lines.extend(_bullets(evidence))
        return SummaryResult("\n".join(lines))
