"""The module table: every pipeline module is one entry here (STYLE point 2: adding or
changing a module edits one table).

An entry holds what each part of the system needs to know about a module, so none of
them switches on a module's name:

- ``name`` and ``description`` (the router's state embeds the description as the module's
  initial descriptor, routing paper App. A.3);
- what it reads (``reads``: the retrieved candidates, the filtered chunks, or the facts
  of the modules before it) and what it writes (``output``: its typed result, with the
  format, parser and grammar of its LLM tier, :mod:`budgetmem.pipeline.outputs`);
- its non-LLM tiers (``tiers``: ``rules`` = implementation LOW, ``encoder`` = MID);
- its LLM tier's prompt parts (``task``, the ``check`` of the reflect call, the answer's
  token budget); the prompt builder (:mod:`budgetmem.pipeline.prompts`) assembles them.

The order is the pipeline's (routing paper §4.1, Eq. 3-6): the filter refines the
candidates, the extractors read the filtered chunks (side by side), the summary reads
their facts. The wording of the tasks is our own; the contracts are the paper's
Appendix C. ``PROMPT_VERSION`` is part of every LLM tier's cache key: bump it whenever a
text here or in prompts.py changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from budgetmem.errors import ConfigError
from budgetmem.pipeline.context import Module
from budgetmem.pipeline.modules.entity import EntityModule
from budgetmem.pipeline.modules.filter import FilterModule
from budgetmem.pipeline.modules.summary import SummaryModule
from budgetmem.pipeline.modules.temporal import TemporalModule
from budgetmem.pipeline.modules.topic import TopicModule
from budgetmem.pipeline.outputs import FACT_LIST, SCORES, TEXT, OutputFormat

__all__ = ["Stage", "Reads", "STAGES", "MODULES", "EXTRACTORS", "PROMPT_VERSION", "get_stage", "as_stage"]

PROMPT_VERSION = "bm-prompts-1"
"""Part of every module-cache key of an LLM tier: bump it whenever a prompt text changes."""

Reads = Literal["candidates", "chunks", "facts"]


@dataclass(frozen=True)
class Stage:
    name: str
    description: str
    """One sentence on what the module does; the router embeds it as the module's descriptor."""
    reads: Reads
    """candidates: the retrieved chunks (its output, a FilterResult, becomes the chunks the
    stages after it read); chunks: the current chunks (its facts are kept under its name);
    facts: every fact found so far, with the chunks (its text becomes the memory)."""
    shows: str
    """What it reads, for people (``budgetmem`` listings)."""
    output: OutputFormat
    tiers: Module
    """The implementation LOW (``rules``) and MID (``encoder``) computations."""
    task: str
    """The LLM tier's task instructions (no format, no behaviour)."""
    check: str
    """What the reflect call checks the draft for (reasoning HIGH)."""
    answer_tokens: int
    """max_tokens of the answer part of one call, sized for small CPU models."""
    version: str = PROMPT_VERSION
    """Cache-key version of this module's prompts."""


FILTER = Stage(
    name="filter",
    description="Filter: score the retrieved memory chunks for relevance to the question and keep the best ones.",
    reads="candidates",
    shows="query + retrieved candidate chunks",
    output=SCORES,
    tiers=FilterModule(),
    # C.5 contract: one integer 0-10 per memory, in memory order.
    task=(
        "Task: rate how useful each memory is for answering the question, with a whole number "
        "from 0 to 10.\n"
        "- 10: it answers the question or holds a fact the answer cannot do without\n"
        "- 7 to 9: clearly relevant and helpful, but not enough on its own\n"
        "- 4 to 6: partly relevant\n"
        "- 1 to 3: barely related (for example it only shares a word with the question)\n"
        "- 0: unrelated\n"
        "Rate every memory, in the order of their index numbers."
    ),
    check="Check each score against its memory: raise a score whose memory holds needed facts, lower one that is off-topic.",
    answer_tokens=48,
)

ENTITY = Stage(
    name="entity",
    description="Entity extraction: people, places, objects and the relations between them in the kept memories.",
    reads="chunks",
    shows="query + filtered chunks",
    output=FACT_LIST,
    tiers=EntityModule(),
    # C.6 contract: relation strings between entities that bear on the query.
    task=(
        "Task: list the facts about people, places, organisations and things in the memories "
        "that help answer the question, and how they are related. Write each fact as a short "
        'statement of the form "A - relation - B", where A and B are named in the memories, '
        "with extra context in brackets when it helps. Use only what the memories state; leave "
        "out side details that do not bear on the question."
    ),
    check="Check each fact against the memories: drop facts they do not support or that do not bear on the question, fix names, and add important facts that are missing.",
    answer_tokens=200,
)

TEMPORAL = Stage(
    name="temporal",
    description="Temporal extraction: dates, times and the order of events in the kept memories.",
    reads="chunks",
    shows="query + filtered chunks",
    output=FACT_LIST,
    tiers=TemporalModule(),
    # C.7 contract: temporal fact strings; absolute dates so the summary needs no session dates.
    task=(
        "Task: list the time facts in the memories that help answer the question: when things "
        "happened or will happen, how long they lasted, and what came before what. Each fact "
        "names the event and gives its time as an absolute date: when a memory gives a time "
        "relative to when it was said, work the date out from that memory's date attribute."
    ),
    check="Check each fact against the memories: drop unsupported ones, recompute every date from the memory dates, and add important time facts that are missing.",
    answer_tokens=200,
)

TOPIC = Stage(
    name="topic",
    description="Topic extraction: the themes and subjects the kept memories talk about.",
    reads="chunks",
    shows="query + filtered chunks",
    output=FACT_LIST,
    tiers=TopicModule(),
    # C.8 contract: topic-relation strings.
    task=(
        "Task: list the topics of the memories that matter for the question and how they "
        "connect: what is being discussed, how one subject leads to another, and which "
        "subjects are tied together. Write each item as one short sentence."
    ),
    check="Check each item against the memories: drop topics that do not bear on the question and add important ones that are missing.",
    answer_tokens=200,
)

SUMMARY = Stage(
    name="summary",
    description="Summary: merge the entity, temporal and topic facts into one short memory for the answer.",
    reads="facts",
    shows="query + entity / temporal / topic facts (+ filtered chunks)",
    output=TEXT,
    tiers=SummaryModule(),
    # C.9 contract: plain text; it becomes the memory the answer model reads.
    task=(
        "Task: using only the facts given, write a short summary (a few sentences) of the "
        "evidence that bears on the question, for another model that will answer it. Combine "
        "the entity, time and topic facts, keep names and dates exact, and point out "
        "contradictions or gaps. Describe the evidence rather than giving a final answer, and "
        "add nothing that the facts do not say."
    ),
    check="Check the summary against the facts: remove anything the facts do not say, keep names and dates exact, and add key facts that are missing.",
    answer_tokens=220,
)

STAGES: tuple[Stage, ...] = (FILTER, ENTITY, TEMPORAL, TOPIC, SUMMARY)
MODULES: tuple[str, ...] = tuple(s.name for s in STAGES)
EXTRACTORS: tuple[str, ...] = tuple(s.name for s in STAGES if s.reads == "chunks")
"""The modules that read the filtered chunks side by side (Eq. 5)."""


def get_stage(name: str, stages: Sequence[Stage] = STAGES) -> Stage:
    for s in stages:
        if s.name == name:
            return s
    raise ConfigError(f"unknown module {name!r}", hint=f"modules: {', '.join(s.name for s in stages)}")


def as_stage(module: str | Stage) -> Stage:
    """A stage, or the standard table's entry of that name."""
    return module if isinstance(module, Stage) else get_stage(module)
