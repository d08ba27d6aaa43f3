"""Root-cause ranking evaluation on a Nezha-layout data set: `devmesh eval rca nezha DIR --json`.

The data set is imported with `ingest.importers.import_nezha` into a fresh store under HOME (or an
already imported HOME is reused). Each labelled fault then becomes an *alert*: only its injection
time is handed to `detect.rank.windows.rank_incident`, the same code `POST /explain` runs, and the
store holds telemetry only (no labels, no earlier answers). The label (the service of `inject_pod`)
is looked up after the ranking has returned, to score it (`detect.scoring`: AC@k is the share of
faults whose root service is among the first k candidates).
"""

from __future__ import annotations

import logging
import statistics
import tempfile
import time
from collections.abc import Callable, Collection
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.investigate import investigate
from core.errors import DatasetError
from core.incident import InvestigationRequest
from core.timeutil import iso
from detect.rank.windows import MODALITIES, IncidentOptions, rank_incident
from detect.scoring import rank_of, rca_scores, rca_scores_by_type
from ingest import nezha
from ingest.importers import import_nezha

log = logging.getLogger(__name__)

IMPORTED_KEY = "eval:nezha:imported"


@dataclass(frozen=True)
class Alert:
    """What the ranking is given about a fault: an id and a time, nothing else."""

    case: int
    alert_ns: int


def _split(faults: list[nezha.NezhaFault]) -> tuple[list[Alert], dict[int, nezha.NezhaFault]]:
    """Alerts for the ranking, and the labels kept apart for scoring."""
    alerts = [Alert(i, f.inject_ns) for i, f in enumerate(faults)]
    return alerts, dict(enumerate(faults))


def evaluate_rca_nezha(
    root: Path,
    *,
    home: Path | None,
    open_fn: Callable[[Path], Any],
    modalities: Collection[str] = MODALITIES,
    reuse: bool = False,
    on_case: Callable[[dict[str, Any]], None] | None = None,
    on_import: Callable[[str], None] | None = None,
    options: IncidentOptions | None = None,
    via_agents: bool = False,
) -> dict[str, Any]:
    """Import ROOT (unless `reuse` and HOME already holds it), rank every labelled fault from its time
    alone, and score. `open_fn(home)` opens the services (an object with `.events`, `.pipeline` and
    `.close()`); HOME None uses a temporary folder."""
    plan = nezha.plan(root)
    faults = nezha.load_faults(plan)
    if not faults:
        raise DatasetError(f"{root} holds no labelled faults (no *-fault_list.json with entries)", field="DIR")
    alerts, labels = _split(faults)
    mods = [m for m in MODALITIES if m in modalities]
    with ExitStack() as stack:
        if home is None:
            home = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="devmesh-eval-rca-")))
        svc = open_fn(home)
        stack.callback(svc.close)
        events = svc.events
        imported = events.kv.get(IMPORTED_KEY)
        import_s = 0.0
        if reuse and imported == str(root.resolve()):
            log.info("reusing the imported data set", extra={"home": str(home)})
        else:
            if events.stats()["tables"]["logs"]["rows"] or events.stats()["tables"]["spans"]["rows"]:
                raise DatasetError(
                    f"{home} already holds telemetry; use an empty --home, or --reuse for a home this "
                    "evaluation imported",
                    field="home",
                )
            t0 = time.perf_counter()
            import_nezha(
                svc.pipeline,
                root,
                on_file=(lambda kind, path, _r: on_import(f"{kind} {path.name}")) if on_import else None,
            )
            import_s = time.perf_counter() - t0
            events.kv.set(IMPORTED_KEY, str(root.resolve()))
            events.checkpoint()
        rows: list[dict[str, Any]] = []
        for alert in alerts:
            t0 = time.perf_counter()
            result = rank_incident(events, alert_ns=alert.alert_ns, modalities=mods, options=options)
            seconds = time.perf_counter() - t0
            ranking = [c.service for c in result.candidates]
            agents_ranking = _agents_ranking(svc, alert.alert_ns, mods) if via_agents else None
            label = labels[alert.case]  # read only now, after the ranking has returned
            rank = rank_of(label.service, ranking)
            row = {
                "fault": iso(alert.alert_ns),
                "fault_type": label.fault_type,
                "truth": label.service,
                "truth_pod": label.pod,
                "ranking": ranking,
                "rank": rank,
                "seconds": round(seconds, 3),
                "status": result.status,
                "top_confidence": result.candidates[0].confidence if result.candidates else 0.0,
                "history_slices": len(result.baseline),
            }
            if agents_ranking is not None:
                agent_rank = rank_of(label.service, agents_ranking)
                row["agents_ranking"] = agents_ranking
                row["agents_rank"] = agent_rank
                # the explanation lists the top 3: beyond them both say "not in the top 3"
                row["agents_rank_matches"] = agent_rank == (rank if rank is not None and rank <= 3 else None)
            rows.append(row)
            if on_case is not None:
                on_case(row)
    times = [r["seconds"] for r in rows]
    return {
        "dataset": str(root),
        "modalities": mods,
        "regime": "live" if (options or IncidentOptions()).past_only else "hindsight",
        **rca_scores(rows),
        "by_fault_type": rca_scores_by_type(rows),
        "median_case_s": round(statistics.median(times), 3),
        "max_case_s": round(max(times), 3),
        "import_s": round(import_s, 3),
        "insufficient_evidence": sum(1 for r in rows if r["status"] != "ok"),
        **({"agents_rank_matches": sum(1 for r in rows if r["agents_rank_matches"])} if via_agents else {}),
        "results": rows,
    }


def _agents_ranking(svc: Any, alert_ns: int, modalities: Collection[str]) -> list[str]:
    """The root causes of the explanation the agent team writes for this alert time (POST /explain's path)."""
    _, explanation = investigate(
        svc.toolbox(modalities=tuple(modalities)), InvestigationRequest(at_ns=alert_ns), source="eval"
    )
    return [rc.service for rc in explanation.root_causes]
