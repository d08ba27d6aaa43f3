"""GET /health and GET /info."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from api.http.deps import services
from api.info import backend_info
from api.wiring import Services

router = APIRouter(tags=["meta"])
log = logging.getLogger(__name__)


def _reachable(name: str, probe: Callable[[], Any]) -> bool:
    """Whether one engine answers a trivial request (any failure is 'no', logged)."""
    try:
        probe()
    except Exception as exc:  # a health check reports failures, it does not raise them
        log.warning("health check failed", extra={"engine": name, "error": repr(exc)})
        return False
    return True


@router.get(
    "/health",
    summary="Liveness and engine reachability",
    responses={503: {"description": "An engine does not answer (status 'degraded')"}},
)
def health(svc: Services = Depends(services)) -> JSONResponse:
    checks = {"events": _reachable("events", lambda: svc.events.sql("SELECT 1", limit=1))}
    if svc.graph is not None:
        graph = svc.graph
        checks["graph"] = _reachable("graph", lambda: graph.graph.ro_query("RETURN 1"))
    if svc.vectors is not None:
        vectors = svc.vectors
        checks["vectors"] = _reachable("vectors", vectors.collections)
    ok = all(checks.values())
    return JSONResponse({"status": "ok" if ok else "degraded", "checks": checks}, status_code=200 if ok else 503)


@router.get("/info", summary="Versions, backends and counts")
def info(svc: Services = Depends(services)) -> dict[str, Any]:
    return backend_info(svc)
