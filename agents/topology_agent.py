"""Topology agent: ranks root-cause candidates over the call graph, finds similar past incidents (and what
people confirmed about them), and gathers graph + vector evidence around the top candidates."""

from __future__ import annotations

import time
from typing import Any

from agents.feedback import similar_incidents
from agents.state import TeamState
from agents.toolbox import Toolbox
from core.explanation import AgentStep, EvidenceItem, EvidenceSource, StepStatus
from core.rca import RankingResult
from core.steps import record
from core.telemetry import CallEdge
from detect.rank.feedback import apply_feedback
from detect.rank.windows import incident_options, rank_incident
from graph.store import GraphStore
from retrieval.evidence import gather_evidence

TOPOLOGY_DOWN = "topology unavailable, ranked from events alone (the spans' own calls, logs and metrics)"
"""The note of an explanation made while the graph store could not be read (down, or coming back)."""


def investigate_topology(tools: Toolbox, state: TeamState) -> dict[str, Any]:
    t0 = time.perf_counter()
    inc = state["incident"]
    steps: list[AgentStep] = []
    notes: list[str] = []
    edges: list[CallEdge] = []
    if tools.graph is not None:
        edges, step = known_calls(tools.graph)
        steps.append(step)
        if step.status == StepStatus.ERROR:
            notes.append(TOPOLOGY_DOWN)
    ranking, step = record(
        "topology",
        "rca.rank_incident",
        "rank services over the call graph from log, trace and metric signals around alert_ns",
        {
            "alert_ns": inc.alert_ns,
            "end_ns": inc.end_ns if inc.end_given else None,
            "lead_s": inc.lead_s,
            "onset_given": inc.onset_given,
            "service_hint": inc.service or None,
            "modalities": list(tools.modalities),
            "call_edges": len(edges),
        },
        lambda: rank_incident(
            tools.events,
            alert_ns=inc.alert_ns,
            end_ns=inc.end_ns if inc.end_given else None,
            service_hint=inc.service or None,
            modalities=tools.modalities,
            call_edges=edges,
            options=incident_options(inc),
        ),
        default=RankingResult(status="insufficient_evidence", alert_ns=inc.alert_ns),
    )
    if ranking.status != "ok":
        step = step.model_copy(update={"status": StepStatus.NO_DATA, "items": 0})
    steps.append(step)
    symptoms = symptom_text(ranking)
    similar, sim_steps = similar_incidents(tools, symptoms, exclude=inc.id)
    steps += sim_steps
    ranking, fb_notes = apply_feedback(ranking, similar)
    notes += fb_notes
    evidence: list[EvidenceItem] = []
    if time.monotonic() < state["deadline"] and ranking.candidates:
        evidence, rag_steps = gather(tools, ranking, inc.start_ns, inc.end_ns, symptoms, incident_id=inc.id)
        steps += rag_steps
    else:
        notes.append("graph and vector evidence not gathered (no candidates, or out of time)")
    return {
        "ranking": ranking,
        "symptoms": symptoms,
        "similar": similar,
        "evidence": evidence,
        "steps": steps,
        "notes": notes + list(ranking.notes),
        "timings": {"topology": round((time.perf_counter() - t0) * 1000, 2)},
    }


def known_calls(graph: GraphStore) -> tuple[list[CallEdge], AgentStep]:
    """The call graph the graph store knows (declared topology, CALLS from earlier spans), as a step."""
    return record(
        "topology",
        "graph.call_edges",
        "MATCH (a:Service)-[c:CALLS]->(b:Service) RETURN a.name, b.name, c.calls, c.errors, c.mean_ms, c.p95_ms",
        {},
        graph.call_edges,
        default=[],
    )


def symptom_text(ranking: RankingResult, limit: int = 8, max_chars: int = 2000) -> str:
    """What went wrong, in the signals' own words: used as the query for vector search, and what the
    incident is indexed by once explained (so that a later incident with the same symptoms finds it)."""
    return "\n".join(s.description for s in ranking.signals[:limit] if s.description)[:max_chars]


def gather(
    tools: Toolbox, ranking: RankingResult, start_ns: int, end_ns: int, symptoms: str, *, incident_id: str = ""
) -> tuple[list[EvidenceItem], list[AgentStep]]:
    """Graph + vector evidence around the top candidates: the gathering as one step, then each of its calls."""
    bundle, step = record(
        "topology",
        "retrieval.gather_evidence",
        "k-hop FalkorDB neighborhood of the top candidates + Qdrant neighbours of the symptoms, fused (RRF)",
        {
            "candidates": [c.service for c in ranking.candidates[:3]],
            "start_ns": start_ns,
            "end_ns": end_ns,
            "exclude_incident": incident_id,
        },
        lambda: gather_evidence(
            ranking=ranking,
            window=(start_ns, end_ns),
            events=tools.events,
            graph=tools.graph,
            vectors=tools.vectors,
            embedder=tools.embedder,
            symptoms=symptoms or None,
            exclude_incident=incident_id or None,  # not its own past explanation as evidence
            agent="topology",
        ),
        default=None,
    )
    if bundle is None:
        return [], [step]
    items = [i if i.source else i.model_copy(update={"source": EvidenceSource.GRAPH}) for i in bundle.items]
    return items, [step, *bundle.queries]
