"""``/v1/namespaces/{ns}/memories``: add a session or document, list, get, delete."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse

from budgetmem.ingest import Chunk
from budgetmem.ingest.ingest import IngestReport
from budgetmem.memory import BudgetMem
from budgetmem.server.auth import need, service_of
from budgetmem.server.errors import ERROR_RESPONSES
from budgetmem.server.models import (
    NAMESPACE_PATTERN,
    AddDocument,
    AddResult,
    AddSession,
    ForgetResult,
    JobInfo,
    Memory,
    MemoryPage,
)

router = APIRouter(prefix="/v1/namespaces", tags=["memories"], responses=ERROR_RESPONSES)

Namespace = Annotated[str, Path(pattern=NAMESPACE_PATTERN, description="e.g. alice or alice/work")]
ChunkId = Annotated[int, Path(ge=1, le=2**62, description="As search and list report it")]


def memory_of(c: Chunk) -> Memory:
    return Memory(
        chunk_id=int(c.id or 0), session_id=c.session_id, date=c.session_date, position=c.position, kind=c.kind,
        text=c.text, n_tokens=c.n_tokens, dia_ids=list(c.dia_ids), speakers=list(c.speakers), source=c.source,
    )  # fmt: skip


def _added(report: IngestReport) -> dict[str, Any]:
    (r,) = report.namespaces
    return AddResult(
        namespace=r.namespace, session_id=r.session_ids[0], sessions_added=r.sessions_added,
        sessions_skipped=r.sessions_skipped, chunks_added=r.chunks_added,
        chunks_stored=r.chunks_added if r.chunks_stored < 0 else r.chunks_stored,
        chunks_evicted=r.chunks_evicted, tokens_added=r.tokens_added, write_policy=r.write_policy,
    ).model_dump()  # fmt: skip


def _add(mem: BudgetMem, body: AddSession | AddDocument) -> dict[str, Any]:
    if isinstance(body, AddDocument):
        return _added(mem.add_document(body.document, document_id=body.session_id, date_time=body.date))
    turns = [(m.speaker, m.text) if m.speaker else m.text for m in body.messages]
    return _added(mem.add_session(turns, session_id=body.session_id, date_time=body.date))


@router.post(
    "/{ns:path}/memories",
    status_code=201,
    response_model=AddResult,
    summary="Add a session or a document",
    responses={
        200: {"model": AddResult, "description": "Already stored (same session id and content): nothing added"},
        202: {
            "model": JobInfo,
            "description": "A large body: ingesting in the background, see GET /v1/jobs/{job_id}",
            "headers": {"Location": {"schema": {"type": "string"}, "description": "The job's URL"}},
        },
    },
)
async def add(
    ns: Namespace, body: AddSession | AddDocument, request: Request, response: Response, _: Any = Depends(need("write"))
) -> Any:
    service = service_of(request)

    def work() -> dict[str, Any]:
        return _add(service.memory(ns, create=True), body)

    if len(await request.body()) > service.settings.server.async_body:
        job = service.jobs.submit(ns, work)
        url = f"/v1/jobs/{job.job_id}"
        return JSONResponse(JobInfo(**job.to_dict()).model_dump(), status_code=202, headers={"Location": url})
    result = await service.requests.run(work)
    if not result["sessions_added"]:
        response.status_code = 200
    return result


@router.get("/{ns:path}/memories", response_model=MemoryPage, summary="List stored memories, oldest first")
async def list_memories(
    ns: Namespace,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(pattern=r"^[0-9]{1,18}$", description="next_cursor of the page before")] = None,
    session_id: Annotated[str | None, Query(max_length=128, description="Only this session's memories")] = None,
    _: Any = Depends(need("read")),
) -> MemoryPage:
    service = service_of(request)
    after = int(cursor or 0)
    chunks = await service.requests.run(
        lambda: service.memory(ns).memories(after=after, limit=limit, session_id=session_id)
    )
    full = len(chunks) == limit
    return MemoryPage(memories=[memory_of(c) for c in chunks], next_cursor=str(chunks[-1].id) if full else None)


@router.get("/{ns:path}/memories/{chunk_id:int}", response_model=Memory, summary="One stored memory")
async def get_memory(ns: Namespace, chunk_id: ChunkId, request: Request, _: Any = Depends(need("read"))) -> Memory:
    service = service_of(request)
    return memory_of(await service.requests.run(lambda: service.memory(ns).memory(chunk_id)))


@router.delete("/{ns:path}/memories/{chunk_id:int}", response_model=ForgetResult, summary="Forget one memory for good")
async def delete_memory(
    ns: Namespace, chunk_id: ChunkId, request: Request, _: Any = Depends(need("write"))
) -> dict[str, Any]:
    service = service_of(request)
    report = await service.requests.run(lambda: service.memory(ns).delete(chunk_id))
    return report.to_dict()
