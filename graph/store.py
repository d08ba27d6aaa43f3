"""GraphStore: DevMesh's one entry to the knowledge graph's writes and simple reads.

The writes live by concept (`graph.topology`, `graph.catalog`, `graph.incidents`); this class binds
them to one FalkorDB graph and holds the reads. Every value is a query parameter; lists go in
batches through UNWIND.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from falkordb import Graph

from core.telemetry import CallEdge, PodPlacement, Topology
from graph import catalog, incidents
from graph import topology as topology_writes
from graph.access import read, write
from graph.schema import EDGE_TYPES, NODE_KEYS
from graph.values import clean_key


class GraphStore:
    """DevMesh's writes and simple reads on one FalkorDB graph."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph

    # writes
    def upsert_topology(
        self, topology: Topology, *, calls_mode: Literal["replace", "accumulate"] = "replace"
    ) -> dict[str, int]:
        """MERGE services, pods and CALLS edges (see `graph.topology.upsert_topology`)."""
        return topology_writes.upsert_topology(self.graph, topology, calls_mode=calls_mode)

    def upsert_templates(self, rows: Sequence[dict[str, Any]]) -> int:
        """MERGE LogTemplate nodes and EMITS edges (see `graph.catalog.upsert_templates`)."""
        return catalog.upsert_templates(self.graph, rows)

    def upsert_operations(self, rows: Sequence[dict[str, Any]]) -> int:
        """MERGE Operation nodes and HAS_OPERATION edges (see `graph.catalog.upsert_operations`)."""
        return catalog.upsert_operations(self.graph, rows)

    def upsert_runbook(
        self,
        runbook_id: str,
        title: str,
        path: str,
        url: str,
        covers_services: Sequence[str],
        covers_alerts: Sequence[str],
        covers_templates: Sequence[str] = (),
    ) -> None:
        """MERGE a Runbook and replace its COVERS edges (see `graph.catalog.upsert_runbook`)."""
        catalog.upsert_runbook(
            self.graph, runbook_id, title, path, url, covers_services, covers_alerts, covers_templates
        )

    def upsert_incident(self, incident: dict[str, Any]) -> dict[str, int]:
        """MERGE an Incident and replace the edges it lists (see `graph.incidents.upsert_incident`)."""
        return incidents.upsert_incident(self.graph, incident)

    def delete_all(self) -> None:
        """Remove every node and edge (indexes stay). For tests and `devmesh reset`."""
        write(self.graph, "MATCH (n) DETACH DELETE n")

    # reads
    def call_edges(self) -> list[CallEdge]:
        rows = read(
            self.graph,
            "MATCH (a:Service)-[c:CALLS]->(b:Service) "
            "RETURN a.name, b.name, c.calls, c.errors, c.mean_ms, c.p95_ms ORDER BY a.name, b.name",
        )
        return [
            CallEdge(
                caller=a,
                callee=b,
                calls=calls or 0,
                errors=errors or 0,
                mean_ms=mean or 0.0,
                p95_ms=p95 or 0.0,
            )
            for a, b, calls, errors, mean, p95 in rows
        ]

    def services(self) -> list[str]:
        return [r[0] for r in read(self.graph, "MATCH (s:Service) RETURN s.name ORDER BY s.name")]

    def pods_of(self, service: str) -> list[PodPlacement]:
        """The pods that are instances of `service`, with their host ('' when unknown), by name."""
        service = clean_key(service, "service")
        rows = read(
            self.graph,
            "MATCH (p:Pod)-[:INSTANCE_OF]->(:Service {name: $service}) "
            "OPTIONAL MATCH (p)-[:RUNS_ON]->(n:Node) "
            "RETURN p.name, n.name ORDER BY p.name",
            {"service": service},
        )
        return [PodPlacement(pod=p, service=service, host=h or "") for p, h in rows]

    def counts(self) -> dict[str, int]:
        """Nodes per label and edges per type, zero included (labels and types do not share names)."""
        out = dict.fromkeys([*NODE_KEYS, *EDGE_TYPES], 0)
        for label, n in read(self.graph, "MATCH (n) RETURN labels(n)[0], count(n)"):
            out[label] = n
        for edge, n in read(self.graph, "MATCH ()-[r]->() RETURN type(r), count(r)"):
            out[edge] = n
        return out

    def shortest_call_path(self, a: str, b: str) -> list[str]:
        """Service names along the shortest directed CALLS path from a to b; [] when there is none."""
        a, b = clean_key(a, "a"), clean_key(b, "b")
        if a == b:
            return [a] if read(self.graph, "MATCH (s:Service {name: $a}) RETURN 1", {"a": a}) else []
        rows = read(
            self.graph,
            "MATCH (a:Service {name: $a}), (b:Service {name: $b}) "
            "RETURN [n IN nodes(shortestPath((a)-[:CALLS*]->(b))) | n.name]",
            {"a": a, "b": b},
        )
        return list(rows[0][0]) if rows and rows[0][0] else []
