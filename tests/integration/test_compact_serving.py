"""Compaction of the DuckDB event store inside the process that serves it: the file is rewritten without its
free blocks and swapped while appends and reads go on, and nothing acknowledged is lost or doubled."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from api.http.app import create_app
from api.wiring import Services
from core.errors import InvalidInput
from core.settings import Settings
from core.timeutil import NS, now_ns
from retrieval.events import EventStore

HOUR = 3600 * NS


def lines(tag: str, n: int, start_ns: int) -> pa.Table:
    return pa.table(
        {
            "ts_ns": pa.array([start_ns + i * 1_000_000 for i in range(n)], pa.int64()),
            "service": pa.array([f"svc-{i % 5}" for i in range(n)]),
            "level": pa.array(["INFO"] * n),
            "message": pa.array([f"{tag} {i} took {i % 977} ms for user u{i * 7919 % 100003}" for i in range(n)]),
            "template_id": pa.array([f"t{i % 3}" for i in range(n)]),
        }
    )


def count(ev: EventStore, where: str) -> int:
    _, rows = ev.sql(f"SELECT count(*) FROM logs WHERE {where}")
    return int(rows[0][0])


def test_compaction_in_place_while_appends_and_reads_go_on_loses_nothing(tmp_path: Path) -> None:
    ev = EventStore(tmp_path / "events.duckdb")
    try:
        old = now_ns() - 48 * HOUR
        for k in range(6):
            ev.append_logs(lines(f"old{k}", 20_000, old + k * 20_000 * 1_000_000))
        ev.prune_before("logs", old + 100_000 * 1_000_000)  # frees most of the blocks; 20,000 old lines stay
        ev.checkpoint_file()
        appended: list[int] = []
        reads: list[int] = []
        failures: list[BaseException] = []
        started = threading.Event()
        stop = threading.Event()

        def append_loop() -> None:
            try:
                for k in range(400):  # bounded; stops early once told
                    ev.append_logs(lines(f"new{k}", 200, now_ns() - HOUR + k * NS))
                    appended.append(k)
                    started.set()
                    if stop.is_set() and k >= 20:
                        return
            except BaseException as exc:  # reported below
                failures.append(exc)
                started.set()

        def read_loop() -> None:
            try:
                while not stop.is_set():
                    reads.append(count(ev, "message LIKE 'old%'"))
            except BaseException as exc:  # reported below
                failures.append(exc)

        threads = [threading.Thread(target=append_loop), threading.Thread(target=read_loop)]
        for t in threads:
            t.start()
        try:
            assert started.wait(60)
            report = ev.compact_in_place()
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=120)
        assert not failures
        assert not any(t.is_alive() for t in threads)
        assert report["file_bytes_after"] < report["file_bytes_before"]
        assert set(reads) == {20_000}  # every read before, during and after the swap saw the same old rows
        assert count(ev, "message LIKE 'old%'") == 20_000
        assert count(ev, "message LIKE 'new%'") == 200 * len(appended)
        _, rows = ev.sql("SELECT count(*), count(DISTINCT message) FROM logs WHERE message LIKE 'new%'")
        assert rows[0][0] == rows[0][1]  # none twice
        assert not (tmp_path / "events.duckdb.compact.d").exists()
    finally:
        ev.close()
    again = EventStore(tmp_path / "events.duckdb")  # the swapped file is the store from now on
    try:
        assert count(again, "message LIKE 'new%'") == 200 * len(appended)
    finally:
        again.close()


def test_the_store_reads_and_writes_no_file_but_its_own(tmp_path: Path) -> None:
    ev = EventStore(tmp_path / "events.duckdb")
    try:
        outside = tmp_path / "outside.duckdb"
        with pytest.raises(duckdb.Error, match="disabled by configuration"), ev._db.write() as cur:
            cur.execute("ATTACH ? AS elsewhere", [str(outside)])
        assert not outside.exists()
        with pytest.raises(duckdb.Error), ev._db.write() as cur:
            cur.execute("SET enable_external_access = true")
    finally:
        ev.close()
    memory = EventStore(None)
    try:
        with pytest.raises(InvalidInput, match="in-memory"):
            memory.compact_in_place()
    finally:
        memory.close()


def test_prune_compact_through_the_server_while_it_ingests(
    settings: Settings, open_fn: Callable[[Settings], Services]
) -> None:
    now = now_ns()
    acked: list[str] = []
    failures: list[Any] = []
    with TestClient(create_app(settings, open_fn=open_fn)) as client:
        svc: Services = client.app.state.services  # type: ignore[attr-defined]
        svc.events.append_logs(lines("old", 50_000, now - 48 * HOUR))
        svc.events.prune_before("logs", now - 24 * HOUR)
        started = threading.Event()

        def ingest_loop() -> None:
            try:
                for batch in range(40):
                    events = [
                        {"timestamp": (now - 60 * NS + (batch * 50 + i) * 1000) // 1000, "message": f"new {batch}-{i}"}
                        for i in range(50)
                    ]
                    r = client.post("/ingest/logs", json=events)
                    if r.status_code == 200:
                        acked.extend(str(e["message"]) for e in events)
                    started.set()
            except BaseException as exc:  # reported below
                failures.append(exc)
                started.set()

        writer = threading.Thread(target=ingest_loop)
        writer.start()
        try:
            assert started.wait(120)
            r = client.post("/admin/prune", json={"compact": True})
        finally:
            writer.join(timeout=180)
        assert not failures and not writer.is_alive()
        assert r.status_code == 200, r.text
        compacted = r.json()["compact"]
        assert compacted["file_bytes_after"] < compacted["file_bytes_before"]
        assert len(acked) == 2000
        _, rows = svc.events.sql("SELECT message FROM logs WHERE message LIKE 'new %'", limit=10_000)
        assert sorted(str(r[0]) for r in rows) == sorted(acked)
        assert client.post("/admin/prune", json={"compact": True, "dry_run": True}).json().get("compact") is None
