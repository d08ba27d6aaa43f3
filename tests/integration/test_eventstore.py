"""The event store on real files, one conformance suite over three backends (DuckDB embedded; ClickHouse
through chDB, ClickHouse in-process; and ClickHouse through clickhouse-connect over HTTP, against the
stand-in of tests/fakes/clickhouse_http.py, chDB behind ClickHouse's HTTP interface in a process of its
own): appends and dedup, restart, log queries, pagination, templates, documents, small state and
aggregations, with exact expected values. DuckDB alone: read-only SQL in its dialect, transactions, schema
versions, memory stores (ClickHouse's own are in test_eventstore_clickhouse.py); and the row contract its
tables, the reader batches and the JSON input follow."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from pydantic import ValidationError

from core.errors import EngineUnavailable, InvalidInput, NotFound, ReadOnlyViolation
from core.telemetry import ARROW_SCHEMAS, KINDS, columns, row_schema
from ingest import batch as reader_batch
from ingest.devmesh_json import LogEventIn
from retrieval.events import (
    AppendResult,
    BucketCount,
    EdgeStat,
    EventStore,
    LogQuery,
    SpanStat,
    TemplateCount,
    TemplateDelta,
    check_read_only,
    event_id_of,
    event_ids,
)
from tests.fakes.clickhouse_http import url_for_path

NS = 1_000_000_000
T0 = 1_700_000_000 * NS  # 2023-11-14T22:13:20Z


def s(seconds: float) -> int:
    return T0 + int(seconds * NS)


def log(sec: float, message: str, **kw: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "ts_ns": s(sec),
        "service": "ts-order-service",
        "host": "node-1",
        "pod": "ts-order-service-abc-1",
        "level": "INFO",
        "message": message,
        "trace_id": "",
        "template_id": "",
    }
    row.update(kw)
    return row


# Ten hand-made lines; messages are unique so filters can be checked by message.
LOGS = [
    log(0, "order created id=1", trace_id="tr-a", template_id="T-created"),
    log(10, "order created id=2", trace_id="tr-b", template_id="T-created"),
    log(20, "Connection refused to ts-station-service", level="ERROR", template_id="T-refused"),
    log(
        30,
        "seat allocated 4",
        service="ts-seat-service",
        host="node-2",
        pod="ts-seat-service-x-1",
        trace_id="tr-a",
        template_id="T-seat",
    ),
    log(
        40,
        "seat query slow",
        service="ts-seat-service",
        host="node-2",
        pod="ts-seat-service-x-2",
        level="WARN",
        template_id="T-slow",
    ),
    log(50, "CONNECTION REFUSED again", level="ERROR", template_id="T-refused"),
    log(
        60,
        "station lookup failed: 100% broken",
        service="ts-station-service",
        host="node-3",
        pod="ts-station-service-q-1",
        level="FATAL",
        trace_id="tr-a",
        template_id="T-fail",
    ),
    log(70, "debug detail", level="DEBUG", template_id="T-debug"),
    log(
        80,
        "seat allocated 7",
        service="ts-seat-service",
        host="node-2",
        pod="ts-seat-service-x-1",
        trace_id="tr-b",
        template_id="T-seat",
    ),
    log(90, "order created id=3", template_id="T-created"),
]


def table(rows: list[dict[str, Any]]) -> pa.Table:
    columns = list(dict.fromkeys(k for r in rows for k in r))
    return pa.table({c: [r.get(c) for r in rows] for c in columns})


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "home" / "events.duckdb"


BACKENDS = ["duckdb", "chdb", "clickhouse-http"]


def open_store(backend: str, path: Path) -> Any:
    """The store of `backend` on `path` (a DuckDB file, a chDB folder beside it, or a database of its own on
    the ClickHouse HTTP stand-in, through clickhouse-connect)."""
    if backend == "duckdb":
        return EventStore(path)
    pytest.importorskip("chdb", reason="chdb is not installed (pip install 'devmesh[clickhouse]')")
    from retrieval.events.clickhouse import ClickHouseEventStore, connect

    if backend == "clickhouse-http":
        return ClickHouseEventStore(connect(url_for_path(path)))
    return ClickHouseEventStore(connect(f"chdb://{path.with_suffix('.chdb')}"))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "clickhouse-http":
        request.getfixturevalue("clickhouse_http")  # the stand-in process, one per session
    return str(request.param)


@pytest.fixture
def store(backend: str, path: Path):
    st = open_store(backend, path)
    yield st
    st.close()


@pytest.fixture
def filled(store: EventStore) -> EventStore:
    assert store.append_logs(table(LOGS)) == AppendResult(inserted=10, duplicates=0)
    return store


@pytest.fixture
def duck(path: Path):
    st = EventStore(path)
    yield st
    st.close()


@pytest.fixture
def duck_filled(duck: EventStore) -> EventStore:
    assert duck.append_logs(table(LOGS)) == AppendResult(inserted=10, duplicates=0)
    return duck


def messages(page_events: list[dict[str, Any]]) -> list[str]:
    return [e["message"] for e in page_events]


# -- appends and dedup ------------------------------------------------------------------------


def test_same_batch_twice_is_stored_once(store: EventStore) -> None:
    batch = table(LOGS[:4] + [LOGS[1]])  # one repeat inside the batch
    assert store.append_logs(batch) == AppendResult(inserted=4, duplicates=1)
    assert store.append_logs(batch) == AppendResult(inserted=0, duplicates=5)
    assert store.append_logs(table(LOGS)) == AppendResult(inserted=6, duplicates=4)
    assert store.stats()["tables"]["logs"]["rows"] == 10
    assert store.sql("SELECT count(DISTINCT event_id) FROM logs")[1] == [(10,)]


def test_dedup_ignores_source_meta_and_template(store: EventStore) -> None:
    a = dict(LOGS[0], source="file", meta='{"offset": 1}', template_id="T1")
    b = dict(LOGS[0], source="api", meta='{"offset": 99}', template_id="T2")
    assert store.append_logs(table([a])).inserted == 1
    assert store.append_logs(table([b])) == AppendResult(inserted=0, duplicates=1)
    changed = dict(LOGS[0], ts_ns=LOGS[0]["ts_ns"] + 1)
    assert store.append_logs(table([changed])).inserted == 1


def test_restart_keeps_everything_and_dedup_still_holds(backend: str, path: Path) -> None:
    st = open_store(backend, path)
    st.append_logs(table(LOGS))
    st.append_spans(table(SPANS))
    st.append_metrics(table([{"ts_ns": s(1), "name": "cpu", "value": 0.5, "service": "ts-order-service"}]))
    st.upsert_templates([TemplateDelta("T-created", "order created id=<*>", 3, s(0), s(90), "INFO")])
    st.kv.set("miner", {"clusters": [1, 2, 3], "version": "0.9"})
    before = st.stats()
    st.close()

    st = open_store(backend, path)
    after = st.stats()
    assert after["tables"] == before["tables"]
    assert after["tables"]["logs"]["rows"] == 10
    assert after["tables"]["spans"]["rows"] == len(SPANS)
    assert after["tables"]["metrics"]["rows"] == 1
    assert after["schema_version"] == st.schema_version == 1
    assert st.kv.get("miner") == {"clusters": [1, 2, 3], "version": "0.9"}
    assert [t.count for t in st.templates()] == [3]
    assert st.append_logs(table(LOGS)) == AppendResult(inserted=0, duplicates=10)
    assert st.append_spans(table(SPANS)).inserted == 0
    st.close()


def test_caller_event_ids_are_kept_and_missing_ones_computed(store: EventStore) -> None:
    rows = [dict(LOGS[0], event_id=42), dict(LOGS[1], event_id=None), LOGS[2]]
    rows[2] = dict(rows[2], event_id=None)
    store.append_logs(table(rows))
    stored = dict(store.sql("SELECT message, event_id FROM logs")[1])
    assert stored["order created id=1"] == 42
    assert stored["order created id=2"] == event_id_of("logs", LOGS[1])
    computed = event_ids("logs", table(LOGS[:3])).to_pylist()
    assert computed[1:] == [stored["order created id=2"], stored[LOGS[2]["message"]]]
    assert len(set(event_ids("logs", table(LOGS)).to_pylist())) == 10


def test_bad_batches_are_refused_naming_the_column(store: EventStore) -> None:
    with pytest.raises(InvalidInput) as e:
        store.append_logs(table([{"message": "no time"}]))
    assert e.value.field == "ts_ns"
    with pytest.raises(InvalidInput) as e:
        store.append_logs(table([dict(LOGS[0], colour="red")]))
    assert e.value.field == "colour"
    with pytest.raises(InvalidInput) as e:
        store.append_logs(table([dict(LOGS[0], ts_ns="yesterday")]))
    assert e.value.field == "ts_ns"
    assert store.stats()["tables"]["logs"]["rows"] == 0
    assert store.append_logs(table(LOGS).slice(0, 0)) == AppendResult(0, 0)


def test_concurrent_overlapping_appends_store_each_event_once(store: EventStore) -> None:
    rows = [log(i * 0.01, f"line {i}") for i in range(2000)]
    chunks = [table(rows[i : i + 700]) for i in range(0, 2000, 300)]  # overlapping slices
    errors: list[BaseException] = []

    def work(batch: pa.Table) -> None:
        try:
            store.append_logs(batch)
            store.query_logs(LogQuery(limit=10))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(c,)) for c in chunks * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.sql("SELECT count(*), count(DISTINCT event_id) FROM logs")[1] == [(2000, 2000)]


def test_in_memory_store(tmp_path: Path) -> None:
    st = EventStore(None)
    assert st.append_logs(table(LOGS)).inserted == 10
    assert st.stats()["tables"]["logs"]["rows"] == 10
    assert "file_bytes" not in st.stats()
    st.close()
    with pytest.raises(EngineUnavailable):
        st.query_logs(LogQuery())


def test_file_from_a_newer_schema_is_refused(path: Path) -> None:
    EventStore(path).close()
    conn = duckdb.connect(str(path))
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.close()
    with pytest.raises(EngineUnavailable, match="newer"):
        EventStore(path)


# -- log queries ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"start_ns": s(20), "end_ns": s(50), "order": "asc"}, [2, 3, 4]),
        ({"start_ns": s(85)}, [9]),
        ({"end_ns": s(10)}, [0]),
        ({"service": "ts-seat-service"}, [8, 4, 3]),
        ({"service": ["ts-seat-service", "ts-station-service"]}, [8, 6, 4, 3]),
        ({"host": "node-3"}, [6]),
        ({"pod": "ts-seat-service-x-1"}, [8, 3]),
        ({"level": "error"}, [5, 2]),
        ({"level": ["WARN", "DEBUG"]}, [7, 4]),
        ({"min_level": "WARN"}, [6, 5, 4, 2]),
        ({"min_level": "ERROR", "service": "ts-order-service"}, [5, 2]),
        ({"trace_id": "tr-a"}, [6, 3, 0]),
        ({"trace_id": "tr-a", "service": "ts-order-service"}, [0]),
        ({"trace_id": "tr-b", "order": "asc"}, [1, 8]),
        ({"template_id": "T-created"}, [9, 1, 0]),
        ({"template_id": ["T-seat", "T-slow"], "end_ns": s(50)}, [4, 3]),
        ({"contains": "connection refused"}, [5, 2]),
        ({"contains": "100%"}, [6]),
        ({"contains": "%"}, [6]),
        ({"contains": "' OR 1=1 --"}, []),
        ({"contains": "seat", "level": "INFO"}, [8, 3]),
        ({"service": "no-such-service"}, []),
    ],
)
def test_every_filter_returns_exactly_the_matching_lines(
    filled: EventStore, query: dict[str, Any], expected: list[int]
) -> None:
    page = filled.query_logs(LogQuery(**query))
    assert messages(page.events) == [LOGS[i]["message"] for i in expected]
    assert page.next_cursor is None


def test_events_carry_all_columns_and_iso_time(filled: EventStore) -> None:
    (event,) = filled.query_logs(LogQuery(trace_id="tr-a", order="asc", limit=1)).events
    assert event["ts"] == "2023-11-14T22:13:20Z"
    assert event["ts_ns"] == T0
    assert event["event_id"] == event_id_of("logs", LOGS[0])
    assert event["meta"] == {}
    assert event["event_type"] == "log"
    assert {k: event[k] for k in LOGS[0]} == LOGS[0]


def test_query_model_rejects_bad_values() -> None:
    for bad in ({"limit": 0}, {"limit": 1001}, {"level": "LOUD"}, {"order": "up"}, {"colour": "red"}):
        with pytest.raises(ValidationError):
            LogQuery(**bad)
    assert LogQuery(start_ns=s(10), end_ns=s(5)).end_ns == s(5)  # a window that ends before it starts: empty


@pytest.mark.parametrize("order", ["asc", "desc"])
@pytest.mark.parametrize("limit", [1, 4, 7, 30])
def test_pagination_walks_every_row_once_in_order(store: EventStore, order: str, limit: int) -> None:
    # 30 lines on 8 distinct timestamps: ties are broken by event_id.
    rows = [log(i % 8, f"tie {i}", service="svc-a" if i % 3 else "svc-b") for i in range(30)]
    store.append_logs(table(rows))
    expected = store.sql(
        "SELECT message FROM logs WHERE service = 'svc-a' ORDER BY ts_ns "
        + ("ASC, event_id ASC" if order == "asc" else "DESC, event_id DESC")
    )[1]
    q = LogQuery(service="svc-a", order=order, limit=limit)
    seen: list[str] = []
    pages = 0
    while True:
        page = store.query_logs(q)
        pages += 1
        seen += messages(page.events)
        assert len(page.events) <= limit
        if page.next_cursor is None:
            break
        q = q.model_copy(update={"cursor": page.next_cursor})
    assert seen == [m for (m,) in expected]
    assert len(seen) == 20 == len(set(seen))
    assert pages == max(1, -(-20 // limit))


def test_pagination_sees_rows_appended_behind_the_cursor_only_once(store: EventStore) -> None:
    store.append_logs(table([log(i, f"old {i}") for i in range(5)]))
    q = LogQuery(order="asc", limit=3)
    first = store.query_logs(q)
    store.append_logs(table([log(i, f"old {i}") for i in range(5)] + [log(100, "new")]))
    second = store.query_logs(q.model_copy(update={"cursor": first.next_cursor}))
    assert messages(first.events) + messages(second.events) == [f"old {i}" for i in range(5)] + ["new"]


@pytest.mark.parametrize(
    "cursor",
    ["garbage!!", "", "eyJ2IjoxfQ", "bnVsbA", "WzEsMl0", "eyJ2IjoxLCJvIjoiZGVzYyIsImYiOiJ4IiwidCI6IjEiLCJlIjoxfQ"],
)
def test_bad_cursor_is_not_found_naming_cursor(filled: EventStore, cursor: str) -> None:
    """A cursor names a page; one this store did not give names none (the API answers 404, as for an id)."""
    with pytest.raises(NotFound) as e:
        filled.query_logs(LogQuery(cursor=cursor))
    assert e.value.field == "cursor"


def test_cursor_of_another_query_is_refused(filled: EventStore) -> None:
    page = filled.query_logs(LogQuery(service="ts-order-service", limit=2))
    assert page.next_cursor is not None
    for other in (
        LogQuery(service="ts-seat-service", limit=2, cursor=page.next_cursor),
        LogQuery(service="ts-order-service", order="asc", limit=2, cursor=page.next_cursor),
    ):
        with pytest.raises(NotFound) as e:
            filled.query_logs(other)
        assert e.value.field == "cursor"
    # A different page size is the same query.
    again = filled.query_logs(LogQuery(service="ts-order-service", limit=3, cursor=page.next_cursor))
    assert messages(page.events) == ["order created id=3", "debug detail"]
    assert messages(again.events) == [
        "CONNECTION REFUSED again",
        "Connection refused to ts-station-service",
        "order created id=2",
    ]


def test_example_lines_first_lines_per_template(filled: EventStore) -> None:
    out = filled.example_lines(["T-created", "T-seat", "T-none"], s(0), s(100), per_template=2)
    assert {k: messages(v) for k, v in out.items()} == {
        "T-created": ["order created id=1", "order created id=2"],
        "T-seat": ["seat allocated 4", "seat allocated 7"],
        "T-none": [],
    }
    assert messages(filled.example_lines(["T-created"], s(5), s(100))["T-created"]) == [
        "order created id=2",
        "order created id=3",
    ]


# -- aggregations -----------------------------------------------------------------------------


def test_template_counts_for_a_window(filled: EventStore) -> None:
    assert filled.template_counts(s(0), s(90)) == [
        TemplateCount("T-created", "ts-order-service", 2, s(0), s(10)),
        TemplateCount("T-refused", "ts-order-service", 2, s(20), s(50)),
        TemplateCount("T-seat", "ts-seat-service", 2, s(30), s(80)),
        TemplateCount("T-debug", "ts-order-service", 1, s(70), s(70)),
        TemplateCount("T-fail", "ts-station-service", 1, s(60), s(60)),
        TemplateCount("T-slow", "ts-seat-service", 1, s(40), s(40)),
    ]
    assert filled.template_counts(s(0), s(100), services=["ts-seat-service"]) == [
        TemplateCount("T-seat", "ts-seat-service", 2, s(30), s(80)),
        TemplateCount("T-slow", "ts-seat-service", 1, s(40), s(40)),
    ]


def test_error_counts_per_service_per_bucket(filled: EventStore) -> None:
    assert T0 % (60 * NS) == 20 * NS  # buckets are aligned to the epoch: T0 is 20 s into one
    start = s(-20)
    assert filled.error_counts(start, s(100), bucket_s=30) == [
        BucketCount(start + 30 * NS, "ts-order-service", 1),
        BucketCount(start + 60 * NS, "ts-order-service", 1),
        BucketCount(start + 60 * NS, "ts-station-service", 1),
    ]
    warn = filled.error_counts(s(0), s(100), bucket_s=3600, min_level="WARN")
    assert [(b.service, b.count) for b in warn] == [
        ("ts-order-service", 2),
        ("ts-seat-service", 1),
        ("ts-station-service", 1),
    ]


def test_count_by_groups_buckets_and_filters(filled: EventStore) -> None:
    assert filled.count_by("logs", ["service"]) == [
        {"service": "ts-order-service", "count": 6},
        {"service": "ts-seat-service", "count": 3},
        {"service": "ts-station-service", "count": 1},
    ]
    assert filled.count_by("logs", ["level"], where={"service": "ts-seat-service"}) == [
        {"level": "INFO", "count": 2},
        {"level": "WARN", "count": 1},
    ]
    assert filled.count_by("logs", ["service"], where=LogQuery(min_level="ERROR")) == [
        {"service": "ts-order-service", "count": 2},
        {"service": "ts-station-service", "count": 1},
    ]
    assert filled.count_by("logs", [], start_ns=s(0), end_ns=s(100), bucket_s=60) == [
        {"bucket_ns": s(-20), "count": 4},
        {"bucket_ns": s(40), "count": 6},
    ]
    with pytest.raises(InvalidInput) as e:
        filled.count_by("logs", ["message"])
    assert e.value.field == "group_by"
    with pytest.raises(InvalidInput):
        filled.count_by("logs", ["service"], where={"service; DROP TABLE logs": "x"})


def span(trace: str, sid: str, parent: str, service: str, start_ms: float, dur_ms: float, **kw: Any):
    row = {
        "trace_id": trace,
        "span_id": sid,
        "parent_id": parent,
        "service": service,
        "operation": kw.pop("operation", f"{service} op"),
        "start_ns": s(start_ms / 1000),
        "end_ns": s((start_ms + dur_ms) / 1000),
    }
    row.update(kw)
    return row


# Two traces gateway -> order -> station, plus an old trace outside the windows used below.
SPANS = [
    span("A", "g1", "", "gateway", 0, 100, kind="SERVER"),
    span("A", "g2", "g1", "gateway", 5, 80, kind="CLIENT", operation="HTTP GET"),
    span("A", "o1", "g2", "order", 10, 60, status="OK", kind="SERVER"),
    span("A", "o2", "o1", "order", 12, 30, kind="CLIENT", operation="HTTP GET"),
    span("A", "s1", "o2", "station", 15, 20, status="ERROR", kind="SERVER"),
    span("B", "g1", "", "gateway", 1000, 50, kind="SERVER"),
    span("B", "g2", "g1", "gateway", 1002, 45, kind="CLIENT", operation="HTTP GET"),
    span("B", "o1", "g2", "order", 1005, 40, status="OK", kind="SERVER"),
    span("B", "o2", "o1", "order", 1006, 35, kind="CLIENT", operation="HTTP GET"),
    span("B", "s1", "o2", "station", 1010, 30, kind="SERVER"),
    span("OLD", "g1", "", "gateway", -7200_000, 10),
    span("OLD", "o1", "g1", "order", -7199_999, 5),
]


def test_span_stats_per_service_and_operation(store: EventStore) -> None:
    assert store.append_spans(table(SPANS)).inserted == 12
    stats = store.span_stats(s(0), s(60))
    assert [(x.service, x.operation, x.count, x.errors) for x in stats] == [
        ("gateway", "HTTP GET", 2, 0),
        ("gateway", "gateway op", 2, 0),
        ("order", "HTTP GET", 2, 0),
        ("order", "order op", 2, 0),
        ("station", "station op", 2, 1),
    ]
    station = stats[-1]
    assert station == SpanStat("station", "station op", 2, 1, 25.0, 25.0, pytest.approx(29.5))
    assert stats[1].mean_ms == 75.0 and stats[1].p50_ms == 75.0 and stats[1].p95_ms == pytest.approx(97.5)
    assert store.span_stats(s(0), s(60), services=["station"]) == [station]


def test_call_edges_join_child_to_parent_span(store: EventStore) -> None:
    store.append_spans(table(SPANS))
    assert store.call_edges(s(0), s(60)) == [
        EdgeStat("gateway", "order", 2, 0, 50.0, 50.0, pytest.approx(59.0)),
        EdgeStat("order", "station", 2, 1, 25.0, 25.0, pytest.approx(29.5)),
    ]
    assert store.call_edges(s(-7300), s(-7000)) == [EdgeStat("gateway", "order", 1, 0, 5.0, 5.0, 5.0)]
    spans = store.trace_spans("A")
    assert [x["span_id"] for x in spans] == ["g1", "g2", "o1", "o2", "s1"]
    assert spans[4]["duration_us"] == 20_000.0 and spans[4]["status"] == "ERROR"
    assert spans[0]["status"] == "UNSET" and spans[0]["attributes"] == {}


def test_metrics_dedup_and_count(store: EventStore) -> None:
    rows = [
        {"ts_ns": s(i), "name": "cpu", "value": v, "service": "order", "attributes": '{"pod": "p1"}'}
        for i, v in enumerate([0.5, 0.7, 0.9])
    ]
    assert store.append_metrics(table(rows + rows[:1])) == AppendResult(3, 1)
    assert store.append_metrics(table([dict(rows[0], value=0.55)])).inserted == 1
    assert store.count_by("metrics", ["name"], bucket_s=None) == [{"name": "cpu", "count": 4}]


# -- templates and small state ----------------------------------------------------------------


def test_templates_upsert_merge_and_resumable_embedding(store: EventStore) -> None:
    n = store.upsert_templates(
        [
            TemplateDelta("a", "order created id=<*>", 2, s(10), s(20), "INFO"),
            {"template_id": "b", "text": "refused <*>", "count": 1, "first_ns": s(5), "last_ns": s(5)},
            TemplateDelta("a", "order created id=<*>", 3, s(1), s(15)),
        ]
    )
    assert n == 2
    a, b = store.templates()
    assert (a.template_id, a.count, a.first_ns, a.last_ns, a.level, a.embedded) == (
        "a",
        5,
        s(1),
        s(20),
        "INFO",
        False,
    )
    assert (b.template_id, b.count, b.level) == ("b", 1, "")
    assert [t.template_id for t in store.unembedded_templates(limit=1)] == ["a"]
    assert store.mark_embedded(["a", "missing"]) == 1
    assert [t.template_id for t in store.unembedded_templates()] == ["b"]
    store.upsert_templates([TemplateDelta("a", "order created id=<*>", 1, 0, s(30), "")])
    (a,) = store.templates(ids=["a"])
    assert (a.count, a.first_ns, a.last_ns, a.level, a.embedded) == (6, s(1), s(30), "INFO", True)
    store.upsert_templates([TemplateDelta("a", "order <*> id=<*>", 1)])  # text changed: embed again
    assert [t.template_id for t in store.unembedded_templates()] == ["a", "b"]
    assert store.templates(ids=[]) == []
    with pytest.raises(InvalidInput):
        store.upsert_templates([{"text": "no id"}])


def test_kv_roundtrip(store: EventStore) -> None:
    assert store.kv.get("nothing") is None
    assert store.kv.get("nothing", default={}) == {}
    store.kv.set("detect.last_run", {"end_ns": s(60)})
    store.kv.set("detect.last_run", {"end_ns": s(120)})
    assert store.kv.get("detect.last_run") == {"end_ns": s(120)}
    with pytest.raises(InvalidInput):
        store.kv.set("bad", object())


def test_documents_by_collection_time_status_and_service(store: EventStore) -> None:
    store.docs.put("incidents", "i1", {"id": "i1", "n": 1}, time_ns=s(10), status="open", service="web")
    store.docs.put("incidents", "i2", {"id": "i2"}, time_ns=s(20), status="resolved", service="cart")
    store.docs.put("incidents", "i1", {"id": "i1", "n": 2}, time_ns=s(30), status="open", service="web")
    store.docs.put("runs", "r1", {"id": "r1"}, time_ns=s(5))
    assert store.docs.get("incidents", "i1") == {"id": "i1", "n": 2}  # replaced
    assert store.docs.get("runs", "i1") is None
    assert [d["id"] for d in store.docs.find("incidents")] == ["i1", "i2"]  # newest first
    assert [d["id"] for d in store.docs.find("incidents", start_ns=s(15), end_ns=s(30))] == ["i2"]
    assert [d["id"] for d in store.docs.find("incidents", status="open", service="web")] == ["i1"]
    assert [d["id"] for d in store.docs.find("incidents", limit=1)] == ["i1"]
    assert store.docs.clear("incidents") == 2
    assert store.docs.find("incidents") == [] and store.docs.get("runs", "r1") == {"id": "r1"}


def test_documents_and_kv_share_the_store_transaction(duck: EventStore) -> None:
    store = duck
    with pytest.raises(RuntimeError), store.transaction():
        store.append_logs(pa.Table.from_pylist([log(1, "kept only on commit")]))
        store.docs.put("runs", "r1", {"id": "r1"}, time_ns=s(1))
        store.kv.set("mark", 1)
        raise RuntimeError("abort")
    assert store.docs.get("runs", "r1") is None and store.kv.get("mark") is None
    assert store.stats()["tables"]["logs"]["rows"] == 0


# -- the row contract -------------------------------------------------------------------------


def test_json_input_fields_are_the_log_columns() -> None:
    """LogEventIn (POST /ingest/logs) names the log columns, except the time it takes as `timestamp`
    and the columns the store computes."""
    fields = set(LogEventIn.model_fields) - {"timestamp"}
    names = set(ARROW_SCHEMAS["logs"].names)
    assert fields <= names
    assert names - fields == {"ts_ns", "event_id", "template_id"}


def test_reader_batches_are_the_contract_without_computed_ids() -> None:
    for kind in KINDS:
        computed = {"event_id", "template_id"} if kind == "logs" else {"event_id"}
        contract = [f for f in ARROW_SCHEMAS[kind] if f.name not in computed]
        assert list(reader_batch.SCHEMAS[kind]) == contract, kind


def test_column_picks_are_checked_against_the_contract() -> None:
    assert columns("metrics", ["ts_ns", "value"]) == ("ts_ns", "value")
    with pytest.raises(ValueError, match="no column 'latency'"):
        columns("spans", ["start_ns", "latency"])
    schema = row_schema("logs", ["event_id", "ts_ns"], as_text=["event_id"])
    assert schema == pa.schema([("event_id", pa.string()), ("ts_ns", pa.int64())])


# -- read-only SQL ----------------------------------------------------------------------------


def test_permitted_select(duck_filled: EventStore) -> None:
    filled = duck_filled
    cols, rows = filled.sql(
        "SELECT service, count(*) AS n FROM logs WHERE level IN ('ERROR', 'FATAL') GROUP BY service ORDER BY n DESC"
    )
    assert cols == ["service", "n"]
    assert rows == [("ts-order-service", 2), ("ts-station-service", 1)]
    cols, rows = filled.sql("WITH x AS (SELECT * FROM logs) SELECT message FROM x ORDER BY ts_ns", limit=3)
    assert [r[0] for r in rows] == [e["message"] for e in LOGS[:3]]
    assert filled.sql("SELECT count(*) FROM range(5)")[1] == [(5,)]
    assert ("logs",) in filled.sql("SELECT table_name FROM duckdb_tables()")[1]
    assert filled.sql("DESCRIBE logs")[1][0][0] == "event_id"


REFUSED = [
    "INSERT INTO logs (ts_ns, message) VALUES (1, 'x')",
    "UPDATE logs SET message = 'x'",
    "DELETE FROM logs",
    "CREATE TABLE t AS SELECT 1",
    "DROP TABLE logs",
    "ALTER TABLE logs ADD COLUMN x INT",
    "COPY logs TO '/tmp/devmesh-stolen.csv'",
    "COPY (SELECT * FROM logs) TO '/tmp/devmesh-stolen.parquet' (FORMAT parquet)",
    "ATTACH '/tmp/devmesh-other.duckdb' AS other",
    "PRAGMA enable_profiling",
    "SET enable_external_access = true",
    "INSTALL httpfs",
    "LOAD httpfs",
    "EXPORT DATABASE '/tmp/devmesh-export'",
    "CHECKPOINT",
    "CALL checkpoint()",
    "SELECT 1; DROP TABLE logs",
    "SELECT 1; SELECT 2",
    "WITH x AS (SELECT 1 AS ts_ns) INSERT INTO logs (ts_ns, message) SELECT ts_ns, 'x' FROM x",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_text('/etc/hostname')",
    "SELECT * FROM read_parquet('/tmp/x.parquet')",
    "SELECT * FROM glob('/etc/*')",
    "SELECT * FROM '/etc/passwd'",
    "SELECT * FROM 'events.csv'",
    "SELECT * FROM logs WHERE message IN (SELECT content FROM read_text('/etc/hostname'))",
    "SELECT (SELECT count(*) FROM glob('*'))",
    "SELECT * FROM query('SELECT 1')",
    "SELECT * FROM checkpoint()",
    "DETACH other",
    "BEGIN TRANSACTION",
    "VACUUM",
    "USE memory",
    "PIVOT logs ON level USING count(*)",
]


@pytest.mark.parametrize("statement", REFUSED)
def test_sql_refuses_anything_that_writes_or_reads_files(duck_filled: EventStore, statement: str) -> None:
    filled = duck_filled
    with pytest.raises(ReadOnlyViolation) as e:
        filled.sql(statement)
    assert e.value.field == "statement"
    assert filled.sql("SELECT count(*) FROM logs")[1] == [(10,)]
    assert not Path("/tmp/devmesh-stolen.csv").exists()


@pytest.mark.parametrize("statement", REFUSED)
def test_structural_check_alone_refuses(statement: str) -> None:
    # On a connection that could write and read files, the parser-based check must still refuse.
    conn = duckdb.connect()
    conn.execute("CREATE TABLE logs (ts_ns BIGINT, message VARCHAR)")
    with pytest.raises(ReadOnlyViolation):
        check_read_only(conn, statement)
    conn.close()


def test_store_connection_cannot_touch_files(duck_filled: EventStore) -> None:
    assert duck_filled.sql("SELECT current_setting('enable_external_access')")[1] == [(False,)]


@pytest.mark.parametrize("order", ["desc", "asc"])
@pytest.mark.parametrize("layout", ["dense", "sparse at the start", "sparse at the end", "few at the edges"])
def test_pages_of_a_wide_range_are_those_of_a_full_read(store: EventStore, order: str, layout: str) -> None:
    # A page is looked for first in the minute nearest its start (`page_probe`): whether that minute holds a
    # page or not, every page must be the one a read of the whole range gives.
    span = {
        "dense": range(0, 1200, 2),
        "sparse at the start": range(0, 50),
        "sparse at the end": range(1150, 1200),
        "few at the edges": [*range(0, 6), *range(200, 1000, 2), *range(1194, 1200)],  # fewer than a page each
    }
    rows = [log(t / 2, f"line {t}", service="ts-seat-service" if t % 4 else "ts-order-service") for t in span[layout]]
    assert store.append_logs(table(rows)).inserted == len(rows)
    want = [r["message"] for r in sorted(rows, key=lambda r: r["ts_ns"], reverse=order == "desc")]
    want = [m for m in want if int(m.split()[1]) % 4]
    q = LogQuery(start_ns=s(-1), end_ns=s(601), service="ts-seat-service", order=order, limit=7)  # type: ignore[arg-type]
    got: list[str] = []
    while True:
        page = store.query_logs(q)
        got += messages(page.events)
        if page.next_cursor is None:
            break
        q = q.model_copy(update={"cursor": page.next_cursor})
    assert got == want


def test_second_open_in_one_process_shares_the_locked_down_file(tmp_path: Path) -> None:
    # the server holds the store while a CLI helper in the same process opens it again
    from retrieval.events.db import Database

    first = Database(tmp_path / "events.duckdb")
    second = Database(tmp_path / "events.duckdb")
    try:
        with second.read() as cur:
            assert cur.execute("SELECT current_setting('enable_external_access')").fetchone() == (False,)
    finally:
        second.close()
        first.close()


def test_sql_errors_are_invalid_input(filled: EventStore) -> None:  # both dialects
    for bad in ("", "SELEC 1", "SELECT * FROM no_such_table"):
        with pytest.raises(InvalidInput) as e:
            filled.sql(bad)
        assert not isinstance(e.value, ReadOnlyViolation)


def test_sql_timeout_stops_a_runaway_query(path: Path) -> None:
    st = EventStore(path, sql_timeout_s=0.2)
    with pytest.raises(InvalidInput, match="longer than"):
        st.sql("SELECT count(*) FROM range(10000000000) a, range(10) b WHERE a.range + b.range < 0")
    assert st.sql("SELECT 1")[1] == [(1,)]
    st.close()
