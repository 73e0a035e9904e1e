"""``/healthz`` (no key), ``/metrics`` (the ``metrics`` scope) and ``/openapi.json`` (any key)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from budgetmem.server.auth import need, service_of
from budgetmem.server.errors import ERROR_RESPONSES
from budgetmem.server.metrics import CONTENT_TYPE_LATEST
from budgetmem.server.models import Health

router = APIRouter(tags=["service"])


@router.get("/healthz", response_model=Health, summary="Liveness (no key needed)")
async def healthz() -> Health:
    from budgetmem import __version__

    return Health(status="ok", version=__version__)


@router.get(
    "/metrics",
    summary="Prometheus metrics (a key with the metrics scope)",
    response_class=Response,
    responses={**ERROR_RESPONSES, 200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request, _: Any = Depends(need("metrics"))) -> Response:
    return Response(service_of(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)


@router.get("/openapi.json", include_in_schema=False)
async def openapi(request: Request, _: Any = Depends(need(None))) -> JSONResponse:
    return JSONResponse(request.app.openapi())
