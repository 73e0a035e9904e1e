"""``/v1/namespaces/{ns}/search`` and ``/query``: retrieval, and the answer pipeline."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from budgetmem.pipeline.trace import QueryResult
from budgetmem.server.auth import need, service_of
from budgetmem.server.errors import ERROR_RESPONSES
from budgetmem.server.models import QueryRequest, QueryResponse, SearchHit, SearchRequest, SearchResponse
from budgetmem.server.routes.memories import Namespace

router = APIRouter(prefix="/v1/namespaces", tags=["search"], responses=ERROR_RESPONSES)


@router.post("/{ns:path}/search", response_model=SearchResponse, summary="The memories closest to a query")
async def search(ns: Namespace, body: SearchRequest, request: Request, _: Any = Depends(need("read"))) -> SearchResponse:
    service = service_of(request)
    hits = await service.requests.run(lambda: service.memory(ns).search(body.query, k=body.k, retriever=body.retriever))
    return SearchResponse(
        hits=[
            SearchHit(
                chunk_id=int(h.chunk.id or 0), score=h.score, rank=h.rank, retriever=h.retriever, text=h.chunk.text,
                session_id=h.chunk.session_id, date=h.chunk.session_date, dia_ids=list(h.chunk.dia_ids),
                speakers=list(h.chunk.speakers),
            )  # fmt: skip
            for h in hits
        ]
    )


def _answered(result: QueryResult) -> dict[str, Any]:
    d = result.to_dict()
    return {
        "answer": result.answer, "memory": result.memory, "strategy": result.strategy, "policy": result.policy,
        "tiers": result.tiers, "parse_failures": result.parse_failures, "cache": result.cache,
        "cost": {"modules": d["steps"], "answer": d["answer_step"], "totals": d["totals"], "price_sources": d["price_sources"],
                 "earlier_passes": [{"modules": x["steps"], "answer": x["answer_step"]} for x in d["passes"]]},
        "routing": {k: v for k, v in result.context.items() if k in ("routing", "escalation", "budget")},
    }  # fmt: skip


@router.post(
    "/{ns:path}/query",
    response_model=QueryResponse,
    summary="Answer a question from memory, with the cost ledger",
    description="Runs the tiered pipeline and the answer model in the query pool (the `query` scope: it costs money).",
)
async def query(ns: Namespace, body: QueryRequest, request: Request, _: Any = Depends(need("query"))) -> dict[str, Any]:
    service = service_of(request)

    def work() -> QueryResult:
        mem = service.memory(ns, body.strategy)
        result = mem.query(
            body.question, policy=body.policy, cost_weight=body.cost_weight, question_date=body.question_date,
            k=body.k, retriever=body.retriever, target_usd=body.target_usd,
        )  # fmt: skip
        service.metrics.query(ns, result)  # here, not after the await: a timed-out query still paid
        return result

    return _answered(await service.queries.run(work))
