"""Case bundles from a Nezha-layout data set: `devmesh eval make-cases nezha SRC OUT`.

The whole folder is imported once (`ingest.importers.import_nezha`) into a temporary home; the call
graph of its `metric/dependency.csv` files, when there are any, is added to the graph as a declared
topology (the importer skips those files). Those files mix two relations in one table: a row whose
target is an IP address is a placement (the source service's pods run on that host), not a call; it
fills the host of the service's pods where the import left it empty, and only service -> service rows
become calls. Then each labelled fault becomes one bundle written by the product's own export
(`ingest.cases.export_case`): asked at the fault's start plus `asked_after`, telemetry from `before`
ahead of that to `after` past it, no alert, no runbooks, secrets masked. `modalities` keeps only those
kinds of telemetry in the bundles (the other files the export wrote are removed; the declared topology
stays). Only `truth.json` holds the label: the service (the injected pod's, with the pod as an alias),
the fault type as `kind`, and the other labelled faults inside the bundle's window (`other_faults`, for
the detection scorer, which must not count them as false incidents).
"""

from __future__ import annotations

import csv
import ipaddress
import json
import logging
import tempfile
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from api.measure.modalities import MODALITIES
from api.wiring import open_services
from core.errors import DatasetError, InvalidInput
from core.settings import Settings
from core.telemetry import CallEdge, PodPlacement, Topology
from core.timeutil import NS, from_ns
from graph.store import GraphStore
from ingest import nezha
from ingest.cases import ExportSpec, export_case
from ingest.cases.export import iso_exact
from ingest.cases.model import TELEMETRY_DIR, TRUTH_FILE
from ingest.importers import import_nezha

log = logging.getLogger(__name__)

MINUTE_NS = 60 * NS
# the export's file names start with the kind they hold (ingest/cases/export.py)
_FILE_MODALITY = {"logs.": "logs", "spans.": "traces", "metrics.": "metrics"}
_ROW_MODALITY = {"logs": "logs", "journal": "logs", "spans": "traces", "metrics": "metrics"}


@dataclass(frozen=True)
class CaseSpec:
    """How each bundle is cut from the imported data set."""

    system: str
    id_prefix: str
    asked_after_ns: int = 3 * MINUTE_NS
    before_ns: int = 60 * MINUTE_NS
    after_ns: int = 10 * MINUTE_NS
    modalities: tuple[str, ...] = MODALITIES


def make_nezha_cases(
    src: Path,
    out: Path,
    spec: CaseSpec,
    settings: Settings,
    *,
    on_import: Callable[[str], None] | None = None,
    on_case: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Import SRC into a temporary home and write one bundle per labelled fault under OUT (new or empty)."""
    bad = [m for m in spec.modalities if m not in MODALITIES]
    if bad or not spec.modalities:
        raise InvalidInput(f"modalities are any of {', '.join(MODALITIES)}, not {bad or 'none'}", field="--modalities")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InvalidInput(f"{out} exists and is not an empty folder; choose a new one", field="OUT")
    plan = nezha.plan(src)
    faults = nezha.load_faults(plan)
    if not faults:
        raise DatasetError(f"{src} holds no labelled faults (no *-fault_list.json with entries)", field="SRC")
    cases: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="devmesh-make-cases-") as tmp:
        home_settings = settings.model_copy(
            update={"home": Path(tmp), "embedder": "none", "falkordb_url": None, "qdrant_url": None}
        )
        with open_services(home_settings, graph=True, vectors=False) as svc:
            imported = import_nezha(
                svc.pipeline,
                src,
                on_file=(lambda kind, path, _r: on_import(f"{kind} {path.name}")) if on_import else None,
            )
            declared = declared_calls(src)
            if declared is not None and svc.graph is not None:
                declared = with_pods(declared, svc.graph)
                svc.graph.upsert_topology(declared, calls_mode="accumulate")
            for fault, case_id in zip(faults, case_ids(faults, spec.id_prefix), strict=True):
                row = _write_case(svc.events, svc.graph, out / case_id, case_id, fault, faults, spec, src)
                cases.append(row)
                if on_case is not None:
                    on_case(row)
    return {
        "source": str(src),
        "out": str(out),
        "system": spec.system,
        "modalities": list(spec.modalities),
        "asked_after_s": spec.asked_after_ns // NS,
        "window_s": {"before": spec.before_ns // NS, "after": spec.after_ns // NS},
        "import": imported.as_dict(),
        "declared_calls": 0 if declared is None else len(declared.calls),
        "cases": cases,
    }


def case_ids(faults: list[nezha.NezhaFault], prefix: str) -> list[str]:
    """`<prefix>-<date>-<HHMM>` of each fault's start; a second fault in the same minute gets `-2`, ..."""
    ids: list[str] = []
    seen: dict[str, int] = {}
    for f in faults:
        base = f"{prefix}-{from_ns(f.inject_ns).strftime('%Y-%m-%d-%H%M')}"
        seen[base] = seen.get(base, 0) + 1
        ids.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return ids


def declared_calls(src: Path) -> Topology | None:
    """The declared topology of the `metric/dependency.csv` files (Source,Target,Weight), if any.

    Service -> service rows are calls. A row whose Target is an IP address places the Source's pods on
    that host: it becomes a `PodPlacement` with the service's name as a stand-in pod (`with_pods` puts
    the service's real pods there), never a call and never a service.
    """
    files = sorted({*src.glob("metric/dependency.csv"), *src.glob("[0-9]*/metric/dependency.csv")})
    pairs: set[tuple[str, str]] = set()
    hosts: dict[str, set[str]] = {}
    for path in files:
        with path.open(encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                caller, callee = (row.get("Source") or "").strip(), (row.get("Target") or "").strip()
                if not caller or not callee or caller == callee:
                    continue
                if _is_address(callee):
                    hosts.setdefault(caller, set()).add(callee)
                else:
                    pairs.add((caller, callee))
    if not pairs and not hosts:
        return None
    return Topology(
        services=sorted({s for p in pairs for s in p} | set(hosts)),
        pods=[PodPlacement(pod=svc, service=svc, host=h) for svc in sorted(hosts) for h in sorted(hosts[svc])],
        calls=[CallEdge(caller=a, callee=b) for a, b in sorted(pairs)],
    )


def with_pods(declared: Topology, graph: GraphStore) -> Topology:
    """`declared` with each service-level placement moved onto the service's known pods that have no host
    yet (pods with a host keep theirs); a service with no known pod keeps no placement (no invented pod)."""
    pods: list[PodPlacement] = []
    for placement in declared.pods:
        known = graph.pods_of(placement.service)
        pods.extend(PodPlacement(pod=p.pod, service=p.service, host=placement.host) for p in known if not p.host)
    return declared.model_copy(update={"pods": pods})


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _write_case(
    events: Any,
    graph: GraphStore | None,
    root: Path,
    case_id: str,
    fault: nezha.NezhaFault,
    faults: list[nezha.NezhaFault],
    spec: CaseSpec,
    src: Path,
) -> dict[str, Any]:
    asked = fault.inject_ns + spec.asked_after_ns
    report = export_case(
        events,
        graph,
        root,
        ExportSpec(
            at_ns=asked,
            before_ns=spec.before_ns,
            after_ns=spec.after_ns,
            system=spec.system,
            case_id=case_id,
            mask=True,
        ),
    )
    removed = keep_modalities(root, spec.modalities)
    lo, hi = asked - spec.before_ns, asked + spec.after_ns
    others = [f for f in faults if f is not fault and lo <= f.inject_ns <= hi]
    truth = {
        "fault_time": iso_exact(fault.inject_ns),
        "root_cause": {"service": fault.service, "aliases": [fault.pod], "host": None},
        "kind": fault.fault_type,
        "other_faults": [
            {"fault_time": iso_exact(f.inject_ns), "service": f.service, "kind": f.fault_type} for f in others
        ],
        "provenance": {"dataset": str(src), "date": fault.date, "inject_pod": fault.pod},
    }
    (root / TRUTH_FILE).write_text(json.dumps(truth, indent=2) + "\n", encoding="utf-8")
    kept = {k: v for k, v in report.rows.items() if v and _ROW_MODALITY[k] in spec.modalities}
    return {
        "id": case_id,
        "asked_at": iso_exact(asked),
        "kind": fault.fault_type,
        "rows": kept,
        "removed": removed,
        "masked": report.masked,
        "calls": report.calls,
    }


def keep_modalities(root: Path, modalities: Collection[str]) -> list[str]:
    """Remove the telemetry files of the kinds not in `modalities`; the names removed."""
    removed = []
    for path in sorted((root / TELEMETRY_DIR).iterdir()):
        kind = next((m for prefix, m in _FILE_MODALITY.items() if path.name.startswith(prefix)), None)
        if kind is not None and kind not in modalities:
            path.unlink()
            removed.append(path.name)
    return removed
