"""POST /detect/run: one detection run (used by the compose worker, `devmesh detect --server`, schedulers)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.http.access import Scope, require
from api.http.deps import get_port
from api.port import DevMeshPort
from core.jsontypes import JsonBool, json_integer
from core.timeutil import LATEST_NS, NS, now_ns
from detect.runner import DetectOptions

EARLIEST_NOW_NS = 946_684_800 * NS
"""2000-01-01: detection looks back hours and days from `end_ns`, and never before 1970."""
router = APIRouter(tags=["detection"], dependencies=[Depends(require(Scope.ADMIN))])


class DetectIn(BaseModel):
    """One detection run's options; unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")

    end_ns: int | None = Field(
        default=None,
        ge=EARLIEST_NOW_NS,
        le=LATEST_NS,
        description="Treat this as now (default: the server's clock); between 2000 and 2255.",
    )
    window_s: int = Field(default=60, ge=10, le=3600, description="Width of one detection window.")
    explain: JsonBool = Field(default=True, description="Run the agents on new incidents (else only open them).")

    _json_integers = field_validator("end_ns", "window_s", mode="before")(json_integer)


@router.post("/detect/run", summary="Run detection over the windows since the previous run")
def detect_run(body: DetectIn, port: DevMeshPort = Depends(get_port)) -> dict[str, Any]:
    """New incidents are explained (unless `explain` is false) and announced as the server's own schedule does."""
    opt = DetectOptions(window_s=body.window_s, explain=body.explain)
    runs = port.detect(end_ns=body.end_ns or now_ns(), options=opt)
    return {"runs": [r.as_dict() for r in runs]}
