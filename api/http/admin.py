"""POST /admin/prune and POST /admin/backup: retention, compaction and a backup run inside the server,
through the engines it holds (the event store has one writer), for `devmesh prune [--compact]` and
`devmesh backup` while `devmesh serve` owns the home. A backup goes to `<home>/backups/<time>` (the
server names the folder; no caller chooses a path on the server's disk).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from api.backup import backup_home
from api.http.access import Scope, require
from api.retention import policy_from_settings, prune
from api.wiring import Services
from core.errors import EngineUnavailable, InvalidInput
from core.jsontypes import JsonBool

router = APIRouter(tags=["admin"], dependencies=[Depends(require(Scope.ADMIN))])
BACKUPS = "backups"
"""Folder under the home where the server writes backups."""


class PruneIn(BaseModel):
    """One retention run with the server's `DEVMESH_RETAIN_*` settings; unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")

    dry_run: JsonBool = Field(default=False, description="Say what would go; delete nothing.")
    compact: JsonBool = Field(
        default=False,
        description="Then rewrite the event store's file without its free blocks (DuckDB; ingestion waits for it).",
    )


class BackupIn(BaseModel):
    """A backup of every store of the home; no options (unknown fields are refused)."""

    model_config = ConfigDict(extra="forbid")


def get_services(request: Request) -> Services:
    """FastAPI dependency: the engines the application opened at start-up (`app.state.services`)."""
    svc: Services | None = getattr(request.app.state, "services", None)
    if svc is None:
        raise EngineUnavailable("DevMesh is still starting (no engines on app.state); retry in a moment")
    return svc


@router.post("/admin/prune", summary="Apply retention now (raw rows age out; counts, templates, incidents stay)")
def admin_prune(body: PruneIn, svc: Services = Depends(get_services)) -> dict[str, Any]:
    """Rows deleted per kind and reason, bytes before and after, the horizon per kind (what `devmesh prune` prints);
    with `compact`, the file's bytes before and after its rewrite."""
    compact = getattr(svc.events, "compact_in_place", None)
    if body.compact and compact is None:
        raise InvalidInput(
            "this event store (ClickHouse) merges its own parts: there is nothing to compact", field="compact"
        )
    report = prune(svc.events, policy_from_settings(svc.settings), dry_run=body.dry_run)
    if body.compact and not body.dry_run and compact is not None:
        report["compact"] = compact()
    return report


@router.post("/admin/backup", summary="Back up every store of the home into <home>/backups/<time>")
def admin_backup(body: BackupIn, svc: Services = Depends(get_services)) -> dict[str, Any]:
    """The backup's manifest (versions, counts, files with sha256) and `dir`, the folder it is in."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    dest = svc.settings.home / BACKUPS / f"{stamp}-{uuid.uuid4().hex[:6]}"
    return {"dir": str(dest), **backup_home(svc, dest)}
