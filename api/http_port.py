"""`HttpPort`: the `DevMeshPort` over a running `devmesh serve`, through its HTTP API (httpx).

The CLI hands its commands this port instead of `api.engine_port.EnginePort` when a server owns the home
(or `--server` / `DEVMESH_SERVER` names one), so each command's logic is the same either way. Requests carry
the user's key (`DEVMESH_API_KEY`) as `Authorization: Bearer`; the server's JSON errors come back as the
`core.errors` type they name. The methods the API has no route for (topology, node changes,
incident logs, resolving by alert fingerprint, streamed explanations, similarity scores) raise `ServerOnly`
naming the server.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import fields
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import TypeAdapter

from agents.investigate import Investigation, InvestigationEvent
from api.http.access import is_loopback
from api.port import LogLine, Topology, search_hits_as_lines
from core.errors import DevMeshError, EngineUnavailable, InvalidInput, Unauthorized
from core.explanation import Explanation
from core.incident import Feedback, Incident, IncidentStatus, InvestigationRequest
from core.redaction import redact_url
from detect.node_changes import MetricShift
from detect.runner import DetectionRun, DetectOptions
from ingest.batch import Kind
from ingest.pipeline import IngestReport
from retrieval.events import LogPage, LogQuery
from retrieval.search import SearchResult

READ_TIMEOUT_S = 600.0
"""An explanation or a detection run with the agents may take minutes."""
_INCIDENTS = TypeAdapter(list[Incident])
_LOG_EVENT_FIELDS = ("source", "service", "host", "pod", "level", "trace_id", "span_id", "event_type", "error_code")


def _error_types() -> dict[str, type[DevMeshError]]:
    found: dict[str, type[DevMeshError]] = {}
    todo: list[type[DevMeshError]] = [DevMeshError]
    while todo:
        cls = todo.pop()
        found[cls.__name__] = cls
        todo.extend(cls.__subclasses__())
    return found


class ServerOnly(EngineUnavailable):
    """What a command asks has no route in the HTTP API of the server that owns the home."""


class HttpPort:
    """The port over the DevMesh HTTP API at `url`, sending `api_key` (when set) as the bearer token."""

    def __init__(self, url: str, api_key: str | None, *, transport: httpx.BaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(
            base_url=self.url,
            headers=headers,
            timeout=httpx.Timeout(10.0, read=READ_TIMEOUT_S),
            trust_env=not is_loopback(httpx.URL(self.url).host),  # proxies, but never for this machine
            transport=transport,
        )
        self._last: dict[str, Any] | None = None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> HttpPort:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the wire ----------------------------------------------------------------------------------------

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        shown = redact_url(self.url)
        try:
            r = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise EngineUnavailable(f"cannot reach the DevMesh server at {shown}: {exc}") from exc
        if r.status_code < 400:
            return r.json()
        try:
            body = r.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        message = str(body.get("message") or r.text[:500] or r.reason_phrase)
        if r.status_code == 401:
            hint = "set DEVMESH_API_KEY to a key with the scope it needs (`devmesh keys create --scope read`)"
            raise Unauthorized(f"the DevMesh server at {shown} answered 401: {message}; {hint}", field="api_key")
        cls = _error_types().get(str(body.get("error")), DevMeshError)
        err = cls(f"{message} (server {shown})", field=body.get("field"), details=body.get("details"))
        if cls is DevMeshError:
            err.status_code = r.status_code
        raise err

    def _no_route(self, what: str) -> ServerOnly:
        return ServerOnly(
            f"{what} is not available through the HTTP API of the DevMesh server at {redact_url(self.url)}, "
            "which owns this home; stop that server to run it on the home directly"
        )

    # -- incidents and explanations ----------------------------------------------------------------------

    def explain(self, req: InvestigationRequest, *, source: str) -> Investigation:
        body = req.model_dump(mode="json", exclude_none=True)
        return Investigation.model_validate(self._call("POST", "/explain", json=body))

    def explain_stream(self, req: InvestigationRequest, *, source: str) -> Iterator[InvestigationEvent]:
        raise self._no_route("a streamed explanation")

    def _incident_response(self, incident_id: str) -> dict[str, Any]:
        data: dict[str, Any] = self._call("GET", f"/incidents/{quote(incident_id, safe='')}")
        self._last = data
        return data

    def incident(self, incident_id: str) -> Incident:
        return Incident.model_validate(self._incident_response(incident_id)["incident"])

    def latest_explanation(self, incident: Incident) -> Explanation | None:
        data = self._last
        if data is None or data["incident"]["id"] != incident.id:
            data = self._incident_response(incident.id)
        expl = data.get("explanation")
        return Explanation.model_validate(expl) if expl is not None else None

    def list_incidents(
        self,
        *,
        status: IncidentStatus | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
        limit: int = 100,
    ) -> list[Incident]:
        params = _params(status=status.value if status else None, since=since_ns, until=until_ns, limit=limit)
        return _INCIDENTS.validate_python(self._call("GET", "/incidents", params=params))

    def similar_incidents(self, text: str, *, limit: int) -> list[tuple[Incident, float]]:
        raise self._no_route("incidents with their similarity scores")

    def feedback(self, incident_id: str, feedback: Feedback) -> Incident:
        body = feedback.model_dump(mode="json", exclude_none=True, exclude={"time_ns"})  # the server's clock
        return Incident.model_validate(
            self._call("POST", f"/incidents/{quote(incident_id, safe='')}/feedback", json=body)
        )

    def resolve(self, incident_id: str) -> Incident:
        return Incident.model_validate(self._call("POST", f"/incidents/{quote(incident_id, safe='')}/resolve", json={}))

    def resolve_alert(self, fingerprint: str) -> None:
        raise self._no_route("resolving incidents by alert fingerprint")

    def detect(self, *, end_ns: int, options: DetectOptions) -> list[DetectionRun]:
        body = {"end_ns": end_ns, "window_s": options.window_s, "explain": options.explain}
        names = [f.name for f in fields(DetectionRun)]
        runs = self._call("POST", "/detect/run", json=body)["runs"]
        return [DetectionRun(**{k: r[k] for k in names if k in r}) for r in runs]

    # -- telemetry ---------------------------------------------------------------------------------------

    def ingest(self, kind: Kind, rows: dict[str, list[Any]]) -> IngestReport:
        """Log rows go back to DevMesh JSON events for POST /ingest/logs (the server parses them again: same
        event ids); spans and metrics travel as OTLP, which the CLI reads and the server takes (/v1/*)."""
        if kind != "logs":
            raise self._no_route(f"storing parsed {kind}")
        t0 = time.perf_counter()
        events = [_event_of(rows, i) for i in range(len(rows["ts_ns"]))]
        data = self._call("POST", "/ingest/logs", json={"events": events})
        return IngestReport(
            kind="logs",
            received=int(data["received"]),
            stored=int(data["stored"]),
            duplicates=int(data["duplicates"]),
            rejected=int(data["rejected"]),
            errors=list(data.get("errors", [])),
            new_templates=int(data["new_templates"]),
            embed_error=data.get("warning"),
            seconds=time.perf_counter() - t0,
        )

    def query_logs(self, q: LogQuery) -> LogPage:
        return LogPage.model_validate(self._call("GET", "/query/logs", params=_log_params(q)))

    def search_templates(self, text: str, filters: LogQuery, *, limit: int) -> SearchResult:
        params = {**_filter_params(filters), "q": text, "limit": limit}
        return SearchResult.model_validate(self._call("GET", "/search/logs", params=params))

    def search_logs(self, text: str, *, service: str | None, since_ns: int | None, limit: int) -> list[LogLine]:
        result = self.search_templates(text, LogQuery(service=service, start_ns=since_ns), limit=limit)
        return search_hits_as_lines(result, limit)

    def logs_for(self, incident_id: str, limit: int) -> list[LogLine]:
        raise self._no_route("an incident's log lines")

    def node_changes(self, incident_id: str, node: str) -> list[MetricShift]:
        raise self._no_route("a node's metric changes")

    def topology(self, service: str, hops: int) -> Topology:
        raise self._no_route("the topology of a service")

    def sql(self, statement: str, *, limit: int) -> tuple[list[str], list[tuple[Any, ...]]]:
        """GET /query/sql; values JSON has no type for (times, decimals) come back as their text."""
        data = self._call("GET", "/query/sql", params={"statement": statement, "limit": limit})
        return [str(c) for c in data["columns"]], [tuple(r) for r in data["rows"]]

    # -- the engines -------------------------------------------------------------------------------------

    def _health(self) -> dict[str, Any]:
        try:
            r = self._http.get("/health")
        except httpx.HTTPError as exc:
            raise EngineUnavailable(f"cannot reach the DevMesh server at {redact_url(self.url)}: {exc}") from exc
        data: dict[str, Any] = r.json()
        return data

    def health(self) -> dict[str, bool]:
        return {k: bool(v) for k, v in self._health().get("checks", {}).items()}

    def engines(self) -> dict[str, dict[str, Any]]:
        return dict(self._health().get("engines", {}))

    def owed(self) -> dict[str, int]:
        return {k: int(v) for k, v in self._health().get("owed", {}).items()}

    def info(self) -> dict[str, Any]:
        data: dict[str, Any] = self._call("GET", "/info")
        return data


def _params(**values: Any) -> dict[str, Any]:
    """Query parameters without the unset ones; times (ns) as epoch numbers, which the API reads as ns."""
    return {k: (str(v) if isinstance(v, int) and k in ("since", "until") else v) for k, v in values.items() if v}


def _filter_params(q: LogQuery) -> dict[str, Any]:
    if q.pod or q.level:
        raise InvalidInput("the HTTP API filters log lines by minimum level, not by pod or exact levels", field="level")
    return _params(since=q.start_ns, until=q.end_ns, service=q.service, host=q.host, level=q.min_level)


def _log_params(q: LogQuery) -> dict[str, Any]:
    return {
        **_filter_params(q),
        **_params(trace_id=q.trace_id, template_id=q.template_id, contains=q.contains, cursor=q.cursor),
        "order": q.order,
        "limit": q.limit,
    }


def _event_of(rows: dict[str, list[Any]], i: int) -> dict[str, Any]:
    """Row `i` of a parsed log batch as the DevMesh JSON event it came from."""
    event: dict[str, Any] = {"timestamp": rows["ts_ns"][i], "message": rows["message"][i]}
    for name in _LOG_EVENT_FIELDS:
        if rows[name][i]:
            event[name] = rows[name][i]
    meta = rows["meta"][i]
    if meta:
        parsed = json.loads(meta) if isinstance(meta, str) else meta
        if isinstance(parsed, dict) and parsed:
            event["meta"] = parsed
    return event
