"""One case bundle replayed into a fresh home, then explained or run through scheduled detection.

This is the side of `devmesh eval rca|detect cases` that never sees a label: it reads only what
`ingest.cases.load_case` gives (case.json and the telemetry), never truth.json (the scorer,
`api.measure.eval_cases`, reads that after these functions have returned).

- `case_home`: a temporary home with the embedded engines (FalkorDB, Qdrant Edge, the event store) and
  the embedder given (shared across cases, so the model loads once; stores and vectors stay per case).
- `explain_case`: the bundle's telemetry ingested (up to `asked_at`, or all in hindsight), then explained
  through the port (`api.engine_port.EnginePort.explain`, what `POST /explain` calls) with the request
  `POST /explain` builds from `request_body(case)`. The explanation names the top 3; ranks 4 and 5 come
  from the same ranking call the topology agent made (same alert time, service hint, modalities and
  stored call graph), repeated after the explanation, whose first three must agree.
- `detect_case`: all the telemetry ingested, then detection replayed once a minute over its span
  (`detect.runner.replay`: each run sees only the telemetry before its own time).
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.investigate import detection_context
from api.engine_port import EnginePort
from api.port import DevMeshPort, Investigation
from api.wiring import Services, open_services
from core.incident import InvestigationRequest
from core.settings import Settings
from detect.rank.callgraph import stored_call_edges
from detect.rank.windows import incident_options, rank_incident
from detect.runner import DetectionRun, DetectOptions, replay
from ingest.cases import Case, CaseIngest, ingest_case
from retrieval.embedders import Embedder
from retrieval.vector_factory import open_vector_store

SOURCE = "eval"
RANKS_SCORED = 5


@dataclass(frozen=True)
class Ranked:
    """One candidate as scored: its service, the pod (or host) it names, confidence, fault kind."""

    service: str
    pod: str
    confidence: float
    fault_kind: str
    from_explanation: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "pod": self.pod,
            "confidence": round(self.confidence, 4),
            "fault_kind": self.fault_kind,
            "from": "explanation" if self.from_explanation else "ranking",
        }


@dataclass
class CaseExplained:
    """What explaining one case gave: the ranking (top 5), what was ingested, and how long it took."""

    case_id: str
    ranking: list[Ranked]
    status: str
    tail_agrees: bool
    ingested: CaseIngest
    explain_s: float
    notes: list[str] = field(default_factory=list)


@dataclass
class CaseDetected:
    """What detection replayed over one case did: each run that opened or updated an incident, the root cause
    each incident was left with, and the replayed span."""

    case_id: str
    seen: list[dict[str, Any]]
    root_of: dict[str, str]
    start_ns: int
    end_ns: int
    runs: int
    ingested: CaseIngest
    detect_s: float


def case_settings(base: Settings, home: Path) -> Settings:
    """`base` with its home moved to `home`, the embedded engines there, and no language model."""
    return base.model_copy(
        update={"home": home, "falkordb_url": None, "qdrant_url": None, "ollama_host": None, "embedder": "none"}
    )


@contextlib.contextmanager
def case_home(base: Settings, embedder: Embedder | None) -> Iterator[Services]:
    """Services over a new temporary home (removed afterwards), with `embedder` and, when there is one, a
    Qdrant Edge store of its own. (`open_services` builds its own embedder from the settings; the evaluation
    shares one across cases, so the vector store is attached here.)"""
    with contextlib.ExitStack() as stack:
        home = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="devmesh-case-")))
        settings = case_settings(base, home)
        vectors = open_vector_store(settings) if embedder is not None else None
        if vectors is not None:
            stack.callback(vectors.close)
        svc = stack.enter_context(open_services(settings, graph=True, vectors=False))
        svc.embedder, svc.vectors = embedder, vectors
        yield svc


def request_body(case: Case) -> dict[str, Any]:
    """The `POST /explain` body for a case: its alert when it has one; else the question "what was going on up
    to `asked_at`" (`{"end_ns": asked_at}`)."""
    if case.alert is not None:
        return {"alert": case.alert.model_dump(mode="json", exclude_none=True)}
    return {"end_ns": case.asked_at_ns}


def ask(port: DevMeshPort, case: Case) -> Investigation:
    """Explain a case through the port, with the request POST /explain makes of `request_body(case)`."""
    return port.explain(InvestigationRequest.model_validate(request_body(case)), source=SOURCE)


def explain_case(case: Case, settings: Settings, *, hindsight: bool, embedder: Embedder | None) -> CaseExplained:
    """Replay `case` into a fresh home (up to asked_at unless `hindsight`) and explain it (see module doc)."""
    with case_home(settings, embedder) as svc:
        ingested = ingest_case(case, svc.pipeline, until_ns=None if hindsight else case.asked_at_ns)
        port = EnginePort(svc)
        t0 = time.perf_counter()
        result = ask(port, case)
        explain_s = time.perf_counter() - t0
        ranking = [
            Ranked(rc.service, rc.pod, rc.confidence, rc.fault_kind.value, True)
            for rc in result.explanation.root_causes
        ]
        inc = result.incident
        again = rank_incident(
            svc.events,
            alert_ns=inc.alert_ns,
            end_ns=inc.end_ns if inc.end_given else None,
            options=incident_options(inc),
            service_hint=inc.service or None,
            modalities=port.tools.modalities,
            call_edges=stored_call_edges(svc.graph),
        )
        shown = [r.service for r in ranking]
        agrees = [c.service for c in again.candidates[: len(shown)]] == shown
        if shown and agrees:
            ranking += [
                Ranked(c.service, c.pod, c.confidence, c.fault_kind.value, False)
                for c in again.candidates[len(shown) : RANKS_SCORED]
            ]
        return CaseExplained(
            case_id=case.id,
            ranking=ranking,
            status=result.explanation.status,
            tail_agrees=agrees,
            ingested=ingested,
            explain_s=explain_s,
            notes=list(result.explanation.notes),
        )


def detect_case(case: Case, settings: Settings, *, options: DetectOptions | None = None) -> CaseDetected:
    """Replay all of `case` into a fresh home and run detection once a window over its span (see module doc)."""
    opt = options or DetectOptions(window_s=60, explain=False)
    with case_home(settings, None) as svc:
        ingested = ingest_case(case, svc.pipeline, until_ns=None)
        tables = svc.events.stats()["tables"]
        spans = [
            (t["min_ns"], t["max_ns"]) for k, t in tables.items() if k in ("logs", "spans", "metrics") and t["rows"]
        ]
        if not spans:
            return CaseDetected(case.id, [], {}, case.asked_at_ns, case.asked_at_ns, 0, ingested, 0.0)
        lo, hi = min(a for a, _ in spans), max(b for _, b in spans)
        tools = svc.toolbox()
        seen: list[dict[str, Any]] = []

        def record(run: DetectionRun) -> None:
            for inc_id in run.opened + run.updated:
                seen.append({"incident": inc_id, "at_ns": run.end_ns, "opened": inc_id in run.opened})

        t0 = time.perf_counter()
        runs = replay(detection_context(tools, explain=opt.explain), lo, hi, opt, on_run=record)
        detect_s = time.perf_counter() - t0
        root_of = {i.id: i.root_cause for i in tools.book.list(limit=100_000)}
    return CaseDetected(case.id, seen, root_of, lo, hi, len(runs), ingested, detect_s)
