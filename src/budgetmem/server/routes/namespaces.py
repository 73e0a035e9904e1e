"""``/v1/namespaces/{ns}``: stats, forget a session, forget the whole namespace.

Included last: ``DELETE /v1/namespaces/{ns}`` would otherwise also match the paths of the
more specific routes (a namespace may contain '/')."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request

from budgetmem.server.auth import need, service_of
from budgetmem.server.errors import ERROR_RESPONSES
from budgetmem.server.models import SESSION_PATTERN, ForgetResult, NamespaceStats
from budgetmem.server.routes.memories import Namespace

router = APIRouter(prefix="/v1/namespaces", tags=["namespaces"], responses=ERROR_RESPONSES)


@router.get("/{ns:path}/stats", response_model=NamespaceStats, summary="Stored vs seen, archive, write policy")
async def stats(ns: Namespace, request: Request, _: Any = Depends(need("read"))) -> dict[str, Any]:
    service = service_of(request)
    return await service.requests.run(lambda: service.memory(ns).stats())


@router.delete(
    "/{ns:path}/sessions/{session_id}", response_model=ForgetResult, summary="Forget every memory of a session"
)
async def forget_session(
    ns: Namespace,
    session_id: Annotated[str, Path(pattern=SESSION_PATTERN)],
    request: Request,
    _: Any = Depends(need("write")),
) -> dict[str, Any]:
    service = service_of(request)
    report = await service.requests.run(lambda: service.memory(ns).forget_session(session_id))
    return report.to_dict()


@router.delete("/{ns:path}", response_model=ForgetResult, summary="Forget the whole namespace for good")
async def forget(ns: Namespace, request: Request, _: Any = Depends(need("write"))) -> dict[str, Any]:
    service = service_of(request)
    report = await service.requests.run(lambda: service.memory(ns).forget())
    return report.to_dict()
