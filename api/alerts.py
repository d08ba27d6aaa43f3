"""Alert intake: `POST /alerts/alertmanager` takes Prometheus Alertmanager's webhook payload as sent.

Alertmanager posts a group of alerts (version "4"): each firing alert opens or updates an incident
(keyed by the alert's fingerprint, by the port) and is explained in the background; each resolved
alert resolves it. The answer (200) comes before any of that work, but what could not be processed is
refused first: an alert without labels or with a time DevMesh does not accept is a 422 naming
`alerts.<i>.<field>`. Explanations go through a bounded queue (`api.alert_queue`: at most
DEVMESH_ALERT_QUEUE_SIZE queued or running, DEVMESH_ALERT_EXPLAINS_PER_REQUEST per notification, each
given up after twice DEVMESH_INVESTIGATION_BUDGET_S); a notification that does not fit is a 503 with
Retry-After, which Alertmanager re-sends. Alertmanager re-sends a firing
group every `group_interval`; an alert already explained (same fingerprint and start) is not
explained again. A `runbook_url` (or `runbook`) annotation is added to the explanation's runbooks if
the port did not link it.

Optional hooks on `app.state`: `alerts_token` (a `SecretStr`; when set, requests must carry
`Authorization: Bearer <token>`, as Alertmanager's `http_config.authorization` sends it) and
`alert_notifier` (a callable `(Explanation, alert_context) -> None`, e.g. a chat webhook sender).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import APIRouter, BackgroundTasks, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from api.alert_queue import ExplainQueue
from api.chat.replay import SeenKeys
from api.http.access import ALERTS_TOKEN, Scope, check_scope, keys_configured
from api.http.deps import get_port
from api.port import ConversationPort, DevMeshPort
from core.errors import DevMeshError, InvalidInput, Overloaded
from core.explanation import Explanation, RunbookLink
from core.incident import AlertIn, InvestigationRequest
from core.jsontypes import json_integer, strip_text
from core.naming import service_of_pod
from core.settings import Settings
from core.timeutil import ISO_SINCE_2001_PATTERN, NS, check_sane, now_ns, to_ns

log = logging.getLogger(__name__)

SOURCE = "alertmanager"
LOOKBACK_S = 900
"""How far before an alert started its explanation window begins: causes come before alerts."""
MAX_ALERTS = 1000
MAX_EXPLAINS_PER_PAYLOAD = 5
"""Default of DEVMESH_ALERT_EXPLAINS_PER_REQUEST: the rest of a group waits for its re-send."""
EXPLAIN_TIMEOUT_FACTOR = 2.0
"""A background explanation is given up after this many times DEVMESH_INVESTIGATION_BUDGET_S (the agents'
budget stops new work at 1x; the explainer's last model answer gets the rest)."""
SEEN_TTL_S = 7 * 86400
SERVICE_LABELS = ("service", "service_name", "app", "app_kubernetes_io_name", "k8s_app", "job", "deployment")
RUNBOOK_ANNOTATIONS = ("runbook_url", "runbook", "runbookURL", "runbook_link")
_ZERO_TIME_PREFIX = "0001-01-01"
ALERT_TIME = "RFC 3339, in DEVMESH_MIN_TIMESTAMP_YEAR or later and at most DEVMESH_MAX_FUTURE_SKEW_S ahead."


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")


class AlertmanagerAlert(_Model):
    """One alert of a notification, as Alertmanager sends it."""

    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(min_length=1, description="At least alertname.")
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: str = Field(alias="startsAt", pattern=ISO_SINCE_2001_PATTERN, description=ALERT_TIME)
    ends_at: str = Field(
        default="",
        alias="endsAt",
        pattern=f"^$|^{_ZERO_TIME_PREFIX}|{ISO_SINCE_2001_PATTERN}",
        description=ALERT_TIME + " '0001-01-01T00:00:00Z' while firing.",
    )
    generator_url: str = Field(default="", alias="generatorURL")
    fingerprint: str = Field(default="", max_length=200)

    _stripped = field_validator("starts_at", "ends_at", mode="before")(strip_text)

    @field_validator("starts_at", "ends_at")
    @classmethod
    def _rfc3339(cls, v: str) -> str:
        if v and not v.startswith(_ZERO_TIME_PREFIX):
            try:
                to_ns(v)
            except InvalidInput as exc:
                raise ValueError(exc.message) from None
        return v

    @property
    def starts_ns(self) -> int:
        return to_ns(self.starts_at)

    @property
    def ends_ns(self) -> int | None:
        if not self.ends_at or self.ends_at.startswith(_ZERO_TIME_PREFIX):
            return None
        return to_ns(self.ends_at)

    def key(self) -> str:
        """The fingerprint, or (older Alertmanagers) a hash of the sorted labels."""
        if self.fingerprint:
            return self.fingerprint
        canon = "\x00".join(f"{k}={v}" for k, v in sorted(self.labels.items()))
        return hashlib.sha256(canon.encode()).hexdigest()[:16]


class AlertmanagerPayload(_Model):
    """The webhook body (`webhook_config`), version 4."""

    version: str = "4"
    group_key: str = Field(default="", alias="groupKey")
    truncated_alerts: int = Field(default=0, alias="truncatedAlerts")
    status: Literal["firing", "resolved"]
    receiver: str = ""
    group_labels: dict[str, str] = Field(default_factory=dict, alias="groupLabels")
    common_labels: dict[str, str] = Field(default_factory=dict, alias="commonLabels")
    common_annotations: dict[str, str] = Field(default_factory=dict, alias="commonAnnotations")
    external_url: str = Field(default="", alias="externalURL")
    alerts: list[AlertmanagerAlert] = Field(max_length=MAX_ALERTS)

    _json_integers = field_validator("truncated_alerts", mode="before")(json_integer)


def service_of(labels: dict[str, str]) -> str:
    """The service an alert is about: service/app/job labels, else the pod's Deployment name, else the container."""
    for name in SERVICE_LABELS:
        if labels.get(name):
            return labels[name]
    pod = labels.get("pod") or labels.get("pod_name") or ""
    return service_of_pod(pod) if pod else labels.get("container", "")


def runbook_url_of(alert: AlertmanagerAlert, payload: AlertmanagerPayload) -> str:
    for source in (alert.annotations, payload.common_annotations):
        for name in RUNBOOK_ANNOTATIONS:
            url = source.get(name, "").strip()
            if url.lower().startswith(("http://", "https://")):
                return url
    return ""


def alert_context(alert: AlertmanagerAlert, payload: AlertmanagerPayload) -> dict[str, Any]:
    """What the alert says, for the notifier and the runbook link: names, labels, times, where it came from."""
    return {
        "source": "alertmanager",
        "fingerprint": alert.key(),
        "status": alert.status,
        "alertname": alert.labels.get("alertname", ""),
        "severity": alert.labels.get("severity", ""),
        "service": service_of(alert.labels),
        "pod": alert.labels.get("pod", ""),
        "node": alert.labels.get("node") or alert.labels.get("instance", ""),
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "summary": alert.annotations.get("summary", "") or payload.common_annotations.get("summary", ""),
        "description": alert.annotations.get("description", "") or payload.common_annotations.get("description", ""),
        "runbook_url": runbook_url_of(alert, payload),
        "starts_ns": alert.starts_ns,
        "ends_ns": alert.ends_ns,
        "startsAt": alert.starts_at,
        "endsAt": alert.ends_at,
        "generator_url": alert.generator_url,
        "group_key": payload.group_key,
        "receiver": payload.receiver,
        "external_url": payload.external_url,
    }


def explain_request(alert: AlertmanagerAlert) -> InvestigationRequest:
    """Explain the incident the alert opens or updates (keyed by its fingerprint), from `LOOKBACK_S` before it."""
    start = alert.starts_ns
    return InvestigationRequest(
        service=service_of(alert.labels) or None,
        start_ns=start - LOOKBACK_S * NS,
        at_ns=start,
        alert=AlertIn(
            status=alert.status,
            labels=alert.labels,
            annotations=alert.annotations,
            startsAt=alert.starts_at,
            endsAt=alert.ends_at,
            fingerprint=alert.key(),
        ),
    )


def with_alert_runbook(expl: Explanation, ctx: dict[str, Any]) -> Explanation:
    """The explanation with the alert's runbook link first among its runbooks (unless already linked)."""
    url = str(ctx.get("runbook_url") or "")
    if not url or any(rb.url == url for rb in expl.runbooks):
        return expl
    title = f"Runbook for {ctx.get('alertname') or 'the alert'}"
    link = RunbookLink(id=f"alert:{ctx.get('alertname') or ctx['fingerprint']}", title=title, url=url)
    return expl.model_copy(update={"runbooks": [link, *expl.runbooks]})


@dataclass(frozen=True)
class AlertJob:
    """One firing alert to explain: the port's request, and the alert's context (`alert_context`)."""

    request: InvestigationRequest
    context: dict[str, Any]


@dataclass
class AlertPlan:
    """What one notification asks for."""

    explain: list[AlertJob] = field(default_factory=list)
    resolve: list[str] = field(default_factory=list)
    repeated: int = 0
    deferred: int = 0


class AlertIntake:
    """Turns notifications into port calls; remembers explained alerts so re-sent groups are cheap."""

    def __init__(self, *, max_explains: int = MAX_EXPLAINS_PER_PAYLOAD, clock: Callable[[], float] = time.time):
        self.max_explains = max_explains
        self.clock = clock
        self.explained = SeenKeys(max_keys=100_000, clock=clock)
        self.queue: ExplainQueue[AlertJob] | None = None

    def plan(self, payload: AlertmanagerPayload) -> AlertPlan:
        plan = AlertPlan()
        for alert in payload.alerts:
            if alert.status == "resolved":
                plan.resolve.append(alert.key())
                continue
            if len(plan.explain) >= self.max_explains:
                plan.deferred += 1  # not remembered: a later re-send of the group explains it
                continue
            verdict = self.explained.add(f"{alert.key()}@{alert.starts_ns}", expires_at=self.clock() + SEEN_TTL_S)
            if verdict is False:
                plan.repeated += 1
                continue
            plan.explain.append(AlertJob(explain_request(alert), alert_context(alert, payload)))
        return plan

    def forget(self, job: AlertJob) -> None:
        """After a failed explanation: let the next re-send try again."""
        self.explained.discard(f"{job.context['fingerprint']}@{job.context['starts_ns']}")


def resolve_all(port: ConversationPort, fingerprints: list[str]) -> None:
    """Resolve the incidents of resolved alerts; failures are logged and do not stop the others."""
    for fingerprint in fingerprints:
        try:
            port.resolve_alert(fingerprint)
        except DevMeshError as exc:
            log.warning("resolving an alert failed", extra={"fingerprint": fingerprint, "error": exc.message})


def explain_one(
    port: ConversationPort,
    job: AlertJob,
    intake: AlertIntake,
    notify: Callable[[Explanation, dict[str, Any]], None] | None = None,
) -> None:
    """Explain one alert and send the explanation on; a failure is logged and forgotten (the re-send retries)."""
    ctx = job.context
    try:
        expl = with_alert_runbook(port.explain(job.request, source=SOURCE).explanation, ctx)
    except Exception as exc:  # one alert's failure must not stop the rest of the group
        intake.forget(job)
        level = logging.WARNING if isinstance(exc, DevMeshError) else logging.ERROR
        log.log(
            level,
            "explaining an alert failed",
            exc_info=not isinstance(exc, DevMeshError),
            extra={"fingerprint": ctx.get("fingerprint"), "error": str(exc)},
        )
        return
    if notify is not None:
        try:
            notify(expl, ctx)
        except Exception:  # a chat outage must not lose the other alerts' explanations
            log.exception("alert notification failed", extra={"fingerprint": ctx.get("fingerprint")})


def check_alerts(payload: AlertmanagerPayload, s: Settings) -> None:
    """Refuse up front (422 naming `alerts.<i>.<field>`) what could not be processed later: an alert without
    labels, or a time outside what DevMesh accepts (DEVMESH_MIN_TIMESTAMP_YEAR, DEVMESH_MAX_FUTURE_SKEW_S)."""
    now = now_ns()
    for i, alert in enumerate(payload.alerts):
        if not alert.labels:
            raise InvalidInput("an alert needs its labels (at least alertname)", field=f"alerts.{i}.labels")
        times = [("startsAt", alert.starts_at)]
        if alert.ends_at and not alert.ends_at.startswith(_ZERO_TIME_PREFIX):
            times.append(("endsAt", alert.ends_at))
        for name, value in times:
            if value.startswith(_ZERO_TIME_PREFIX):
                raise InvalidInput(f"{name} is the zero time {value!r}", field=f"alerts.{i}.{name}")
            why = check_sane(
                to_ns(value), min_year=s.min_timestamp_year, max_future_skew_s=s.max_future_skew_s, now=now
            )
            if why is not None:
                raise InvalidInput(f"{name} {value!r}: {why}", field=f"alerts.{i}.{name}")


def get_intake(request: Request) -> AlertIntake:
    """The app's AlertIntake and its explanation queue (`app.state.alert_intake`, made on first use from
    `app.state.settings`, its port and its `alert_notifier`)."""
    intake: AlertIntake | None = getattr(request.app.state, "alert_intake", None)
    if intake is None:
        s = settings_of(request)
        port = request.app.state.port
        notify = getattr(request.app.state, "alert_notifier", None)
        intake = AlertIntake(max_explains=s.alert_explains_per_request)
        made = intake
        intake.queue = ExplainQueue(
            lambda job: explain_one(port, job, made, notify),
            key_of=lambda job: str(job.context["fingerprint"]),
            capacity=s.alert_queue_size,
            timeout_s=EXPLAIN_TIMEOUT_FACTOR * s.investigation_budget_s,
            on_timeout=made.forget,
        )
        request.app.state.alert_intake = intake
    return intake


def settings_of(request: Request) -> Settings:
    found: Settings | None = getattr(request.app.state, "settings", None)
    return found if found is not None else Settings()


def check_token(request: Request) -> None:
    """`Authorization: Bearer` with an API key holding the `explain` scope, or the legacy `app.state.alerts_token`
    (DEVMESH_ALERTS_TOKEN). With neither keys nor a token configured: loopback-only mode (`api.http.access`)."""
    token: SecretStr | str | None = getattr(request.app.state, "alerts_token", None)
    if token:
        expected = token.get_secret_value() if isinstance(token, SecretStr) else token
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), expected.encode()):
            request.state.principal = ALERTS_TOKEN
            return
        if not keys_configured(request):
            raise HTTPException(401, "missing or wrong bearer token: set http_config.authorization in the receiver")
    check_scope(request, Scope.EXPLAIN)


router = APIRouter(tags=["alerts"])


@router.post("/alerts/alertmanager", dependencies=[Depends(check_token)])
async def alertmanager_webhook(
    payload: AlertmanagerPayload,
    background: BackgroundTasks,
    request: Request,
    port: DevMeshPort = Depends(get_port),
    intake: AlertIntake = Depends(get_intake),
) -> dict[str, Any]:
    """Accept a notification: alerts that could not be processed are refused first (422), explanations are
    queued (503 with Retry-After when the queue is full: Alertmanager re-sends), resolutions run after the
    answer."""
    if payload.version != "4":
        log.info("Alertmanager payload version is not 4; reading it as version 4", extra={"version": payload.version})
    check_alerts(payload, settings_of(request))
    plan = intake.plan(payload)
    queued, already_queued = plan.explain, 0
    if intake.queue is not None:
        try:
            queued, already_queued = intake.queue.submit(plan.explain)
        except Overloaded:
            for job in plan.explain:
                intake.forget(job)
            raise
    if plan.resolve:
        background.add_task(resolve_all, port, plan.resolve)
    return {
        "status": "accepted",
        "explaining": len(queued),
        "resolving": len(plan.resolve),
        "already_explained": plan.repeated,
        "already_queued": already_queued,
        "deferred": plan.deferred,
    }
