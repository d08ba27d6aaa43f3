"""GET /health and GET /info."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from api.http.deps import services
from api.info import backend_info
from api.wiring import Services

router = APIRouter(tags=["meta"])


@router.get("/health", summary="Liveness and engine reachability")
def health(svc: Services = Depends(services)) -> dict[str, Any]:
    checks = {"events": svc.events.ping()}
    if svc.graph is not None:
        checks["graph"] = svc.graph.ping()
    if svc.vectors is not None:
        checks["vectors"] = bool(svc.vectors.collections() is not None)
    return {"status": "ok" if all(checks.values()) else "degraded", "checks": checks}


@router.get("/info", summary="Versions, backends and counts")
def info(svc: Services = Depends(services)) -> dict[str, Any]:
    return backend_info(svc)
