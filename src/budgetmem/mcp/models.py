"""What the MCP tools take and return, declared once: the SDK publishes these models as the
tools' input and output JSON schemas, and their field descriptions are what an agent reads.

Each ``from_*`` builds a result from the library object a :class:`~budgetmem.BudgetMem`
method returned; nothing here computes anything the library did not.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, Field

from budgetmem.ingest import Chunk
from budgetmem.ingest.ingest import IngestReport
from budgetmem.memory import ForgetReport
from budgetmem.pipeline.trace import QueryResult
from budgetmem.retrieval import Hit
from budgetmem.store import NamespaceInfo

__all__ = [
    "Message",
    "Added",
    "Memory",
    "SearchHit",
    "SearchResult",
    "LedgerLine",
    "Cost",
    "Answer",
    "MemoryPage",
    "Forgotten",
    "Stats",
]


class Message(BaseModel):
    """One message of a conversation, stored verbatim."""

    speaker: str | None = Field(default=None, description="Who said it: 'user', 'assistant', or a name.")
    text: str = Field(min_length=1, description="What was said, verbatim.")


class Added(BaseModel):
    namespace: str
    session_id: str = Field(description="The stored session; forget_session takes it.")
    kind: Literal["chat", "document"]
    chunks_added: int = Field(description="Chunks cut from the new text (0 if it was stored before).")
    chunks_stored: int = Field(description="Of those, chunks now searchable (a write budget may archive some).")
    tokens_added: int
    already_stored: bool = Field(description="True if this exact session was stored before: nothing was added.")

    @classmethod
    def from_report(cls, report: IngestReport, kind: Literal["chat", "document"]) -> Added:
        (ns,) = report.namespaces
        stored = ns.chunks_added if ns.chunks_stored < 0 else ns.chunks_stored
        return cls(
            namespace=ns.namespace, session_id=ns.session_ids[0], kind=kind, chunks_added=ns.chunks_added,
            chunks_stored=stored, tokens_added=ns.tokens_added, already_stored=ns.sessions_skipped > 0,
        )  # fmt: skip


class Memory(BaseModel):
    """One stored chunk of text."""

    chunk_id: int = Field(description="Stable id; delete_memory takes it.")
    session_id: str
    session_date: str | None
    kind: str = Field(description="'chat' or 'document'.")
    speakers: list[str]
    n_tokens: int
    text: str

    @classmethod
    def from_chunk(cls, c: Chunk) -> Memory:
        assert c.id is not None, "stored chunks have ids"
        return cls(
            chunk_id=c.id, session_id=c.session_id, session_date=c.session_date, kind=c.kind,
            speakers=list(c.speakers), n_tokens=c.n_tokens, text=c.text,
        )  # fmt: skip


class SearchHit(Memory):
    rank: int = Field(description="1 is the best match.")
    score: float = Field(description="The retriever's score (higher is better; comparable within one search only).")

    @classmethod
    def from_hit(cls, h: Hit) -> SearchHit:
        return cls(**Memory.from_chunk(h.chunk).model_dump(), rank=h.rank, score=round(h.score, 6))


class SearchResult(BaseModel):
    namespace: str
    query: str
    hits: list[SearchHit]


class LedgerLine(BaseModel):
    """One pipeline step (a module, or the answer call) of the cost ledger."""

    step: str
    tier: str
    method: str = Field(description="rules, encoder or llm.")
    model: str | None
    calls: int = Field(description="LLM calls made.")
    prompt_tokens: int
    completion_tokens: int
    usd: float
    cached: bool = Field(description="Served from the module cache: nothing was paid this time.")
    parse_status: str


class Cost(BaseModel):
    total_usd: float = Field(description="Extraction plus answer, at list price (cache hits included).")
    extraction_usd: float
    answer_usd: float
    usd_paid: float = Field(description="What this call actually spent (cache hits cost nothing now).")
    prompt_tokens: int
    completion_tokens: int
    wall_s: float
    ledger: list[LedgerLine]
    price_sources: list[str]


class Answer(BaseModel):
    namespace: str
    question: str
    answer: str
    strategy: str
    policy: str
    cost_weight: float | None
    tiers: dict[str, str] = Field(description="The tier (LOW / MID / HIGH) each module ran at.")
    evidence: list[int] = Field(description="chunk_id of the memories the pipeline kept to answer from.")
    cost: Cost

    @classmethod
    def from_result(cls, namespace: str, r: QueryResult) -> Answer:
        steps = [*r.steps, r.answer_step]
        p, c = r.extraction_tokens
        ledger = [
            LedgerLine(
                step=s.module, tier=s.tier, method=s.method, model=s.model, calls=len(s.calls),
                prompt_tokens=s.prompt_tokens, completion_tokens=s.completion_tokens, usd=s.usd,
                cached=s.cache_hit, parse_status=s.parse_status,
            )  # fmt: skip
            for s in steps
        ]
        cost = Cost(
            total_usd=r.total_usd, extraction_usd=r.extraction_usd, answer_usd=r.answer_usd, usd_paid=r.usd_paid,
            prompt_tokens=p + r.answer_step.prompt_tokens, completion_tokens=c + r.answer_step.completion_tokens,
            wall_s=round(r.wall_s, 3), ledger=ledger,
            price_sources=sorted({call.price_source for s in steps for call in s.calls}),
        )  # fmt: skip
        return cls(
            namespace=namespace, question=r.question, answer=r.answer, strategy=r.strategy, policy=r.policy,
            cost_weight=r.cost_weight, tiers=r.tiers,
            evidence=[x.chunk.id for x in r.filtered if x.chunk.id is not None], cost=cost,
        )  # fmt: skip


class MemoryPage(BaseModel):
    namespace: str
    total: int = Field(description="Stored chunks in the namespace.")
    after: int
    memories: list[Memory] = Field(description="Oldest first.")
    next_after: int | None = Field(description="Pass as after for the next page; null on the last page.")


class Forgotten(BaseModel):
    namespace: str
    chunks: int = Field(description="Stored chunks removed for good.")
    archived: int = Field(description="Archived (budget-rejected or evicted) chunks removed for good.")
    sessions: int
    cache_entries: int = Field(description="Cached module results computed from the removed text, dropped too.")
    wiped: bool = Field(description="True when no byte of the removed text is left in the files.")

    @classmethod
    def from_report(cls, r: ForgetReport) -> Forgotten:
        return cls(
            namespace=r.namespace, chunks=r.chunks, archived=r.archived, sessions=r.sessions,
            cache_entries=r.cache_entries, wiped=r.wiped,
        )  # fmt: skip


class Stats(BaseModel):
    namespace: str
    exists: bool = Field(description="False until something is stored.")
    encoder: str | None
    sessions: int
    chunks: int = Field(description="Stored, searchable chunks.")
    tokens: int
    seen_chunks: int = Field(description="Chunks ever offered, stored or not (a write budget keeps a share).")
    archived_chunks: int
    write_policy: str = Field(description="'all' stores everything; otherwise the budgeted write policy.")
    write_budget: str | None

    @classmethod
    def from_info(cls, namespace: str, info: NamespaceInfo | None) -> Stats:
        if info is None:
            return cls(
                namespace=namespace, exists=False, encoder=None, sessions=0, chunks=0, tokens=0, seen_chunks=0,
                archived_chunks=0, write_policy="all", write_budget=None,
            )  # fmt: skip
        policy = json.loads(info.write_policy).get("policy", "all") if info.write_policy else "all"
        return cls(
            namespace=info.name, exists=True, encoder=info.encoder, sessions=info.n_sessions, chunks=info.n_chunks,
            tokens=info.n_tokens, seen_chunks=info.seen_chunks or info.n_chunks, archived_chunks=info.n_archived,
            write_policy=str(policy), write_budget=info.write_budget,
        )  # fmt: skip
