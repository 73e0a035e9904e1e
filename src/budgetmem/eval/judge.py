"""LLM-as-judge: a 0 / 0.5 / 1 score with a short explanation, as JSON.

The contract follows routing paper App. C.4: the judge sees the question, every gold
answer and the model's answer; it weighs correctness against *any* gold answer, relevance
and completeness; it replies with a JSON object ``{"explanation": ..., "score": 0 | 0.5 | 1}``.
The wording of our prompt is our own.

On llama.cpp the reply is constrained by a GBNF grammar, so it parses by construction.
Elsewhere a reply that does not parse gets one stricter re-ask; if that fails too the
judgement is recorded as failed with the raw text (score ``None``), never as a zero.
Judge calls are priced like any other call and reported apart from the system's cost.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from budgetmem.llm import LLM
from budgetmem.pipeline.types import CallRecord, CallTotals

__all__ = ["Judge", "Judgement", "JudgeParseError", "build_judge_prompt", "parse_judgement", "JUDGE_GRAMMAR"]

JUDGE_PROMPT_VERSION = "bm-judge-1"
_SCORES = (0.0, 0.5, 1.0)


class JudgeParseError(ValueError):
    def __init__(self, raw: str, reason: str) -> None:
        self.raw = raw
        self.reason = reason
        super().__init__(reason)


def build_judge_prompt(question: str, golds: Sequence[str], answer: str) -> str:
    gold_lines = "\n".join(f"- {g}" for g in golds) or "- (none given)"
    return (
        "You are grading an answer to a question. Decide how well the model's answer "
        "answers the question, using the reference answers as the truth.\n\n"
        f"Question:\n{question.strip()}\n\n"
        f"Reference answers (matching any one of them is enough):\n{gold_lines}\n\n"
        f"Model's answer:\n{answer.strip() or '(empty)'}\n\n"
        "Judge three things. Correctness: does the answer agree with a reference answer, "
        "without contradicting it or adding false claims? Relevance: does it answer this "
        "question rather than something else? Completeness: does it give everything the "
        "question asks for? Wording and paraphrase do not matter; meaning does.\n\n"
        "Score 1 when the answer is fully correct, 0.5 when it is partly correct (right but "
        "incomplete, or slightly off), and 0 when it is wrong, irrelevant, empty or "
        "contradicts the references.\n\n"
        'Reply with one JSON object and nothing else: {"explanation": "<one short sentence>", '
        '"score": <0, 0.5 or 1>}'
    )


# A JSON object with a bounded explanation and one of the three scores, nothing else.
JUDGE_GRAMMAR = (
    'root ::= "{\\"explanation\\": \\"" char{1,300} "\\", \\"score\\": " score "}"\n'
    'score ::= "0" | "0.5" | "1"\n'
    'char ::= [^"\\\\\\x00-\\x1f] | "\\\\" ["\\\\/nt]\n'
)

_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)
_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


def parse_judgement(text: str) -> tuple[float, str]:
    """``(score, explanation)`` from the judge's reply; a :class:`JudgeParseError` otherwise."""
    body = text.strip()
    fenced = _FENCE.search(body)
    if fenced:
        body = fenced.group(1).strip()
    found = _OBJECT.search(body)
    if not found:
        raise JudgeParseError(text, "no JSON object in the reply")
    try:
        obj = json.loads(found.group(0))
    except json.JSONDecodeError as exc:
        raise JudgeParseError(text, f"not valid JSON: {exc.msg}") from None
    except (ValueError, RecursionError):  # json.loads' other failures: a 5,000-digit number, deep nesting
        raise JudgeParseError(text, "not valid JSON: a number too long or nesting too deep") from None
    if not isinstance(obj, dict) or "score" not in obj:
        raise JudgeParseError(text, "the object has no 'score'")
    raw_score = obj["score"]
    try:
        score = float(raw_score)
    except (TypeError, ValueError):
        raise JudgeParseError(text, f"score {raw_score!r} is not a number") from None
    if isinstance(raw_score, bool) or score not in _SCORES:
        raise JudgeParseError(text, f"score {raw_score!r} is not 0, 0.5 or 1")
    explanation = obj.get("explanation", "")
    return score, str(explanation).strip()


@dataclass
class Judgement(CallTotals):
    score: float | None
    """0, 0.5 or 1; None when the judge's reply could not be parsed (counted, not zeroed)."""
    explanation: str
    status: Literal["ok", "repaired", "failed"]
    model: str
    calls: list[CallRecord] = field(default_factory=list)
    raw: str | None = None
    """The unparseable reply, kept when parsing failed."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": self.score, "explanation": self.explanation, "status": self.status, "model": self.model,
            "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens, "usd": self.usd,
            "latency_s": sum(c.latency_s for c in self.calls), "raw": self.raw,
        }  # fmt: skip


class Judge:
    def __init__(self, llm: LLM, *, max_tokens: int = 160) -> None:
        self.llm = llm
        self.max_tokens = max_tokens

    def _call(self, purpose: str, prompt: str, calls: list[CallRecord], grammar: str | None = None) -> str:
        out = self.llm.complete(prompt, max_tokens=self.max_tokens, temperature=0.0, grammar=grammar)
        calls.append(CallRecord.from_completion(purpose, out))
        return out.text

    def judge(self, question: str, golds: Sequence[str], answer: str) -> Judgement:
        prompt = build_judge_prompt(question, golds, answer)
        calls: list[CallRecord] = []
        grammar = JUDGE_GRAMMAR if self.llm.supports_grammar else None
        text = self._call("judge", prompt, calls, grammar)
        try:
            score, why = parse_judgement(text)
            return Judgement(score, why, "ok", self.llm.name, calls)
        except JudgeParseError as first:
            reason = first.reason
        retry = (
            f"{prompt}\n\nYour previous reply could not be read ({reason}). Reply again with only the "
            'JSON object, exactly in this shape: {"explanation": "...", "score": 0.5}'
        )
        text = self._call("repair", retry, calls, grammar)
        try:
            score, why = parse_judgement(text)
            return Judgement(score, why, "repaired", self.llm.name, calls)
        except JudgeParseError as second:
            return Judgement(None, f"unparseable judge reply: {second.reason}", "failed", self.llm.name, calls, raw=text)
