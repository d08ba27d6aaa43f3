"""`devmesh backup` and `devmesh prune` while a live server on loopback owns the home and keeps ingesting:
the CLI goes through the server's admin routes, and the backup restores into a fresh home with every event
acknowledged before it was taken."""

from __future__ import annotations

import threading
from typing import Any

import httpx

from api.backup import verify_backup
from core.settings import Settings
from core.timeutil import NS, now_ns
from retrieval.events import EventStore
from tests.cli import devmesh, out
from tests.conftest import LiveServer


def batch(tag: str, n: int, t0: int) -> list[dict[str, Any]]:
    return [{"timestamp": (t0 + i * NS) // 1000, "message": f"{tag} {i}", "service": "jobs"} for i in range(n)]


def test_backup_and_prune_through_a_running_server(settings: Settings, live_server: LiveServer) -> None:
    t0 = now_ns() - 3600 * NS
    before = batch("before", 200, t0)
    assert httpx.post(f"{live_server.url}/ingest/logs", json=before, timeout=60).status_code == 200
    stop = threading.Event()
    acked_during: list[int] = []

    def keep_ingesting() -> None:
        k = 0
        while not stop.is_set() and k < 200:
            r = httpx.post(f"{live_server.url}/ingest/logs", json=batch(f"during{k}", 20, t0 + 10**12), timeout=60)
            acked_during.append(r.status_code)
            k += 1

    writer = threading.Thread(target=keep_ingesting)
    writer.start()
    try:
        dest = settings.home.parent / "backup"
        manifest = out(devmesh(settings, "backup", str(dest), "--server", live_server.url, "--json"))
    finally:
        stop.set()
        writer.join(timeout=120)
    assert set(acked_during) <= {200}
    assert manifest["taken_by"] == "server"  # the server holds the event store: it took the backup
    assert verify_backup(dest)["counts"]["events"]["logs"] == manifest["counts"]["events"]["logs"] >= 200
    assert not (settings.home / "backups").exists() or not any((settings.home / "backups").iterdir())

    copy = EventStore(dest / "events.duckdb")  # the backup's event store opens, and holds every line acked before
    try:
        _, rows = copy.sql("SELECT count(*) FROM logs WHERE message LIKE 'before %'")
        assert rows[0][0] == 200
    finally:
        copy.close()

    dry = out(devmesh(settings, "prune", "--dry-run", "--server", live_server.url, "--json"))
    assert dry["dry_run"] is True and dry["actions"] == []  # everything is younger than DEVMESH_RETAIN_LOGS
    refused = devmesh(settings, "prune", "--logs", "1m", "--server", live_server.url, "--json", expect=1)
    assert b"goes through it" in refused.stderr

    compacted = out(devmesh(settings, "prune", "--compact", "--server", live_server.url, "--json"))["compact"]
    assert compacted["file_bytes_after"] > 0  # done inside the server, which holds the file
    r = httpx.post(f"{live_server.url}/ingest/logs", json=batch("after", 10, t0 + 2 * 10**12), timeout=60)
    assert r.status_code == 200  # the server goes on writing to the compacted file
    page = httpx.get(f"{live_server.url}/query/logs", params={"contains": "after ", "limit": 100}, timeout=60).json()
    assert sorted(e["message"] for e in page["events"]) == sorted(f"after {i}" for i in range(10))
