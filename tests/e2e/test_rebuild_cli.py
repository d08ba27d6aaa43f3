"""`devmesh rebuild graph|vectors` as a user runs it: a subprocess with its own home and graph."""

from __future__ import annotations

import json

from core.settings import Settings
from graph.server import connect_url
from tests.cli import devmesh, out

T_NS = 1_760_000_000 * 10**9


def graph_of(settings: Settings) -> dict[str, list[list[str]]]:
    conn = connect_url(str(settings.falkordb_url), settings.graph_name)
    try:

        def q(query: str) -> list[list[str]]:
            return conn.graph.ro_query(query).result_set  # type: ignore[no-any-return]

        return {
            "services": q("MATCH (s:Service) RETURN s.name ORDER BY s.name"),
            "pods": q("MATCH (p:Pod)-[:INSTANCE_OF]->(s:Service) RETURN p.name, s.name ORDER BY p.name"),
            "emits": q("MATCH (s:Service)-[e:EMITS]->(:LogTemplate) RETURN s.name, e.count ORDER BY s.name"),
        }
    finally:
        conn.close()


def test_rebuild_graph_from_the_stored_events(settings: Settings) -> None:
    settings.home.mkdir(parents=True)
    events = [
        {"timestamp": T_NS + i * 10**9, "message": f"payment {i} declined", "service": svc, "pod": f"{svc}-0"}
        for i, svc in enumerate(["payments", "payments", "orders"])
    ]
    batch = settings.home.parent / "events.json"
    batch.write_text(json.dumps({"events": events}))
    assert out(devmesh(settings, "ingest", str(batch), "--json"))["stored"] == 3
    before = graph_of(settings)
    assert before["services"] == [["orders"], ["payments"]]

    report = out(devmesh(settings, "rebuild", "graph", "--wipe", "--json"))
    assert (report["pods"], report["owed"]) == (2, {"graph": 0, "vectors": 0})
    assert graph_of(settings) == before

    refused = devmesh(settings, "rebuild", "vectors", "--json", expect=1)  # DEVMESH_EMBEDDER=none
    assert b"no vector store or embedder" in refused.stderr
