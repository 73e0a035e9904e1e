"""Topic module, implementation LOW and MID: the topics the filtered chunks talk about.

Routing paper Appendix A.4.1 (Topic Module): LOW "extracts controllable topical signals
from inexpensive lexical/statistical cues (e.g., keywords, TF-IDF-like patterns)"; MID
"incorporates compact learned representations (e.g., BERT-style encoders ...)". LOW ranks
spaCy noun chunks by TF-IDF over the chunks; MID embeds the same candidate phrases and
picks central, query-relevant, mutually different ones by maximal marginal relevance
(Carbonell & Goldstein, 1998). Both emit at most settings.max_facts topic cues.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from budgetmem.pipeline.context import RunContext
from budgetmem.pipeline.modules.text import (
    STOP_WORDS,
    Sentence,
    clip_words,
    embed,
    idf_table,
    sentences,
    session_label,
    terms,
)
from budgetmem.pipeline.types import FactsResult, ModuleInput

__all__ = ["TopicModule", "Phrase", "candidate_phrases", "mmr"]

_SKIP_ENTS = frozenset({"PERSON", "DATE", "TIME", "CARDINAL", "ORDINAL", "QUANTITY", "MONEY", "PERCENT"})
_GENERIC = frozenset(
    terms("people person image photo picture pic time day something anything everything one place kind part")
)
"""Stems too general to be a topic on their own (LoCoMo's "[shares an image: ...]" marker
alone would make "image" a top topic)."""
_MMR_LAMBDA = 0.7
"""Relevance vs. novelty in MMR; 0.7 favours relevance while still pushing out near-duplicates."""
_MAX_CANDIDATES = 64
_SNIPPET_WORDS = 14


@dataclass
class Phrase:
    """A candidate topic: a normalised noun phrase and where it occurs."""

    text: str
    key: frozenset[str]
    """Its stems: two phrases with the same stems are one topic ("adoption agency" / "adoption agencies")."""
    first: int
    """Reading order of its first occurrence."""
    count: int = 0
    sessions: list[str] = field(default_factory=list)
    snippet_sentence: Sentence | None = None


def _clean(nc: object) -> str:
    """A noun chunk without leading determiners, possessives and stop words."""
    toks = list(nc)  # type: ignore[call-overload]
    while toks and (toks[0].pos_ in ("DET", "PRON") or toks[0].lower_ in STOP_WORDS or toks[0].is_punct):
        toks.pop(0)
    while toks and (toks[-1].is_punct or toks[-1].lower_ in STOP_WORDS):
        toks.pop()
    return "".join(t.text_with_ws for t in toks).strip().lower()


def candidate_phrases(sents: Sequence[Sentence]) -> list[Phrase]:
    """Noun chunks that can name a topic, merged by stems, in order of first occurrence.
    People's names, dates and numbers are left to the entity and temporal modules."""
    found: dict[frozenset[str], Phrase] = {}
    speakers = {s.speaker.lower() for s in sents if s.speaker}
    for order, sent in enumerate(sents):
        for nc in sent.span.noun_chunks:
            if nc.root.pos_ == "PRON" or nc.root.ent_type_ in _SKIP_ENTS:
                continue
            text = _clean(nc)
            key = frozenset(terms(text))
            if not key or not text or text in speakers or key <= _GENERIC:
                continue
            phrase = found.get(key)
            if phrase is None:
                phrase = found[key] = Phrase(text, key, order, snippet_sentence=sent)
            phrase.count += 1
            label = session_label(sent.session_id)
            if label not in phrase.sessions:
                phrase.sessions.append(label)
    return list(found.values())


def _term_weights(chunk_texts: Sequence[str]) -> dict[str, float]:
    """Sublinear tf over all chunks times idf across chunks: frequent here, specific to few chunks."""
    docs = [terms(t) for t in chunk_texts]
    idf = idf_table(docs)
    tf = Counter(t for d in docs for t in d)
    return {t: (1.0 + math.log(c)) * idf[t] for t, c in tf.items()}


def _tfidf_score(phrase: Phrase, weights: dict[str, float]) -> float:
    mean = sum(weights.get(t, 0.0) for t in phrase.key) / len(phrase.key)
    return mean * (1.0 + math.log(phrase.count))


def _sessions(phrase: Phrase) -> str:
    word = "session" if len(phrase.sessions) == 1 else "sessions"
    labels = sorted(phrase.sessions, key=lambda s: (not s.isdigit(), int(s) if s.isdigit() else 0, s))
    return f"{word} {', '.join(labels)}"


def _snippet(phrase: Phrase) -> str:
    sent = phrase.snippet_sentence
    if sent is None:
        return ""
    who = f"{sent.speaker}: " if sent.speaker else ""
    return who + clip_words(sent.text, _SNIPPET_WORDS)


def mmr(relevance: np.ndarray, similarity: np.ndarray, k: int, lam: float = _MMR_LAMBDA) -> list[int]:
    """Maximal marginal relevance: repeatedly take the item maximising
    lam * relevance - (1 - lam) * (its highest similarity to an item already taken)."""
    chosen: list[int] = []
    left = list(range(len(relevance)))
    while left and len(chosen) < k:
        if chosen:
            redundancy = similarity[np.ix_(left, chosen)].max(axis=1)
        else:
            redundancy = np.zeros(len(left))
        gains = lam * relevance[left] - (1.0 - lam) * redundancy
        best = left[int(np.argmax(gains))]  # argmax takes the first of equals: stable
        chosen.append(best)
        left.remove(best)
    return chosen


class TopicModule:
    name = "topic"

    def rules(self, inp: ModuleInput, ctx: RunContext) -> FactsResult:
        """LOW: noun-chunk keywords ranked by TF-IDF over the filtered chunks; a phrase whose
        stems are all inside a better-ranked one is dropped ("group" after "support group")."""
        chunks = [c.chunk for c in inp.chunks]
        phrases = candidate_phrases(sentences(ctx, chunks))
        weights = _term_weights([c.text for c in chunks])
        ranked = sorted(phrases, key=lambda p: (-_tfidf_score(p, weights), p.first))
        kept: list[Phrase] = []
        for p in ranked:
            if len(kept) == ctx.settings.max_facts:
                break
            if not any(p.key <= k.key for k in kept):
                kept.append(p)
        return FactsResult(tuple(f"topic: {p.text} ({_sessions(p)})" for p in kept))

    def encoder(self, inp: ModuleInput, ctx: RunContext) -> FactsResult:
        """MID: embedding keyphrases. Relevance is the mean cosine of a phrase to the chunks'
        centroid and to the query; MMR (lambda 0.7) removes near-duplicates."""
        chunks = [c.chunk for c in inp.chunks]
        phrases = candidate_phrases(sentences(ctx, chunks))
        if not phrases:
            return FactsResult(())
        # Bound the encoder batch on long inputs: the most repeated phrases first.
        phrases = sorted(phrases, key=lambda p: (-p.count, p.first))[:_MAX_CANDIDATES]
        # Two encoder calls, not one: in a shared batch every short phrase would be padded
        # to the length of a 256-token chunk, which costs several times more (measured).
        q, phrase_vecs = embed(ctx, inp.query, [p.text for p in phrases])
        chunk_vecs = ctx.encoder.encode([c.text for c in chunks])
        centroid = chunk_vecs.mean(axis=0)
        centroid = centroid / max(float(np.linalg.norm(centroid)), 1e-12)
        relevance = 0.5 * (phrase_vecs @ centroid) + 0.5 * (phrase_vecs @ q)
        picked = mmr(relevance, phrase_vecs @ phrase_vecs.T, ctx.settings.max_facts)
        return FactsResult(tuple(f"topic: {phrases[i].text} — {_snippet(phrases[i])}" for i in picked))
