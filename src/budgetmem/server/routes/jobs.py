"""``/v1/jobs/{job_id}``: the status of a background ingest."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request

from budgetmem.errors import NotFoundError
from budgetmem.server.auth import need, service_of
from budgetmem.server.errors import ERROR_RESPONSES
from budgetmem.server.models import JobInfo
from budgetmem.store.keys import KeyInfo

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=ERROR_RESPONSES)


@router.get("/{job_id}", response_model=JobInfo, summary="Status and result of a background add")
async def job(
    job_id: Annotated[str, Path(pattern=r"^[0-9a-f]{24}$")], request: Request, key: KeyInfo = Depends(need(None))
) -> dict[str, Any]:
    found = service_of(request).jobs.get(job_id)
    # Another namespace's job is reported missing, not forbidden: its existence is not ours to know.
    if found is None or not (key.allows(found.namespace, "read") or key.allows(found.namespace, "write")):
        raise NotFoundError(f"no job {job_id}", hint="the id is wrong, or the job is older than the last 1,000 finished ones")
    return found.to_dict()
