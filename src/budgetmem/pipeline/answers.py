"""The answer step's contract, per style and per kind of question, kept as data.

The routing paper scores answers with token F1 against short gold answers (App. C.1-C.3:
a phrase for LoCoMo, a short answer for LongMemEval and HotpotQA). A right answer inside
a sentence ("Animorphs is a science fantasy series ...", gold "Animorphs") loses most of
its F1, and small answer models write sentences whenever their memory reads like prose.
So the answer step holds every system (pipeline tiers and baselines alike) to one contract:

1. the prompt says what shape the answer takes, by the kind of question: yes or no for a
   yes/no question, a date for a "when" question, a few words otherwise;
2. where the backend supports grammars (llama.cpp), a grammar forces that shape: ``yes`` or
   ``no``, or at most ``max_words`` words on one line;
3. the reply is shaped by rules: yes/no questions keep the verdict, labels and a final full
   stop go;
4. a reply still longer than ``max_words`` words (a backend with no grammar) goes through a
   second, cheap "shorten to the answer span" call, priced in the ledger like any call.

The raw reply stays in the trace (``answer_step.raw_output``). Which kind a question is,
and what each kind asks for, is in :data:`KIND_RULES` and :data:`STYLES` and nowhere else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from budgetmem.errors import ConfigError
from budgetmem.pipeline.modules.dates import MONTH_NAMES

__all__ = [
    "ANSWER_PROMPT_VERSION",
    "AnswerKind",
    "KindRule",
    "StyleRules",
    "KIND_RULES",
    "STYLES",
    "style_rules",
    "question_kind",
    "kind_instruction",
    "answer_grammar",
    "shape_answer",
    "word_count",
    "build_shorten_prompt",
]

ANSWER_PROMPT_VERSION = "bm-answer-4"
"""Part of the answer-cache key: bump it when an answer prompt, rule or grammar changes."""

AnswerKind = Literal["yes/no", "date", "phrase", "free"]


@dataclass(frozen=True)
class KindRule:
    """One kind of short answer: which questions ask for it and what the prompt then says."""

    kind: AnswerKind
    pattern: re.Pattern[str]
    """Matched against the question, lower-cased and stripped; the first rule that matches wins."""
    instruction: str


_AUX = r"(?:is|are|was|were|do|does|did|has|have|had|can|could|will|would|should|shall|may|might)"

KIND_RULES: tuple[KindRule, ...] = (
    # "Are X and Y both ...?" asks for a verdict; "Is X or Y older?" names one of two, so a
    # question with an "or" is a phrase question.
    KindRule(
        "yes/no",
        re.compile(rf"^{_AUX}\b(?!.*\bor\b)"),
        "This is a yes/no question: answer with yes or no only.",
    ),
    KindRule(
        "date",
        re.compile(r"^(?:when|in what year|in which year|what year|which year|what date|on what date|what month|in what month)\b"),
        # No example date here: the 0.5B answer model copied one ("7 May 2023") into its
        # answers on LoCoMo whatever the memory said.
        "This is a question about when: answer with the date only (day, month and year, or just the "
        "year, as precisely as the memory allows), worked out from the dates in the memory.",
    ),
)
"""Checked in order; a question that matches none asks for a phrase."""

_PHRASE = "Answer with the shortest phrase that answers the question (a name, number or a few words), not a sentence."


@dataclass(frozen=True)
class StyleRules:
    """What one answer style (one dataset's contract) asks of the answer step."""

    short: bool
    """Short answers (a phrase, yes/no, a date) are asked for, shaped and length-capped."""
    max_tokens: int
    """Completion cap of the answer call (routing paper Table 4: 32 for LoCoMo, 512 for
    LongMemEval and HotpotQA)."""
    max_words: int
    """The most words a short answer may have (the grammar's cap, and the shorten step's trigger)."""


STYLES: dict[str, StyleRules] = {
    "locomo": StyleRules(short=True, max_tokens=32, max_words=12),
    "longmemeval": StyleRules(short=True, max_tokens=512, max_words=16),
    "hotpotqa": StyleRules(short=True, max_tokens=512, max_words=10),
    "plain": StyleRules(short=False, max_tokens=128, max_words=0),
}


def style_rules(style: str) -> StyleRules:
    try:
        return STYLES[style]
    except KeyError:
        raise ConfigError(f"unknown answer style {style!r}", hint=f"use one of: {', '.join(STYLES)}") from None


def question_kind(question: str, style: str) -> AnswerKind:
    """The kind of answer ``question`` asks for under ``style`` (``free`` for long-answer styles)."""
    if not style_rules(style).short:
        return "free"
    q = " ".join(question.strip().lower().split())
    for rule in KIND_RULES:
        if rule.pattern.search(q):
            return rule.kind
    return "phrase"


def kind_instruction(kind: AnswerKind) -> str:
    """The prompt's line for this kind of answer ('' for free answers)."""
    if kind == "free":
        return ""
    for rule in KIND_RULES:
        if rule.kind == kind:
            return rule.instruction
    return _PHRASE


def answer_grammar(kind: AnswerKind, max_words: int, *, cited: bool = False) -> str | None:
    """A GBNF grammar forcing the answer's shape, or None for free answers.

    Words are runs of characters other than whitespace; a phrase is 1..max_words of them on
    one line. The model still chooses every word; the grammar only rules out a second line,
    a sentence running past the cap, and (for yes/no) anything but the verdict. ``cited``:
    an optional ``[CITE: 1, 2]`` may follow the answer (packed-rag's cited answers).
    """
    if kind == "free":
        return None
    cite = ' cite?\ncite ::= " [CITE: " [0-9]+ (", " [0-9]+)* "]"\n' if cited else "\n"
    if kind == "yes/no":
        return f'root ::= ("yes" | "no" | "Yes" | "No"){cite}'
    if max_words < 1:
        raise ConfigError(f"max_words must be >= 1, got {max_words}")
    more = f' (" " word){{0,{max_words - 1}}}' if max_words > 1 else ""
    return f"root ::= word{more}{cite}word ::= [^ \\t\\n\\r]+\n"


_ISO_DATE = re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b")
"""A full ISO day only: "2010-11" is as likely the 2010-11 season as November 2010."""


def _spelled_date(found: re.Match[str]) -> str:
    """``2022-06-04`` as ``4 June 2022``; anything that is not a calendar day is left as written."""
    year, month, day = (int(g) for g in found.groups())
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return found.group(0)
    return f"{day} {MONTH_NAMES[month - 1]} {year}"


_LABEL = re.compile(r"^\s*(?:the\s+)?(?:short\s+|final\s+)?answer(?:\s*[:\-]|\s+is\b\s*[:\-]?)\s*", re.IGNORECASE)
_VERDICT = re.compile(r"\b(yes|no)\b", re.IGNORECASE)
_NEGATION = re.compile(r"\b(?:not|never|neither|nor|none)\b|n't\b", re.IGNORECASE)
_AFFIRM = re.compile(r"\b(?:both|true|correct|indeed)\b", re.IGNORECASE)


def word_count(text: str) -> int:
    return len(text.split())


def shape_answer(text: str, kind: AnswerKind) -> str:
    """The short answer the rules can take from an extracted reply, without another call.

    yes/no: the first "yes" or "no" in the reply; failing that, a reply that negates is
    "no" and one that affirms ("both", "true") is "yes". date: an ISO date is spelled out
    the way the memory writes dates ("4 June 2022"). Every short kind: a leading
    "Answer:" / "The answer is" and a final full stop go. Free answers are left alone.
    """
    if kind == "free":
        return text
    out = _LABEL.sub("", text.strip()).strip()
    if kind == "yes/no":
        found = _VERDICT.search(out)
        if found:
            return found.group(1).lower()
        if _NEGATION.search(out):
            return "no"
        if _AFFIRM.search(out):
            return "yes"
        return out
    if kind == "date":
        # The memory writes dates as "4 June 2022", as LoCoMo's gold answers do; a reply in
        # ISO form ("2022-06-04") shares no token with them once punctuation is stripped.
        out = _ISO_DATE.sub(_spelled_date, out)
    return out[:-1].rstrip() if out.endswith(".") and not out.endswith("..") else out


SHORTEN_CHARS = 1500
"""The most of a long answer the shorten call is shown (the repair call shows as much)."""


def build_shorten_prompt(question: str, reply: str, kind: AnswerKind, max_words: int) -> str:
    """The second, cheap call: cut a long reply down to its answer span. The model sees the
    question and its own reply only (not the memory), so the call is short."""
    shown = reply.strip()
    if len(shown) > SHORTEN_CHARS:  # a runaway reply: its start holds the answer, the rest only costs
        shown = shown[:SHORTEN_CHARS] + " ..."
    return (
        "Below is a question and a long answer to it. Rewrite the answer as the short answer "
        f"span only, at most {max_words} words, taken from the long answer. {kind_instruction(kind)}\n\n"
        f"Question: {question.strip()}\nLong answer: {shown}\nShort answer:"
    )
