"""The Explanation of an incident: one model for the API, the CLI and the chat bot.

Built by `agents.explain_fallback` (evidence-only) or `agents.explain_llm` (a language model wrote
the prose, code checked its citations); rendered by `api.render`. Every evidence id cited by a
root cause, a propagation step or a runbook is meant to resolve to an item of `evidence`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, computed_field

from core.rca import FaultKind, PropagationStep, TieGroup, TimeRange
from core.timeutil import iso


class ExplanationMode(StrEnum):
    LLM = "llm"
    """A language model wrote the summary and reasoning; code verified every citation."""
    EVIDENCE_ONLY = "evidence-only"
    """Built by code from the ranked candidates and the evidence alone; no language model."""


class EvidenceSource(StrEnum):
    GRAPH = "graph"
    VECTOR = "vector"
    EVENTS = "events"
    SIGNALS = "signals"
    RUNBOOKS = "runbooks"


class StepStatus(StrEnum):
    OK = "ok"
    NO_DATA = "no_data"
    ERROR = "error"


class EvidenceItem(BaseModel):
    """One fact the explanation rests on, with an id that claims cite."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(description="Stable id with a kind prefix, e.g. 'log:<event_id>', 'span:<trace>:<span>'.")
    kind: str = Field(description="log, template, span, edge, operation, metric, signal, runbook, ...")
    source: EvidenceSource = Field(description="Which store or step produced it.")
    time_ns: int | None = Field(default=None, description="When it happened, ns since the epoch (UTC).")
    service: str = ""
    pod: str = ""
    text: str = Field(default="", description="The log line, span summary or description, as stored.")
    score: float | None = Field(default=None, description="Relevance or anomaly score from its source.")
    provenance: str = Field(default="", description="The query or tool call that returned it.")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def time(self) -> str | None:
        """`time_ns` as ISO-8601 UTC."""
        return iso(self.time_ns) if self.time_ns is not None else None


class RootCause(BaseModel):
    """A service named as a (possible) root cause, with the ranking's confidence and its citations."""

    model_config = ConfigDict(frozen=True)

    rank: int = Field(default=1, description="1 for the most likely root cause.")
    service: str
    pod: str = ""
    confidence: float = Field(ge=0.0, le=1.0, description="From the ranking, never from the language model.")
    fault_kind: FaultKind = FaultKind.UNKNOWN
    evidence_ids: list[str] = Field(default_factory=list)
    reasoning: str = Field(default="", description="Why this service, in a sentence or two.")


class RunbookLink(BaseModel):
    """A runbook to follow, with the steps that apply."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(description="Runbook id, e.g. 'rb:kubernetes/KubePodCrashLooping'.")
    title: str
    url: str = ""
    steps: list[str] = Field(default_factory=list, description="What to do, in order.")
    section_ids: list[str] = Field(default_factory=list, description="Runbook sections the steps come from.")
    draft: bool = Field(default=False, description="True when written for this incident, not an existing runbook.")
    score: float | None = Field(default=None, description="Retrieval score that linked it.")


class SimilarIncident(BaseModel):
    """A past incident that looked like this one."""

    model_config = ConfigDict(frozen=True)

    incident_id: str
    summary: str = ""
    root_cause: str = Field(default="", description="Service named as its root cause, if known.")
    similarity: float = Field(default=0.0, description="0..1, higher is more alike.")
    time_ns: int | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def time(self) -> str | None:
        return iso(self.time_ns) if self.time_ns is not None else None


class AgentStep(BaseModel):
    """One tool call an agent made: what it ran, how long it took, what came of it."""

    model_config = ConfigDict(frozen=True)

    agent: str = Field(description="planner, logs, topology, runbooks, explainer, ...")
    tool: str = Field(description="The tool or store called, e.g. 'events.query_logs', 'ollama.chat'.")
    query: str = Field(default="", description="The exact query text (Cypher, SQL, search text, model).")
    params: dict[str, Any] = Field(default_factory=dict, description="Parameters bound to the query.")
    started_ns: int = 0
    duration_ms: float = 0.0
    status: StepStatus = StepStatus.OK
    items: int = Field(default=0, description="How many results it returned.")
    detail: str = Field(default="", description="Error message or note.")


class UnsupportedClaim(BaseModel):
    """A statement of the language model that its citations did not support."""

    model_config = ConfigDict(frozen=True)

    where: str = Field(description="'summary' or 'root_cause:<service>'.")
    text: str
    cited_ids: list[str] = Field(default_factory=list, description="Ids the model cited.")
    unknown_ids: list[str] = Field(default_factory=list, description="Cited ids not in the evidence set.")
    reason: str = Field(description="'unknown_ids', 'no_valid_citation' or 'unknown_service'.")
    dropped: bool = Field(description="True if the claim was left out; False if kept without the bad ids.")


class LLMUsage(BaseModel):
    model_config = ConfigDict(frozen=True)

    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0


class Explanation(BaseModel):
    """Why an incident happened, what it rests on, and what to do."""

    incident_id: str = ""
    window: TimeRange | None = None
    status: str = Field(default="ok", description="'ok' or 'insufficient_evidence'.")
    mode: ExplanationMode
    model: str = Field(default="", description="Language model that wrote the prose; '' when evidence-only.")
    fallback_reason: str = Field(default="", description="Why no language model was used, when evidence-only.")
    summary: str
    summary_evidence_ids: list[str] = Field(default_factory=list, description="Evidence the summary rests on.")
    root_causes: list[RootCause] = Field(default_factory=list)
    ties: list[TieGroup] = Field(
        default_factory=list,
        description="Candidates the evidence cannot separate (their order is no more than an order), "
        "with what evidence would separate them.",
    )
    propagation_path: list[PropagationStep] = Field(default_factory=list)
    evidence: list[EvidenceItem] = Field(default_factory=list)
    runbooks: list[RunbookLink] = Field(default_factory=list)
    similar_incidents: list[SimilarIncident] = Field(default_factory=list)
    unsupported_claims: list[UnsupportedClaim] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list, description="What was skipped or missing, and why.")
    timings: dict[str, float] = Field(default_factory=dict, description="Milliseconds per stage.")
    usage: LLMUsage | None = None
    run: list[AgentStep] = Field(default_factory=list, description="Every tool call made, in order.")

    def evidence_ids(self) -> set[str]:
        return {e.id for e in self.evidence}

    def cited_ids(self) -> set[str]:
        """Every id cited by the summary, the root causes and the propagation steps."""
        ids = set(self.summary_evidence_ids)
        ids.update(i for rc in self.root_causes for i in rc.evidence_ids)
        ids.update(i for step in self.propagation_path for i in step.evidence_ids)
        return ids
