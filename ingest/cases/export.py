"""Writing a case bundle from the stores: `export_case` (what `devmesh export case` runs).

The bundle holds `case.json` (asked at `at_ns`; an Alertmanager-style alert naming `service` when one is
given), `telemetry/` with the logs, spans and metrics stamped in [at - before, at + after] as gzipped
OTLP/JSON lines (`logs|spans|metrics.otlp.jsonl.gz`, one request a line, a resource a request), the
lines that came from journald as `journalctl -o json` lines (`logs.journal.jsonl.gz`), and the graph's
services, pods and calls as `topology.yaml`; `truth.json` only when the root cause is given. Secrets
are masked in every text field unless `mask` is off. Rows are read a time slice at a time, so memory
stays bounded by a slice.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import yaml

from core.errors import InvalidInput
from core.incident import AlertIn
from core.redaction import Placeholders, mask_secrets
from core.telemetry import Kind, PodPlacement, Topology
from core.timeutil import NS, iso
from ingest.cases.journal_out import JOURNALD_SOURCE, journal_entry
from ingest.cases.model import CASE_FILE, FORMAT, TELEMETRY_DIR, TOPOLOGY_FILE, TRUTH_FILE
from ingest.cases.otlp_out import Mask, log_requests, metric_requests, span_requests

if TYPE_CHECKING:
    from graph.store import GraphStore
    from retrieval.events import EventStore

MINUTE_NS = 60 * NS
MAX_REMEMBERED_SECRETS = 100_000


@dataclass(frozen=True)
class ExportSpec:
    """What to export: the moment asked about, the window around it, and what the bundle says."""

    at_ns: int
    before_ns: int = 60 * MINUTE_NS
    after_ns: int = 10 * MINUTE_NS
    service: str | None = None
    system: str = "devmesh"
    case_id: str = ""
    truth_service: str | None = None
    mask: bool = True
    slice_ns: int = MINUTE_NS
    per_request: int = 1000


@dataclass
class ExportReport:
    """What a bundle holds: files written (lines each), rows per kind, secrets masked, topology size."""

    root: str
    case_id: str
    window: tuple[str, str]
    files: dict[str, int] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=lambda: {"logs": 0, "journal": 0, "spans": 0, "metrics": 0})
    masked: int = 0
    services: int = 0
    calls: int = 0
    truth: bool = False

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__, window=list(self.window))


def iso_exact(ns: int) -> str:
    """ISO-8601 UTC with as many fraction digits as `ns` needs (none for a whole second)."""
    text = datetime.fromtimestamp(ns // NS, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    frac = ns % NS
    return f"{text}.{frac:09d}".rstrip("0") + "Z" if frac else text + "Z"


class _Lines:
    """Gzipped JSON-lines files under a folder, each opened on its first line (reproducible: no mtime)."""

    def __init__(self, folder: Path, report: ExportReport) -> None:
        self.folder, self.report = folder, report
        self.open: dict[str, IO[str]] = {}
        self.raw: dict[str, IO[bytes]] = {}

    def write(self, name: str, doc: Any) -> None:
        out = self.open.get(name)
        if out is None:
            raw = (self.folder / name).open("wb")
            out = io.TextIOWrapper(gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0), encoding="utf-8")
            self.open[name] = out
            self.raw[name] = raw
        out.write(json.dumps(doc, ensure_ascii=False, separators=(",", ":"), allow_nan=False) + "\n")
        key = f"{TELEMETRY_DIR}/{name}"
        self.report.files[key] = self.report.files.get(key, 0) + 1

    def close(self) -> None:
        for name, out in self.open.items():
            out.close()
            self.raw[name].close()
        self.open.clear()


def export_case(
    events: EventStore,
    graph: GraphStore | None,
    out: Path,
    spec: ExportSpec,
    *,
    on_slice: Callable[[int, int], None] | None = None,
) -> ExportReport:
    """Write the bundle of `spec` into folder `out` (which must not exist, or be empty); `on_slice(done,
    total)` is told of each time slice written."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InvalidInput(f"{out} exists and is not an empty folder; choose a new one", field="OUT")
    start, end = spec.at_ns - spec.before_ns, spec.at_ns + spec.after_ns
    case_id = spec.case_id or f"{spec.system}-{iso_exact(spec.at_ns)}"
    report = ExportReport(root=str(out), case_id=case_id, window=(iso(start), iso(end)))
    (out / TELEMETRY_DIR).mkdir(parents=True, exist_ok=True)
    mask = _masker(spec.mask, report)
    files = _Lines(out / TELEMETRY_DIR, report)
    try:
        slices = range(start, end + 1, spec.slice_ns)
        for i, lo in enumerate(slices, start=1):
            hi = min(lo + spec.slice_ns, end + 1)  # the window's end is included
            _export_slice(events, lo, hi, files, mask, spec.per_request, report)
            if on_slice is not None:
                on_slice(i, len(slices))
    finally:
        files.close()
    if graph is not None:
        topo = graph_topology(graph)
        report.services, report.calls = len(topo.services), len(topo.calls)
        if topo.services:
            text = yaml.safe_dump(topology_doc(topo), sort_keys=False, allow_unicode=True)
            (out / TELEMETRY_DIR / TOPOLOGY_FILE).write_text(text, encoding="utf-8")
            report.files[f"{TELEMETRY_DIR}/{TOPOLOGY_FILE}"] = 1
    _write_json(out / CASE_FILE, case_doc(spec, case_id, report))
    if spec.truth_service:
        _write_json(out / TRUTH_FILE, truth_doc(spec.at_ns, spec.truth_service))
        report.truth = True
    return report


def _export_slice(
    events: EventStore, lo: int, hi: int, files: _Lines, mask: Mask, per_request: int, report: ExportReport
) -> None:
    kinds: tuple[Kind, ...] = ("logs", "spans", "metrics")
    for kind in kinds:
        rows = events.fetch(kind, lo, hi).to_pylist()
        if not rows:
            continue
        if kind == "logs":
            journal = [r for r in rows if r["source"] == JOURNALD_SOURCE]
            rows = [r for r in rows if r["source"] != JOURNALD_SOURCE]
            for r in journal:
                files.write("logs.journal.jsonl.gz", journal_entry(r, mask))
            report.rows["journal"] += len(journal)
            requests = log_requests(rows, mask, per_request)
        elif kind == "spans":
            requests = span_requests(rows, mask, per_request)
        else:
            requests = metric_requests(rows, mask, per_request)
        for req in requests:
            files.write(f"{kind}.otlp.jsonl.gz", req)
        report.rows[kind] += len(rows)


def _masker(on: bool, report: ExportReport) -> Mask:
    if not on:
        return lambda text: text
    names = Placeholders(max_values=MAX_REMEMBERED_SECRETS)

    def name(kind: str, value: str) -> str:
        report.masked += 1
        return names.name(kind, value)

    return lambda text: mask_secrets(text, name)


def graph_topology(graph: GraphStore) -> Topology:
    """The graph's services, pods (with their hosts) and calls."""
    services = graph.services()
    pods: dict[str, PodPlacement] = {}
    for s in services:
        for p in graph.pods_of(s):
            if p.pod not in pods or (p.host and not pods[p.pod].host):
                pods[p.pod] = p
    return Topology(services=services, pods=list(pods.values()), calls=graph.call_edges())


def topology_doc(topo: Topology) -> dict[str, Any]:
    """A topology in the `devmesh import topology` YAML form (ingest/topology_yaml.py)."""
    services = []
    for s in topo.services:
        entry: dict[str, Any] = {"name": s}
        calls = sorted({c.callee for c in topo.calls if c.caller == s})
        pods = [{"name": p.pod, "node": p.host} if p.host else {"name": p.pod} for p in topo.pods if p.service == s]
        if calls:
            entry["calls"] = calls
        if pods:
            entry["pods"] = pods
        services.append(entry)
    return {"services": services}


def case_doc(spec: ExportSpec, case_id: str, report: ExportReport) -> dict[str, Any]:
    """case.json: the moment asked about, and an alert naming `spec.service` when there is one."""
    alert = None
    if spec.service:
        alert = AlertIn(labels={"service": spec.service}, startsAt=iso_exact(spec.at_ns)).model_dump(exclude_none=True)
    return {
        "format": FORMAT,
        "id": case_id,
        "system": spec.system,
        "asked_at": iso_exact(spec.at_ns),
        "alert": alert,
        "notes": "",
        "provenance": {"exported_by": "devmesh export case", "window": list(report.window), "masked": spec.mask},
    }


def truth_doc(at_ns: int, service: str) -> dict[str, Any]:
    """truth.json naming `service` as the root cause, with the fault at `at_ns` and no kind."""
    return {
        "fault_time": iso_exact(at_ns),
        "root_cause": {"service": service, "aliases": [], "host": None},
        "kind": None,
    }


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
