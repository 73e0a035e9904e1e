"""The inference behaviours of an LLM tier: direct, chain of thought, plan -> act -> reflect.

Routing paper §4.2 and Appendix A.4.2 (reasoning tiering): the module contract stays fixed
and only the depth of inference changes with the tier.

- ``direct`` (LOW): one call that answers in ``<answer>`` tags straight away.
- ``cot`` (MID): one call that reasons briefly in ``<thinking>`` tags, then answers.
- ``reflect`` (HIGH): three real calls. (1) plan: what to look for in the evidence;
  (2) act: the answer, following the plan; (3) reflect: a separate call sees the draft,
  checks it against the evidence and writes the corrected answer, which is the output.
  With the prefix-first layout the three prompts share the evidence-and-question prefix,
  and the reflect prompt extends the act prompt's plan part, so llama.cpp re-reads little.

Parse failures never raise: the outcome says ``failed`` and keeps the raw text, and the
caller falls back visibly. LLM errors (:class:`~budgetmem.errors.LLMError`) do propagate,
carrying the calls the step had paid for (``LLMError.spent``).

Repair: when the final reply does not parse, exactly one more call re-asks with the failed
prompt, the bad reply, the reason, and a strict format demand; on a backend that supports
grammars the re-ask is also constrained by the format's GBNF grammar, so it parses by
construction (unless cut by ``max_tokens``).

Reflect, when the revision is unreadable but the draft parsed: the draft is kept, with no
repair call (the draft is already a valid answer of the same tier; a grammar-forced
re-ask of a confused revision is unlikely to beat it). The outcome is then
``parse_status="ok"``, ``value`` = the draft, ``raw_output`` = the unreadable revision and
``note`` says so. When the draft did not parse, the revision is the only candidate and the
usual repair applies to it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from budgetmem.errors import ConfigError, LLMError
from budgetmem.llm.base import LLM, Completion
from budgetmem.pipeline.outputs import NO_FACTS_SUMMARY, Value
from budgetmem.pipeline.parsers import ParseError
from budgetmem.pipeline.prompts import (
    Layout,
    build_act_prompt,
    build_plan_prompt,
    build_prompt,
    build_reflect_prompt,
    build_repair_prompt,
)
from budgetmem.pipeline.stages import Stage, as_stage
from budgetmem.pipeline.types import CallRecord, CallTotals, ModuleInput, charge

__all__ = ["LLMOutcome", "run_llm", "BEHAVIOURS", "NO_FACTS_SUMMARY", "budget"]

BEHAVIOURS: tuple[str, ...] = ("direct", "cot", "reflect")

ParseStatus = Literal["ok", "repaired", "failed"]


@dataclass(frozen=True)
class LLMOutcome(CallTotals):
    """What one LLM tier produced for one module step."""

    value: Value | None
    """Scores (filter), fact strings (extractors), text (summary); None when nothing parsed."""
    calls: list[CallRecord] = field(default_factory=list)
    """One record per LLM call, in call order (plan, act, reflect, repair ...)."""
    parse_status: ParseStatus = "ok"
    raw_output: str | None = None
    """The last unreadable reply: set when failed, and when reflect kept its draft."""
    note: str | None = None
    """A one-line explanation when the outcome is not the plain case (kept draft, no call)."""


# Token budgets beyond the answer itself (each module's answer budget is in its stage entry),
# sized for small CPU models: enough room to spare, small enough that a model that rambles
# is cut early (decoding is the slow part on a CPU).
_THINKING_BUDGET = 256
"""Extra room for the CoT <thinking> block."""
_PLAN_BUDGET = 120
_REPAIR_EXTRA = 120
_CHECK_BUDGET = 160
"""Extra room for the reflect call's short list of problems before its answer."""


def budget(module: str | Stage, purpose: str, n_memories: int = 0) -> int:
    """max_tokens of one call. The filter's answer grows with the number of memories."""
    stage = as_stage(module)
    answer = stage.output.answer_tokens(stage.answer_tokens, n_memories)
    if purpose == "cot":
        return answer + _THINKING_BUDGET
    if purpose == "plan":
        return _PLAN_BUDGET
    if purpose == "reflect":
        return answer + _CHECK_BUDGET
    if purpose == "repair" and not stage.output.bounded:
        # A grammar-forced list can run to max_facts strings of the grammar's full length;
        # cutting it off would waste the repair. Scores are bounded by construction.
        return answer + _REPAIR_EXTRA
    return answer  # direct, act


_PLAN_LINES = 4
"""The plan prompt asks for at most four bullet points."""


_PLAN_OPEN = re.compile("<plan>", re.IGNORECASE)
_PLAN_END = re.compile("</plan>|<answer>", re.IGNORECASE)


def _plan_text(text: str) -> str:
    """The plan inside <plan> (closing tag optional: generation stops at it), as at most four
    distinct non-empty lines. Small models at temperature 0 often repeat a line until the
    budget runs out; feeding that loop to the act call makes it loop too. Anything from an
    <answer> tag on is dropped: the plan step must not smuggle in an answer."""
    # Tags are found by a case-insensitive search in the text itself: an index found in
    # text.lower() is off wherever lowering changes a length ("İ" becomes two characters).
    start = _PLAN_OPEN.search(text)
    body = text[start.end() :] if start else text
    end = _PLAN_END.search(body)
    body = body[: end.start()] if end else body
    lines: list[str] = []
    for line in body.splitlines():
        line = line.strip()[:200]  # cut before comparing, so a long repeated line is one line
        if line and line not in lines:
            lines.append(line)
        if len(lines) == _PLAN_LINES:
            break
    return "\n".join(lines)


class _Caller:
    """Makes the calls of one run and records each."""

    def __init__(self, llm: LLM) -> None:
        self.llm = llm
        self.calls: list[CallRecord] = []

    def __call__(
        self, purpose: str, prompt: str, max_tokens: int, stop: Sequence[str] | None = None, grammar: str | None = None
    ) -> Completion:
        # temperature 0: module outputs are cached by content, so they must be repeatable.
        try:
            out = self.llm.complete(prompt, max_tokens=max_tokens, temperature=0.0, stop=stop, grammar=grammar)
        except LLMError as exc:
            charge(exc, self.calls, purpose)  # this step's earlier calls (a reflect's plan) were paid
            raise
        self.calls.append(CallRecord.from_completion(purpose, out))
        return out


_ANSWER_STOP = ("</answer>",)
"""Generation ends at the closing tag: what a small model writes after it is paid for and unused."""


def run_llm(
    llm: LLM,
    module: str | Stage,
    inp: ModuleInput,
    *,
    behaviour: str = "direct",
    layout: Layout = "prefix-first",
    max_facts: int = 8,
    max_tokens: int | None = None,
) -> LLMOutcome:
    """Run ``module``'s LLM tier with ``behaviour`` on ``llm``; see the module docstring.

    ``max_tokens``, when given, is the budget of every call of this run (plan included);
    by default each call gets :func:`budget`. A filter or extractor with no chunks returns
    ``[]`` and a summary with no facts returns :data:`NO_FACTS_SUMMARY`, both without a
    call (``calls == []``, ``note`` says why).
    """
    stage = as_stage(module)
    if behaviour not in BEHAVIOURS:
        raise ConfigError(f"unknown behaviour {behaviour!r}", hint=f"use one of: {', '.join(BEHAVIOURS)}")
    n = len(inp.chunks)
    # Nothing to read means nothing to call for: the contract answer is known, and a model
    # asked to summarise no facts invents some (seen with qwen2.5-coder-0.5b).
    out = stage.output
    if stage.reads != "facts" and n == 0:
        return LLMOutcome(value=out.empty, calls=[], parse_status="ok", note="no memories: empty result, no call made")
    if stage.reads == "facts" and not any(f.strip() for fs in inp.facts.values() for f in fs):
        return LLMOutcome(value=out.empty, calls=[], parse_status="ok", note="no facts: fixed summary, no call made")

    def parse(text: str) -> Value:
        return out.parse(text, n=n, max_facts=max_facts)


    call = _Caller(llm)

    def tokens(purpose: str) -> int:
        return max_tokens if max_tokens is not None else budget(stage, purpose, n)

    if behaviour in ("direct", "cot"):
        prompt = build_prompt(stage, inp, layout=layout, max_facts=max_facts, behaviour=behaviour)  # type: ignore[arg-type]
        text = call(behaviour, prompt, tokens(behaviour), stop=_ANSWER_STOP).text
        try:
            return LLMOutcome(parse(text), call.calls, "ok")
        except ParseError as exc:
            return _repair(call, stage, n, max_facts, prompt, exc, parse, tokens("repair"))

    # reflect: plan -> act -> reflect, three separate calls
    plan_out = call("plan", build_plan_prompt(stage, inp, layout=layout, max_facts=max_facts), tokens("plan"), stop=("</plan>",))
    plan = _plan_text(plan_out.text)
    act_text = call("act", build_act_prompt(stage, inp, plan, layout=layout, max_facts=max_facts), tokens("act"), stop=_ANSWER_STOP).text
    draft: Value | None
    try:
        draft = parse(act_text)
        shown = out.canonical(draft)
    except ParseError:
        # The reviser may still salvage an unreadable draft; the prompt strips its tags.
        draft, shown = None, act_text.strip()[:1500]
    reflect_prompt = build_reflect_prompt(stage, inp, plan, shown, layout=layout, max_facts=max_facts)
    revised_text = call("reflect", reflect_prompt, tokens("reflect"), stop=_ANSWER_STOP).text
    try:
        return LLMOutcome(parse(revised_text), call.calls, "ok")
    except ParseError as exc:
        if draft is not None:
            return LLMOutcome(
                draft,
                call.calls,
                "ok",
                raw_output=revised_text,
                note=f"reflect: revision unreadable ({exc.reason}); kept the parsed draft",
            )
        return _repair(call, stage, n, max_facts, reflect_prompt, exc, parse, tokens("repair"))


def _repair(
    call: _Caller,
    stage: Stage,
    n: int,
    max_facts: int,
    prompt: str,
    error: ParseError,
    parse: Callable[[str], Value],
    max_tokens: int,
) -> LLMOutcome:
    """The single repair call; grammar-constrained where the backend supports it."""
    format_line = stage.output.format_text(n_memories=n, max_facts=max_facts)
    repair_prompt = build_repair_prompt(prompt, error.raw, error.reason, format_line)
    if call.llm.supports_grammar:
        # The grammar ends the reply at </answer> itself; a stop string is not needed.
        text = call("repair", repair_prompt, max_tokens, grammar=stage.output.grammar(n=n, max_facts=max_facts)).text
    else:
        text = call("repair", repair_prompt, max_tokens, stop=_ANSWER_STOP).text
    try:
        return LLMOutcome(parse(text), call.calls, "repaired")
    except ParseError as exc:
        return LLMOutcome(None, call.calls, "failed", raw_output=text, note=f"repair failed: {exc.reason}")
