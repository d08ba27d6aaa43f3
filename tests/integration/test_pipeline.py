"""The ingestion pipeline on real engines: a DuckDB file, the embedded FalkorDB server, Qdrant Edge.

The embedder is the HashingEmbedder (the model is not what is tested here); search quality on the real
MiniLM is tested in tests/integration/test_api.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from api.wiring import Services
from core.errors import EmbedderUnavailable
from core.settings import Settings
from ingest import batch
from ingest.devmesh_json import Limits, parse_events
from ingest.importers import import_nezha, import_runbooks
from ingest.pipeline import TEMPLATES, Pipeline
from retrieval.embedders import HashingEmbedder
from retrieval.events import LogQuery

REPO = Path(__file__).resolve().parents[2]
NS = 10**9
MS = 10**6
T = 1_760_000_000 * NS  # 2025-10-09T08:53:20Z
LIMITS = Limits(max_events=10_000, max_message_chars=65_536, min_year=2000, max_future_skew_s=86_400)

AUTH = {"service": "auth", "pod": "auth-7d9f8b6c5d-x2x9z", "host": "node-1"}
CHECKOUT = {"service": "checkout", "pod": "checkout-5b67c48447-mv5hb", "host": "node-2"}
LOGIN = "user <*> logged in from <*>"
REFUSED = "Connection refused to db-primary:<*>"


def log_cols(events: Sequence[dict[str, Any]]) -> dict[str, list[Any]]:
    parsed = parse_events(list(events), LIMITS, now_ns=T + 86_400 * NS)
    assert parsed.errors == []
    return parsed.rows


def first_batch() -> list[dict[str, Any]]:
    """Six lines, two templates; the refused template comes from two services (2 lines + 1 line)."""
    return [
        *(
            {"timestamp": T + i * NS, "message": f"user {u} logged in from 10.0.0.{u}", "level": "INFO", **AUTH}
            for i, u in enumerate((17, 42, 99))
        ),
        {"timestamp": T + 10 * NS, "message": "Connection refused to db-primary:5432", "level": "ERROR", **CHECKOUT},
        {"timestamp": T + 11 * NS, "message": "Connection refused to db-primary:5433", "level": "ERROR", **CHECKOUT},
        {"timestamp": T + 20 * NS, "message": "Connection refused to db-primary:5432", "level": "WARN", **AUTH},
    ]


def all_logs(svc: Services) -> list[dict[str, Any]]:
    return svc.events.query_logs(LogQuery(order="asc", limit=1000)).events


def graph_rows(svc: Services, query: str) -> list[list[Any]]:
    assert svc.graph is not None
    return svc.graph.graph.ro_query(query).result_set  # type: ignore[no-any-return]


def template_ids(svc: Services) -> dict[str, str]:
    """Template text -> id, from the templates table."""
    return {t.text: t.template_id for t in svc.events.templates()}


def snapshot(svc: Services) -> dict[str, Any]:
    """Everything the stores hold that an ingest could change."""
    assert svc.graph is not None and svc.vectors is not None
    return {
        "logs": all_logs(svc),
        "templates": svc.events.templates(),
        "graph": svc.graph.counts(),
        "emits": graph_rows(svc, "MATCH (s:Service)-[e:EMITS]->(t:LogTemplate) RETURN s.name, t.id, e.count, t.count"),
        "vectors": svc.vectors.count(TEMPLATES),
    }


# -- logs ---------------------------------------------------------------------------------------------


def test_logs_are_stored_with_template_ids_and_linked_in_the_graph(services: Services) -> None:
    report = services.pipeline.ingest_logs(log_cols(first_batch()))
    assert (report.received, report.stored, report.duplicates, report.new_templates) == (6, 6, 0, 2)
    assert (report.embedded, report.embed_error) == (2, None)

    ids = template_ids(services)
    assert sorted(ids) == [REFUSED, LOGIN]
    assert all(len(i) == 13 and i.startswith("T") for i in ids.values())
    logs = all_logs(services)
    assert [(e["service"], e["level"], e["template_id"]) for e in logs] == [
        ("auth", "INFO", ids[LOGIN]),
        ("auth", "INFO", ids[LOGIN]),
        ("auth", "INFO", ids[LOGIN]),
        ("checkout", "ERROR", ids[REFUSED]),
        ("checkout", "ERROR", ids[REFUSED]),
        ("auth", "WARN", ids[REFUSED]),
    ]
    assert logs[0]["message"] == "user 17 logged in from 10.0.0.17" and logs[0]["source"] == "api"

    got = {(t.text, t.count, t.first_ns, t.last_ns, t.level, t.embedded) for t in services.events.templates()}
    assert got == {
        (LOGIN, 3, T, T + 2 * NS, "INFO", True),
        (REFUSED, 3, T + 10 * NS, T + 20 * NS, "ERROR", True),
    }
    assert services.vectors is not None
    assert sorted(p.id for p in services.vectors.get(TEMPLATES, list(ids.values()))) == sorted(ids.values())

    assert graph_rows(
        services, "MATCH (s:Service)-[:EMITS]->(t:LogTemplate) RETURN s.name, t.text ORDER BY s.name, t.text"
    ) == [
        ["auth", REFUSED],
        ["auth", LOGIN],
        ["checkout", REFUSED],
    ]
    assert graph_rows(services, "MATCH (p:Pod)-[:INSTANCE_OF]->(s:Service) RETURN p.name, s.name ORDER BY p.name") == [
        [AUTH["pod"], "auth"],
        [CHECKOUT["pod"], "checkout"],
    ]
    assert graph_rows(services, "MATCH (p:Pod)-[:RUNS_ON]->(n:Node) RETURN p.name, n.name ORDER BY p.name") == [
        [AUTH["pod"], "node-1"],
        [CHECKOUT["pod"], "node-2"],
    ]
    counts = services.graph.counts()  # type: ignore[union-attr]
    assert {k: v for k, v in counts.items() if v} == {
        "Service": 2,
        "Pod": 2,
        "Node": 2,
        "LogTemplate": 2,
        "INSTANCE_OF": 2,
        "RUNS_ON": 2,
        "EMITS": 3,
    }


def test_emits_counts_are_per_service(services: Services) -> None:
    services.pipeline.ingest_logs(log_cols(first_batch()))
    ids = template_ids(services)
    rows = graph_rows(
        services,
        "MATCH (s:Service)-[e:EMITS]->(t:LogTemplate) RETURN s.name, t.id, e.count, t.count ORDER BY s.name, t.id",
    )
    assert sorted(rows) == sorted(
        [["auth", ids[REFUSED], 1, 3], ["auth", ids[LOGIN], 3, 3], ["checkout", ids[REFUSED], 2, 3]]
    )


def test_the_same_batch_twice_is_stored_once(services: Services) -> None:
    services.pipeline.ingest_logs(log_cols(first_batch()))
    before = snapshot(services)

    again = services.pipeline.ingest_logs(log_cols(first_batch()))
    assert (again.received, again.stored, again.duplicates, again.new_templates) == (6, 0, 6, 0)
    assert snapshot(services) == before

    # a batch that overlaps: only its new lines count
    more = [
        *first_batch()[:2],
        {"timestamp": T + 30 * NS, "message": "user 7 logged in from 10.0.0.7", "level": "INFO", **AUTH},
    ]
    report = services.pipeline.ingest_logs(log_cols(more))
    assert (report.stored, report.duplicates, report.new_templates) == (1, 2, 0)
    assert len(all_logs(services)) == 7
    login = next(t for t in services.events.templates() if t.text == LOGIN)
    assert (login.count, login.first_ns, login.last_ns) == (4, T, T + 30 * NS)
    assert services.vectors is not None and services.vectors.count(TEMPLATES) == 2


def test_graph_template_counts_follow_later_batches(services: Services) -> None:
    services.pipeline.ingest_logs(log_cols(first_batch()[:3]))
    services.pipeline.ingest_logs(
        log_cols([{"timestamp": T + 30 * NS, "message": "user 7 logged in from 10.0.0.7", "level": "INFO", **AUTH}])
    )
    assert graph_rows(services, "MATCH (:Service)-[e:EMITS]->(t:LogTemplate) RETURN e.count, t.count") == [[4, 4]]


def test_a_restart_keeps_events_templates_graph_and_vectors(
    settings: Settings, open_fn: Callable[[Settings], Services]
) -> None:
    svc = open_fn(settings)
    try:
        svc.pipeline.ingest_logs(log_cols(first_batch()))
        ids = template_ids(svc)
        before = snapshot(svc)
        assert svc.vectors is not None
        vectors_before = {p.id: p.vector for p in svc.vectors.get(TEMPLATES, list(ids.values()))}
    finally:
        svc.close()

    svc = open_fn(settings)
    try:
        assert snapshot(svc) == before
        assert svc.vectors is not None
        after = {p.id: p.vector for p in svc.vectors.get(TEMPLATES, list(ids.values()))}
        assert after.keys() == vectors_before.keys()
        for key, vector in after.items():
            np.testing.assert_allclose(vector, vectors_before[key], rtol=0, atol=1e-6)

        # the restored miner puts new lines of known shapes under the same ids
        later = [
            {"timestamp": T + 100 * NS, "message": "user 5 logged in from 10.0.0.5", "level": "INFO", **AUTH},
            {
                "timestamp": T + 101 * NS,
                "message": "Connection refused to db-primary:6000",
                "level": "ERROR",
                **CHECKOUT,
            },
        ]
        report = svc.pipeline.ingest_logs(log_cols(later))
        assert (report.stored, report.new_templates, report.embedded) == (2, 0, 0)
        assert [e["template_id"] for e in all_logs(svc)[-2:]] == [ids[LOGIN], ids[REFUSED]]
        assert template_ids(svc) == ids
        assert {t.text: t.count for t in svc.events.templates()} == {LOGIN: 4, REFUSED: 4}
        # and the first lines, sent again after the restart, are still duplicates
        assert svc.pipeline.ingest_logs(log_cols(first_batch())).duplicates == 6
    finally:
        svc.close()


# -- spans and topology -------------------------------------------------------------------------------


def span(trace: str, span_id: str, parent: str, service: str, start_ms: int, dur_ms: int, status: str = "OK") -> dict:
    return {
        "trace_id": trace,
        "span_id": span_id,
        "parent_id": parent,
        "service": service,
        "pod": f"{service}-1",
        "host": "",
        "operation": f"{service} op",
        "start_ns": T + start_ms * MS,
        "end_ns": T + (start_ms + dur_ms) * MS,
        "duration_us": dur_ms * 1000.0,
        "status": status,
        "kind": "SERVER",
        "attributes": "",
    }


def hand_made_trace() -> dict[str, list[Any]]:
    """frontend -> checkout (2 calls, 1 error: 40 ms, 60 ms), checkout -> payment (2 calls, 1 error: 10 ms, 30 ms)."""
    rows = [
        span("t1", "a1", "", "frontend", 0, 100),
        span("t1", "a2", "a1", "checkout", 5, 40),
        span("t1", "a3", "a2", "checkout", 6, 5),  # same service: not a call
        span("t1", "a4", "a2", "payment", 10, 10),
        span("t1", "a5", "a2", "payment", 25, 30, "ERROR"),
        span("t2", "b1", "", "frontend", 200, 80),
        span("t2", "b2", "b1", "checkout", 205, 60, "ERROR"),
        span("t3", "c2", "c1", "payment", 300, 5),  # its parent was never received
    ]
    cols = batch.empty("spans")
    for r in rows:
        batch.append_row(cols, r)
    return cols


def test_spans_give_call_edges_with_exact_figures(services: Services) -> None:
    # logs first: where pods run goes to the graph; the spans are stored as sent (their ids stay stable)
    services.pipeline.ingest_logs(
        log_cols([{"timestamp": T, "message": "started", "service": "checkout", "pod": "checkout-1", "host": "node-2"}])
    )
    report = services.pipeline.ingest_spans(hand_made_trace())
    assert (report.received, report.stored, report.duplicates) == (8, 8, 0)
    assert services.pipeline.spans_since_refresh == 8
    stored = {s["span_id"]: s for s in services.events.trace_spans("t1")}
    assert stored["a2"]["host"] == "" and stored["a4"]["host"] == ""

    topo = services.pipeline.refresh_topology()
    assert services.pipeline.spans_since_refresh == 0
    assert topo.services == ["checkout", "frontend", "payment"]
    got = [(c.caller, c.callee, c.calls, c.errors, c.mean_ms, c.p95_ms) for c in topo.calls]
    assert got == [
        ("checkout", "payment", 2, 1, pytest.approx(20.0), pytest.approx(29.0)),
        ("frontend", "checkout", 2, 1, pytest.approx(50.0), pytest.approx(59.0)),
    ]
    assert services.graph is not None
    in_graph = [(c.caller, c.callee, c.calls, c.errors, c.mean_ms, c.p95_ms) for c in services.graph.call_edges()]
    assert in_graph == got
    assert services.graph.shortest_call_path("frontend", "payment") == ["frontend", "checkout", "payment"]

    # refreshing again, or re-sending the spans, changes no figure
    assert services.pipeline.ingest_spans(hand_made_trace()).duplicates == 8
    services.pipeline.refresh_topology()
    assert [(c.caller, c.callee, c.calls, c.errors) for c in services.graph.call_edges()] == [
        ("checkout", "payment", 2, 1),
        ("frontend", "checkout", 2, 1),
    ]


def test_a_span_sent_again_after_its_pods_logs_is_still_a_duplicate(services: Services) -> None:
    services.pipeline.ingest_spans(hand_made_trace())
    services.pipeline.ingest_logs(
        log_cols([{"timestamp": T, "message": "started", "service": "checkout", "pod": "checkout-1", "host": "node-2"}])
    )
    again = services.pipeline.ingest_spans(hand_made_trace())
    assert (again.stored, again.duplicates) == (0, 8)


def test_metrics_are_stored_once(services: Services) -> None:
    cols = batch.empty("metrics")
    for i, (name, value) in enumerate([("cpu_usage", 0.5), ("cpu_usage", 0.75), ("memory_usage", 512.0)]):
        batch.append_row(
            cols, {"ts_ns": T + i * NS, "name": name, "value": value, "service": "auth", "pod": AUTH["pod"], "host": ""}
        )
    assert services.pipeline.ingest_metrics(cols).stored == 3
    assert services.pipeline.ingest_metrics(cols).duplicates == 3
    _, rows = services.events.sql("SELECT name, value, service FROM metrics ORDER BY ts_ns")
    assert rows == [("cpu_usage", 0.5, "auth"), ("cpu_usage", 0.75, "auth"), ("memory_usage", 512.0, "auth")]


# -- embedder failure and backfill ---------------------------------------------------------------------


class BrokenEmbedder:
    name = "broken"
    dim = 384

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        raise EmbedderUnavailable("the embedding model could not be loaded (test)")


class Interrupted(Exception):
    pass


def test_embedder_failure_keeps_events_and_backfill_fills_the_vectors(services: Services) -> None:
    assert services.graph is not None and services.vectors is not None
    broken = Pipeline(services.events, services.graph, services.vectors, BrokenEmbedder())
    more = [
        {"timestamp": T + 40 * NS, "message": "payment declined for order 7", "level": "WARN", **CHECKOUT},
        {"timestamp": T + 41 * NS, "message": "cache warmed in 35 ms", "level": "INFO", **CHECKOUT},
    ]
    report = broken.ingest_logs(log_cols(first_batch() + more))
    assert (report.stored, report.new_templates, report.embedded) == (8, 4, 0)
    assert report.embed_error == "the embedding model could not be loaded (test)"
    assert len(all_logs(services)) == 8 and all(e["template_id"] for e in all_logs(services))
    assert services.events.stats()["templates"] == {"rows": 4, "unembedded": 4}
    assert services.vectors.count(TEMPLATES) == 0
    assert services.graph.counts()["LogTemplate"] == 4

    working = Pipeline(services.events, services.graph, services.vectors, HashingEmbedder(384))
    seen: list[int] = []

    def stop_after_two(n: int) -> None:
        seen.append(n)
        if sum(seen) >= 2:
            raise Interrupted

    with pytest.raises(Interrupted):
        working.backfill(batch_size=1, progress=stop_after_two)
    assert services.events.stats()["templates"] == {"rows": 4, "unembedded": 2}
    assert services.vectors.count(TEMPLATES) == 2

    assert working.backfill(batch_size=1) == 2  # resumes with what is left
    assert services.events.stats()["templates"] == {"rows": 4, "unembedded": 0}
    ids = sorted(t.template_id for t in services.events.templates())
    assert sorted(p.id for p in services.vectors.get(TEMPLATES, ids)) == ids
    assert working.backfill() == 0


# -- the bundled sample through the importers ----------------------------------------------------------


def test_import_of_the_nezha_sample_and_the_runbooks(services: Services) -> None:
    assert services.graph is not None and services.vectors is not None
    files: list[tuple[str, str]] = []
    report = import_nezha(
        services.pipeline, REPO / "samples" / "nezha", on_file=lambda k, p, r: files.append((k, p.name))
    )
    d = report.as_dict()
    assert (d["files"], d["faults"], d["warnings"]) == (55, 1, [])
    # the sample holds 111 log rows and 200 span rows twice, byte for byte (consecutive minute files overlap)
    assert {k: (d[k]["received"], d[k]["stored"], d[k]["duplicates"]) for k in ("logs", "spans", "metrics")} == {
        "logs": (8765, 8654, 111),
        "spans": (16818, 16618, 200),
        "metrics": (60196, 60196, 0),
    }
    assert files[0][0] == "spans" and files[-1][0] == "metrics" and len(files) == 55
    stats = services.events.stats()
    assert {k: v["rows"] for k, v in stats["tables"].items()} == {"logs": 8654, "spans": 16618, "metrics": 60196}
    n_templates = stats["templates"]["rows"]
    assert d["logs"]["new_templates"] == n_templates and stats["templates"]["unembedded"] == 0
    assert services.vectors.count(TEMPLATES) == n_templates
    _, rows = services.events.sql("SELECT count(*) FROM logs WHERE template_id = ''")
    assert rows == [(0,)]

    calls = {(c.caller, c.callee): c for c in services.graph.call_edges()}
    assert len(calls) == d["calls"] == 54
    _, edge_rows = services.events.sql(
        "SELECT count(*) FROM spans c JOIN spans p ON p.trace_id = c.trace_id AND p.span_id = c.parent_id"
        " WHERE p.service = 'ts-basic-service' AND c.service = 'ts-station-service'"
    )
    assert calls[("ts-basic-service", "ts-station-service")].calls == edge_rows[0][0] == 208
    # the faulty service's only caller is there, with its calls counted
    assert [k for k in calls if "ts-verification-code-service" in k] == [
        ("ts-auth-service", "ts-verification-code-service")
    ]
    assert calls[("ts-auth-service", "ts-verification-code-service")].calls == 26
    faulty = sorted(p.pod for p in services.graph.pods_of("ts-verification-code-service"))
    assert faulty == ["ts-verification-code-service-7b6dc75c45-2z9p2"]

    books = import_runbooks(
        REPO / "samples" / "runbooks",
        graph=services.graph,
        vectors=services.vectors,
        embedder=services.embedder,
        known_services=["node", "pod", *services.graph.services()],
    )
    assert books.as_dict() == {
        "runbooks": 6,
        "sections": 24,
        "embedded": 24,
        "linked_services": 9,  # node and pod, as printed in each runbook
        "alerts": 6,
        "warnings": [],
    }
    assert services.vectors.count("runbooks") == 24
    counts = services.graph.counts()
    assert (counts["Runbook"], counts["Alert"], counts["COVERS"]) == (6, 6, 9 + 6)

    # importing the same folder again stores nothing new
    again = import_nezha(services.pipeline, REPO / "samples" / "nezha").as_dict()
    assert (again["logs"]["stored"], again["logs"]["duplicates"], again["logs"]["new_templates"]) == (0, 8765, 0)
    assert (again["metrics"]["stored"], again["metrics"]["duplicates"]) == (0, 60196)
    assert (again["spans"]["stored"], again["spans"]["duplicates"]) == (0, 16818)
    assert services.events.stats()["templates"]["rows"] == n_templates


def test_import_nezha_twice_stores_no_span_twice(services: Services) -> None:
    """A plain re-import (spans first, as the importer orders them) adds no rows."""
    import_nezha(services.pipeline, REPO / "samples" / "nezha", kinds=("spans",))
    again = import_nezha(services.pipeline, REPO / "samples" / "nezha", kinds=("spans",)).as_dict()
    assert (again["spans"]["stored"], again["spans"]["duplicates"]) == (0, 16818)


def test_report_is_json_serializable(services: Services) -> None:
    report = services.pipeline.ingest_logs(log_cols(first_batch()))
    assert json.loads(json.dumps(report.as_dict()))["stored"] == 6
