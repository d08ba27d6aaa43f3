"""An acknowledgement means what it says: a stored batch whose graph or vector write failed is owed, and
the repair (or `rebuild`) completes it from the event store, on the real embedded engines.

The graph goes down for real: an embedded FalkorDB of the test's own is stopped and started again on the
same data folder (same socket), and the client reconnects by itself. Qdrant is pointed at a closed port.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from qdrant_client import QdrantClient

from api.http.app import create_app
from api.wiring import Services
from core.errors import DevMeshError
from core.explanation import EvidenceItem, EvidenceSource, Explanation, ExplanationMode, RootCause
from core.incident import Feedback, InvestigationRequest
from core.settings import Settings
from detect.incidents import IncidentBook
from graph.schema import ensure_schema
from graph.server import EmbeddedFalkorDB, connect_url
from graph.store import GraphStore
from ingest import batch
from ingest.devmesh_json import Limits, parse_events
from ingest.repair import owed_counts, rebuild_graph, repair_owed
from retrieval.embedders import HashingEmbedder
from retrieval.events import EventStore
from retrieval.qdrant_server import ServerVectorStore
from tests.conftest import free_port

NS = 10**9
T = 1_760_000_000 * NS
LIMITS = Limits(max_events=10_000, max_message_chars=65_536, min_year=2000, max_future_skew_s=86_400)


def events_of(service: str, pod: str, host: str, start_s: int, n: int = 3) -> list[dict[str, Any]]:
    return [
        {
            "timestamp": T + (start_s + i) * NS,
            "message": f"{service} request {i} failed: upstream timeout after {100 + i} ms",
            "level": "ERROR",
            "service": service,
            "pod": pod,
            "host": host,
        }
        for i in range(n)
    ]


def rows(events: list[dict[str, Any]]) -> dict[str, list[Any]]:
    parsed = parse_events(events, LIMITS, now_ns=T + 86_400 * NS)
    assert parsed.errors == []
    return parsed.rows


@pytest.fixture
def graph_server(tmp_path: Path) -> Iterator[EmbeddedFalkorDB]:
    server = EmbeddedFalkorDB(tmp_path / "falkordb")
    server.start()
    yield server
    server.stop()


def open_owed_services(home: Path, server: EmbeddedFalkorDB) -> Services:
    """Events in `home`, the graph on `server`, no vectors."""
    assert server.url is not None
    services = Services(settings=Settings(home=home, embedder="none"), events=EventStore(home / "events.duckdb"))
    conn = connect_url(server.url, "owed")
    ensure_schema(conn.graph)
    services.graph = GraphStore(conn.graph)
    services._closers += [services.events.close, conn.close]
    return services


@pytest.fixture
def svc(tmp_path: Path, graph_server: EmbeddedFalkorDB) -> Iterator[Services]:
    services = open_owed_services(tmp_path / "home", graph_server)
    yield services
    services.close()


def graph_picture(svc: Services) -> dict[str, Any]:
    """Services, pods with their service and host, EMITS edges with counts, node and edge counts."""
    assert svc.graph is not None
    g = svc.graph.graph

    def q(query: str) -> list[list[Any]]:
        return g.ro_query(query).result_set  # type: ignore[no-any-return]

    return {
        "services": q("MATCH (s:Service) RETURN s.name ORDER BY s.name"),
        "pods": q(
            "MATCH (p:Pod)-[:INSTANCE_OF]->(s:Service) OPTIONAL MATCH (p)-[:RUNS_ON]->(n:Node)"
            " RETURN p.name, s.name, n.name ORDER BY p.name"
        ),
        "emits": q("MATCH (s:Service)-[e:EMITS]->(t:LogTemplate) RETURN s.name, t.id, e.count ORDER BY s.name, t.id"),
        "nodes": q("MATCH (n) RETURN count(n)"),
        "edges": q("MATCH ()-[r]->() RETURN count(r)"),
    }


def test_graph_down_batch_stored_and_owed_then_repaired(svc: Services, graph_server: EmbeddedFalkorDB) -> None:
    pipeline = svc.pipeline
    first = pipeline.ingest("logs", rows(events_of("auth", "auth-1", "node-1", 0)))
    assert first.stored == 3 and first.graph_error is None
    assert owed_counts(pipeline)["graph"] == 0

    graph_server.stop()
    second = pipeline.ingest("logs", rows(events_of("billing", "billing-1", "node-2", 100)))
    assert second.stored == 3  # stored although the graph is down: the batch is acknowledged
    assert second.graph_error is not None
    assert owed_counts(pipeline) == {"graph": 1, "vectors": 0}
    (entry,) = svc.events.owed.pending("graph")
    assert (entry.kind, entry.lo_ns, entry.hi_ns) == ("logs", T + 100 * NS, T + 102 * NS)
    assert entry.attempts == 1

    still_down = repair_owed(svc)
    assert still_down.graph_error is not None and still_down.owed["graph"] == 1

    graph_server.start()  # same data folder, same socket: the client reconnects by itself
    report = repair_owed(svc)
    assert report.graph_error is None
    assert report.entries == 1
    assert report.owed == {"graph": 0, "vectors": 0}
    picture = graph_picture(svc)
    assert picture["services"] == [["auth"], ["billing"]]
    assert picture["pods"] == [["auth-1", "auth", "node-1"], ["billing-1", "billing", "node-2"]]
    assert [(s, c) for s, _, c in picture["emits"]] == [("auth", 3), ("billing", 3)]

    # A client that retries the acknowledged batch: nothing doubled, in the events or the graph.
    again = pipeline.ingest("logs", rows(events_of("billing", "billing-1", "node-2", 100)))
    assert (again.stored, again.duplicates, again.graph_error) == (0, 3, None)
    assert svc.events.stats()["tables"]["logs"]["rows"] == 6
    assert repair_owed(svc).entries == 0
    assert graph_picture(svc) == picture


def test_entry_left_by_a_crash_is_repaired(svc: Services) -> None:
    """The ledger entry is written with the batch: a process that dies before the graph write leaves it
    owed (here: the entry of a stored batch whose graph write never ran), and the repair completes it."""
    pipeline = svc.pipeline
    pipeline.ingest("logs", rows(events_of("auth", "auth-1", "node-1", 0)))
    svc.events.append_logs(_table(rows(events_of("cart", "cart-1", "node-3", 50))))
    svc.events.owed.add("graph", "logs", T + 50 * NS, T + 52 * NS)
    assert ["cart"] not in graph_picture(svc)["services"]
    report = repair_owed(pipeline)
    assert report.entries == 1
    assert ["cart"] in graph_picture(svc)["services"]
    assert ["cart-1", "cart", "node-3"] in graph_picture(svc)["pods"]


def _table(cols: dict[str, list[Any]]) -> Any:
    return batch.to_table("logs", cols)


def test_rebuild_graph_on_a_wiped_graph_gives_the_same_graph(svc: Services) -> None:
    pipeline = svc.pipeline
    pipeline.ingest("logs", rows(events_of("auth", "auth-1", "node-1", 0)))
    pipeline.ingest("logs", rows(events_of("billing", "billing-1", "node-2", 100)))
    pipeline.ingest("logs", rows(events_of("auth", "auth-2", "node-2", 200, n=2)))
    spans = {
        "trace_id": ["t1", "t1"],
        "span_id": ["a", "b"],
        "parent_id": ["", "a"],
        "service": ["auth", "billing"],
        "pod": ["auth-1", "billing-1"],
        "host": ["node-1", "node-2"],
        "operation": ["GET /login", "POST /charge"],
        "start_ns": [T + 300 * NS, T + 300 * NS + 1000],
        "end_ns": [T + 301 * NS, T + 300 * NS + 9000],
        "duration_us": [1e6, 8.0],
        "status": ["OK", "ERROR"],
        "kind": ["SERVER", "SERVER"],
        "attributes": ["", ""],
    }
    pipeline.ingest("spans", spans)
    pipeline.refresh_topology()
    assert svc.graph is not None
    calls_before = svc.graph.call_edges()
    before = graph_picture(svc)
    assert [c.caller + ">" + c.callee for c in calls_before] == ["auth>billing"]

    svc.graph.delete_all()
    assert graph_picture(svc)["services"] == []
    report = rebuild_graph(pipeline)
    assert report.calls == 1
    assert graph_picture(svc) == before
    assert svc.graph.call_edges() == calls_before
    rebuild_graph(pipeline)  # twice: nothing doubled
    assert graph_picture(svc) == before


def incident_picture(svc: Services) -> list[list[Any]]:
    """Each incident with its status, feedback, root causes (service, rank), affected services, templates."""
    assert svc.graph is not None
    rows = svc.graph.graph.ro_query(
        "MATCH (i:Incident) OPTIONAL MATCH (i)-[r:ROOT_CAUSE]->(s:Service)"
        " WITH i, collect([s.name, r.rank]) AS causes"
        " OPTIONAL MATCH (i)-[:AFFECTS]->(a:Service) WITH i, causes, collect(a.name) AS affected"
        " OPTIONAL MATCH (i)-[:HAS_LOG]->(t:LogTemplate)"
        " RETURN i.id, i.status, i.confirmed_root_cause, causes, affected, count(t) ORDER BY i.id"
    ).result_set
    return [[i, st, c, sorted(rc, key=lambda x: x[1]), sorted(a), t] for i, st, c, rc, a, t in rows]


def test_incident_written_while_the_graph_is_down_is_owed_repaired_and_rebuilt(
    svc: Services, graph_server: EmbeddedFalkorDB
) -> None:
    """The incident book's graph mirror is owed while the graph is down (its record is in the event store):
    the repair writes the node and its edges when the graph is back, and `rebuild --wipe` writes them again."""
    pipeline = svc.pipeline
    pipeline.ingest("logs", rows(events_of("auth", "auth-1", "node-1", 0)))
    template = svc.events.templates()[0].template_id
    book = IncidentBook(svc.events, svc.graph)
    graph_server.stop()
    incident = book.open(InvestigationRequest(service="auth", at_ns=T + NS), source="api")
    explanation = Explanation(
        mode=ExplanationMode.EVIDENCE_ONLY,
        summary="billing broke auth",
        root_causes=[
            RootCause(service="billing", rank=1, confidence=0.8),
            RootCause(service="auth", rank=2, confidence=0.2),
        ],
        evidence=[EvidenceItem(id=f"template:{template}", kind="template", source=EvidenceSource.EVENTS)],
    )
    incident = book.record_explanation(incident, explanation)
    book.add_feedback(incident.id, Feedback(root_cause="billing", helpful=True))
    owed = [e for e in svc.events.owed.pending("graph") if e.kind == "incidents"]  # one per save
    assert len(owed) == 3 and {(e.lo_ns, e.hi_ns) for e in owed} == {(T + NS, T + NS)}
    assert repair_owed(svc).graph_error is not None  # still down: still owed

    graph_server.start()
    report = repair_owed(svc)
    assert report.graph_error is None and report.incidents == 1 and report.owed["graph"] == 0
    expected = [[incident.id, "open", "billing", [["billing", 1], ["auth", 2]], ["auth"], 1]]
    picture = incident_picture(svc)
    assert picture == expected

    assert svc.graph is not None
    svc.graph.delete_all()
    assert incident_picture(svc) == []
    rebuilt = rebuild_graph(pipeline, wipe=True)
    assert rebuilt.incidents == 1
    assert incident_picture(svc) == picture


def test_vector_store_down_ingest_stores_and_owes_vectors(tmp_path: Path) -> None:
    """With the Qdrant URL pointing at nothing, the HTTP ingest answers 200, the events are stored, and
    the templates are owed a vector (shown by /health)."""
    dead = f"http://127.0.0.1:{free_port()}"
    settings = Settings(home=tmp_path / "home", embedder="none", qdrant_url=dead)

    def open_fn(s: Settings) -> Services:
        services = Services(settings=s, events=EventStore(s.events_path))
        services.vectors = ServerVectorStore(QdrantClient(url=dead, timeout=2, check_compatibility=False))
        services.embedder = HashingEmbedder(384)
        services._closers += [services.events.close, services.vectors.close]
        return services

    with TestClient(create_app(settings, open_fn=open_fn), base_url="http://127.0.0.1") as client:
        r = client.post("/ingest/logs", json={"events": events_of("auth", "auth-1", "node-1", 0)})
        assert r.status_code == 200, r.text
        assert r.json()["stored"] == 3
        svc: Services = client.app.state.services  # type: ignore[attr-defined]
        assert svc.events.stats()["tables"]["logs"]["rows"] == 3
        owed = owed_counts(svc.pipeline)
        assert owed["vectors"] == svc.events.stats()["templates"]["rows"] >= 1
        health = client.get("/health").json()
        assert health["owed"]["vectors"] == owed["vectors"]
        report = repair_owed(svc)
        assert report.vector_error is not None and report.embedded == 0


def spans_of(trace: str, start_ns: int) -> dict[str, list[Any]]:
    """A call from auth (pod auth-1) to billing (pod billing-1)."""
    return {
        "trace_id": [trace, trace],
        "span_id": ["a", "b"],
        "parent_id": ["", "a"],
        "service": ["auth", "billing"],
        "pod": ["auth-1", "billing-1"],
        "host": ["node-1", "node-2"],
        "operation": ["GET /login", "POST /charge"],
        "start_ns": [start_ns, start_ns + 1000],
        "end_ns": [start_ns + NS, start_ns + 9000],
        "duration_us": [1e6, 8.0],
        "status": ["OK", "ERROR"],
        "kind": ["SERVER", "SERVER"],
        "attributes": ["", ""],
    }


def test_http_ingest_while_the_graph_is_down_is_acknowledged_and_the_calls_come_later(
    graph_server: EmbeddedFalkorDB, tmp_path: Path
) -> None:
    """Through the API: 200 while FalkorDB is stopped, the events stored, the graph (pods, CALLS) owed;
    FalkorDB back, the repair writes the new service and the call."""
    svc = open_owed_services(tmp_path / "home", graph_server)  # the app closes it
    with TestClient(create_app(svc.settings, open_fn=lambda s: svc), base_url="http://127.0.0.1") as client:
        graph_server.stop()
        r = client.post("/ingest/logs", json={"events": events_of("billing", "billing-1", "node-2", 0)})
        assert r.status_code == 200, r.text
        assert r.json()["stored"] == 3
        svc.pipeline.ingest("spans", spans_of("t1", T + 5 * NS))
        with pytest.raises(DevMeshError):
            svc.pipeline.refresh_topology()  # the call graph cannot be written: its entry stays owed
        assert client.get("/health").json()["owed"]["graph"] == 2
        assert svc.events.stats()["tables"]["logs"]["rows"] == 3

        graph_server.start()
        report = repair_owed(svc)
        assert (report.graph_error, report.entries, report.calls) == (None, 2, 1)
        assert client.get("/health").json()["owed"] == {"graph": 0, "vectors": 0}
        assert svc.graph is not None
        calls = [(c.caller, c.callee, c.calls, c.errors) for c in svc.graph.call_edges()]
        assert calls == [("auth", "billing", 1, 1)]
        assert graph_picture(svc)["pods"] == [["auth-1", "auth", "node-1"], ["billing-1", "billing", "node-2"]]
