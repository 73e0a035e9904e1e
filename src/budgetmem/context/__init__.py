"""The answer context: episodic and semantic memory packed under a token budget, memories
with ids that the answer cites, and LLM compression of semantic memory (selective-write
paper §III-F and §III-H)."""

from budgetmem.context.citations import (
    CitationCheck,
    InvalidCitation,
    build_cited_answer_prompt,
    check_citations,
    check_reply,
    find_citations,
    memory_header,
    render_cited_memories,
    strip_citations,
)
from budgetmem.context.compress import CompressReport, compress_namespace
from budgetmem.context.packing import (
    DroppedChunk,
    PackedContext,
    PackedItem,
    episodic_window,
    pack_context,
    pack_namespace,
)

__all__ = [
    "CitationCheck",
    "CompressReport",
    "DroppedChunk",
    "InvalidCitation",
    "PackedContext",
    "PackedItem",
    "build_cited_answer_prompt",
    "check_citations",
    "check_reply",
    "compress_namespace",
    "episodic_window",
    "find_citations",
    "memory_header",
    "pack_context",
    "pack_namespace",
    "render_cited_memories",
    "strip_citations",
]
