"""Incident case bundles (CASE-BUNDLES.md): OTLP/JSON lines ingestion, reading a bundle, replaying it live or
in hindsight, and exporting one from the stores so that it replays into the same store.

Engines are real (DuckDB, the session's FalkorDB); the CLI runs as a subprocess, as a user runs it.
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api.wiring import Services
from core.errors import DatasetError, InvalidInput
from core.redaction import Placeholders, mask_secrets
from core.settings import Settings
from core.timeutil import NS
from ingest.cases import ExportSpec, export_case, ingest_case, load_case, load_truth
from ingest.devmesh_json import Limits
from ingest.feed import FeedOptions, LineFormat, feed_lines
from ingest.jsonlines import numbered_lines, open_input
from ingest.pipeline import Pipeline
from retrieval.events import EventStore
from tests import cases
from tests.cli import devmesh, out
from tests.conftest import ImportedSample, drop_graph, open_test_services, unique_graph_name

T = 1_760_000_000 * NS  # 2025-10-09T08:53:20Z
LIMITS = Limits(max_events=10_000, max_message_chars=65_536, min_year=2000, max_future_skew_s=86_400)


# -- helpers -----------------------------------------------------------------------------------------


def res(service: str) -> dict[str, Any]:
    return {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]}


def log_request(service: str, *times: int | str) -> dict[str, Any]:
    recs = [{"timeUnixNano": str(t), "body": {"stringValue": f"line at {t}"}} for t in times]
    return {"resourceLogs": [{"resource": res(service), "scopeLogs": [{"logRecords": recs}]}]}


def span_request(service: str, *starts: int) -> dict[str, Any]:
    spans = [
        {
            "traceId": "ab" * 16,
            "spanId": f"{i + 1:016x}",
            "name": "op",
            "startTimeUnixNano": str(s),
            "endTimeUnixNano": str(s + 5 * NS),
        }
        for i, s in enumerate(starts)
    ]
    return {"resourceSpans": [{"resource": res(service), "scopeSpans": [{"spans": spans}]}]}


def metric_request(service: str) -> dict[str, Any]:
    """A gauge at T-1s and T+1s, and a histogram point at T (5 rows: count, sum, p50, p95, p99)."""
    gauge = {
        "dataPoints": [{"timeUnixNano": str(T - NS), "asDouble": 1.5}, {"timeUnixNano": str(T + NS), "asInt": "2"}]
    }
    hist = {
        "dataPoints": [
            {"timeUnixNano": str(T), "count": "4", "sum": 10.0, "bucketCounts": ["1", "3"], "explicitBounds": [1.0]}
        ]
    }
    metrics = [{"name": "queue.depth", "gauge": gauge}, {"name": "latency", "histogram": hist}]
    return {"resourceMetrics": [{"resource": res(service), "scopeMetrics": [{"metrics": metrics}]}]}


def jsonl(*docs: Any) -> bytes:
    return b"".join((d if isinstance(d, bytes) else json.dumps(d).encode()) + b"\n" for d in docs)


def counts(events: EventStore, kind: str, where: str = "") -> dict[str, int]:
    _, rows = events.sql(f"SELECT service, count(*) FROM {kind} {where} GROUP BY 1 ORDER BY 1", limit=10_000)
    return dict(rows)


def memory_pipeline() -> Pipeline:
    return Pipeline(EventStore(None), None, None, None)


@pytest.fixture
def fresh(tmp_path: Path, falkordb_url: str, request: pytest.FixtureRequest) -> Iterator[Services]:
    """A second, empty home (no vectors) on the session's FalkorDB, to replay bundles into."""
    s = Settings(
        home=tmp_path / "replay",
        falkordb_url=falkordb_url,
        graph_name=unique_graph_name(request),
        embedder="none",
        qdrant_url=None,
        ollama_host=None,
    )
    svc = open_test_services(s, None)
    yield svc
    svc.close()
    drop_graph(falkordb_url, s.graph_name)


# -- OTLP/JSON lines -----------------------------------------------------------------------------------


def test_otlp_lines_are_cut_record_by_record_and_bad_lines_named() -> None:
    lines = jsonl(
        log_request("web", T - NS, T, T + NS),
        span_request("api", T - NS, T + NS, T),
        metric_request("db"),
        b"{not json",
        b"",
        {"resource": "none of the three"},
        log_request("web", "soon", T - 2 * NS),
    )
    pipeline = memory_pipeline()
    opts = FeedOptions(limits=LIMITS, until_ns=T, batch_rows=2)
    report = feed_lines(pipeline, numbered_lines(open_input(io.BytesIO(lines)), 1 << 20), LineFormat.otlp, opts)
    assert counts(pipeline.events, "logs") == {"web": 3}  # T-1s, T and T-2s; T+1s left out
    assert counts(pipeline.events, "spans") == {"api": 2}
    assert counts(pipeline.events, "metrics") == {"db": 6}  # the gauge at T-1s and the histogram's 5 rows at T
    assert (report.lines, report.later, report.bad_lines) == (7, 3, 2)
    total = report.total()
    assert (total.stored, total.rejected, total.received) == (11, 3, 14)
    assert report.errors == [
        {"index": 4, "field": "line 4", "problem": report.errors[0]["problem"]},
        {
            "index": 6,
            "field": "line 6",
            "problem": "the line has none of resourceLogs, resourceSpans and resourceMetrics",
        },
        {
            "index": 7,
            "field": "line 7.resourceLogs[0].scopeLogs[0].logRecords[0]",
            "problem": "timeUnixNano must be an unsigned integer or a decimal string, got 'soon'",
        },
    ]
    assert report.errors[0]["problem"].startswith("not JSON: Expecting property name")


def test_gzip_input_and_too_long_lines(tmp_path: Path) -> None:
    path = tmp_path / "x.otlp.jsonl.gz"
    path.write_bytes(gzip.compress(jsonl(log_request("web", T), b"x" * 300, log_request("web", T + NS))))
    with open_input(path) as stream:
        lines = list(numbered_lines(stream, 250))
    assert [(line.number, line.problem) for line in lines] == [(1, ""), (2, "longer than 250 bytes; skipped"), (3, "")]
    with pytest.raises(InvalidInput, match="no such file"):
        open_input(tmp_path / "missing.jsonl")


# -- the secret patterns, now in core ----------------------------------------------------------------


def test_secrets_get_stable_placeholders_and_masking_twice_changes_nothing() -> None:
    names = Placeholders()
    text = "login password=hunter2 then Authorization: Bearer abcdefghijkl and password=hunter2 again"
    masked = mask_secrets(text, names.name)
    assert masked == "login password=<SECRET_1> then Authorization: Bearer <TOKEN_1> and password=<SECRET_1> again"
    assert mask_secrets(masked, names.name) == masked
    assert names.value_of("<SECRET_1>") == "hunter2" and len(names) == 2
    bounded = Placeholders(max_values=1)
    assert [bounded.name("SECRET", v) for v in ("a", "b", "b", "a")] == [
        "<SECRET_1>",
        "<SECRET_2>",
        "<SECRET_3>",
        "<SECRET_1>",
    ]


# -- reading a bundle ----------------------------------------------------------------------------------


def write_case(root: Path, **case: Any) -> Path:
    (root / "telemetry").mkdir(parents=True, exist_ok=True)
    doc = {"format": "devmesh-case/1", "id": "c1", "system": "shop", "asked_at": "2025-10-09T08:53:20Z"} | case
    (root / "case.json").write_text(json.dumps({k: v for k, v in doc.items() if v is not ...}))
    return root


def test_load_case_reads_case_json_and_sorts_the_telemetry_by_suffix(tmp_path: Path) -> None:
    root = write_case(tmp_path / "c", alert={"labels": {"service": "cart"}, "startsAt": "2025-10-09T08:50:00Z"})
    tel = root / "telemetry"
    for name in (
        "b.otlp.jsonl.gz",
        "a.otlp.jsonl",
        "n1.journal.jsonl",
        "e.devmesh.jsonl.gz",
        "topology.yaml",
        "README",
    ):
        (tel / name).write_text("")
    (root / "runbooks").mkdir()
    (root / "truth.json").write_text(
        json.dumps({"root_cause": {"service": "db", "aliases": ["postgres"], "host": "db-1"}})
    )
    case = load_case(root)
    assert (case.id, case.system, case.asked_at_ns, case.notes) == ("c1", "shop", T, "")
    assert case.alert is not None and case.alert.labels == {"service": "cart"}
    assert [p.name for p in case.telemetry.otlp] == ["a.otlp.jsonl", "b.otlp.jsonl.gz"]
    assert [p.name for p in case.telemetry.journal] == ["n1.journal.jsonl"]
    assert [p.name for p in case.telemetry.devmesh] == ["e.devmesh.jsonl.gz"]
    assert case.telemetry.topology == tel / "topology.yaml" and case.runbooks == root / "runbooks"
    assert [p.name for p in case.telemetry.ignored] == ["README"]
    assert "truth" not in case.model_dump() and "postgres" not in case.model_dump_json()
    truth = load_truth(root)
    assert (truth.fault_time_ns, truth.kind) == (None, None)
    assert [truth.root_cause.matches(n) for n in ("db", "postgres", "db-1", "cart", "")] == [
        True,
        True,
        True,
        False,
        False,
    ]


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"format": "devmesh-case/2"}, "format", "format is 'devmesh-case/2'; this DevMesh reads 'devmesh-case/1'"),
        ({"asked_at": "yesterday-ish"}, "asked_at", "asked_at 'yesterday-ish' is not an ISO-8601 time"),
        ({"asked_at": "2025-13-40T00:00:00Z"}, "asked_at", "is not an ISO-8601 time"),
        ({"asked_at": ...}, "asked_at", "asked_at must be an ISO-8601 time"),
        ({"alert": {"labels": "cart"}}, "alert.labels", "alert.labels: Input should be a valid dictionary"),
        ({"system": 7}, "system", "system must be a string, not int"),
    ],
)
def test_a_bad_case_json_is_refused_naming_the_file_and_field(
    tmp_path: Path, change: dict[str, Any], field: str, words: str
) -> None:
    root = write_case(tmp_path / "c", **change)
    with pytest.raises(DatasetError, match="case.json") as caught:
        load_case(root)
    assert caught.value.field == field and words in caught.value.message


def test_a_bundle_without_case_json_or_telemetry_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"empty/case.json is missing: a case bundle needs one"):
        load_case(tmp_path / "empty")
    root = write_case(tmp_path / "c")
    shutil.rmtree(root / "telemetry")
    with pytest.raises(DatasetError, match="telemetry is missing"):
        load_case(root)
    with pytest.raises(DatasetError, match="truth.json is missing"):
        load_truth(root)
    (root / "truth.json").write_text(json.dumps({"root_cause": {"aliases": ["x"]}}))
    with pytest.raises(DatasetError, match="names neither a service nor a host"):
        load_truth(root)


# -- replaying a bundle ----------------------------------------------------------------------------------


def test_a_bundle_made_by_other_tools_is_replayed_live_then_in_hindsight(tmp_path: Path, services: Services) -> None:
    """Every telemetry kind, the topology and a runbook; live keeps what is stamped at or before asked_at."""
    root = write_case(tmp_path / "c")  # asked at T
    tel = root / "telemetry"
    (tel / "web.otlp.jsonl").write_bytes(jsonl(log_request("web", T - NS, T + NS), span_request("web", T - NS, T + NS)))
    journal = [
        {
            "__REALTIME_TIMESTAMP": str((T + i * NS) // 1000),
            "_HOSTNAME": "db-1",
            "SYSLOG_IDENTIFIER": "postgres",
            "PRIORITY": "3",
            "MESSAGE": f"No space left on device ({i})",
        }
        for i in (-2, -1, 0, 1)
    ]
    (tel / "db-1.journal.jsonl").write_bytes(jsonl(*journal, b"{broken"))
    events = [{"timestamp": (T + i * NS) / NS, "message": "cart full", "service": "cart"} for i in (-1, 2)]
    (tel / "app.devmesh.jsonl.gz").write_bytes(gzip.compress(jsonl(*events, {"message": "no time"})))
    (tel / "topology.yaml").write_text("services:\n  - name: web\n    calls: [cart, postgres]\n")
    (root / "runbooks").mkdir()
    (root / "runbooks" / "disk.md").write_text("# Disk full on postgres\n\n## Mitigation\n\nFree space on db-1.\n")
    case = load_case(root)

    live = ingest_case(case, services.pipeline, until_ns=case.asked_at_ns)
    assert counts(services.events, "logs") == {"cart": 1, "postgres": 3, "web": 1}
    assert counts(services.events, "spans") == {"web": 1}
    assert (live.later, live.rejected) == (4, 2)  # cart +2s, postgres +1s, web log and span +1s; 2 bad lines
    assert [(f.source, f.errors) for f in live.files if f.errors] == [
        (
            "telemetry/db-1.journal.jsonl",
            [{"index": 5, "field": "line 5", "problem": live.files[1].errors[0]["problem"]}],
        ),
        (
            "telemetry/app.devmesh.jsonl.gz",
            [{"index": 3, "field": "line 3.timestamp", "problem": "required field is missing"}],
        ),
    ]
    assert services.graph is not None
    assert {(e.caller, e.callee) for e in services.graph.call_edges()} == {("web", "cart"), ("web", "postgres")}
    assert live.runbooks is not None and (live.runbooks.runbooks, live.runbooks.sections) == (1, 1)

    hindsight = ingest_case(case, services.pipeline, until_ns=None)  # the rest arrives; repeats are not stored twice
    assert counts(services.events, "logs") == {"cart": 2, "postgres": 4, "web": 2}
    assert counts(services.events, "spans") == {"web": 2}
    assert hindsight.later == 0 and hindsight.kinds()["logs"].duplicates == 5


# -- exporting a bundle ----------------------------------------------------------------------------------


def bundle_lines(root: Path) -> dict[str, list[str]]:
    """Every file of a bundle as its (decompressed) lines."""
    return {
        str(p.relative_to(root)): (gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes())
        .decode()
        .splitlines()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def window_counts(events: EventStore, lo: int, hi: int) -> dict[str, dict[str, int]]:
    return {
        kind: counts(events, kind, f"WHERE {col} BETWEEN {lo} AND {hi}")
        for kind, col in (("logs", "ts_ns"), ("spans", "start_ns"), ("metrics", "ts_ns"))
    }


def edges(svc: Services) -> set[tuple[str, str]]:
    assert svc.graph is not None
    return {(e.caller, e.callee) for e in svc.graph.call_edges()}


def test_export_writes_the_bundle_that_replays_into_the_same_store(
    tmp_path: Path, services: Services, fresh: Services
) -> None:
    cases.fill(services.pipeline)
    report = cases.write_bundle(services.pipeline, tmp_path / "b")
    assert report.rows == {"logs": 5, "journal": 29, "spans": 12, "metrics": 16}
    assert (report.services, report.calls, report.masked, report.truth) == (3, 2, 6, True)
    written = bundle_lines(tmp_path / "b")
    assert written == bundle_lines(cases.BUNDLE)  # the committed sample is what the export writes
    text = "\n".join(line for lines in written.values() for line in lines)
    assert cases.SECRET not in text and "eyJzdWIiOiJ3ZWIifQ" not in text
    assert text.count("password=<SECRET_1>") == 1 and text.count("Bearer <TOKEN_1>") == 5

    case = load_case(tmp_path / "b")
    assert (case.id, case.system, case.asked_at_ns) == ("homelab-disk-full", "homelab", cases.ASKED)
    assert case.alert is not None and case.alert.labels == {"service": "web"}
    truth = load_truth(tmp_path / "b")
    assert (truth.root_cause.service, truth.fault_time_ns, truth.kind) == ("postgres", cases.ASKED, None)

    lo, hi = cases.ASKED - cases.BEFORE_S * NS, cases.ASKED + cases.AFTER_S * NS
    replay = ingest_case(case, fresh.pipeline, until_ns=None)
    assert (replay.rejected, replay.later) == (0, 0)
    assert window_counts(fresh.events, lo, hi) == window_counts(services.events, lo, hi)
    assert window_counts(fresh.events, 0, 2**62) == {
        "logs": {"api": 11, "postgres": 18, "web": 5},
        "metrics": {"": 16},
        "spans": {"api": 6, "web": 6},
    }
    assert edges(fresh) == edges(services) == {("api", "postgres"), ("web", "api")}
    same = "SELECT ts_ns, service, host, pod, level, error_code, event_type, trace_id FROM logs {} ORDER BY ALL"
    replayed, original = (
        fresh.events.sql(same.format(""), limit=100),
        services.events.sql(same.format(f"WHERE ts_ns >= {lo}"), limit=100),
    )
    assert replayed == original and len(original[1]) == 34  # each line as it was, but for masked secrets


def test_a_live_replay_drops_exactly_what_came_after_asked_at(tmp_path: Path, fresh: Services) -> None:
    case = load_case(cases.BUNDLE)
    replay = ingest_case(case, fresh.pipeline, until_ns=case.asked_at_ns)
    assert window_counts(fresh.events, 0, 2**62) == {
        "logs": {"api": 8, "postgres": 17, "web": 4},  # the web log at 10:02:00 itself is kept
        "metrics": {"": 11},
        "spans": {"api": 4, "web": 5},
    }
    assert (replay.later, replay.rejected) == ((3 + 1 + 1) + 5 + (2 + 1), 0)  # logs, metrics, spans
    assert edges(fresh) == {("api", "postgres"), ("web", "api")}


def test_export_refuses_a_folder_in_use_and_keeps_secrets_when_told(tmp_path: Path, services: Services) -> None:
    cases.fill(services.pipeline)
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "notes.txt").write_text("mine")
    with pytest.raises(InvalidInput, match="exists and is not an empty folder"):
        cases.write_bundle(services.pipeline, tmp_path / "used")
    assert (tmp_path / "used" / "notes.txt").read_text() == "mine"
    report = cases.write_bundle(services.pipeline, tmp_path / "open", mask=False)
    text = "\n".join(line for lines in bundle_lines(tmp_path / "open").values() for line in lines)
    assert report.masked == 0 and cases.SECRET in text and text.count(cases.BEARER) == 5


def test_the_nezha_sample_round_trips_through_a_bundle(
    tmp_path: Path, copied: Settings, sample: ImportedSample, fresh: Services
) -> None:
    """The bundled TrainTicket incident: exported an hour before to ten minutes after the fault, replayed."""
    svc = open_test_services(copied, None)
    try:
        report = export_case(
            svc.events, svc.graph, tmp_path / "b", ExportSpec(at_ns=sample.fault_ns, system="trainticket")
        )
        lo, hi = sample.fault_ns - 3600 * NS, sample.fault_ns + 600 * NS
        before = window_counts(svc.events, lo, hi)
        live_before = window_counts(svc.events, lo, sample.fault_ns)
        original_edges = edges(svc)
    finally:
        svc.close()
    assert report.rows == {"logs": 7595, "journal": 0, "spans": 14459, "metrics": 60196}
    case = load_case(tmp_path / "b")
    live = ingest_case(case, fresh.pipeline, until_ns=case.asked_at_ns)
    assert window_counts(fresh.events, 0, 2**62) == live_before
    assert {k: sum(v.values()) for k, v in live_before.items()} == {"logs": 4303, "spans": 8173, "metrics": 51538}
    assert (live.later, live.rejected) == (18236, 0)
    hindsight = ingest_case(case, fresh.pipeline, until_ns=None)
    assert window_counts(fresh.events, 0, 2**62) == before
    assert hindsight.later == 0 and edges(fresh) == original_edges and len(original_edges) == 54


# -- the command line ----------------------------------------------------------------------------------


def test_cli_ingests_otlp_lines_and_exports_them_as_a_case(
    settings: Settings, tmp_path: Path, minilm_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEVMESH_MODEL_DIR", str(minilm_dir))  # as tests/e2e/test_cli.py runs the CLI
    settings.home.mkdir(parents=True)
    good = jsonl(log_request("web", T - NS, T), span_request("web", T - NS, T), metric_request("db"))
    collector = tmp_path / "collector.jsonl.gz"
    collector.write_bytes(gzip.compress(good + b"not json\n"))
    report = out(devmesh(settings, "ingest", "--format", "otlp", str(collector), "--json", expect=2))
    assert {k: report[k] for k in ("received", "stored", "duplicates", "rejected", "lines", "later")} == {
        "received": 12,
        "stored": 11,
        "duplicates": 0,
        "rejected": 1,
        "lines": 4,
        "later": 0,
    }
    assert {k: v["stored"] for k, v in report["kinds"].items()} == {"logs": 2, "spans": 2, "metrics": 7}
    assert report["errors"] == [
        {"index": 4, "field": "line 4", "problem": "not JSON: Expecting value: line 1 column 1 (char 0)"}
    ]
    again = out(devmesh(settings, "ingest", "-f", "otlp", "-", "--json", stdin=good))
    assert (again["stored"], again["duplicates"], again["rejected"]) == (0, 11, 0)
    nothing = devmesh(settings, "ingest", "-f", "otlp", "-", "--json", stdin=b"{}\n", expect=1)
    assert json.loads(nothing.stdout)["errors"][0]["problem"].startswith("the line has none of resourceLogs")
    empty = devmesh(settings, "ingest", "-f", "otlp", "-", stdin=b"", expect=1)
    assert b"error (FILE): nothing to read in -" in empty.stderr

    bundle = tmp_path / "case"
    at = "2025-10-09T08:53:20Z"  # T
    args = ("export", "case", str(bundle), "--at", at, "--service", "web", "--truth", "db", "--before", "5m")
    exported = out(devmesh(settings, *args, "--after", "0s", "--json"))
    assert exported["rows"] == {"logs": 2, "journal": 0, "spans": 2, "metrics": 6}  # the gauge at T+1s is after
    assert sorted(exported["files"]) == [
        *(f"telemetry/{k}.otlp.jsonl.gz" for k in ("logs", "metrics", "spans")),
        "telemetry/topology.yaml",
    ]
    assert (bundle / "telemetry" / "topology.yaml").read_text() == "services:\n- name: web\n"
    case = load_case(bundle)
    assert (case.asked_at_ns, case.system, case.alert is not None and case.alert.labels["service"]) == (
        T,
        "devmesh",
        "web",
    )
    assert load_truth(bundle).root_cause.service == "db"
    refused = devmesh(settings, *args, expect=1)
    assert b"error (OUT):" in refused.stderr and b"exists and is not an empty folder" in refused.stderr
    bad = devmesh(settings, "export", "case", str(tmp_path / "other"), "--at", at, "--before", "5 parsecs", expect=1)
    assert b"error (--before): not a duration: '5 parsecs'" in bad.stderr
