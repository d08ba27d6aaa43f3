"""A small synthetic incident for the case-bundle tests, and the bundle exported from it.

A home lab: `postgres` on host db-1 runs out of disk at 10:00:00 (journald), `api` on api-1 loses its
database connections from 10:00:30 (journald), `web` on web-1 (OTLP logs, spans, metrics) fails its
requests to `api`; db-1 reports its disk filling up (an OTLP gauge). The call api -> postgres is only
declared (topology), web -> api is seen in spans. One api line carries a password, one web log record
an Authorization header. The question is asked at 10:02:00; some telemetry comes after it.

`tests/data/cases/homelab-disk-full/` is `write_bundle` of this store (see its README); a test checks that
exporting again writes the same lines.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from api.wiring import open_services
from core.settings import Settings
from core.telemetry import Topology
from core.timeutil import NS
from ingest.cases import ExportReport, ExportSpec, export_case
from ingest.devmesh_json import Limits
from ingest.journald import parse_journald
from ingest.otlp import parse_logs, parse_metrics, parse_traces
from ingest.pipeline import Pipeline
from ingest.topology_yaml import parse_topology

T0 = 1_740_823_200 * NS  # 2025-03-01T10:00:00Z, when the disk fills up
ASKED = T0 + 120 * NS  # 10:02:00
BEFORE_S, AFTER_S = 600, 300  # the bundle holds 09:52:00 .. 10:07:00
NOW = T0 + 86_400 * NS
LIMITS = Limits(max_events=10_000, max_message_chars=65_536, min_year=2000, max_future_skew_s=86_400)
BUNDLE = Path(__file__).resolve().parent / "data" / "cases" / "homelab-disk-full"
SECRET = "hunter2-Sup3r"
BEARER = "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ3ZWIifQ.c2lnbmF0dXJl"
DECLARED = {
    "services": [
        {"name": "api", "calls": ["postgres"]},
        {"name": "postgres", "pods": [{"name": "pg-0", "node": "db-1"}]},
    ]
}


def journal(ts_ns: int, host: str, ident: str, priority: int, message: str, **extra: str) -> str:
    doc = {
        "__REALTIME_TIMESTAMP": str(ts_ns // 1000),
        "_HOSTNAME": host,
        "SYSLOG_IDENTIFIER": ident,
        "PRIORITY": str(priority),
        "MESSAGE": message,
        **extra,
    }
    return json.dumps(doc)


def journal_lines() -> list[str]:
    """30 journald lines: postgres 1 + 5 + 12 + 1 (db-1), api 1 + 10 (api-1); the first before the window,
    4 after ASKED."""
    pg = {"_SYSTEMD_UNIT": "postgresql.service", "_PID": "812"}
    nospace = 'could not write to file "pg_wal/xlogtemp.812": No space left on device'
    lines = [journal(T0 - 1200 * NS, "db-1", "postgres", 6, "database system is ready", **pg)]  # 09:40, outside
    lines += [journal(T0 - (300 - 60 * i) * NS, "db-1", "postgres", 6, "checkpoint complete", **pg) for i in range(5)]
    lines += [journal(T0 + 10 * i * NS, "db-1", "postgres", 3, nospace, **pg) for i in range(12)]  # 10:00:00..10:01:50
    lines += [journal(T0 + 150 * NS, "db-1", "postgres", 2, f"PANIC: {nospace}", **pg)]  # 10:02:30
    lines += [journal(T0 - 120 * NS, "api-1", "api", 6, f"connected to db-1:5432 as app password={SECRET}")]
    refused = "connection to server at db-1:5432 failed: server closed the connection unexpectedly"
    lines += [journal(T0 + (30 + 15 * i) * NS, "api-1", "api", 3, refused) for i in range(10)]  # 10:00:30..10:02:45
    return lines


def _resource(service: str, host: str) -> dict[str, Any]:
    kv = [("service.name", service), ("host.name", host)]
    return {"attributes": [{"key": k, "value": {"stringValue": v}} for k, v in kv if v]}


def web_logs() -> dict[str, Any]:
    """Five web log records: 09:59, 10:00:40, 10:01:20, 10:02:00 (at ASKED), 10:03:00."""
    records = []
    for minute_s, status in ((-60, 200), (40, 502), (80, 502), (120, 502), (180, 502)):
        records.append(
            {
                "timeUnixNano": str(T0 + minute_s * NS),
                "severityNumber": 9 if status == 200 else 17,
                "body": {"stringValue": f"GET /orders {status}"},
                "attributes": [
                    {"key": "http.response.status_code", "value": {"intValue": str(status)}},
                    {"key": "http.request.header.authorization", "value": {"stringValue": BEARER}},
                ],
            }
        )
    scope = {"scope": {"name": "web.access"}, "logRecords": records}
    return {"resourceLogs": [{"resource": _resource("web", "web-1"), "scopeLogs": [scope]}]}


def web_api_spans() -> list[dict[str, Any]]:
    """Six traces, one a minute from 09:58 to 10:03, each web -> api; errors from 10:00 on (12 spans)."""
    out = []
    for i in range(6):
        start = T0 + (i - 2) * 60 * NS
        trace = f"{i + 1:032x}"
        code = 2 if i >= 2 else 0
        web = {
            "traceId": trace,
            "spanId": f"{10 + i:016x}",
            "name": "GET /orders",
            "kind": 2,
            "startTimeUnixNano": str(start),
            "endTimeUnixNano": str(start + 80_000_000),
            "status": {"code": code},
        }
        api = {
            "traceId": trace,
            "spanId": f"{20 + i:016x}",
            "parentSpanId": f"{10 + i:016x}",
            "name": "orders.list",
            "kind": 2,
            "startTimeUnixNano": str(start + 1_000_000),
            "endTimeUnixNano": str(start + 70_000_000),
            "status": {"code": code, "message": "db unavailable" if code else ""},
        }
        out.append({"resourceSpans": [{"resource": _resource("web", "web-1"), "scopeSpans": [{"spans": [web]}]}]})
        out.append({"resourceSpans": [{"resource": _resource("api", "api-1"), "scopeSpans": [{"spans": [api]}]}]})
    return out


def disk_metrics() -> dict[str, Any]:
    """db-1's disk utilization a minute apart, 09:50..10:07 (18 points; 09:50 and 09:51 outside the window)."""
    points = [
        {
            "timeUnixNano": str(T0 + (m - 10) * 60 * NS),
            "asDouble": min(1.0, 0.90 + 0.01 * m),
            "attributes": [{"key": "mountpoint", "value": {"stringValue": "/var/lib/postgresql"}}],
        }
        for m in range(18)
    ]
    metric = {"name": "system.filesystem.utilization", "gauge": {"dataPoints": points}}
    return {"resourceMetrics": [{"resource": _resource("", "db-1"), "scopeMetrics": [{"metrics": [metric]}]}]}


def fill(pipeline: Pipeline) -> None:
    """Store the incident through the pipeline, declare api -> postgres, derive web -> api from the spans."""
    journald = parse_journald(journal_lines(), LIMITS, now_ns=NOW)
    assert journald.errors == []
    pipeline.ingest("logs", journald.rows)
    bounds = {"now_ns": NOW, "min_year": 2000, "max_future_skew_s": 86_400}
    logs = parse_logs(web_logs(), "application/json", **bounds)
    assert logs.rejected == 0
    pipeline.ingest("logs", logs.rows)
    for request in web_api_spans():
        spans = parse_traces(request, "application/json", **bounds)
        assert spans.rejected == 0
        pipeline.ingest("spans", spans.rows)
    metrics = parse_metrics(disk_metrics(), "application/json", **bounds)
    assert metrics.rejected == 0
    pipeline.ingest("metrics", metrics.rows)
    declared: Topology = parse_topology(DECLARED)
    assert pipeline.graph is not None
    pipeline.graph.upsert_topology(declared)
    pipeline.refresh_topology()


def write_bundle(pipeline: Pipeline, out: Path, *, mask: bool = True) -> ExportReport:
    """The bundle of the incident: asked at 10:02:00, the alert on web, truth postgres."""
    spec = ExportSpec(
        at_ns=ASKED,
        before_ns=BEFORE_S * NS,
        after_ns=AFTER_S * NS,
        service="web",
        system="homelab",
        case_id="homelab-disk-full",
        truth_service="postgres",
        mask=mask,
    )
    return export_case(pipeline.events, pipeline.graph, out, spec)


def main() -> None:
    """Rewrite tests/data/cases/homelab-disk-full from a new store (`python -m tests.cases`)."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(home=Path(tmp) / "home", embedder="none", qdrant_url=None, ollama_host=None)
        svc = open_services(settings, vectors=False)
        try:
            fill(svc.pipeline)
            shutil.rmtree(BUNDLE, ignore_errors=True)
            print(json.dumps(write_bundle(svc.pipeline, BUNDLE).as_dict(), indent=2))
        finally:
            svc.close()


if __name__ == "__main__":
    main()
