"""A small three-service incident whose ranking has a propagation path: frontend -> api -> db, one request
every 2 s, db's own time goes from ~5 ms to ~80 ms at `ALERT` (the chain of tests/unit/test_ranking.py's
latency case), db's CPU climbs with it, db prints a few timeout lines and its pod restarts once (a systemd
crash-loop line, then a new pod db-1). The ranking puts db first with the path [db -> api -> frontend].

Deterministic (seeded); made up for the tests, Apache-2.0 as the repository. `ingest_chain` stores it through
a pipeline (rows as the event store holds them); the constants say where it sits in time.
"""

from __future__ import annotations

import random
from typing import Any

from core.timeutil import NS
from ingest import batch
from tests.spans import span

ALERT = 1_675_000_800 * NS  # 2023-01-29T14:00:00Z: hours after the bundled Nezha sample's fault
BASE_S = 1200
"""Ordinary traffic this long before ALERT."""
FAULT_S = 300
"""The slow db from ALERT on, this long."""
RESTART_NS = ALERT + 120 * NS
"""db-0 crashes here; db-1 takes over."""
STEP_S = 2


def _requests(t0: int, n: int, *, db_ms: float, seed: int, prefix: str) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    out: list[dict[str, Any]] = []
    for i in range(n):
        trace = f"{prefix}{i:05d}".ljust(32, "0")
        s = t0 + i * STEP_S * NS
        db = db_ms * 1000 * (1 + 0.1 * rnd.random())
        gap = 300 + 50 * rnd.random()
        api = 2000 + 200 * rnd.random() + gap + db
        fe = 1000 + 100 * rnd.random() + gap + api
        db_pod = "db-1" if s >= RESTART_NS else "db-0"
        out.append(span(trace, "f1", "", "frontend", "GET /", s, fe))
        out.append(span(trace, "f2", "f1", "frontend", "HTTP GET", s + 500_000, gap + api))
        out.append(span(trace, "a1", "f2", "api", "/api/items", s + 600_000, api))
        out.append(span(trace, "a2", "a1", "api", "HTTP GET", s + 1_000_000, gap + db))
        out.append({**span(trace, "d1", "a2", "db", "/query", s + 1_100_000, db), "pod": db_pod})
    return out


def spans() -> list[dict[str, Any]]:
    base = _requests(ALERT - BASE_S * NS, BASE_S // STEP_S, db_ms=5, seed=1, prefix="b")
    return base + _requests(ALERT, FAULT_S // STEP_S, db_ms=80, seed=2, prefix="w")


def _log(ts: int, service: str, pod: str, level: str, message: str) -> dict[str, Any]:
    return {"ts_ns": ts, "service": service, "pod": pod, "host": "node-1", "level": level, "message": message}


def logs() -> list[dict[str, Any]]:
    out = [
        _log(ALERT - BASE_S * NS + i * 30 * NS, "db", "db-0", "INFO", f"checkpoint complete: wrote {i} buffers")
        for i in range(BASE_S // 30)
    ]
    out += [_log(ALERT + i * 20 * NS, "db", "db-0", "ERROR", f"query timeout after {80 + i} ms") for i in range(6)]
    out.append(_log(RESTART_NS, "db", "db-0", "ERROR", "db.service: Main process exited, code=killed, status=9/KILL"))
    out.append(_log(RESTART_NS + 5 * NS, "db", "db-1", "INFO", "database system is ready to accept connections"))
    return out


def metrics() -> list[dict[str, Any]]:
    rnd = random.Random(3)
    out = []
    for i in range((BASE_S + FAULT_S) // 30):
        ts = ALERT - BASE_S * NS + i * 30 * NS
        busy = ts >= ALERT
        pod = "db-1" if ts >= RESTART_NS else "db-0"
        cpu = (90 if busy else 10) + rnd.random()
        out.append({"ts_ns": ts, "name": "cpu_usage_rate", "value": cpu, "service": "db", "pod": pod, "host": "node-1"})
        mem = 500 + rnd.random() * 5
        out.append({"ts_ns": ts, "name": "memory_usage", "value": mem, "service": "db", "pod": pod, "host": "node-1"})
    return out


def columns(kind: batch.Kind, rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    cols = batch.empty(kind)
    for r in rows:
        batch.append_row(cols, r)
    return cols


def ingest_chain(pipeline: Any) -> None:
    """Store the incident's spans, metrics and logs through `pipeline` (an `ingest.pipeline.Pipeline`)."""
    pipeline.ingest_spans(columns("spans", spans()))
    pipeline.ingest_metrics(columns("metrics", metrics()))
    pipeline.ingest_logs(columns("logs", logs()), embed=False)
    pipeline.refresh_topology()
