"""Prompt texts of the LLM tiers and of the answer model.

The routing paper's Appendix C fixes each module's *contract*: what it reads and what it
writes (C.5 filter: one 0-10 integer per memory as a JSON array inside ``<answer>``;
C.6-C.8 entity / temporal / topic: a JSON array of short fact strings inside ``<answer>``;
C.9 summary: plain text inside ``<answer>``). The wording below is our own.

Layout (why it matters): entity, temporal and topic read the same filtered chunks and the
same query (Eq. 5). With ``layout="prefix-first"`` every module prompt is

    preamble · <memories> block · question   |  module task · behaviour tail

so the three extractors, and the plan / act / reflect calls of one module, share a long
identical prefix that llama.cpp keeps in its KV cache (measured 9.0 s -> 0.3 s for a repeated
1k-token prefix). ``instruction-first`` puts the task before the memories, as most prompt
templates do, and exists to measure that difference.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Literal

from budgetmem.errors import ConfigError
from budgetmem.pipeline.answers import kind_instruction, question_kind
from budgetmem.pipeline.parsers import strip_thinking
from budgetmem.pipeline.stages import EXTRACTORS, PROMPT_VERSION, Stage, as_stage
from budgetmem.pipeline.types import ModuleInput, ScoredChunk

__all__ = [
    "PROMPT_VERSION",
    "Layout",
    "Behaviour",
    "AnswerStyle",
    "FACT_KINDS",
    "render_memories",
    "render_facts",
    "task_text",
    "format_text",
    "build_prompt",
    "build_plan_prompt",
    "build_act_prompt",
    "build_reflect_prompt",
    "build_repair_prompt",
    "build_answer_prompt",
    "extract_answer",
]


Layout = Literal["prefix-first", "instruction-first"]
Behaviour = Literal["direct", "cot", "reflect"]
AnswerStyle = Literal["locomo", "longmemeval", "hotpotqa", "plain"]

FACT_KINDS: tuple[str, ...] = EXTRACTORS
"""The summary's standard inputs, in the order they are shown (Eq. 6: summary(q, e, t, p))."""

# --------------------------------------------------------------------------- rendering

# Only our own tag names are neutralised inside memory text and queries: a memory that
# quotes "</memory>" or "<answer>" must not close the block or plant a fake answer, while
# ordinary text ("Tom & Jerry", "x < y") reaches the model untouched.
_OUR_TAGS = re.compile(r"<(/?)(memories|memory|answer|thinking|plan|draft|reply|query|facts)\b", re.IGNORECASE)


def _neutralise(text: str) -> str:
    return _OUR_TAGS.sub(lambda m: f"&lt;{m.group(1)}{m.group(2)}", text)


def _strip_tags(text: str) -> str:
    """For model output shown back to the model (plan, draft, failed reply): our tags are
    removed, not escaped, since a model asked to re-answer tends to copy "&lt;answer>" verbatim."""
    stripped = re.sub(r"</?(?:memories|memory|answer|thinking|plan|draft|reply|query|facts)\b[^>]*>", " ", text, flags=re.IGNORECASE)
    return re.sub(r"[ \t]{2,}", " ", stripped).strip()


def _attr(value: str) -> str:
    return value.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


def _dia_range(dia_ids: Sequence[str]) -> str:
    """Chunks hold consecutive turns of one session, so first-last names them all."""
    if not dia_ids:
        return ""
    return dia_ids[0] if len(dia_ids) == 1 else f"{dia_ids[0]}-{dia_ids[-1]}"


def render_memories(chunks: Sequence[ScoredChunk]) -> str:
    """The ``<memories>`` block: one ``<memory>`` per chunk, numbered from 1, with its session,
    date and dialogue ids as attributes (the temporal module resolves "last week" against the
    session date, so the metadata must reach the model)."""
    lines = ["<memories>"]
    for i, sc in enumerate(chunks, start=1):
        c = sc.chunk
        attrs = [f'index="{i}"', f'session="{_attr(c.session_id)}"']
        if c.session_date:
            attrs.append(f'date="{_attr(c.session_date)}"')
        dia = _dia_range(c.dia_ids)
        if dia:
            attrs.append(f'dia_ids="{_attr(dia)}"')
        lines.append(f"<memory {' '.join(attrs)}>\n{_neutralise(c.text.strip())}\n</memory>")
    if not chunks:
        lines.append("(no memories)")
    lines.append("</memories>")
    return "\n".join(lines)


def render_facts(facts: Mapping[str, Sequence[str]]) -> str:
    """The summary's input: one section per fact kind, one fact per line. Kinds beyond the
    three standard ones are shown after them rather than dropped."""
    kinds = [*FACT_KINDS, *sorted(k for k in facts if k not in FACT_KINDS)]
    lines = ["<facts>"]
    for kind in kinds:
        items = [f.strip() for f in facts.get(kind, ()) if f.strip()]
        lines.append(f"<{kind}_facts>")
        lines.extend(f"- {_neutralise(f)}" for f in items)
        if not items:
            lines.append("(none found)")
        lines.append(f"</{kind}_facts>")
    lines.append("</facts>")
    return "\n".join(lines)


def _shared(stage: Stage, inp: ModuleInput) -> str:
    """What every module over the same inputs shows identically: the evidence and the question.

    The preamble is deliberately module-neutral; a module-specific word here would break
    the prefix the three extractors share.
    """
    if stage.reads == "facts":
        intro = "Below are facts that were extracted from stored conversation memories, grouped by kind."
        evidence = render_facts(inp.facts)
    else:
        intro = (
            "Below are memories: excerpts of earlier conversations, each numbered and tagged with "
            "its session, the date of that session and its dialogue ids."
        )
        evidence = render_memories(inp.chunks)
    question = f"<query>{_neutralise(inp.query.strip())}</query>"
    if inp.question_date:
        question += f"\nThe question is asked on: {inp.question_date}"
    return f"{intro}\n\n{evidence}\n\nQuestion:\n{question}"


# --------------------------------------------------------------------------- module tasks
# Each module's task and check texts live in its entry of the stage table (stages.py).


def task_text(module: str | Stage) -> str:
    """The module's task instructions (no format, no behaviour)."""
    return as_stage(module).task


def format_text(module: str | Stage, *, n_memories: int, max_facts: int) -> str:
    """How the answer must look: the part of the contract a parser checks."""
    return as_stage(module).output.format_text(n_memories=n_memories, max_facts=max_facts)


_DIRECT_TAIL = "Reply with the answer tags only, no other text."


def _evidence_word(stage: Stage) -> str:
    return "facts" if stage.reads == "facts" else "memories"


def _cot_tail(stage: Stage) -> str:
    # Pointing the reasoning at the evidence matters for small models: asked to "think step
    # by step" with no object, qwen2.5-coder-0.5b replied that it had no memories to analyse.
    evidence = _evidence_word(stage)
    return (
        f"First, inside <thinking></thinking> tags, reason step by step in a few short lines: which "
        f"{evidence} matter for the question and what they say. Then give the final answer inside "
        "<answer></answer> tags."
    )


def _plan_tail(stage: Stage) -> str:
    evidence = _evidence_word(stage)
    return (
        "Do not do the task yet. First make a short plan: in at most four bullet points, say what "
        f"to look for in the {evidence} to answer this question. Write the plan inside <plan></plan> tags."
    )


def _assemble(shared: str, tail: str, layout: Layout) -> str:
    if layout == "prefix-first":
        return f"{shared}\n\n{tail}"
    if layout == "instruction-first":
        return f"{tail}\n\n{shared}"
    raise ConfigError(f"unknown prompt layout {layout!r}", hint="use prefix-first or instruction-first")


def _instructions(stage: Stage, inp: ModuleInput, max_facts: int) -> str:
    return f"{stage.task}\n{stage.output.format_text(n_memories=len(inp.chunks), max_facts=max_facts)}"


def build_prompt(
    module: str | Stage,
    inp: ModuleInput,
    *,
    layout: Layout = "prefix-first",
    max_facts: int = 8,
    behaviour: Literal["direct", "cot"] = "direct",
) -> str:
    """One user message for a one-call behaviour (routing paper §4.2: LOW direct, MID CoT).

    No module-specific system message: the system turn comes before everything, so a
    per-module one would end the shared prefix at the first token.
    """
    if behaviour not in ("direct", "cot"):
        raise ConfigError(f"build_prompt takes direct or cot, not {behaviour!r}", hint="reflect uses the plan/act/reflect builders")
    stage = as_stage(module)
    tail = _cot_tail(stage) if behaviour == "cot" else _DIRECT_TAIL
    return _assemble(_shared(stage, inp), f"{_instructions(stage, inp, max_facts)}\n{tail}", layout)


def build_plan_prompt(module: str | Stage, inp: ModuleInput, *, layout: Layout = "prefix-first", max_facts: int = 8) -> str:
    """Reflect step 1 (App. A.4.2 HIGH): the model plans what to look for, without answering."""
    stage = as_stage(module)
    return _assemble(_shared(stage, inp), f"{_instructions(stage, inp, max_facts)}\n{_plan_tail(stage)}", layout)


def _plan_block(plan: str) -> str:
    return f"Your plan:\n<plan>\n{_strip_tags(plan) or '(no plan)'}\n</plan>"


def build_act_prompt(
    module: str | Stage, inp: ModuleInput, plan: str, *, layout: Layout = "prefix-first", max_facts: int = 8
) -> str:
    """Reflect step 2: do the task following the plan. The plan comes after the task text, so
    with prefix-first everything before it is the plan call's cached prefix."""
    stage = as_stage(module)
    tail = f"{_instructions(stage, inp, max_facts)}\n{_plan_block(plan)}\nNow carry out your plan and do the task. {_DIRECT_TAIL}"
    return _assemble(_shared(stage, inp), tail, layout)


def build_reflect_prompt(
    module: str | Stage, inp: ModuleInput, plan: str, draft: str, *, layout: Layout = "prefix-first", max_facts: int = 8
) -> str:
    """Reflect step 3: a separate call checks the draft against the evidence and revises it.
    Plan and draft are shown in the same order as in the act prompt, so the act prompt is a
    prefix of this one up to the act instruction."""
    stage = as_stage(module)
    tail = (
        f"{_instructions(stage, inp, max_facts)}\n{_plan_block(plan)}\n"
        f"Your draft answer:\n<draft>\n{_strip_tags(draft)}\n</draft>\n"
        f"{stage.check} You may note the problems first inside <thinking></thinking> tags, one "
        "short line each. Then give the corrected final answer, in the same format, inside "
        "<answer></answer> tags. If the draft is already right, repeat it."
    )
    return _assemble(_shared(stage, inp), tail, layout)


def build_repair_prompt(prompt: str, bad_output: str, reason: str, format_line: str) -> str:
    """The one re-ask after an unreadable reply: the failed prompt (still a cached prefix), the
    reply, what was wrong, and a stricter format demand."""
    shown = _strip_tags(bad_output) or "(empty)"
    if len(shown) > 1500:  # enough to salvage content from; a runaway reply would only add cost
        shown = shown[:1500] + " ..."
    return (
        f"{prompt}\n\nYour previous reply was:\n<reply>\n{shown}\n</reply>\n"
        f"It could not be used: {reason}.\nReply again with ONLY the final answer inside "
        f"<answer></answer> tags and nothing else. {format_line}"
    )


# --------------------------------------------------------------------------- answer model


def build_answer_prompt(query: str, memory: str, *, style: AnswerStyle = "locomo", question_date: str | None = None) -> str:
    """The answer model's prompt, y = f_ans(q, m), per dataset (routing paper App. C.1-C.3).

    Short-answer styles end with the line for the question's kind (yes/no, a date, a phrase:
    :mod:`budgetmem.pipeline.answers`) and ``Short answer:``, so the reply is the answer
    itself; the same text is used with and without a grammar."""
    q = query.strip()
    m = memory.strip() or "(no memory)"
    kind = question_kind(q, style)  # also rejects an unknown style
    shape = kind_instruction(kind)
    if style == "locomo":
        # C.1 contract: a short phrase, the context's own words, dates taken from the memory.
        return (
            f"Memory:\n{m}\n\n"
            "Using the memory above, answer the question below. Reuse the memory's own words "
            f"where you can. {shape}\n\n"
            f"Question: {q}\nShort answer:"
        )
    if style == "longmemeval":
        # C.3 contract: chat history, the current date, the question, a short answer.
        date = question_date.strip() if question_date else "not given"
        return (
            "Here is what you remember from earlier chats with the user. Answer the user's "
            f"question from it. {shape}\n\n"
            f"Chat history:\n{m}\n\nToday's date: {date}\nQuestion: {q}\nShort answer:"
        )
    if style == "hotpotqa":
        # C.2 contract: a multi-hop question over documents, a short precise answer.
        return (
            f"Context:\n{m}\n\n"
            "Answer the question below from the context above; the answer may need facts from "
            f"more than one part of it. {shape}\n\n"
            f"Question: {q}\nShort answer:"
        )
    return (
        f"Memory:\n{m}\n\nAnswer the question helpfully and briefly using the memory above. "
        "If the memory does not contain the answer, say that you do not know.\n\n"
        f"Question: {q}\nAnswer:"
    )


_ANSWER = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.IGNORECASE | re.DOTALL)
_LABEL = re.compile(r"^\s*(?:short answer|final answer|answer)\s*:\s*", re.IGNORECASE)
_ANY_TAG = re.compile(r"</?[a-z_]+>", re.IGNORECASE)


def extract_answer(text: str, style: AnswerStyle = "locomo") -> str:
    """The final answer string from the answer model's reply.

    Text inside the last ``<answer>`` wins whatever the style (a model may use tags
    unasked). Otherwise short-answer styles keep the first non-empty line, since the
    contract asks for a phrase and small models often add an explanation after it;
    ``plain`` keeps the whole reply.
    """
    body = strip_thinking(text)
    found = [a.strip() for a in _ANSWER.findall(body) if a.strip()]
    if found:
        body = found[-1]
    elif style != "plain":
        lines = [ln for ln in body.strip().splitlines() if _ANY_TAG.sub("", ln).strip()]
        body = lines[0] if lines else ""
    body = _ANY_TAG.sub("", body)
    return _LABEL.sub("", body.strip()).strip()
