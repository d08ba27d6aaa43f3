"""POST /detect/run: one detection run (used by the compose worker and by schedulers)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from api.http.deps import services
from api.wiring import Services
from core.timeutil import now_ns
from detect.runner import DetectOptions, run_once

router = APIRouter(tags=["detection"])


class DetectIn(BaseModel):
    end_ns: int | None = Field(default=None, description="Treat this as now (default: the server's clock).")
    window_s: int = Field(default=60, ge=10, le=3600)
    explain: bool = True


@router.post("/detect/run", summary="Run detection over the windows since the previous run")
def detect_run(body: DetectIn, svc: Services = Depends(services)) -> dict[str, Any]:
    opt = DetectOptions(window_s=body.window_s, explain=body.explain)
    runs = run_once(svc.detection(), end_ns=body.end_ns or now_ns(), options=opt)
    return {"runs": [r.as_dict() for r in runs]}
