"""GET /health and GET /info."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from api.http.access import Scope, require
from api.http.deps import get_port
from api.port import DevMeshPort

router = APIRouter(tags=["meta"])


@router.get(
    "/health",
    summary="Liveness and engine reachability",
    responses={503: {"description": "An engine does not answer (status 'degraded')"}},
)
def health(port: DevMeshPort = Depends(get_port)) -> JSONResponse:
    checks = port.health()
    ok = all(checks.values())
    body = {"status": "ok" if ok else "degraded", "checks": checks, "engines": port.engines(), "owed": port.owed()}
    return JSONResponse(body, status_code=200 if ok else 503)


@router.get("/info", summary="Versions, backends and counts", dependencies=[Depends(require(Scope.READ))])
def info(port: DevMeshPort = Depends(get_port)) -> dict[str, Any]:
    return port.info()
