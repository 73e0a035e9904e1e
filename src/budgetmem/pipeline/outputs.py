"""The three output formats a module's LLM tier can have, each in one place: how the answer
must look (the line a prompt shows), how it is parsed, the grammar that forces it on a
repair, and how the parsed value becomes the module's typed result (and is cached).

    SCORES     filter: one 0-10 integer per memory -> FilterResult (routing paper App. C.5)
    FACT_LIST  entity / temporal / topic: short fact strings -> FactsResult (App. C.6-C.8)
    TEXT       summary: plain text -> SummaryResult (App. C.9)

A module names its format in the stage table (:mod:`budgetmem.pipeline.stages`); nothing
else switches on module names.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from budgetmem.pipeline.parsers import (
    parse_scores,
    parse_string_list,
    parse_text,
    scores_grammar,
    string_list_grammar,
    text_grammar,
)
from budgetmem.pipeline.types import (
    FactsResult,
    FilterResult,
    ModuleInput,
    ModuleResult,
    ScoredChunk,
    SummaryResult,
    kept_order,
)

if TYPE_CHECKING:
    from budgetmem.settings import PipelineSettings

__all__ = ["OutputFormat", "SCORES", "FACT_LIST", "TEXT", "Value", "NO_FACTS_SUMMARY"]

Value = list[float] | list[str] | str

NO_FACTS_SUMMARY = "No facts relevant to the question were found in memory."
"""The summary when every extractor found nothing (returned without a call)."""


class OutputFormat(ABC):
    result: type
    """The typed result this format turns into."""
    empty: Value
    """The contract answer when there is nothing to read (returned without a call)."""
    bounded: bool = False
    """True when a grammar-forced answer cannot run past the normal budget (no repair room)."""

    @abstractmethod
    def format_text(self, *, n_memories: int, max_facts: int) -> str:
        """How the answer must look: the part of the contract a parser checks."""

    @abstractmethod
    def parse(self, text: str, *, n: int, max_facts: int) -> Value: ...

    @abstractmethod
    def grammar(self, *, n: int, max_facts: int) -> str: ...

    @abstractmethod
    def canonical(self, value: Value) -> str:
        """A parsed value written back as the bare content of its answer tags (the reflect
        prompt shows the draft this way)."""

    @abstractmethod
    def to_result(self, value: Any, inp: ModuleInput, settings: PipelineSettings) -> ModuleResult: ...

    @abstractmethod
    def dump(self, result: Any, inp: ModuleInput) -> dict[str, Any]:
        """The result as JSON for the module cache (chunks by their position in the input)."""

    @abstractmethod
    def load(self, data: dict[str, Any], inp: ModuleInput) -> ModuleResult: ...

    def answer_tokens(self, base: int, n_memories: int) -> int:
        """max_tokens of the answer part of one call."""
        return base


def _identity(c: ScoredChunk) -> tuple[object, ...]:
    return (c.chunk.id, c.chunk.session_id, c.chunk.position, c.chunk.text)


class _Scores(OutputFormat):
    result = FilterResult
    empty: Value = []
    bounded = True

    def format_text(self, *, n_memories: int, max_facts: int) -> str:
        if n_memories == 0:
            return "There are no memories: reply exactly <answer>[]</answer>"
        example = ", ".join(f"s{i}" for i in range(1, n_memories + 1))
        return (
            f"Answer format: a JSON array of exactly {n_memories} whole numbers inside answer tags, "
            f"<answer>[{example}]</answer>, where s1 is the score of memory 1, s2 of memory 2, and so on."
        )

    def parse(self, text: str, *, n: int, max_facts: int) -> Value:
        return parse_scores(text, n)

    def grammar(self, *, n: int, max_facts: int) -> str:
        return scores_grammar(n)

    def canonical(self, value: Value) -> str:
        return "[" + ", ".join(str(int(v)) for v in value) + "]"  # type: ignore[union-attr]

    def to_result(self, value: Any, inp: ModuleInput, settings: PipelineSettings) -> ModuleResult:
        # Scores 0-10 per memory, in order (App. C.5 contract) -> ranked top-k, scores in [0, 1].
        kept = kept_order(inp.chunks, [float(v) for v in value], settings)
        return FilterResult(tuple(ScoredChunk(inp.chunks[i].chunk, float(value[i]) / 10.0) for i in kept))

    def dump(self, result: Any, inp: ModuleInput) -> dict[str, Any]:
        index = {_identity(c): i for i, c in enumerate(inp.chunks)}
        return {"kept": [[index[_identity(c)], c.score] for c in result.chunks]}

    def load(self, data: dict[str, Any], inp: ModuleInput) -> ModuleResult:
        return FilterResult(tuple(ScoredChunk(inp.chunks[i].chunk, float(s)) for i, s in data["kept"]))

    def answer_tokens(self, base: int, n_memories: int) -> int:
        return max(base, 12 + 4 * n_memories)  # about four tokens per score, "10, "


class _FactList(OutputFormat):
    result = FactsResult
    empty: Value = []

    def format_text(self, *, n_memories: int, max_facts: int) -> str:
        return (
            "Answer format: a JSON array of strings inside answer tags, "
            '<answer>["first fact", "second fact"]</answer>, '
            f"with at most {max_facts} items. If the memories hold nothing useful, reply <answer>[]</answer>"
        )

    def parse(self, text: str, *, n: int, max_facts: int) -> Value:
        return parse_string_list(text, max_facts)

    def grammar(self, *, n: int, max_facts: int) -> str:
        return string_list_grammar(max_facts)

    def canonical(self, value: Value) -> str:
        return json.dumps(value, ensure_ascii=False)

    def to_result(self, value: Any, inp: ModuleInput, settings: PipelineSettings) -> ModuleResult:
        facts = list(dict.fromkeys(str(v).strip() for v in value if str(v).strip()))
        return FactsResult(tuple(facts[: settings.max_facts]))

    def dump(self, result: Any, inp: ModuleInput) -> dict[str, Any]:
        return {"facts": list(result.facts)}

    def load(self, data: dict[str, Any], inp: ModuleInput) -> ModuleResult:
        return FactsResult(tuple(data["facts"]))


class _Text(OutputFormat):
    result = SummaryResult
    empty: Value = NO_FACTS_SUMMARY

    def format_text(self, *, n_memories: int, max_facts: int) -> str:
        return "Answer format: the summary as plain text inside answer tags: <answer>your summary</answer>"

    def parse(self, text: str, *, n: int, max_facts: int) -> Value:
        return parse_text(text)

    def grammar(self, *, n: int, max_facts: int) -> str:
        return text_grammar()

    def canonical(self, value: Value) -> str:
        return str(value)

    def to_result(self, value: Any, inp: ModuleInput, settings: PipelineSettings) -> ModuleResult:
        return SummaryResult(str(value).strip())

    def dump(self, result: Any, inp: ModuleInput) -> dict[str, Any]:
        return {"text": result.text}

    def load(self, data: dict[str, Any], inp: ModuleInput) -> ModuleResult:
        return SummaryResult(data["text"])


SCORES: OutputFormat = _Scores()
FACT_LIST: OutputFormat = _FactList()
TEXT: OutputFormat = _Text()
