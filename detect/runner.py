"""Scheduled detection: look at the last window, open (or update) incidents, explain them, notify.

A run covers [start, end): the minutes since the previous run (kept in the event store, so runs survive
restarts without gaps), at most `max_catchup_s` back. For each service with an onset in the window, the
root cause is ranked; an open detection incident with the same root cause from the last `dedup_s` seconds
is updated instead of opening a duplicate. Each run is recorded as a document (`detection_runs`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from core.incident import IncidentStatus, InvestigationRequest
from core.timeutil import NS, iso
from detect.onset import Onset, detect_onset

if TYPE_CHECKING:
    from agents.toolbox import Toolbox
    from core.explanation import Explanation
    from core.incident import Incident

log = logging.getLogger(__name__)

RUNS = "detection_runs"
MARK = "detect.last_end_ns"


@dataclass
class DetectOptions:
    window_s: int = 60
    history_s: int = 1800
    dedup_s: int = 900
    max_catchup_s: int = 6 * 3600
    explain: bool = True


@dataclass
class DetectionRun:
    start_ns: int
    end_ns: int
    onsets: list[dict[str, Any]] = field(default_factory=list)
    opened: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    took_ms: float = 0.0

    @property
    def id(self) -> str:
        return f"run:{self.start_ns}-{self.end_ns}"

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "start": iso(self.start_ns), "end": iso(self.end_ns), **asdict(self)}


Notify = Callable[["Incident", "Explanation"], None]


def run_once(
    tools: Toolbox, *, end_ns: int, options: DetectOptions | None = None, notify: Notify | None = None
) -> list[DetectionRun]:
    """Every window from the previous run's end (or one window back) up to `end_ns`."""
    opt = options or DetectOptions()
    last = tools.events.kv_get(MARK)
    width = opt.window_s * NS
    start = end_ns - width if last is None else max(int(last), end_ns - opt.max_catchup_s * NS)
    runs = []
    while start + width <= end_ns:
        runs.append(detect_window(tools, start, start + width, opt, notify))
        start += width
        tools.events.kv_set(MARK, start)
    return runs


def detect_window(
    tools: Toolbox, start_ns: int, end_ns: int, opt: DetectOptions, notify: Notify | None = None
) -> DetectionRun:
    t0 = time.perf_counter()
    run = DetectionRun(start_ns=start_ns, end_ns=end_ns)
    onsets = [o for o in detect_onset(tools.events, start_ns - opt.history_s * NS, end_ns) if o.at_ns >= start_ns]
    strongest: dict[str, Onset] = {}
    for o in onsets:
        if o.service not in strongest or o.z > strongest[o.service].z:
            strongest[o.service] = o
    run.onsets = [asdict(o) for o in strongest.values()]
    if strongest:
        first = min(strongest.values(), key=lambda o: (o.at_ns, -o.z))
        _handle(tools, first, opt, run, notify)
    run.took_ms = round((time.perf_counter() - t0) * 1000, 2)
    tools.events.put_doc(RUNS, run.id, run.as_dict(), time_ns=start_ns, status="incident" if run.opened else "")
    return run


def _handle(tools: Toolbox, onset: Onset, opt: DetectOptions, run: DetectionRun, notify: Notify | None) -> None:
    from agents.investigate import investigate
    from detect.incident_window import rank_incident

    ranking = rank_incident(tools.events, alert_ns=onset.at_ns, service_hint=onset.service, modalities=tools.modalities)
    root = ranking.candidates[0].service if ranking.candidates else onset.service
    recent = tools.book.list(status=IncidentStatus.OPEN, since_ns=onset.at_ns - opt.dedup_s * NS, limit=200)
    for inc in recent:
        if inc.source == "detection" and inc.root_cause == root and inc.alert_ns <= onset.at_ns:
            tools.book.save(inc.model_copy(update={"updated_ns": onset.at_ns}))
            run.updated.append(inc.id)
            return
    req = InvestigationRequest(at_ns=onset.at_ns, service=onset.service)
    if not opt.explain:
        incident = tools.book.open(req, source="detection")
        tools.book.save(incident.model_copy(update={"root_cause": root}))
        run.opened.append(incident.id)
        return
    incident, explanation = investigate(tools, req, source="detection")
    run.opened.append(incident.id)
    if notify is not None:
        try:
            notify(incident, explanation)
        except Exception:  # a chat outage must not stop detection; the incident is stored
            log.exception("notification failed", extra={"incident": incident.id})
