"""Closing the engines twice (a context manager and an explicit close, or two shutdown paths) does nothing the
second time: the pipeline's state is not saved into a closed store."""

from __future__ import annotations

from pathlib import Path

from api.wiring import open_services
from core.settings import Settings
from ingest import batch


def test_closing_twice_is_harmless(tmp_path: Path) -> None:
    svc = open_services(Settings(home=tmp_path, embedder="none"), graph=False, vectors=False)
    cols = batch.empty("logs")
    batch.append_row(cols, {"ts_ns": 1_700_000_000_000_000_000, "service": "api", "message": "up", "level": "INFO"})
    svc.pipeline.ingest_logs(cols, embed=False)
    svc.close()
    svc.close()
    with open_services(Settings(home=tmp_path, embedder="none"), graph=False, vectors=False) as again:
        assert again.events.stats()["tables"]["logs"]["rows"] == 1
