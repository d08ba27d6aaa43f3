"""POST /detect/run: one detection run (used by the compose worker, `devmesh detect --server`, schedulers)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from api.http.access import Scope, require
from api.http.deps import get_port
from api.port import DevMeshPort
from core.timeutil import MAX_NS, now_ns
from detect.runner import DetectOptions

router = APIRouter(tags=["detection"], dependencies=[Depends(require(Scope.ADMIN))])


class DetectIn(BaseModel):
    """One detection run's options; unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")

    end_ns: int | None = Field(
        default=None, gt=0, le=MAX_NS, description="Treat this as now (default: the server's clock)."
    )
    window_s: int = Field(default=60, ge=10, le=3600, description="Width of one detection window.")
    explain: bool = Field(default=True, description="Run the agents on new incidents (else only open them).")


@router.post("/detect/run", summary="Run detection over the windows since the previous run")
def detect_run(body: DetectIn, port: DevMeshPort = Depends(get_port)) -> dict[str, Any]:
    """New incidents are explained (unless `explain` is false) and announced as the server's own schedule does."""
    opt = DetectOptions(window_s=body.window_s, explain=body.explain)
    runs = port.detect(end_ns=body.end_ns or now_ns(), options=opt)
    return {"runs": [r.as_dict() for r in runs]}
