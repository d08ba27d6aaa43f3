"""The incident book: open, find, list, resolve incidents; keep their explanations and feedback.

Incidents and explanations are JSON documents in the event store (`docs`), mirrored into the graph as
`Incident` nodes with AFFECTS / ROOT_CAUSE / HAS_LOG / RELATED_RUNBOOK / SIMILAR_TO edges (the facts of
`ingest.incidents`); a mirror the graph missed is owed in the ledger and written by the repair.
"""

from __future__ import annotations

import builtins
import logging
from typing import TYPE_CHECKING, Any

from core.errors import EngineUnavailable, InvalidInput, NotFound
from core.explanation import Explanation
from core.incident import Feedback, Incident, IncidentStatus, InvestigationRequest, alert_service, incident_id_for
from core.timeutil import NS, iso, now_ns, to_ns
from ingest.incidents import EXPLANATIONS, OWED_KIND, incident_facts
from retrieval.collections import INCIDENTS
from retrieval.incident_search import MAX_QUERY_CHARS, search_incidents
from retrieval.vectors import VectorPoint

if TYPE_CHECKING:
    from graph.store import GraphStore
    from retrieval.embedders import Embedder
    from retrieval.events import EventStore
    from retrieval.vectors import VectorStore

log = logging.getLogger(__name__)

__all__ = ["EXPLANATIONS", "INCIDENTS", "IncidentBook"]
BEFORE_S = 600  # default window: ten minutes before the start ...
AFTER_S = 300  # ... to five minutes after
ALERT_LEAD_S = 300
"""An alert's ranked window starts this long before its startsAt: Prometheus rules fire after a `for:` delay
(five minutes is the common choice) over rates of the last minutes, so the change began before the alert."""


class IncidentBook:
    def __init__(
        self,
        events: EventStore,
        graph: GraphStore | None,
        vectors: VectorStore | None = None,
        embedder: Embedder | None = None,
    ) -> None:
        self.events = events
        self.graph = graph
        self.vectors = vectors
        self.embedder = embedder

    # ---- reading ------------------------------------------------------------------------------------
    def get(self, incident_id: str) -> Incident:
        doc = self.events.docs.get(INCIDENTS, incident_id)
        if doc is None:
            raise NotFound(f"no incident {incident_id!r}; `devmesh incidents list` shows them", field="incident_id")
        return Incident.model_validate(doc)

    def list(
        self,
        *,
        status: IncidentStatus | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
        limit: int = 100,
    ) -> list[Incident]:
        """Incidents that started in [since_ns, until_ns), newest first."""
        docs = self.events.docs.find(
            INCIDENTS, start_ns=since_ns, end_ns=until_ns, status=status.value if status else None, limit=limit
        )
        return [Incident.model_validate(d) for d in docs]

    def search(self, text: str, *, limit: int = 10) -> builtins.list[tuple[Incident, float]]:
        """Past incidents nearest in meaning to `text` (symptoms, a summary, words), with their similarity."""
        if self.vectors is None or self.embedder is None:
            raise InvalidInput(
                "searching incidents by meaning needs an embedder (DEVMESH_EMBEDDER is 'none')", field="q"
            )
        if INCIDENTS not in self.vectors.collections():
            return []
        found = []
        for h in search_incidents(self.vectors, self.embedder, text, limit=limit):
            doc = self.events.docs.get(INCIDENTS, h.incident_id)
            if doc is not None:
                found.append((Incident.model_validate(doc), round(h.similarity, 4)))
        return found

    def explanation(self, incident: Incident) -> Explanation | None:
        if not incident.explanation_id:
            return None
        doc = self.events.docs.get(EXPLANATIONS, incident.explanation_id)
        return Explanation.model_validate(doc) if doc else None

    def explanations(
        self, *, since_ns: int | None = None, until_ns: int | None = None, limit: int = 50
    ) -> builtins.list[dict[str, Any]]:
        """Stored explanations (each with its agent run) of incidents that started in [since_ns, until_ns),
        newest first."""
        return self.events.docs.find(EXPLANATIONS, start_ns=since_ns, end_ns=until_ns, limit=limit)

    # ---- writing ------------------------------------------------------------------------------------
    def open(self, req: InvestigationRequest, *, source: str, now: int | None = None) -> Incident:
        """The incident a request is about: an existing one by id, the open one with the same fingerprint, or
        a new one."""
        if req.incident_id:
            return self.get(req.incident_id)
        now = now if now is not None else now_ns()
        labels, annotations, fingerprint = {}, {}, ""
        service = req.service or ""
        at = req.at_ns or req.start_ns
        if req.alert is not None:
            labels, annotations = dict(req.alert.labels), dict(req.alert.annotations)
            service = service or alert_service(labels)
            if req.alert.startsAt:
                at = at or to_ns(req.alert.startsAt)
            fingerprint = req.alert.fingerprint or ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        lead_s = 0
        if req.alert is not None and req.alert.startsAt and not (req.at_ns or req.start_ns):
            lead_s = ALERT_LEAD_S
        onset_given = at is not None
        if at is None:
            at = (req.end_ns or now) - AFTER_S * NS
        start = req.start_ns if req.start_ns is not None else at - BEFORE_S * NS
        end = req.end_ns if req.end_ns is not None else at + AFTER_S * NS
        # an alert is the same incident whichever way it arrives (API, Alertmanager, chat)
        key = f"alert|{fingerprint}|{at // (60 * NS)}" if fingerprint else f"{source}|{service}|{at // (60 * NS)}"
        incident_id = incident_id_for(key)
        existing = self.events.docs.get(INCIDENTS, incident_id)
        if existing is not None:
            return Incident.model_validate(existing)
        title = labels.get("alertname") or (f"{service} incident" if service else "incident") + f" at {iso(at)}"
        incident = Incident(
            id=incident_id,
            title=title,
            source=source,
            alert_ns=at,
            lead_s=lead_s,
            start_ns=start,
            end_given=req.end_ns is not None,
            onset_given=onset_given,
            end_ns=end,
            service=service,
            fingerprint=fingerprint,
            labels=labels,
            annotations=annotations,
            opened_ns=now,
            updated_ns=now,
        )
        self.save(incident)
        return incident

    def save(self, incident: Incident) -> None:
        self.events.docs.put(
            INCIDENTS,
            incident.id,
            incident.model_dump(mode="json"),
            time_ns=incident.alert_ns,
            status=incident.status.value,
            service=incident.root_cause or incident.service,
        )
        if self.graph is not None:
            self._mirror(incident)

    def record_explanation(self, incident: Incident, explanation: Explanation, *, symptoms: str = "") -> Incident:
        """Store the explanation with its agent run, and link the incident in the graph to what it found.

        `symptoms` (what went wrong, as the agents searched for similar incidents) is what this incident
        will be found by when a later one looks like it."""
        explanation_id = f"{incident.id}:{now_ns()}"
        explanation = explanation.model_copy(update={"incident_id": incident.id})
        self.events.docs.put(
            EXPLANATIONS,
            explanation_id,
            explanation.model_dump(mode="json"),
            time_ns=incident.alert_ns,
            status=explanation.mode.value,
            service=explanation.root_causes[0].service if explanation.root_causes else "",
        )
        top = explanation.root_causes[0] if explanation.root_causes else None
        updated = incident.model_copy(
            update={
                "explanation_id": explanation_id,
                "root_cause": top.service if top else "",
                "confidence": top.confidence if top else 0.0,
                "symptoms": symptoms or incident.symptoms,
                "updated_ns": now_ns(),
            }
        )
        self.save(updated)  # mirrored with the explanation's root causes, templates, runbooks, similar ones
        self._index(updated, explanation.summary)
        return updated

    def resolve(self, incident_id: str) -> Incident:
        incident = self.get(incident_id)
        now = now_ns()
        done = incident.model_copy(update={"status": IncidentStatus.RESOLVED, "resolved_ns": now, "updated_ns": now})
        self.save(done)
        return done

    def add_feedback(self, incident_id: str, feedback: Feedback) -> Incident:
        """Keep what a person said; a named root cause becomes the incident's confirmed cause in the graph."""
        incident = self.get(incident_id)
        fb = feedback.model_copy(update={"time_ns": feedback.time_ns or now_ns()})
        updated = incident.model_copy(update={"feedback": [*incident.feedback, fb], "updated_ns": now_ns()})
        self.save(updated)  # mirrored with the confirmed root cause and helpfulness
        explanation = self.explanation(updated)
        if explanation is not None:
            self._index(updated, explanation.summary)
        return updated

    def _mirror(self, incident: Incident) -> None:
        """The incident's node and edges in the graph, from its record and latest explanation. The document in
        the event store is the record: a graph that is down (supervised, coming back) is owed the mirror in
        the ledger, written by the repair when it is back (and by `devmesh rebuild graph`)."""
        assert self.graph is not None
        try:
            self.graph.upsert_incident(incident_facts(incident, self.explanation(incident)))
        except EngineUnavailable as exc:
            self.events.owed.add("graph", OWED_KIND, incident.alert_ns, incident.alert_ns, error=exc.message)
            log.warning("graph down: incident mirror owed", extra={"incident": incident.id, "error": exc.message})

    def _index(self, incident: Incident, summary: str) -> None:
        try:
            self._index_vector(incident, summary)
        except EngineUnavailable as exc:  # the vector store is down: found by similarity once re-explained
            log.warning("vectors down: incident not indexed", extra={"incident": incident.id, "error": exc.message})

    def _index_vector(self, incident: Incident, summary: str) -> None:
        """Past incidents are found by meaning: by their symptoms (the text a later incident's agents search
        with), else their summary; the payload keeps the summary and what is known of the cause."""
        text = incident.symptoms or summary
        if self.vectors is None or self.embedder is None or not text:
            return
        confirmed = next((f.root_cause for f in reversed(incident.feedback) if f.root_cause), "")
        self.vectors.ensure_collection(INCIDENTS, self.embedder.dim)
        vector = self.embedder.embed([text[:MAX_QUERY_CHARS]])[0]
        payload = {
            "incident_id": incident.id,
            "summary": summary[:2000],
            "symptoms": incident.symptoms[:2000],
            "root_cause": incident.root_cause,
            "confirmed_root_cause": confirmed,
            "time_ns": incident.alert_ns,
        }
        self.vectors.upsert(INCIDENTS, [VectorPoint(id=incident.id, vector=vector, payload=payload)])
