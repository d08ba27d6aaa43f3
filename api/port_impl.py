"""The DevMesh port over the real engines and the agent team (for the chat bot, alert intake and MCP)."""

from __future__ import annotations

from typing import Any

from api.ports import ExplainRequest
from api.wiring import Services
from core.explanation import Explanation
from core.incident import AlertIn, Feedback, IncidentStatus, InvestigationRequest
from core.timeutil import NS
from retrieval.events import LogQuery


class EnginePort:
    def __init__(self, services: Services, *, source: str = "chat") -> None:
        self.svc = services
        self.source = source

    def _tools(self) -> Any:
        return self.svc.toolbox()

    def explain(self, req: ExplainRequest) -> Explanation:
        from agents.investigate import investigate

        alert = None
        at_ns = None
        source = self.source
        if req.alert:
            a = req.alert
            alert = AlertIn(
                status=str(a.get("status", "firing")),
                labels={str(k): str(v) for k, v in dict(a.get("labels", {})).items()},
                annotations={str(k): str(v) for k, v in dict(a.get("annotations", {})).items()},
                startsAt=a.get("startsAt"),
                endsAt=a.get("endsAt"),
                fingerprint=str(a.get("fingerprint", "")),
            )
            at_ns = a.get("starts_ns")
            source = str(a.get("source", "alertmanager"))
        ireq = InvestigationRequest(
            incident_id=req.incident_id,
            service=req.service,
            start_ns=req.start_ns,
            end_ns=req.end_ns,
            at_ns=at_ns,
            alert=alert,
            question=req.question,
        )
        _, expl = investigate(self._tools(), ireq, source=source)
        return expl

    def feedback(self, incident_id: str, *, root_cause: str | None, helpful: bool | None, by: str) -> None:
        self._tools().book.add_feedback(incident_id, Feedback(root_cause=root_cause, helpful=helpful, by=by))

    def search_logs(self, text: str, *, service: str | None, since_ns: int | None, limit: int) -> list[dict[str, Any]]:
        from retrieval.search import search_logs

        q = LogQuery(service=service, start_ns=since_ns)
        result = search_logs(
            text, q, events=self.svc.events, vectors=self.svc.vectors, embedder=self.svc.embedder, limit=limit
        )
        rows = [dict(e, score=h.score, template=h.text) for h in result.hits for e in h.examples]
        return sorted(rows, key=lambda r: -r["ts_ns"])[:limit]

    def logs_for(self, incident_id: str, limit: int) -> list[dict[str, Any]]:
        inc = self._tools().book.get(incident_id)
        services = [s for s in (inc.root_cause, inc.service) if s]
        q = LogQuery(
            start_ns=inc.start_ns,
            end_ns=inc.end_ns,
            service=services or None,
            min_level="WARN",
            limit=min(max(limit, 1), 1000),
        )
        return self.svc.events.query_logs(q).events

    def node_changes(self, incident_id: str, node: str) -> list[dict[str, Any]]:
        """Metric shifts of the pods placed on `node`: mean in the incident window vs the half hour before."""
        inc = self._tools().book.get(incident_id)
        pods = [
            r["pod"] for r in self.svc.events.count_by("metrics", ["pod"], where={"host": node}, limit=1000) if r["pod"]
        ]
        if self.svc.graph is not None:
            from graph.neighborhood import neighborhood

            sub = neighborhood(self.svc.graph.graph, [("Node", node)], hops=1, edge_types=["RUNS_ON"])
            pods += [n.key for n in sub.nodes if n.label == "Pod"]
        out = []
        for pod in sorted(set(pods)):
            before = _means(self.svc, pod, inc.alert_ns - 1800 * NS, inc.alert_ns)
            during = _means(self.svc, pod, inc.alert_ns, inc.end_ns)
            for name, value in during.items():
                old = before.get(name)
                if old is not None and old != 0 and abs(value - old) / abs(old) >= 0.5:
                    out.append(
                        {
                            "pod": pod,
                            "metric": name,
                            "before": old,
                            "during": value,
                            "change": round((value - old) / abs(old), 3),
                        }
                    )
        return sorted(out, key=lambda r: -abs(r["change"]))[:50]

    def list_incidents(self, status: str | None, limit: int) -> list[dict[str, Any]]:
        st = IncidentStatus(status) if status else None
        return [i.model_dump(mode="json") for i in self._tools().book.list(status=st, limit=limit)]

    def topology(self, service: str, hops: int) -> dict[str, Any]:
        if self.svc.graph is None:
            return {"nodes": [], "edges": []}
        from graph.neighborhood import neighborhood

        sub = neighborhood(self.svc.graph.graph, [("Service", service)], hops=max(1, min(hops, 3)))
        ids = {n.id: f"{n.label}:{n.key}" for n in sub.nodes}
        return {
            "nodes": [{"id": ids[n.id], "label": n.label, "key": n.key, "hop": n.hop} for n in sub.nodes],
            "edges": [
                {"source": ids[e.source], "target": ids[e.target], "type": e.type, **e.properties}
                for e in sub.edges
                if e.source in ids and e.target in ids
            ],
        }

    def resolve_alert(self, fingerprint: str) -> None:
        book = self._tools().book
        for inc in book.list(status=IncidentStatus.OPEN, limit=1000):
            if inc.fingerprint == fingerprint:
                book.resolve(inc.id)


def _means(svc: Services, pod: str, start_ns: int, end_ns: int) -> dict[str, float]:
    return {name: v for (_, name), v in svc.events.metric_means(start_ns, end_ns, pods=[pod]).items()}
