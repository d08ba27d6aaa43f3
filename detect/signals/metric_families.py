"""What a metric measures (its family) and which way is bad, read from its name and data-point attributes.

Only two kinds of rule, and no team's own metric names:

1. OpenTelemetry semantic conventions, checked first: `system.*` and `k8s.node.*` are host metrics
   (`node`); `*.cpu.*` is cpu; `*.memory.*` and `jvm.gc.*` are memory; `*.network.*` is network;
   `*.disk.*`, `*.filesystem.*` and `*.io` are io; `*.duration` (`http.server.request.duration`,
   `rpc.client.duration`, `db.client.operation.duration`, ...) is latency; `*.active_requests` is
   workload. A data point whose attributes carry an error (`error.type`, an `http.response.status_code`
   of 500 or more, an `rpc.grpc.status_code` other than 0, `otel.status_code` ERROR) counts errors.
2. Generic words any team uses, as whole tokens of the name (split at `.`, `_`, `-`, `/` and
   camelCase): success/availability; error/fail/5xx/exception; latency/duration/response time/rt/
   elapsed; cpu/throttling; memory/mem/heap/rss/oom/gc; network/net/bytes/packets/tcp/connections;
   workload/throughput/qps/rps/requests/ops/calls; disk/io/syscall/fs/read/write. A name starting with
   node/host/machine is a host metric.

The parts our OTLP reader gives a histogram or summary (`<name>.count`, `.sum`, `.pNN`, see
`ingest.otlp.metrics`) and the parts `detect.signals.metric_series` derives (`.mean`; `.rate` of a
counter) keep the family of `<name>`, except a histogram's count of requests (`.count`, `.count.rate`),
which is workload (errors, when the point's attributes say the requests failed).
"""

from __future__ import annotations

import json
import re
from typing import Any

_SEMCONV: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("node", re.compile(r"^(system|k8s\.node|host)\.")),
    ("memory", re.compile(r"(^|\.)(memory|jvm\.gc)(\.|$)")),
    ("cpu", re.compile(r"(^|\.)cpu(\.|$)")),
    ("network", re.compile(r"(^|\.)network(\.|$)")),
    ("io", re.compile(r"(^|\.)(disk|filesystem|io)(\.|$)")),
    ("latency", re.compile(r"\.duration$")),
    ("workload", re.compile(r"\.active_requests$")),
)
_WORDS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("node", re.compile(r"^(node|host|machine)\b")),
    ("success", re.compile(r"\b(success\w*|availability|ok rate)\b")),
    ("error", re.compile(r"\b(errors?|fail\w*|5xx|exceptions?)\b")),
    ("latency", re.compile(r"\b(latency|latencies|duration|response time|rt|elapsed)\b")),
    ("cpu", re.compile(r"\b(cpu|throttl\w*)\b")),
    ("memory", re.compile(r"\b(mem|memory|heap|rss|oom|gc)\b")),
    ("network", re.compile(r"\b(network|net|bytes|packets?|tcp|conn\w*)\b")),
    ("workload", re.compile(r"\b(workload|throughput|qps|rps|requests?|ops|calls)\b")),
    ("io", re.compile(r"\b(disk|io|syscalls?|fs|read|write)\b")),
)
# the parts of a histogram or summary (ingest.otlp.metrics) and the ones metric_series derives
_PART = re.compile(r"\.(count|sum|mean|rate|p\d+(\.\d+)?)$")
# which way is bad, per family ("both" = either way is worth a look); `callees` is set by
# detect.signals.metrics for client-side latencies that name no server
DIRECTION = {
    "node": "up",
    "success": "down",
    "error": "up",
    "latency": "up",
    "cpu": "up",
    "memory": "up",
    "network": "both",
    "workload": "both",
    "io": "both",
    "callees": "up",
    "other": "both",
}


def split_part(name: str) -> tuple[str, str]:
    """(base name, part) of a histogram/summary row name (`http.server.request.duration.p95` ->
    (`http.server.request.duration`, `p95`)); (name, '') for any other name."""
    m = _PART.search(name)
    return (name[: m.start()], m.group(1)) if m else (name, "")


def _words(name: str) -> str:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return re.sub(r"[^a-z0-9]+", " ", spaced.lower()).strip()


def name_family(name: str) -> str:
    """The family of a metric name by the rules of the module doc (semantic conventions first); 'other'."""
    low = name.lower()
    for fam, pat in _SEMCONV:
        if pat.search(low):
            return fam
    words = _words(name)
    for fam, pat in _WORDS:
        if pat.search(words):
            return fam
    return "other"


def is_error_point(attrs: dict[str, Any]) -> bool:
    """Whether a data point's attributes say the requests it counts failed (semantic conventions)."""
    if attrs.get("error.type") not in (None, ""):
        return True
    if str(attrs.get("otel.status_code", "")).upper() == "ERROR":
        return True
    status = attrs.get("http.response.status_code", attrs.get("http.status_code"))
    if status is not None and str(status).isdigit() and int(str(status)) >= 500:
        return True
    grpc = attrs.get("rpc.grpc.status_code")
    return grpc is not None and str(grpc) not in ("0", "OK", "")


def metric_family(name: str, attrs: dict[str, Any] | None = None) -> str:
    """The family of one series: its base name's (a counter's rate, `<name>.rate`, too), except that a
    histogram's or summary's count (`.count`, `.count.rate`) counts requests: workload, or error when
    `attrs` say the requests failed (an error/success/network/io name keeps its family)."""
    base, part = split_part(name)
    if part == "rate":
        inner, inner_part = split_part(base)
        if inner_part == "count":
            base, part = inner, "count"
    if part == "count":
        if attrs and is_error_point(attrs):
            return "error"
        fam = name_family(base)
        return fam if fam in ("error", "success", "network", "io") else "workload"
    fam = name_family(base if part else name)
    if attrs and fam == "workload" and is_error_point(attrs):
        return "error"
    return fam


def parse_attrs(text: str) -> dict[str, Any]:
    """A row's `attributes` JSON as a dict ({} when empty or not an object)."""
    if not text or text == "{}":
        return {}
    try:
        v = json.loads(text)
    except ValueError:
        return {}
    return v if isinstance(v, dict) else {}
