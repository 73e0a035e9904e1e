"""``/v1/namespaces/{ns}``: stats, forget a session, forget the whole namespace.

Included last: ``DELETE /v1/namespaces/{ns}`` would otherwise also match the paths of the
more specific routes (a namespace may contain '/'). What it still matches after them is a
method a resource does not have (``DELETE .../search``): that is a 405, not a namespace
named ``x/search``. Such a namespace is forgotten with the CLI."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request

from budgetmem.server.auth import need, service_of
from budgetmem.server.errors import ERROR_RESPONSES
from budgetmem.server.models import SESSION_PATTERN, ForgetResult, NamespaceStats
from budgetmem.server.routes.memories import Namespace

router = APIRouter(prefix="/v1/namespaces", tags=["namespaces"], responses=ERROR_RESPONSES)

_RESOURCES = {"memories": "GET, POST", "search": "POST", "query": "POST", "stats": "GET", "sessions": ""}
"""The last path segments of the namespace's resources, and the methods each one has."""


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
    parent, _sep, last = ns.rpartition("/")
    if parent and last in _RESOURCES:
        raise HTTPException(405, f"DELETE is not a method of {last}", headers={"Allow": _RESOURCES[last]})
    service = service_of(request)
    report = await service.requests.run(lambda: service.memory(ns).forget())
    return report.to_dict()
