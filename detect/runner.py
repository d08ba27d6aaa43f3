"""Scheduled detection: look at the last minutes, open (or update) incidents, explain them, notify.

A run covers [start, end): the minutes since the previous run (kept in the event store, so runs survive
restarts without gaps), at most `max_catchup_s` back, one window of `window_s` at a time. For the window
ending at `end`, the root-cause ranking is computed over each of `lookbacks_s` before `end` (a short
look reacts fast, a longer one has the requests to see weaker changes), with history from before it only
and nothing after `end`, exactly as it would be live. `detect.triggers` decides whether the signals make
an incident.

When they do, the incident starts at the firing run's own window (`window_s` before its end; a longer
look that fired only adds requests) and is:

- the open detection incident that fired in the previous window (the same episode): updated, and its
  root cause re-ranked over the episode so far (at most `episode_s` from its start: the first minutes
  say most about where it began);
- else the open detection incident with the same root cause from the last `dedup_s`: updated;
- else a new incident, explained by the context's `explain` (the agent team, wired by the caller) and
  announced (`notify`).

Each run is recorded as a document (`detection_runs`): its window, the triggers it saw, what it opened
and updated.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from core.explanation import Explanation
from core.incident import Incident, IncidentStatus, InvestigationRequest
from core.rca import RankingResult
from core.telemetry import CallEdge
from core.timeutil import NS, iso
from detect.incidents import IncidentBook
from detect.rank.windows import MODALITIES, IncidentOptions, rank_incident
from detect.triggers import Trigger, TriggerOptions, find_triggers
from retrieval.events import EventStore

log = logging.getLogger(__name__)

RUNS = "detection_runs"
MARK = "detect.last_end_ns"


@dataclass
class DetectOptions:
    window_s: int = 60
    """One run per window of this length."""
    lookbacks_s: tuple[int, ...] = (60, 180)
    """Each run ranks the telemetry of these spans before its end."""
    episode_s: int = 180
    """An ongoing incident's root cause is re-ranked over at most this long from its start."""
    dedup_s: int = 900
    max_catchup_s: int = 6 * 3600
    explain: bool = True
    triggers: TriggerOptions = field(default_factory=TriggerOptions)


@dataclass
class DetectionRun:
    start_ns: int
    end_ns: int
    triggers: list[dict[str, Any]] = field(default_factory=list)
    root_cause: str = ""
    opened: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    took_ms: float = 0.0

    @property
    def id(self) -> str:
        return f"run:{self.start_ns}-{self.end_ns}"

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "start": iso(self.start_ns), "end": iso(self.end_ns), **asdict(self)}


Notify = Callable[[Incident, Explanation], None]
Explain = Callable[[InvestigationRequest], tuple[Incident, Explanation]]
"""Opens, explains and stores an incident for a request (the agent team, wired by the caller)."""


@dataclass
class DetectContext:
    """What a detection run reads and writes, built by the entry point (see `agents.investigate`)."""

    events: EventStore
    book: IncidentBook
    explain: Explain | None = None
    """None opens incidents without explaining them (as `DetectOptions(explain=False)`)."""
    call_edges: Callable[[], Iterable[CallEdge]] | None = None
    """The call graph known besides the spans (declared topology, stored CALLS edges), read per ranking."""
    modalities: tuple[str, ...] = MODALITIES


def run_once(
    tools: DetectContext, *, end_ns: int, options: DetectOptions | None = None, notify: Notify | None = None
) -> list[DetectionRun]:
    """Every window from the previous run's end (or one window back) up to `end_ns`."""
    opt = options or DetectOptions()
    last = tools.events.kv.get(MARK)
    width = opt.window_s * NS
    start = end_ns - width if last is None else max(int(last), end_ns - opt.max_catchup_s * NS)
    runs = []
    while start + width <= end_ns:
        runs.append(detect_window(tools, start, start + width, opt, notify))
        start += width
        tools.events.kv.set(MARK, start)
    return runs


def replay(
    tools: DetectContext,
    start_ns: int,
    end_ns: int,
    options: DetectOptions | None = None,
    *,
    on_run: Callable[[DetectionRun], None] | None = None,
) -> list[DetectionRun]:
    """Detection as a scheduler would have run it, once a window, over stored telemetry from `start_ns`
    to `end_ns` (the clock replayed: each run sees only what was there at its own time). The live
    marker of `run_once` is left alone."""
    opt = options or DetectOptions()
    width = opt.window_s * NS
    t = (start_ns // width + 1) * width
    runs = []
    while t <= end_ns + width:
        runs.append(detect_window(tools, t - width, t, opt))
        if on_run is not None:
            on_run(runs[-1])
        t += width
    return runs


def rank_until(tools: DetectContext, start_ns: int, end_ns: int) -> RankingResult:
    """The ranking of [start_ns, end_ns) with history from before it only: what is known at `end_ns`."""
    span_s = max(1, (end_ns - start_ns) // NS)
    opt = IncidentOptions(past_only=True, max_window_s=span_s, min_window_s=min(30, span_s), metric_window_s=span_s)
    edges = list(tools.call_edges()) if tools.call_edges is not None else None
    return rank_incident(tools.events, alert_ns=start_ns, modalities=tools.modalities, call_edges=edges, options=opt)


def detect_window(
    tools: DetectContext, start_ns: int, end_ns: int, opt: DetectOptions, notify: Notify | None = None
) -> DetectionRun:
    t0 = time.perf_counter()
    run = DetectionRun(start_ns=start_ns, end_ns=end_ns)
    fired: tuple[RankingResult, list[Trigger]] | None = None
    own: RankingResult | None = None  # the ranking of the run's own window, which names the root cause
    for lookback in opt.lookbacks_s:
        ranking = rank_until(tools, end_ns - lookback * NS, end_ns)
        if lookback == opt.window_s:
            own = ranking
        found = find_triggers(ranking.signals, opt.triggers)
        if found and ranking.candidates:
            fired = (own or rank_until(tools, start_ns, end_ns), found)
            break
    if fired is not None:
        ranking, found = fired
        run.triggers = [asdict(t) for t in found[:10]]
        _handle(tools, start_ns, ranking, found, opt, run, notify)
    run.took_ms = round((time.perf_counter() - t0) * 1000, 2)
    tools.events.docs.put(RUNS, run.id, run.as_dict(), time_ns=start_ns, status="incident" if run.opened else "")
    return run


def _handle(
    tools: DetectContext,
    onset: int,
    ranking: RankingResult,
    found: list[Trigger],
    opt: DetectOptions,
    run: DetectionRun,
    notify: Notify | None,
) -> None:
    end = run.end_ns
    recent = [
        i
        for i in tools.book.list(status=IncidentStatus.OPEN, since_ns=end - opt.dedup_s * NS, limit=200)
        if i.source == "detection"
    ]
    top = ranking.top
    ongoing = [i for i in recent if i.updated_ns >= run.start_ns]
    if ongoing:  # the same episode: what is known now about its root cause
        inc = max(ongoing, key=lambda i: i.updated_ns)
        update: dict[str, Any] = {"updated_ns": end}
        if run.start_ns < inc.alert_ns + opt.episode_s * NS:  # later runs would rank the same window again
            top = rank_until(tools, inc.alert_ns, min(end, inc.alert_ns + opt.episode_s * NS)).top
            if top is not None:
                update |= {"root_cause": top.service, "confidence": top.confidence}
        tools.book.save(inc.model_copy(update=update))
        run.root_cause = update.get("root_cause", inc.root_cause)
        run.updated.append(inc.id)
        return
    root = top.service if top is not None else found[0].service
    run.root_cause = root
    for inc in recent:
        if inc.root_cause == root:
            tools.book.save(inc.model_copy(update={"updated_ns": end}))
            run.updated.append(inc.id)
            return
    # the incident is about the service the strongest trigger fired on, as an alert names one
    req = InvestigationRequest(at_ns=onset, service=found[0].service)
    conf = top.confidence if top is not None else 0.0
    if not opt.explain or tools.explain is None:
        incident = tools.book.open(req, source="detection", now=end)
        incident = incident.model_copy(update={"root_cause": root, "confidence": conf, "updated_ns": end})
        tools.book.save(incident)
        run.opened.append(incident.id)
        return
    incident, explanation = tools.explain(req)
    tools.book.save(tools.book.get(incident.id).model_copy(update={"updated_ns": end}))
    run.opened.append(incident.id)
    if notify is not None:
        try:
            notify(incident, explanation)
        except Exception:  # a chat outage must not stop detection; the incident is stored
            log.exception("notification failed", extra={"incident": incident.id})
