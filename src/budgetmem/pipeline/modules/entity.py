"""Entity module, implementation LOW and MID: short relational facts about entities.

Routing paper Appendix A.4.1 (Entity Module): LOW "uses lightweight rules and shallow NLP
cues (e.g., regex patterns and spaCy NER/dependency signals) to extract explicit
relational traces"; MID uses "a compact task-specific extractor" that "improves
normalization and coverage". Here MID widens the candidates (every entity-bearing
sentence, besides the dependency triples) and lets the sentence encoder pick the facts
that bear on the query. Both emit at most settings.max_facts strings.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from budgetmem.pipeline.context import RunContext
from budgetmem.pipeline.modules.text import (
    ENTITY_LABELS,
    FIRST_PERSON,
    Sentence,
    clip_words,
    embed,
    overlap,
    sentences,
    terms,
    third_person,
    tokens,
)
from budgetmem.pipeline.types import FactsResult, ModuleInput

__all__ = ["EntityModule", "Triple", "triples"]

_SUBJECT_DEPS = ("nsubj", "nsubjpass")
_OBJECT_DEPS = ("dobj", "attr", "oprd", "dative")
_CUT_DEPS = frozenset(
    {"relcl", "acl", "advcl", "punct", "cc", "conj", "appos", "mark", "parataxis", "advmod", "npadvmod"}
)
"""Dependents that open a clause or a comment ("counseling *now*"): not part of the phrase."""
_CLITICS = {"'m": "am", "'re": "are", "'s": "is", "'ve": "have", "'ll": "will", "'d": "would", "n't": "not"}
_MAX_PHRASE = 8
_MAX_SENTENCE_WORDS = 30


@dataclass(frozen=True)
class Triple:
    subject: str
    relation: str
    obj: str
    order: int
    """Index of the source sentence (reading order)."""

    def render(self) -> str:
        return f"{self.subject} | {self.relation} | {self.obj}"


# ---------------------------------------------------------------- phrases
def _is_entity_token(tok: Any) -> bool:
    return tok.ent_type_ in ENTITY_LABELS or tok.pos_ == "PROPN"


def _phrase_tokens(head: Any) -> list[Any]:
    """The contiguous noun phrase around ``head``: its subtree minus clauses and
    coordinations, leading determiners dropped, at most _MAX_PHRASE tokens."""
    cut: set[int] = set()
    for child in head.children:
        if child.dep_ in _CUT_DEPS:
            cut.update(t.i for t in child.subtree)
    kept = [t for t in head.subtree if t.i not in cut]
    # keep the run of consecutive tokens that contains the head
    run = [head]
    by_i = {t.i: t for t in kept}
    i = head.i - 1
    while i in by_i:
        run.insert(0, by_i[i])
        i -= 1
    i = head.i + 1
    while i in by_i:
        run.append(by_i[i])
        i += 1
    while run and run[0].dep_ in ("det", "predet") and run[0] is not head:
        run.pop(0)
    return run[:_MAX_PHRASE] if head in run[:_MAX_PHRASE] else run[-_MAX_PHRASE:]


def _subject(tok: Any, speaker: str | None) -> tuple[str, bool] | None:
    """Rendered subject and whether it names an entity; None for an unresolved pronoun."""
    low = tok.lower_
    if low == "i" and speaker:
        return speaker, True
    if low == "we" and speaker:
        return f"{speaker} (we)", True
    if tok.pos_ == "PRON":
        return None
    toks = _phrase_tokens(tok)
    return third_person(toks, speaker), any(_is_entity_token(t) for t in toks) or _mentions_speaker(toks, speaker)


def _mentions_speaker(toks: Iterable[Any], speaker: str | None) -> bool:
    return bool(speaker) and any(t.lower_ in FIRST_PERSON for t in toks)


def _obj(tok: Any, speaker: str | None) -> tuple[str, bool]:
    toks = _phrase_tokens(tok)
    return third_person(toks, speaker), any(_is_entity_token(t) for t in toks) or _mentions_speaker(toks, speaker)


def _verb_phrase(verb: Any) -> str:
    """The verb as said, with its negation and particle ("did not go", "signed up")."""
    text = verb.text.replace("’", "'")
    parts = [_CLITICS.get(text.lower(), text)]  # "I'm keen on" -> "am keen on"
    if any(c.dep_ == "neg" for c in verb.children):
        parts.insert(0, "not")
    parts.extend(c.text for c in verb.children if c.dep_ == "prt")
    return " ".join(parts)


def _objects(verb: Any, rel: str, depth: int = 0) -> list[tuple[Any, str]]:
    """(object head, relation) pairs of a verb: direct objects, prepositional objects,
    objects of an adjective complement ("keen on X") and of an open clausal complement
    ("want to open X")."""
    out: list[tuple[Any, str]] = []
    for child in verb.children:
        if child.dep_ in _OBJECT_DEPS:
            out.append((child, rel))
        elif child.dep_ == "prep":
            out.extend((p, f"{rel} {child.text}") for p in child.children if p.dep_ == "pobj")
        elif child.dep_ == "acomp":
            for prep in (c for c in child.children if c.dep_ == "prep"):
                out.extend((p, f"{rel} {child.text} {prep.text}") for p in prep.children if p.dep_ == "pobj")
        elif child.dep_ == "xcomp" and depth < 2:
            out.extend(_objects(child, f"{rel} to {_verb_phrase(child)}", depth + 1))
    return out


def _subjects(verb: Any) -> list[Any]:
    own = [c for c in verb.children if c.dep_ in _SUBJECT_DEPS]
    if own or verb.dep_ != "conj":
        return own
    return _subjects(verb.head)  # "I went there and met Mel": "met" shares "I"


def triples(sents: Sequence[Sentence]) -> list[Triple]:
    """Subject-verb-object and subject-verb-preposition-object triples where a side is a
    named entity, a proper noun or the (pronoun-resolved) speaker."""
    out: list[Triple] = []
    for order, sent in enumerate(sents):
        for verb in sent.span:
            if verb.pos_ not in ("VERB", "AUX"):
                continue
            for subj_tok in _subjects(verb):
                subj = _subject(subj_tok, sent.speaker)
                if subj is None:
                    continue
                for obj_tok, rel in _objects(verb, _verb_phrase(verb)):
                    if obj_tok.pos_ == "PRON" and obj_tok.lower_ not in FIRST_PERSON:
                        continue  # "it", "that": nothing to report without coreference
                    obj_text, obj_entity = _obj(obj_tok, sent.speaker)
                    if (subj[1] or obj_entity) and obj_text:
                        out.append(Triple(subj[0], rel, obj_text, order))
    return _dedupe(out)


def _dedupe(items: list[Triple]) -> list[Triple]:
    seen: set[str] = set()
    out = []
    for t in items:
        key = t.render().lower()
        if key not in seen:
            seen.add(key)
            out.append(t)
    return out


# ---------------------------------------------------------------- MID candidates
def _mentions(sent: Sentence) -> list[str]:
    """Entities a sentence mentions: NER spans, runs of proper nouns outside them, and
    the speaker when the speaker talks about themself."""
    names = [e.text for e in sent.span.ents if e.label_ in ENTITY_LABELS]
    covered = {t.i for e in sent.span.ents for t in e}
    run: list[str] = []
    for tok in [*sent.span, None]:
        if tok is not None and tok.pos_ == "PROPN" and tok.i not in covered:
            run.append(tok.text)
            continue
        if run:
            names.append(" ".join(run))
            run = []
    if sent.speaker and any(t.lower_ in FIRST_PERSON for t in sent.span):
        names.insert(0, sent.speaker)
    return list(dict.fromkeys(n.strip() for n in names if n.strip()))


def _entity_sentence(entity: str, sent: Sentence) -> str:
    """ "Entity: sentence", the sentence told in the third person and without a leading
    interjection ("Yes, a small bakery" -> "a small bakery")."""
    toks = list(sent.span)
    while toks and (toks[0].pos_ == "INTJ" or toks[0].is_punct):
        toks.pop(0)
    body = clip_words(third_person(toks, sent.speaker), _MAX_SENTENCE_WORDS)
    if not body:
        return entity
    body = body[0].upper() + body[1:]
    starts = body.lower().startswith(entity.lower())
    told = entity == sent.speaker and entity.lower() in body.lower()
    return body if starts or told else f"{entity}: {body}"


def _candidates(sents: Sequence[Sentence]) -> list[tuple[str, int]]:
    """(fact, source sentence) for every triple and every (entity, sentence) pair."""
    out = [(t.render(), t.order) for t in triples(sents)]
    for order, sent in enumerate(sents):
        if len(tokens(sent.text)) < 2:
            continue  # greetings and interjections ("Hey Mel!") carry no fact
        out.extend((_entity_sentence(name, sent), order) for name in _mentions(sent))
    return out


class EntityModule:
    name = "entity"

    def rules(self, inp: ModuleInput, ctx: RunContext) -> FactsResult:
        """LOW: dependency triples, ranked by query-term overlap, then reading order."""
        sents = sentences(ctx, [c.chunk for c in inp.chunks])
        q = set(terms(inp.query))
        found = triples(sents)
        ranked = sorted(found, key=lambda t: (-overlap(q, t.render()), t.order))
        return FactsResult(tuple(t.render() for t in ranked[: ctx.settings.max_facts]))

    def encoder(self, inp: ModuleInput, ctx: RunContext) -> FactsResult:
        """MID: triples plus entity-anchored sentences, ranked by embedding similarity to
        the query; one fact per source sentence so the budget is not spent on rewordings."""
        sents = sentences(ctx, [c.chunk for c in inp.chunks])
        cands = _candidates(sents)
        if not cands:
            return FactsResult(())
        q, mat = embed(ctx, inp.query, [c[0] for c in cands])
        sims = mat @ q
        best: dict[int, tuple[float, int]] = {}
        for k, (_, order) in enumerate(cands):
            if order not in best or sims[k] > best[order][0]:
                best[order] = (float(sims[k]), k)
        chosen = sorted(best.values(), key=lambda sk: (-sk[0], sk[1]))[: ctx.settings.max_facts]
        return FactsResult(tuple(cands[k][0] for _, k in chosen))
