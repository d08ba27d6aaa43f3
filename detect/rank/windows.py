"""From an alert time to a ranked root cause: the one code path `POST /explain`, `devmesh explain` and
`devmesh eval rca` share.

Given only the alert time, `choose_windows` asks the event store where telemetry exists around it:

- the incident window runs from the alert (minus `lead_s`) to the end of the question when the caller
  gives one (`end_ns`: "what happened up to then", through any pause in the telemetry), else for as long
  as logs and spans keep coming without a gap of `gap_s`; at most `max_window_s` either way;
- the history is the rest of the store within `history_s` of the window, cut into slices as long as
  the window, nearest first (at most `max_slices`), leaving out `guard_slices` on each side (an
  incident often starts before its alert and outlasts the window);
- metrics are read over at least `metric_window_s` from the window's start, against the
  `metric_history_s` before the guard.

No labels, no earlier answers: only the telemetry in the store. `rank_incident` fetches those
windows as Arrow tables and calls `detect.rank.ranking.rank_window` with the call graph the caller
knows (declared topology, stored CALLS edges), to which the spans add their own pairs.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import pyarrow as pa

from core.errors import InvalidInput
from core.incident import Incident
from core.rca import RankingResult, TimeRange
from core.telemetry import CallEdge, columns
from core.timeutil import NS
from detect.rank.ranking import RankOptions, rank_window
from detect.rank.scales import QUESTION_SCALES_S, combine_scales
from detect.signals.logs import LOG_SCHEMA
from detect.signals.spans import SPAN_SCHEMA
from retrieval.events import EventStore

log = logging.getLogger(__name__)

# The columns fetched for the ranking: what the signals read (their schemas are picked from the row contract).
LOG_COLUMNS = tuple(LOG_SCHEMA.names)
SPAN_COLUMNS = tuple(SPAN_SCHEMA.names)
METRIC_COLUMNS = columns("metrics", ("ts_ns", "name", "value", "service", "pod", "host", "attributes"))
MODALITIES = ("logs", "traces", "metrics")


@dataclass(frozen=True)
class IncidentOptions:
    """How windows are chosen around an alert, and the ranking's own options. Generic defaults."""

    lead_s: int = 0
    """The window starts this long before the alert."""
    max_window_s: int = 300
    """... and ends at most this long after it."""
    min_window_s: int = 30
    """A window shorter than this (no data after the alert yet) reaches back before the alert."""
    gap_s: int = 30
    """A silence this long in logs and spans ends the window: the recording stopped."""
    history_s: int = 86_400
    """Logs and spans within this distance of the window are history."""
    max_slices: int = 40
    """At most this many history slices, nearest first: the nearest history is the most alike (timings
    drift over a day), and reading all of a long store is what an explanation would wait for."""
    max_history_s: int = 4800
    """... and at most this much history in all (slices x their width): a five-minute question reads 16
    slices, a two-minute one 40. Chosen for the time of `POST /explain` (docs/research/rca.md)."""
    past_only: bool = False
    """History only from before the incident (as it is live, right after an alert); the default also uses
    stored data after the incident window when there is some (replays, post-mortems)."""
    guard_slices: int = 1
    """Slices on each side of the window that are neither window nor history."""
    metric_window_s: int = 240
    """Metrics are read over at least this long from the window's start (a few samples)."""
    metric_history_s: int = 3600
    """Metric history before the guard."""
    bucket_s: int = 5
    """Resolution at which the store is asked where data exists."""
    scales_s: tuple[int, ...] = ()
    """When set (and the question has an end), the question is ranked over windows this long before its end
    and the rankings combined (`detect.rank.scales`): for a question that gave no start. Empty: one window."""
    rank: RankOptions = field(default_factory=RankOptions)


def incident_options(incident: Incident, **more: Any) -> IncidentOptions:
    """The window options an incident asks for: its alert's lead, and several windows before its end when it
    gave no start (`detect.rank.scales`)."""
    scales = QUESTION_SCALES_S if incident.end_given and not incident.onset_given else ()
    return IncidentOptions(lead_s=incident.lead_s, scales_s=scales, **more)


@dataclass(frozen=True)
class IncidentWindows:
    alert_ns: int
    window: tuple[int, int]
    slice_ns: int
    history: list[tuple[int, int]]
    """History slices, nearest first."""
    metrics_window: tuple[int, int]
    metrics_history: tuple[int, int]

    def history_ranges(self) -> list[tuple[int, int]]:
        """History slices merged into as few ranges as possible, in time order."""
        out: list[tuple[int, int]] = []
        for a, b in sorted(self.history):
            if out and a <= out[-1][1]:
                out[-1] = (out[-1][0], max(out[-1][1], b))
            else:
                out.append((a, b))
        return out


def _occupied(events: EventStore, lo: int, hi: int, bucket_s: int) -> list[int]:
    """Start times of the buckets in [lo, hi) that hold logs or spans (metrics when there are neither: a system
    watched through metrics alone), sorted."""
    seen: set[int] = set()
    for kinds in (("logs", "spans"), ("metrics",)):
        for kind in kinds:
            rows = events.count_by(kind, [], start_ns=lo, end_ns=hi, bucket_s=bucket_s, limit=10_000_000)  # type: ignore[arg-type]
            seen.update(int(r["bucket_ns"]) for r in rows)
        if seen:
            break
    return sorted(seen)


def choose_windows(
    events: EventStore, alert_ns: int, opt: IncidentOptions | None = None, *, end_ns: int | None = None
) -> IncidentWindows:
    """The incident window, history slices and metric windows for an alert (see module doc); `end_ns`, the end
    of the question, when the caller has one."""
    o = opt or IncidentOptions()
    if not isinstance(alert_ns, int) or isinstance(alert_ns, bool) or alert_ns <= 0:
        raise InvalidInput("alert_ns must be a positive integer (nanoseconds since the epoch)", field="alert_ns")
    b = o.bucket_s * NS
    lo, hi = alert_ns - o.history_s * NS, alert_ns + o.history_s * NS
    buckets = _occupied(events, lo, hi, o.bucket_s)
    start = alert_ns - o.lead_s * NS
    end = alert_ns
    limit = alert_ns + o.max_window_s * NS if end_ns is None else min(end_ns, alert_ns + o.max_window_s * NS)
    for t in buckets:
        if t + b <= alert_ns:
            continue
        if (end_ns is None and t - end > o.gap_s * NS) or t >= limit:
            break
        end = min(t + b, limit)
    if end - start < o.min_window_s * NS:
        start = end - o.min_window_s * NS
    min_slice = o.rank.signals.min_slice_s * NS
    width = max(end - start, min_slice)
    history: list[tuple[int, int]] = []
    if buckets:
        occupied = set(buckets)
        steps = range(1, o.history_s * NS // width + 2)
        for j in (x for k in steps for x in (-k, k)):
            if abs(j) <= o.guard_slices or (o.past_only and j > 0):
                continue
            a = start + j * width
            z = a + width
            if z <= lo or a >= hi:
                continue
            first = (a // b) * b
            if any(t in occupied for t in range(first, z, b)):
                history.append((a, z))
                if len(history) >= o.max_slices or len(history) * width >= o.max_history_s * NS:
                    break
    m_end = max(end, start + o.metric_window_s * NS)
    m_hist_end = start - o.guard_slices * width
    m_hist = (m_hist_end - o.metric_history_s * NS, m_hist_end)
    return IncidentWindows(alert_ns, (start, end), width, history, (start, m_end), m_hist)


def live_templates(events: EventStore, *tables: pa.Table) -> tuple[pa.Table, ...]:
    """`tables` of log rows with each template id replaced by the one the miner merged it into, if any (lines keep
    the id they were stored with; a template learned line by line may later join another)."""
    ids = sorted(
        {i for t in tables if "template_id" in t.column_names for i in t.column("template_id").to_pylist() if i}
    )
    moved = {old: new for old, new in events.resolve_templates(ids).items() if old != new}
    if not moved:
        return tables
    out = []
    for t in tables:
        if "template_id" not in t.column_names or t.num_rows == 0:
            out.append(t)
            continue
        col = pa.array([moved.get(i, i) for i in t.column("template_id").to_pylist()], pa.string())
        out.append(t.set_column(t.column_names.index("template_id"), "template_id", col))
    return tuple(out)


def rank_incident(
    events: EventStore,
    *,
    alert_ns: int,
    service_hint: str | None = None,
    modalities: Collection[str] = MODALITIES,
    call_edges: Iterable[CallEdge | tuple[str, str]] | None = None,
    options: IncidentOptions | None = None,
    end_ns: int | None = None,
) -> RankingResult:
    """Ranked root causes for an alert at `alert_ns`, from what the event store holds around it.

    `modalities` limits the telemetry read ('logs', 'traces', 'metrics'). `service_hint` (the service
    the alert is about) counts inside the score: candidates it does not reach through calls keep
    `RankOptions.off_focus_weight` of their mass. `call_edges`: the call graph known besides the spans
    (the declared topology and stored CALLS edges of the graph store). `end_ns`: the end of the question, when
    the caller has one (the window runs to it; see `choose_windows`).
    """
    bad = [m for m in modalities if m not in MODALITIES]
    if bad:
        raise InvalidInput(f"unknown modality {bad[0]!r}; use any of {', '.join(MODALITIES)}", field="modalities")
    o = options or IncidentOptions()
    if o.scales_s and end_ns is not None:
        one = replace(o, scales_s=())
        edges = list(call_edges) if call_edges is not None else None
        scales = sorted(set(o.scales_s))

        def one_scale(width_s: int) -> RankingResult:
            return rank_incident(
                events,
                alert_ns=end_ns - width_s * NS,
                service_hint=service_hint,
                modalities=modalities,
                call_edges=edges,
                options=one,
                end_ns=end_ns,
            )

        # the windows are ranked side by side: reads take cursors of their own, and the signals' arrays work
        # outside the interpreter lock for much of the time
        with ThreadPoolExecutor(max_workers=len(scales), thread_name_prefix="rank-scale") as pool:
            results = list(pool.map(one_scale, scales))
        return combine_scales(results, edges, limit=o.rank.max_candidates, scales_s=scales)
    w = choose_windows(events, alert_ns, o, end_ns=end_ns)
    ranges = w.history_ranges()
    empty = pa.table({})

    def pair(kind: str, cols: Sequence[str], wanted: str) -> tuple[pa.Table, pa.Table]:
        if wanted not in modalities:
            return empty, empty
        win = events.fetch(kind, *w.window, columns=cols)  # type: ignore[arg-type]
        base = events.fetch_ranges(kind, ranges, columns=cols)  # type: ignore[arg-type]
        return win, base

    lw, lb = live_templates(events, *pair("logs", LOG_COLUMNS, "logs"))
    sw, sb = pair("spans", SPAN_COLUMNS, "traces")
    if "metrics" in modalities:
        mw = events.fetch("metrics", *w.metrics_window, columns=METRIC_COLUMNS)
        mb = events.fetch("metrics", *w.metrics_history, columns=METRIC_COLUMNS)
    else:
        mw = mb = empty
    result = rank_window(
        lw, lb, sw, sb, mw, mb, call_edges, alert_ns=alert_ns, window=w.window, focus=service_hint, options=o.rank
    )
    notes = list(result.notes)
    skipped = [m for m in MODALITIES if m not in modalities]
    if skipped:
        notes.append(f"left out on request: {', '.join(skipped)}")
    notes.append(
        f"window {w.window[0]}-{w.window[1]} ({(w.window[1] - w.window[0]) / NS:.0f} s); "
        f"{len(w.history)} history slices of {w.slice_ns / NS:.0f} s"
    )
    log.info(
        "rank_incident",
        extra={
            "alert_ns": alert_ns,
            "slices": len(w.history),
            "logs": lw.num_rows + lb.num_rows,
            "spans": sw.num_rows + sb.num_rows,
            "status": result.status,
        },
    )
    return result.model_copy(
        update={
            "notes": notes,
            "window": TimeRange(start_ns=w.window[0], end_ns=w.window[1]),
            "baseline": [TimeRange(start_ns=a, end_ns=b) for a, b in w.history],
            "metrics_window": TimeRange(start_ns=w.metrics_window[0], end_ns=w.metrics_window[1]),
            "metrics_baseline": TimeRange(start_ns=w.metrics_history[0], end_ns=w.metrics_history[1]),
        }
    )


__all__ = ["MODALITIES", "IncidentOptions", "IncidentWindows", "choose_windows", "incident_options", "rank_incident"]
