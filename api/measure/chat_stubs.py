"""Stand-ins for `devmesh bench chat`: a DevMesh port whose explain only sleeps, and a Slack Web API on 127.0.0.1
that answers the bot's calls and records when each arrived.

`SleepingPort.explain` waits `explain_s` (standing in for the agent team) and returns a small evidence-only
explanation of the asked service, with incident id `inc-<service>`; the port's other methods find nothing.
`SlackRecorder` answers auth.test and the chat.* methods the bot uses (POST /api/<method>, form or JSON
bodies) and keeps every call; `wait_for` blocks until enough matching calls have arrived.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs

from api.port import Investigation, LogLine, MetricShift, Topology
from core.errors import NotFound
from core.explanation import EvidenceItem, EvidenceSource, Explanation, ExplanationMode, RootCause, RunbookLink
from core.incident import Feedback, Incident, IncidentStatus, InvestigationRequest

# -- the port ------------------------------------------------------------------------------------------------


class SleepingPort:
    """A `ConversationPort` whose explain sleeps, then explains the asked service; nothing else is known."""

    def __init__(self, explain_s: float) -> None:
        self.explain_s = explain_s

    def explain(self, req: InvestigationRequest, *, source: str) -> Investigation:
        time.sleep(self.explain_s)
        service = req.service or "unknown"
        explanation = Explanation(
            incident_id=f"inc-{service}",
            mode=ExplanationMode.EVIDENCE_ONLY,
            fallback_reason="benchmark stand-in",
            summary=f"{service} exhausted its DB connection pool; callers timed out.",
            summary_evidence_ids=["log:1"],
            root_causes=[
                RootCause(rank=1, service=service, confidence=0.82, evidence_ids=["log:1", "span:t1:s1"]),
                RootCause(rank=2, service="ts-payment-service", confidence=0.11, evidence_ids=["log:2"]),
            ],
            evidence=[
                EvidenceItem(id="log:1", kind="log", source=EvidenceSource.EVENTS, service=service, text="timed out"),
                EvidenceItem(id="span:t1:s1", kind="span", source=EvidenceSource.EVENTS, text="POST /order ERROR"),
                EvidenceItem(id="log:2", kind="log", source=EvidenceSource.EVENTS, text="retry"),
            ],
            runbooks=[RunbookLink(id="rb:db/pool", title="DB connection pool exhausted", steps=["Check the pool"])],
        )
        now = time.time_ns()
        incident = Incident(id=explanation.incident_id, service=service, alert_ns=now, start_ns=now, end_ns=now + 1)
        return Investigation(incident=incident, explanation=explanation)

    def feedback(self, incident_id: str, feedback: Feedback) -> Incident:
        raise NotFound(f"no incident {incident_id!r}")

    def search_logs(self, text: str, *, service: str | None, since_ns: int | None, limit: int) -> list[LogLine]:
        return []

    def logs_for(self, incident_id: str, limit: int) -> list[LogLine]:
        raise NotFound(f"no incident {incident_id!r}")

    def node_changes(self, incident_id: str, node: str) -> list[MetricShift]:
        raise NotFound(f"no incident {incident_id!r}")

    def list_incidents(
        self,
        *,
        status: IncidentStatus | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
        limit: int = 100,
    ) -> list[Incident]:
        return []

    def topology(self, service: str, hops: int) -> Topology:
        return Topology()

    def resolve_alert(self, fingerprint: str) -> None:
        return None


# -- the Slack Web API -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SlackCall:
    method: str
    params: dict[str, Any]
    at: float
    """time.monotonic() when it arrived."""


class SlackRecorder:
    """The Slack Web API methods the bot calls, on 127.0.0.1 (an ephemeral port), recording each call."""

    def __init__(self, token: str) -> None:
        self.token = token
        self._calls: list[SlackCall] = []
        self._cond = threading.Condition()
        self._ts = 0
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="bench-slack", daemon=True
        )

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/api/"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def answer(self, method: str, params: dict[str, Any], authorization: str) -> dict[str, Any]:
        if authorization != f"Bearer {self.token}":
            return {"ok": False, "error": "invalid_auth"}
        with self._cond:
            self._ts += 1
            ts = f"1700000000.{self._ts:06d}"
            self._calls.append(SlackCall(method, params, time.monotonic()))
            self._cond.notify_all()
        if method == "auth.test":
            return {"ok": True, "team_id": "T0001", "user_id": "UDEVMESH", "bot_id": "BDEVMESH"}
        if method in ("chat.postMessage", "chat.update", "chat.postEphemeral"):
            return {"ok": True, "channel": params.get("channel", ""), "ts": params.get("ts") or ts, "message_ts": ts}
        return {"ok": False, "error": "unknown_method"}

    def wait_for(
        self, method: str, where: Callable[[SlackCall], bool] = lambda c: True, *, count: int = 1, timeout: float = 10
    ) -> list[SlackCall]:
        """The first `count` calls of `method` matching `where`, waiting up to `timeout` seconds for them."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [c for c in self._calls if c.method == method and where(c)]
                if len(found) >= count:
                    return found[:count]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{count} x {method} not seen within {timeout}s ({len(found)} seen)")
                self._cond.wait(left)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, recorder: SlackRecorder) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.recorder = recorder


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if "json" in self.headers.get("Content-Type", ""):
            body = json.loads(raw or b"{}")
            params: dict[str, Any] = body if isinstance(body, dict) else {}
        else:
            params = {k: v[0] for k, v in parse_qs(raw.decode(), keep_blank_values=True).items()}
        path = self.path.split("?", 1)[0]
        reply = self.server.recorder.answer(path.removeprefix("/api/"), params, self.headers.get("Authorization", ""))
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
