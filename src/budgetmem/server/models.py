"""Request and response bodies of the REST service, declared once: they are the OpenAPI schema.

Constraints live here rather than in handlers, so a request the schema accepts is one the
library can serve (an empty text, an unknown policy or a ``router:`` path never reaches it).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from budgetmem.store.keys import NAMESPACE_PATTERN

__all__ = [
    "NAMESPACE_PATTERN",
    "SESSION_PATTERN",
    "POLICY_PATTERN",
    "ErrorInfo",
    "ErrorBody",
    "Message",
    "AddSession",
    "AddDocument",
    "AddResult",
    "JobInfo",
    "SearchRequest",
    "SearchHit",
    "SearchResponse",
    "QueryRequest",
    "QueryResponse",
    "Memory",
    "MemoryPage",
    "ForgetResult",
    "NamespaceStats",
    "Health",
]

SESSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,127}$"
"""Session ids travel in URL paths (DELETE .../sessions/{id}): no '/' and no spaces."""
_MODULE = "(filter|entity|temporal|topic|summary)"
_MAP = rf"(low|mid|high)(,{_MODULE}=(low|mid|high)){{0,5}}"
# Fixed maps, random, the packaged rule router, and escalation between those (no file paths:
# a request never names a file on the server; routers and rules files come from --policy).
POLICY_PATTERN = rf"^(random|rules|{_MAP}|escalate:(rules|{_MAP})>(rules|{_MAP})@(0|1|0?\.[0-9]+|1\.0+))$"
"""A default tier, then per-module tiers: ``mid`` or ``low,filter=high,summary=high``.
Learned routers (``router:PATH``) load files, so only the server's own --policy names one."""
_TEXT = r"\S"
"""Some non-blank character (JSON Schema patterns match anywhere in the string)."""


def _whole(value: Any) -> Any:
    # JSON Schema counts 5.0 as an integer; strict pydantic would not.
    return int(value) if isinstance(value, float) and value.is_integer() else value


TopK = Annotated[
    int, BeforeValidator(_whole), Field(ge=1, le=100), WithJsonSchema({"type": "integer", "minimum": 1, "maximum": 100})
]
"""The schema is spelled out: pydantic writes the bounds of a validated int as 'ge'/'le'."""


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # JSON types as declared: false is not 0


class ErrorInfo(BaseModel):
    type: str = Field(description="The library's error class, e.g. NotFoundError (budgetmem.errors)")
    message: str
    hint: str | None = None
    details: list[dict[str, Any]] | None = Field(None, description="Per-field problems of a request that failed validation")


class ErrorBody(BaseModel):
    error: ErrorInfo


# ---------------------------------------------------------------------------- writes
class Message(_Body):
    speaker: str | None = Field(None, max_length=200)
    text: str = Field(min_length=1, pattern=_TEXT)


class AddSession(_Body):
    """One chat session. Adding the same session again (same id, date and messages) stores
    nothing new, so a retried request never duplicates it."""

    messages: list[Message] = Field(min_length=1)
    session_id: str | None = Field(None, pattern=SESSION_PATTERN, description="Default: derived from the content")
    date: str | None = Field(None, max_length=100, description="When the session happened, as the source writes it")


class AddDocument(_Body):
    """One document; its paragraphs become the session's turns."""

    document: str = Field(min_length=1, pattern=_TEXT)
    session_id: str | None = Field(None, pattern=SESSION_PATTERN, description="Default: derived from the content")
    date: str | None = Field(None, max_length=100)


class AddResult(BaseModel):
    namespace: str
    session_id: str
    sessions_added: int
    sessions_skipped: int = Field(description="1 when this session was already stored (nothing was added)")
    chunks_added: int = Field(description="Chunks offered to the write policy")
    chunks_stored: int = Field(description="Of those, chunks stored live (the rest archived by a write budget)")
    chunks_evicted: int = Field(description="Chunks stored earlier that the write budget moved to the archive")
    tokens_added: int
    write_policy: str


class JobInfo(BaseModel):
    job_id: str
    namespace: str
    status: Literal["queued", "running", "done", "failed"]
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    result: AddResult | None = None
    error: ErrorInfo | None = None


# ---------------------------------------------------------------------------- reads
class SearchRequest(_Body):
    query: str = Field(min_length=1, max_length=10_000, pattern=_TEXT)
    k: TopK | None = Field(None, description="Hits wanted (default: the server's top_k)")
    retriever: Literal["dense", "bm25", "hybrid"] | None = None


class SearchHit(BaseModel):
    chunk_id: int
    score: float
    rank: int
    retriever: str
    text: str
    session_id: str
    date: str | None
    dia_ids: list[str]
    speakers: list[str]


class SearchResponse(BaseModel):
    hits: list[SearchHit]


class Memory(BaseModel):
    chunk_id: int
    session_id: str
    date: str | None
    position: int
    kind: str
    text: str
    n_tokens: int
    dia_ids: list[str]
    speakers: list[str]
    source: str


class MemoryPage(BaseModel):
    memories: list[Memory]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null on the last one")


class ForgetResult(BaseModel):
    namespace: str
    chunks: int
    archived: int
    sessions: int
    cache_entries: int
    namespace_removed: bool
    wiped: bool = Field(description="False while another reader's snapshot kept old pages in a WAL")


class NamespaceStats(BaseModel):
    namespace: str
    encoder: str
    sessions: int
    seen_chunks: int
    stored_chunks: int
    seen_tokens: int
    stored_tokens: int
    archived_chunks: int
    archived_tokens: int
    saved_chunks_pct: float
    saved_tokens_pct: float
    write_policy: dict[str, Any]
    write_budget: str | None


# ---------------------------------------------------------------------------- query
class QueryRequest(_Body):
    question: str = Field(min_length=1, max_length=10_000, pattern=_TEXT)
    strategy: Literal["implementation", "reasoning", "capacity"] | None = None
    policy: str | None = Field(None, pattern=POLICY_PATTERN, description="Default: the server's --policy")
    cost_weight: float | None = Field(None, ge=0, le=1e6, description="The performance-cost knob handed to learned routers")
    target_usd: float | None = Field(
        None, gt=0, le=1e6,
        description="Target-cost mode: mean extraction USD per query for this namespace, kept by a controller whose "
        "state persists in the store; needs a router family (the server's --policy router:DIR) or an escalation policy",
    )  # fmt: skip
    question_date: str | None = Field(None, max_length=100)
    k: TopK | None = Field(None, description="Candidates retrieved for the pipeline (default: the server's top_k)")
    retriever: Literal["dense", "bm25", "hybrid"] | None = None


class Call(BaseModel):
    purpose: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    usd: float
    latency_s: float
    price_source: str


class Step(BaseModel):
    module: str
    tier: str
    strategy: str
    method: str
    model: str | None
    calls: list[Call]
    prompt_tokens: int
    completion_tokens: int
    usd: float
    usd_paid: float = Field(description="Zero when the module cache answered")
    wall_s: float
    cpu_s: float
    parse_status: str
    fallback: str | None
    raw_output: str | None
    note: str | None
    cache_hit: bool


class CostTotals(BaseModel):
    extraction_usd: float
    answer_usd: float
    total_usd: float
    usd_paid: float
    extraction_prompt_tokens: int
    extraction_completion_tokens: int
    answer_prompt_tokens: int
    answer_completion_tokens: int
    wall_s: float
    retrieval_s: float
    llm_s: float


class PassCost(BaseModel):
    """One earlier pass of a query: its module lines and answer call."""

    modules: list[Step]
    answer: Step


class Cost(BaseModel):
    """The query's full ledger: one line per module, the answer call, and the totals."""

    modules: list[Step]
    answer: Step
    totals: CostTotals
    """Over every pass of the query (escalation runs two)."""
    price_sources: list[str]
    earlier_passes: list[PassCost] = Field(
        default_factory=list, description="Passes run before the final one (escalation's cheap pass), each paid"
    )


class ParseFailure(BaseModel):
    module: str
    tier: str
    fallback: str | None
    raw_output: str | None


class QueryResponse(BaseModel):
    answer: str
    memory: str
    strategy: str
    policy: str
    tiers: dict[str, str]
    cost: Cost
    parse_failures: list[ParseFailure]
    cache: dict[str, int] = Field(description="Module-cache hits and misses of this query")
    routing: dict[str, Any] = Field(
        default_factory=dict,
        description="How the policy routed: the rule router's question type and map row (routing), escalation's "
        "confidence and decision (escalation), the target-cost controller's knob and spend (budget)",
    )


class Health(BaseModel):
    status: Literal["ok"]
    version: str
