"""The signals around an incident, per time bucket, for a timeline: error lines per service, the busiest error
templates, latency of the root cause and its callers, saturation metrics of the ranked candidates, and restarts.

Read from the event store only (the interface both backends share), with every part bounded: at most
`MAX_BUCKETS` buckets (a minute each while the window allows, wider when it is longer), a window of at most
`MAX_WINDOW_S`, a few series per part, and row caps on each aggregation (`notes` says what was cut).

- error templates: ERROR-or-worse lines per (template, service) of the focus services, the `TOP_TEMPLATES`
  with most lines in the window;
- latency: spans of the root cause and its callers per (service, operation), p50/p95 per bucket (the
  `OPS_PER_SERVICE` operations with most spans of each service);
- saturation: per (service, metric) the mean over its pods per bucket: the metrics the ranking cited first,
  then the candidates' CPU and memory metrics;
- restarts: lines whose template names a crash loop or an out-of-memory kill (the phrases of
  `detect.signals.faulttext`), and pods of a focus service that start or stop while another pod of it goes on
  (from the metrics' pod column, else the spans').
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence

from pydantic import BaseModel, Field

from core.timeutil import NS
from detect.signals.faulttext import phrase_of
from retrieval.events import EventStore, levels_at_least

MAX_BUCKETS = 60
MAX_WINDOW_S = 6 * 3600
TOP_TEMPLATES = 5
OPS_PER_SERVICE = 2
MAX_LATENCY_SERIES = 8
MAX_METRIC_SERIES = 6
MAX_RESTARTS = 50
ROW_CAP = 5000
RESTART_PHRASES = frozenset({"crash loop", "out of memory"})
SATURATION = re.compile(r"cpu|mem", re.IGNORECASE)


class CountPoint(BaseModel):
    bucket_ns: int
    count: int


class ErrorPoint(BaseModel):
    bucket_ns: int
    service: str
    errors: int


class TemplateSeries(BaseModel):
    template_id: str
    service: str
    text: str = Field(description="The template's text ('' when it is not stored).")
    total: int = Field(description="Its ERROR-or-worse lines over the timeline.")
    points: list[CountPoint]


class LatencyPoint(BaseModel):
    bucket_ns: int
    spans: int
    errors: int
    p50_ms: float
    p95_ms: float


class LatencySeries(BaseModel):
    service: str
    operation: str
    role: str = Field(description="'root cause' or 'caller' (a service that calls the root cause).")
    points: list[LatencyPoint]


class MetricPoint(BaseModel):
    bucket_ns: int
    value: float = Field(description="Mean over the bucket of the service's pods' means.")


class MetricSeries(BaseModel):
    service: str
    name: str
    cited: bool = Field(description="The ranking cited this metric as evidence.")
    points: list[MetricPoint]


class RestartMark(BaseModel):
    bucket_ns: int
    service: str
    pod: str = ""
    what: str = Field(description="'crash loop', 'out of memory', 'pod started' or 'pod stopped'.")
    count: int = Field(default=1, description="Lines in the bucket (1 for a pod change).")
    template_id: str = ""
    text: str = ""


class SignalTimeline(BaseModel):
    start_ns: int
    end_ns: int
    bucket_s: int
    errors: list[ErrorPoint] = Field(description="ERROR-or-worse lines per focus service per bucket.")
    templates: list[TemplateSeries]
    latency: list[LatencySeries]
    saturation: list[MetricSeries]
    restarts: list[RestartMark]
    notes: list[str] = Field(default_factory=list, description="What was cut or could not be shown, and why.")


def bounds(lo: int, hi: int, alert_ns: int) -> tuple[int, int, int, list[str]]:
    """The window cut to `MAX_WINDOW_S` around `alert_ns`, aligned to its bucket width; the width in seconds."""
    notes = []
    if hi - lo > MAX_WINDOW_S * NS:
        lo = max(lo, alert_ns - MAX_WINDOW_S * NS // 2)
        hi = lo + MAX_WINDOW_S * NS
        notes.append(f"timeline cut to {MAX_WINDOW_S // 3600} h around the fault time")
    bucket_s = 60
    while (hi - lo) / (bucket_s * NS) > MAX_BUCKETS:
        bucket_s *= 2
    w = bucket_s * NS
    return lo // w * w, -(-hi // w) * w, bucket_s, notes


def _buckets(lo: int, hi: int, bucket_s: int) -> list[int]:
    return list(range(lo, hi, bucket_s * NS))


def error_templates(
    events: EventStore, lo: int, hi: int, bucket_s: int, services: Sequence[str]
) -> tuple[list[TemplateSeries], bool]:
    rows = events.count_by(
        "logs",
        ["template_id", "service"],
        start_ns=lo,
        end_ns=hi,
        where={"level": levels_at_least("ERROR"), "service": list(services)},
        bucket_s=bucket_s,
        limit=ROW_CAP,
    )
    series: dict[tuple[str, str], list[CountPoint]] = defaultdict(list)
    for r in rows:
        if r["template_id"]:
            series[(r["template_id"], r["service"])].append(CountPoint(bucket_ns=r["bucket_ns"], count=r["count"]))
    top = sorted(series, key=lambda k: (-sum(p.count for p in series[k]), k))[:TOP_TEMPLATES]
    texts = {t.template_id: t.text for t in events.templates([k[0] for k in top])} if top else {}
    out = [
        TemplateSeries(
            template_id=t,
            service=s,
            text=texts.get(t, ""),
            total=sum(p.count for p in series[(t, s)]),
            points=sorted(series[(t, s)], key=lambda p: p.bucket_ns),
        )
        for t, s in top
    ]
    return out, len(rows) >= ROW_CAP


def latency(
    events: EventStore, lo: int, hi: int, bucket_s: int, root: str | None, callers: Sequence[str]
) -> list[LatencySeries]:
    services = ([root] if root else []) + [c for c in callers if c != root]
    if not services:
        return []
    busiest: dict[str, list[str]] = defaultdict(list)
    for r in events.count_by("spans", ["service", "operation"], start_ns=lo, end_ns=hi, where={"service": services}):
        if len(busiest[r["service"]]) < OPS_PER_SERVICE:
            busiest[r["service"]].append(r["operation"])
    keys = [(s, op) for s in services for op in busiest.get(s, [])][:MAX_LATENCY_SERIES]
    if not keys:
        return []
    points: dict[tuple[str, str], list[LatencyPoint]] = defaultdict(list)
    for b in _buckets(lo, hi, bucket_s):
        for st in events.span_stats(b, b + bucket_s * NS, services=[s for s, _ in keys]):
            if (st.service, st.operation) in keys:
                points[(st.service, st.operation)].append(
                    LatencyPoint(
                        bucket_ns=b,
                        spans=st.count,
                        errors=st.errors,
                        p50_ms=round(st.p50_ms, 3),
                        p95_ms=round(st.p95_ms, 3),
                    )
                )
    return [
        LatencySeries(service=s, operation=op, role="root cause" if s == root else "caller", points=points[(s, op)])
        for s, op in keys
    ]


def saturation(
    events: EventStore, lo: int, hi: int, bucket_s: int, candidates: Sequence[str], cited: Sequence[tuple[str, str]]
) -> list[MetricSeries]:
    services = list(dict.fromkeys([*candidates, *(s for s, _ in cited)]))
    if not services:
        return []
    rows = events.count_by(
        "metrics", ["service", "pod", "name"], start_ns=lo, end_ns=hi, where={"service": services}, limit=ROW_CAP
    )
    rows = [r for r in rows if r["pod"]]  # a series without a pod cannot be told apart from another's
    have = {(r["service"], r["name"]) for r in rows}
    keys = [k for k in dict.fromkeys(cited) if k in have]
    keys += sorted(k for k in have if k not in keys and SATURATION.search(k[1]))
    keys = keys[:MAX_METRIC_SERIES]
    if not keys:
        return []
    service_of = {r["pod"]: r["service"] for r in rows}
    pods = sorted({r["pod"] for r in rows if (r["service"], r["name"]) in keys})
    names = {n for _, n in keys}
    points: dict[tuple[str, str], list[MetricPoint]] = defaultdict(list)
    for b in _buckets(lo, hi, bucket_s):
        acc: dict[tuple[str, str], list[float]] = defaultdict(list)
        for (pod, name), mean in events.metric_means(b, b + bucket_s * NS, pods=pods).items():
            if name in names and (service_of.get(pod, ""), name) in keys:
                acc[(service_of[pod], name)].append(mean)
        for k, vals in acc.items():
            points[k].append(MetricPoint(bucket_ns=b, value=round(sum(vals) / len(vals), 4)))
    cited_set = set(cited)
    return [MetricSeries(service=s, name=n, cited=(s, n) in cited_set, points=points[(s, n)]) for s, n in keys]


def restart_lines(events: EventStore, lo: int, hi: int, bucket_s: int, services: Sequence[str]) -> list[RestartMark]:
    rows = events.count_by(
        "logs",
        ["template_id", "service", "pod"],
        start_ns=lo,
        end_ns=hi,
        where={"service": list(services)},
        bucket_s=bucket_s,
        limit=ROW_CAP,
    )
    ids = sorted({r["template_id"] for r in rows if r["template_id"]})
    texts = {t.template_id: t.text for t in events.templates(ids)} if ids else {}
    kinds = {t: p.detail for t, text in texts.items() if (p := phrase_of(text)) is not None}
    return [
        RestartMark(
            bucket_ns=r["bucket_ns"],
            service=r["service"],
            pod=r["pod"],
            what=kinds[r["template_id"]],
            count=r["count"],
            template_id=r["template_id"],
            text=texts[r["template_id"]],
        )
        for r in rows
        if kinds.get(r["template_id"]) in RESTART_PHRASES
    ]


def pod_changes(events: EventStore, lo: int, hi: int, bucket_s: int, services: Sequence[str]) -> list[RestartMark]:
    out: list[RestartMark] = []
    for kind in ("metrics", "spans"):
        rows = events.count_by(
            kind,
            ["service", "pod"],
            start_ns=lo,
            end_ns=hi,
            where={"service": list(services)},
            bucket_s=bucket_s,
            limit=ROW_CAP,
        )
        seen: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
        for r in rows:
            if r["pod"]:
                seen[r["service"]][r["pod"]].append(r["bucket_ns"])
        for service, pods in seen.items():
            if len(pods) < 2 or any(m.service == service for m in out):
                continue  # one pod: nothing took over; a service already read from the metrics
            first = min(min(b) for b in pods.values())
            last = max(max(b) for b in pods.values())
            for pod, bs in sorted(pods.items()):
                if min(bs) > first:
                    out.append(RestartMark(bucket_ns=min(bs), service=service, pod=pod, what="pod started"))
                if max(bs) < last:
                    out.append(
                        RestartMark(bucket_ns=max(bs) + bucket_s * NS, service=service, pod=pod, what="pod stopped")
                    )
    return out


def signal_timeline(
    events: EventStore,
    *,
    lo: int,
    hi: int,
    alert_ns: int,
    focus: Sequence[str],
    root: str | None,
    callers: Sequence[str],
    candidates: Sequence[str],
    cited_metrics: Sequence[tuple[str, str]],
) -> SignalTimeline:
    """The timeline over [lo, hi) (cut and aligned by `bounds`); `focus`: the services whose lines are shown."""
    lo, hi, bucket_s, notes = bounds(lo, hi, alert_ns)
    services = sorted(focus)
    counts = events.error_counts(lo, hi, bucket_s=bucket_s, services=services or None)
    errors = [ErrorPoint(bucket_ns=c.bucket_ns, service=c.service, errors=c.count) for c in counts]
    templates, cut = error_templates(events, lo, hi, bucket_s, services) if services else ([], False)
    if cut:
        notes.append(f"error templates read from the first {ROW_CAP} (template, bucket) rows")
    restarts = (
        restart_lines(events, lo, hi, bucket_s, services) + pod_changes(events, lo, hi, bucket_s, services)
        if services
        else []
    )
    if len(restarts) > MAX_RESTARTS:
        notes.append(f"{len(restarts)} restart marks; the first {MAX_RESTARTS} shown")
    restarts = sorted(restarts, key=lambda m: (m.bucket_ns, m.service, m.pod, m.what))[:MAX_RESTARTS]
    return SignalTimeline(
        start_ns=lo,
        end_ns=hi,
        bucket_s=bucket_s,
        errors=errors,
        templates=templates,
        latency=latency(events, lo, hi, bucket_s, root, callers),
        saturation=saturation(events, lo, hi, bucket_s, candidates, cited_metrics),
        restarts=restarts,
        notes=notes,
    )
