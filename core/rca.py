"""Root-cause analysis results: signals found in a window, ranked candidates, propagation paths.

Produced by `detect.signals` (signals) and `detect.rank.ranking` (candidates); read by the agents and the
explainer. Evidence ids are strings with a prefix naming what they point at:

- ``log:<event_id>`` (or ``log:<ts_ns>:<pod>`` when the row has no event id), ``template:<template_id>``
- ``span:<trace_id>:<span_id>``, ``edge:<caller>-><callee>``, ``operation:<service>:<operation>``
- ``metric:<pod or service>:<name>@<start_ns>-<end_ns>`` (the window the deviation was measured in)
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, computed_field

from core.timeutil import iso


class Modality(StrEnum):
    LOGS = "logs"
    TRACES = "traces"
    METRICS = "metrics"


class SignalKind(StrEnum):
    """What changed. Detectors compare the incident window with history slices of the same length
    (`detect.signals`); log and span paths are compared per request, step by step."""

    LOG_ERROR_TEMPLATE = "log_error_template"
    """After a step of a request, a new error line follows (or, for lines outside requests, an error
    statement takes a larger share of the service's lines)."""
    LOG_TEMPLATE_SHIFT = "log_template_shift"
    """After a step of a request, the next log statement changed: one no longer reached, another
    reached instead, a request that stopped logging."""
    LOG_FAULT_PHRASE = "log_fault_phrase"
    """The service's own lines name a fault (disk full, killed for memory, connection limit, certificate, name
    resolution, clock, crash loop: `detect.signals.faulttext`) more often than in its history."""
    LOG_VOLUME = "log_volume"
    """The service's share of all log lines fell sharply: it went quiet while the others did not."""
    SPAN_SELF_LATENCY = "span_self_latency"
    """More of an operation's requests are slower in the service's own code (children excluded)."""
    SPAN_LATENCY = "span_latency"
    """More of an operation's requests are slower end to end (includes callees: a symptom)."""
    SPAN_ERROR = "span_error"
    """After a step of a request, an error span (status, HTTP 5xx, error handler) now follows."""
    SPAN_STRUCTURE = "span_structure"
    """After a step of a request, the next internal operation or call changed (a call no longer made)."""
    LOOP_SHORTENED = "loop_shortened"
    """Within requests of the same entry operation, a step repeated in a loop is no longer followed by
    another step of the loop as many times (B per A fell): the loop ends early for some requests."""
    EDGE_LATENCY = "edge_latency"
    """More calls on an edge are slower outside the callee (the caller's client span minus the callee's server
    span) while the callee's own time did not grow as much: on the network or in a network stack. Carried by
    the end it is blamed on (`detect.signals.network`)."""
    EDGE_ERROR = "edge_error"
    """More calls on an edge fail at the caller while the callee's request shows no error (a connection or
    timeout on the way). Carried by the end it is blamed on (`detect.signals.network`)."""
    METRIC_DEVIATION = "metric_deviation"
    """A metric left its baseline range (robust z-score)."""


class FaultKind(StrEnum):
    CODE_ERROR = "code_error"
    RESOURCE_SATURATION = "resource_saturation"
    NETWORK_DELAY = "network_delay"
    DEPENDENCY_FAILURE = "dependency_failure"
    UNKNOWN = "unknown"


class Signal(BaseModel):
    """One anomaly found for a service (and pod) in the incident window, with what it rests on."""

    model_config = ConfigDict(frozen=True)

    service: str
    pod: str = Field(default="", description="Pod the signal is strongest on, if known.")
    modality: Modality
    kind: SignalKind
    key: str = Field(description="What changed: template id, operation, 'op->callee', metric name.")
    family: str = Field(
        default="",
        description="error, latency, structure, template, cpu, memory, network, workload, io, node, other.",
    )
    direction: str = Field(default="up", description="'up' or 'down' relative to the baseline.")
    score: float = Field(description="Strength as a z-like value (>= 0); larger is more surprising.")
    baseline: float = Field(default=0.0, description="Baseline value (rate per request, median, ...).")
    observed: float = Field(default=0.0, description="Value in the incident window, same unit.")
    fold: float = Field(default=1.0, description="Effect size: window over baseline (rate, median or level ratio).")
    effect: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Effect size in [0, 1]: the share of requests whose behaviour changed, or how much of a "
        "metric's level is new (1 - 1/fold).",
    )
    group: str = Field(
        default="",
        description="Signals with the same group describe one change (a path gained and the one it replaced).",
    )
    dependency: str = Field(
        default="",
        description="Another service this evidence points at: named as failing in errors ('connection refused "
        "to X'), or called just before the change (see `dependency_via`).",
    )
    dependency_via: str = Field(
        default="",
        description="'error' when an error names the dependency, 'call' when the change follows a call to it.",
    )
    description: str = Field(default="", description="One line a person can read.")
    evidence_ids: list[str] = Field(default_factory=list, description="Ids of events behind the signal.")


class PropagationStep(BaseModel):
    """One hop of a fault's path: `source` (closer to the root) affects `target` (its caller)."""

    model_config = ConfigDict(frozen=True)

    source: str
    target: str
    relation: str = Field(default="CALLS", description="Graph relation walked (target CALLS source).")
    description: str = ""
    evidence_ids: list[str] = Field(default_factory=list)


class Candidate(BaseModel):
    """A service ranked as a possible root cause."""

    model_config = ConfigDict(frozen=True)

    service: str
    pod: str = Field(default="", description="Most affected pod of the service, if known.")
    rank: int = Field(default=0, description="1 for the most likely root cause.")
    score: float = Field(description="Ranking score (random-walk mass); comparable within one result.")
    confidence: float = Field(ge=0.0, le=1.0, description="Probability-like belief this is the root cause.")
    fault_kind: FaultKind = FaultKind.UNKNOWN
    fault_detail: str = Field(
        default="", description="What the candidate's own lines name, when they name it ('disk full', 'out of memory')."
    )
    host: str = Field(
        default="",
        description="Host the candidate's lines were written on; equal to `service` when the candidate is the host "
        "itself (a fault on the machine: its kernel's lines).",
    )
    own_evidence: float = Field(default=0.0, description="Strength of the service's own anomaly, 0..1.")
    evidence_ids: list[str] = Field(default_factory=list)
    signals: list[Signal] = Field(default_factory=list, description="The service's strongest signals.")
    path: list[PropagationStep] = Field(
        default_factory=list, description="From this candidate up to the symptoms (callers)."
    )
    weak: bool = Field(
        default=False,
        description="Listed only because its metrics moved more than others' without reaching a signal's "
        "threshold (`detect.rank.weak`): weak evidence, ranked after every candidate with a signal.",
    )


class SeparatorKind(StrEnum):
    """What tied candidates lack or share, and so what evidence would tell them apart."""

    NO_TRACES = "no_traces"
    NO_METRICS = "no_metrics"
    NO_LOGS = "no_logs"
    NO_CALL_GRAPH = "no_call_graph"
    NO_CALLS_BETWEEN = "no_calls_between"
    SAME_ERRORS = "same_errors"
    ONSET = "onset"
    """Nothing else applies: which of them changed first."""


class Separator(BaseModel):
    """Evidence that would separate tied candidates, named after what they lack."""

    model_config = ConfigDict(frozen=True)

    kind: SeparatorKind
    text: str = Field(description="What is lacking, then what would show the difference ('no traces: spans ...').")


class TieGroup(BaseModel):
    """Candidates the evidence cannot separate: confidence, mass and own evidence within the tie tolerance
    of the first one's (`detect.rank.ties`). Their order is kept, but none of them is the more likely."""

    model_config = ConfigDict(frozen=True)

    services: list[str] = Field(description="The tied candidates, in rank order.")
    confidence: float = Field(
        ge=0.0, le=1.0, description="The first one's confidence; the others are within tolerance."
    )
    shared_kinds: list[SignalKind] = Field(default_factory=list, description="Kinds of signal every one of them has.")
    separators: list[Separator] = Field(default_factory=list, description="What evidence would separate them.")


class TimeRange(BaseModel):
    """[start_ns, end_ns) in nanoseconds since the epoch; `start` and `end` are the same times as ISO text."""

    model_config = ConfigDict(frozen=True)

    start_ns: int
    end_ns: int

    @computed_field  # type: ignore[prop-decorator]
    @property
    def start(self) -> str:
        return iso(self.start_ns)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def end(self) -> str:
        return iso(self.end_ns)


class RankingResult(BaseModel):
    """Ranked root-cause candidates for one incident window. `status` says whether there was enough."""

    status: str = Field(description="'ok' or 'insufficient_evidence'.")
    alert_ns: int = 0
    window: TimeRange | None = Field(default=None, description="Incident window the logs and traces were read in.")
    baseline: list[TimeRange] = Field(
        default_factory=list, description="History slices logs and traces were compared with (nearest first)."
    )
    metrics_window: TimeRange | None = Field(default=None, description="Window metric levels were read in.")
    metrics_baseline: TimeRange | None = Field(default=None, description="History metric levels were compared with.")
    candidates: list[Candidate] = Field(default_factory=list)
    modalities_used: list[Modality] = Field(default_factory=list)
    modalities_missing: list[Modality] = Field(default_factory=list)
    signals: list[Signal] = Field(default_factory=list, description="All signals found, strongest first.")
    ties: list[TieGroup] = Field(
        default_factory=list, description="Groups of candidates the evidence cannot separate, in rank order."
    )
    notes: list[str] = Field(default_factory=list, description="What was skipped or missing, and why.")

    @property
    def top(self) -> Candidate | None:
        return self.candidates[0] if self.candidates else None
