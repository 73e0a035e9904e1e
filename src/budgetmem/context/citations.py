"""Citation-aware answers: memories carry ids, the model cites them, and we check the citations.

Selective-write paper §III-H1-H2: every memory in the context has a unique id and a header
``[MEM_ID: id] | ...`` above its text; the model uses only those memories and cites the ones
it relied on inline as ``[CITE: id]``, or says it does not know. The id is the chunk's store
id, so a citation can be checked against the store after the fact.

The wording of the prompt is our own. What is scored (F1, judge) is the answer with the
citation markers removed; the raw reply is kept beside it in the trace.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from budgetmem.context.packing import PackedContext, PackedItem
from budgetmem.errors import ConfigError
from budgetmem.pipeline.answers import kind_instruction, question_kind
from budgetmem.chunk import Chunk
from budgetmem.store import Store

__all__ = [
    "CITED_PROMPT_VERSION",
    "CITATION_HEADROOM_TOKENS",
    "InvalidCitation",
    "CitationCheck",
    "memory_header",
    "render_cited_memories",
    "build_cited_answer_prompt",
    "find_citations",
    "strip_citations",
    "check_citations",
    "live_ids",
    "check_reply",
]

CITED_PROMPT_VERSION = "bm-cited-2"
"""Part of the answer-cache key of cited answers: bump it when any text here changes."""

CITATION_HEADROOM_TOKENS = 32
"""Extra completion tokens a cited answer gets over the plain answer cap (routing paper
Table 4: 32 for LoCoMo), so that ``[CITE: 123, 456]`` does not crowd out the answer."""

# [CITE: 12], [CITE:12], [cite: 12, 15], [CITE: 12; 15] -> the body between colon and bracket.
_CITE = re.compile(r"\[\s*CITE\s*:?\s*([^\]\[]*)\]", re.IGNORECASE)
# An echoed header id is removed from the answer too, but it is not a citation.
_MEM_ID = re.compile(r"\[\s*MEM_ID\s*:\s*[^\]\[]*\]", re.IGNORECASE)
_ID = re.compile(r"^(?:MEM_ID\s*:?\s*)?#?(\d+)$", re.IGNORECASE)


def _neutralise(text: str) -> str:
    """A memory that itself contains ``[CITE: 3]`` or ``[MEM_ID: 3]`` must not plant ids."""
    return re.sub(r"\[(\s*)(CITE|MEM_ID)", r"(\1\2", text, flags=re.IGNORECASE)


def _field(value: str) -> str:
    return " ".join(value.replace("|", "/").split())


def memory_header(chunk: Chunk, compressed: bool = False) -> str:
    """``[MEM_ID: 12] | session: s1 | date: 3 May 2024 | turns: D1:3-D1:5 [| condensed]``."""
    parts = [f"[MEM_ID: {chunk.id}]", f"session: {_field(chunk.session_id)}"]
    if chunk.session_date:
        parts.append(f"date: {_field(chunk.session_date)}")
    if chunk.dia_ids:
        first, last = chunk.dia_ids[0], chunk.dia_ids[-1]
        parts.append(f"turns: {_field(first if first == last else f'{first}-{last}')}")
    if compressed:
        parts.append("condensed")  # the model should know this is a summary, not the words said
    return " | ".join(parts)


def _block(item: PackedItem) -> str:
    return f"{memory_header(item.chunk, item.compressed)}\n{_neutralise(item.text.strip())}"


def render_cited_memories(packed: PackedContext) -> str:
    """The memory snippets: the episodic window first (the latest conversation, in order),
    then the retrieved older memories, each under its id header."""
    parts: list[str] = []
    if packed.episodic:
        parts.append("Most recent conversation (oldest first):")
        parts.extend(_block(i) for i in packed.episodic)
    if packed.semantic:
        parts.append("Older memories related to the question (most relevant first):")
        parts.extend(_block(i) for i in packed.semantic)
    return "\n\n".join(parts) if parts else "(no memories)"


_SHAPE = {
    "locomo": "Use the snippets' own words where you can.",
    "longmemeval": "Answer directly.",
    "hotpotqa": "The answer may combine facts from several snippets.",
    "plain": "Answer helpfully in one to three sentences.",
}


def build_cited_answer_prompt(
    question: str, memories: str, *, style: str = "locomo", question_date: str | None = None
) -> str:
    """The answer model's prompt when its memories carry ids (§III-H2 contract, own wording)."""
    if style not in _SHAPE:
        raise ConfigError(f"unknown answer style {style!r}", hint=f"use one of: {', '.join(_SHAPE)}")
    # The same per-kind line as every other system's answer prompt (yes/no, a date, a phrase).
    shape = kind_instruction(question_kind(question, style)) or (
        "For a question about when something happened, give the date, worked out from the dates of the snippets."
    )
    asked = f"\nThe question is asked on: {question_date.strip()}" if question_date else ""
    return (
        "You answer questions from an assistant's memory of earlier conversations. The memory "
        "snippets below are the only facts you may use; each one begins with its id, written "
        "[MEM_ID: number].\n\n"
        f"Memory snippets:\n{memories.strip() or '(no memories)'}\n\n"
        "How to answer:\n"
        f"- {_SHAPE[style]} {shape}\n"
        "- Right after the answer, name every snippet you used as [CITE: id], for example "
        "[CITE: 7], or [CITE: 7, 12] for two snippets. Cite only ids shown above.\n"
        "- If the snippets do not hold the answer, reply exactly: I don't know\n"
        f"{asked}\nQuestion: {question.strip()}\nAnswer:"
    )


@dataclass(frozen=True)
class InvalidCitation:
    id: int
    reason: Literal["not in context", "not in store"]
    """``not in store``: no live chunk of the namespace has this id (made up, or archived);
    ``not in context``: the chunk exists but the model was not shown it."""


@dataclass(frozen=True)
class CitationCheck:
    cited: tuple[int, ...]
    """Distinct cited ids, in the order they first appear."""
    valid: tuple[int, ...]
    invalid: tuple[InvalidCitation, ...]
    malformed: tuple[str, ...] = ()
    """Marker bodies that name no id, e.g. ``[CITE: the first one]``."""

    @property
    def n_cited(self) -> int:
        return len(self.cited)

    @property
    def all_valid(self) -> bool:
        """At least one citation, and every one names a live chunk that was in the context."""
        return bool(self.cited) and not self.invalid and not self.malformed

    def to_dict(self) -> dict[str, Any]:
        return {
            "cited": list(self.cited),
            "valid": list(self.valid),
            "invalid": [{"id": i.id, "reason": i.reason} for i in self.invalid],
            "malformed": list(self.malformed),
            "n_cited": self.n_cited,
            "all_valid": self.all_valid,
        }


def find_citations(reply: str) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """(distinct cited ids in order, malformed marker bodies) of a reply."""
    ids: dict[int, None] = {}
    bad: list[str] = []
    for m in _CITE.finditer(reply):
        for part in re.split(r"[,;]|\band\b", m.group(1)):
            token = part.strip()
            if not token:
                continue
            found = _ID.match(token)
            if found:
                ids[int(found.group(1))] = None
            else:
                bad.append(token)
    return tuple(ids), tuple(bad)


def strip_citations(reply: str) -> str:
    """The reply without ``[CITE: ...]`` (or echoed ``[MEM_ID: ...]``) markers, spacing tidied."""
    text = _MEM_ID.sub(" ", _CITE.sub(" ", reply))
    text = re.sub(r"[ \t]+([.,;:!?])", r"\1", text)  # "Miso [CITE: 3]." -> "Miso."
    text = re.sub(r"[ \t]{2,}", " ", text)
    return "\n".join(line.strip() for line in text.splitlines()).strip()


def check_citations(reply: str, *, context_ids: Collection[int], store_ids: Collection[int]) -> CitationCheck:
    """Check a reply's citations against the ids the model was shown and the live ids."""
    cited, malformed = find_citations(reply)
    valid: list[int] = []
    invalid: list[InvalidCitation] = []
    for cid in cited:
        if cid not in store_ids:
            invalid.append(InvalidCitation(cid, "not in store"))
        elif cid not in context_ids:
            invalid.append(InvalidCitation(cid, "not in context"))
        else:
            valid.append(cid)
    return CitationCheck(cited, tuple(valid), tuple(invalid), malformed)


def live_ids(store: Store, namespace: str, ids: Iterable[int]) -> set[int]:
    """Which of ``ids`` are live chunks of the namespace (only those rows are read)."""
    wanted = list(dict.fromkeys(int(i) for i in ids))
    return {int(c.id or 0) for c in store.chunks(namespace, ids=wanted)} if wanted else set()


def check_reply(reply: str, packed: PackedContext, store: Store, namespace: str) -> CitationCheck:
    """:func:`check_citations` with the context's ids and the store's live chunks."""
    cited, _ = find_citations(reply)
    return check_citations(reply, context_ids=set(packed.ids), store_ids=live_ids(store, namespace, cited))
