"""The graph facts of stored incidents: an incident's node and edges (AFFECTS, ROOT_CAUSE, HAS_LOG,
RELATED_RUNBOOK, SIMILAR_TO) from its record in the event store and its latest explanation.

One home, so that the incident book (`detect.incidents`, as it saves), the repair of owed incident writes
and `devmesh rebuild graph` (`ingest.repair`) write the same graph. A mirror the graph missed (it was down)
is recorded in the ledger (`retrieval.events.owed`) as kind `incidents` over the incident's alert time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.explanation import Explanation
from core.incident import Incident
from retrieval.collections import INCIDENTS

if TYPE_CHECKING:
    from graph.store import GraphStore
    from retrieval.events import EventStore

EXPLANATIONS = "explanations"
"""The event store's collection of explanations (`docs`)."""
OWED_KIND = "incidents"
"""The ledger kind of an incident the graph is owed (its range is the incident's alert time)."""
MAX_TEMPLATES = 50
ALL = 1 << 31
"""A document limit that is no limit."""


def incident_facts(incident: Incident, explanation: Explanation | None) -> dict[str, Any]:
    """What the graph holds of `incident` (a `graph.incidents.upsert_incident` argument): its fields, the
    services it affects, and with its latest explanation the ranked root causes, templates, runbooks and
    similar incidents; the last feedback's confirmed root cause and helpfulness."""
    facts: dict[str, Any] = {
        "id": incident.id,
        "title": incident.title,
        "status": incident.status.value,
        "alert_ns": incident.alert_ns,
        "opened_ns": incident.opened_ns,
        "source": incident.source,
    }
    services = {incident.service} if incident.service else set()
    if explanation is not None:
        services |= {s.source for s in explanation.propagation_path} | {s.target for s in explanation.propagation_path}
        facts["root_causes"] = [
            {"service": rc.service, "rank": rc.rank, "confidence": rc.confidence} for rc in explanation.root_causes
        ]
        templates = [e.id.split(":", 1)[1] for e in explanation.evidence if e.id.startswith("template:")]
        facts["templates"] = templates[:MAX_TEMPLATES]
        facts["runbooks"] = [r.id for r in explanation.runbooks if not r.draft]
        facts["similar"] = [{"id": s.incident_id, "score": s.similarity} for s in explanation.similar_incidents]
    if services:
        facts["services"] = sorted(services)
    confirmed = next((f.root_cause for f in reversed(incident.feedback) if f.root_cause), None)
    if confirmed:
        facts["confirmed_root_cause"] = confirmed
    helpful = next((f.helpful for f in reversed(incident.feedback) if f.helpful is not None), None)
    if helpful is not None:
        facts["helpful"] = helpful
    return facts


def stored_facts(events: EventStore, incident: Incident) -> dict[str, Any]:
    """`incident_facts` with the incident's latest explanation read from the event store."""
    explanation = None
    if incident.explanation_id:
        doc = events.docs.get(EXPLANATIONS, incident.explanation_id)
        explanation = Explanation.model_validate(doc) if doc else None
    return incident_facts(incident, explanation)


def write_incidents(events: EventStore, graph: GraphStore, lo_ns: int | None = None, hi_ns: int | None = None) -> int:
    """Mirror into the graph the stored incidents whose alert time is in [lo_ns, hi_ns] (all when None);
    returns how many. Raises EngineUnavailable when the graph is down."""
    end = hi_ns + 1 if hi_ns is not None else None
    docs = events.docs.find(INCIDENTS, start_ns=lo_ns, end_ns=end, limit=ALL)
    for doc in docs:
        graph.upsert_incident(stored_facts(events, Incident.model_validate(doc)))
    return len(docs)
