"""Reader for Nezha-layout data sets (TrainTicket / OnlineBoutique fault-injection telemetry).

Layout: ROOT/YYYY-MM-DD/{log,trace,metric,traceid}/..., ROOT/YYYY-MM-DD/YYYY-MM-DD-fault_list.json,
ROOT/construct_data/YYYY-MM-DD/{log,trace}/... (a fault-free baseline). ROOT may also be one date folder.
Anything else is skipped with a warning; whole kinds of telemetry may be missing.
"""

from __future__ import annotations

import csv
import gzip
import json
import logging
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv

from core.errors import DatasetError, InvalidInput
from core.naming import service_of_pod
from core.timeutil import NS, iso_to_ns
from ingest import batch
from ingest.canonical import clean_text
from ingest.lineparse import split_head

log = logging.getLogger(__name__)

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_UNITS = re.compile(r"\([^)]*\)")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_MAX_SKEW_NS = 86_400 * NS
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

# Nezha metric columns are CamelCase with units: 'PodClientLatencyP90(s)' -> 'client_latency_p90'.
_METRIC_ALIASES = {"pod_workload": "workload", "pod_success_rate": "success_rate"}


@dataclass(frozen=True)
class NezhaFault:
    """One labelled fault. Only the evaluation reads `pod` and `service`, after ranking."""

    inject_ns: int
    pod: str
    service: str
    fault_type: str
    date: str


@dataclass
class NezhaFile:
    kind: batch.Kind
    path: Path
    baseline: bool = False


@dataclass
class NezhaPlan:
    """What a Nezha-layout folder holds, and what it lacks."""

    root: Path
    dates: list[str]
    files: list[NezhaFile] = field(default_factory=list)
    fault_lists: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def count(self, kind: str) -> int:
        return sum(1 for f in self.files if f.kind == kind)


def metric_name(column: str) -> str:
    """'CpuUsageRate(%)' -> 'cpu_usage_rate'; 'PodServerLatencyP95(s)' -> 'server_latency_p95'."""
    base = _UNITS.sub("", column).strip()
    snake = _CAMEL.sub("_", base).lower()
    snake = _METRIC_ALIASES.get(snake, snake)
    if snake.startswith("pod_") and ("latency" in snake):
        snake = snake[4:]
    return snake


def plan(root: Path) -> NezhaPlan:
    """Find the date folders, telemetry files and fault lists under ROOT."""
    root = root.expanduser()
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder (expected a Nezha-layout data set)", field="DIR")
    date_dirs = [root] if _DATE.match(root.name) else sorted(p for p in root.iterdir() if _DATE.match(p.name))
    if not date_dirs:
        raise DatasetError(
            f"{root} holds no YYYY-MM-DD folders (expected a Nezha-layout data set with log/, trace/, metric/)",
            field="DIR",
        )
    out = NezhaPlan(root=root, dates=[d.name for d in date_dirs])
    for d in date_dirs:
        _plan_date(d, out, baseline=False)
        base = (root if d is not root else root.parent) / "construct_data" / d.name
        if base.is_dir():
            _plan_date(base, out, baseline=True)
        faults = d / f"{d.name}-fault_list.json"
        if faults.is_file():
            out.fault_lists.append(faults)
        else:
            out.warnings.append(f"{d.name}: no fault list ({faults.name})")
    for kind in ("logs", "spans", "metrics"):
        if not out.count(kind):
            out.warnings.append(f"no {kind} found")
    return out


def _plan_date(d: Path, out: NezhaPlan, *, baseline: bool) -> None:
    known = {"log": "logs", "trace": "spans", "metric": "metrics", "traceid": None}
    for sub in sorted(p for p in d.iterdir() if p.is_dir()):
        kind = known.get(sub.name, "unknown")
        if kind is None:
            continue
        if kind == "unknown":
            out.warnings.append(f"{sub}: not a Nezha folder, skipped")
            continue
        for f in sorted(sub.iterdir()):
            if f.name.endswith((".csv", ".csv.gz")):
                if kind == "metrics" and not f.name.endswith("_metric.csv") and f.name != "front_service.csv":
                    out.warnings.append(f"{f}: not a per-pod metric file, skipped")
                    continue
                out.files.append(NezhaFile(kind=kind, path=f, baseline=baseline))  # type: ignore[arg-type]
            else:
                out.warnings.append(f"{f}: unknown file, skipped")


def load_faults(p: NezhaPlan) -> list[NezhaFault]:
    """The labelled faults of every fault list: {"<hour>": [{inject_time, inject_pod, inject_type}, ...]}."""
    faults: list[NezhaFault] = []
    for path in p.fault_lists:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise DatasetError(f"{path}: not a readable fault list ({exc})", field="fault_list") from exc
        groups = list(data.values()) if isinstance(data, dict) else [data]
        for g, group in enumerate(groups):
            if not isinstance(group, list):
                raise DatasetError(f"{path}: entry {g} is not a list of faults", field="fault_list")
            for i, f in enumerate(group):
                faults.append(_fault(f, path, f"entry {g}, fault {i}"))
    return sorted(faults, key=lambda f: f.inject_ns)


def _fault(f: Any, path: Path, where: str) -> NezhaFault:
    if not isinstance(f, dict) or not f.get("inject_pod") or not f.get("inject_time"):
        raise DatasetError(
            f"{path}: {where} needs inject_pod and inject_time (and optionally inject_type)", field="fault_list"
        )
    try:
        inject_ns = iso_to_ns(str(f["inject_time"]))
    except (ValueError, InvalidInput) as exc:
        raise DatasetError(
            f"{path}: {where} has an inject_time that is not a time: {f['inject_time']!r}", field="fault_list"
        ) from exc
    pod = str(f["inject_pod"])
    return NezhaFault(
        inject_ns=inject_ns,
        pod=pod,
        service=service_of_pod(pod),
        fault_type=str(f.get("inject_type") or "unknown"),
        date=path.parent.name,
    )


def _read_csv(path: Path) -> pa.Table:
    """Every column as text. Bytes that are not UTF-8 are replaced (as U+FFFD) before parsing, so they
    spoil one value, not the file (and a malformed row holding them is skipped like any other)."""
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError, zlib.error) as exc:
        log.warning("skipping unreadable file", extra={"path": str(path), "error": str(exc)})
        return pa.table({})
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        log.warning("file has bytes that are not UTF-8; replaced", extra={"path": str(path)})
        data = data.decode("utf-8", "replace").encode("utf-8")
    header = next(csv.reader([data.split(b"\n", 1)[0].decode("utf-8")]), [])
    skipped = 0

    def skip(_row: Any) -> str:
        nonlocal skipped
        skipped += 1
        return "skip"

    try:
        table = pacsv.read_csv(
            pa.BufferReader(data),
            read_options=pacsv.ReadOptions(block_size=8 << 20),
            parse_options=pacsv.ParseOptions(invalid_row_handler=skip, newlines_in_values=False),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in header}, strings_can_be_null=False
            ),
        )
    except pa.ArrowInvalid as exc:
        log.warning("skipping unreadable file", extra={"path": str(path), "error": str(exc)})
        return pa.table({})
    if skipped:
        log.warning("skipped malformed rows", extra={"path": str(path), "rows": skipped})
    return table


def _int64(value: Any) -> int | None:
    """An integer column value, or None when it is missing, not an integer or outside int64."""
    if value is None or value == "":
        return None
    try:
        n = int(value)
    except (TypeError, ValueError):
        return None
    return n if _INT64_MIN <= n <= _INT64_MAX else None


def _strings(table: pa.Table, name: str) -> list[str]:
    if name not in table.column_names:
        return [""] * table.num_rows
    return [("" if v is None else str(v)) for v in table.column(name).to_pylist()]


def read_logs(path: Path) -> dict[str, list[Any]]:
    """One log file as a column batch. Malformed rows and undecodable Docker JSON are skipped."""
    t = _read_csv(path)
    cols = batch.empty("logs")
    if not t.num_rows:
        return cols
    stamps = _strings(t, "Timestamp")
    unix = t.column("TimeUnixNano").to_pylist() if "TimeUnixNano" in t.column_names else [None] * t.num_rows
    nodes, pods = _strings(t, "Node"), _strings(t, "PodName")
    traces, spans, raws = _strings(t, "TraceID"), _strings(t, "SpanID"), _strings(t, "Log")
    for i in range(t.num_rows):
        line = _docker_line(raws[i])
        if not line or line.isspace():
            continue
        ts = _row_ns(unix[i], stamps[i])
        if ts is None:
            continue
        level, message = split_head(line)
        message = clean_text(message)[0]
        pod = pods[i]
        svc = service_of_pod(pod)
        cols["ts_ns"].append(ts)
        cols["source"].append("nezha")
        cols["service"].append(svc)
        cols["host"].append(nodes[i])
        cols["pod"].append(pod)
        cols["level"].append(level or "INFO")
        cols["message"].append(message)
        cols["trace_id"].append(traces[i])
        cols["span_id"].append(spans[i])
        cols["event_type"].append("log")
        cols["error_code"].append("")
        cols["meta"].append("")
    return cols


def _docker_line(raw: str) -> str:
    """The `log` text of a Docker JSON record; a plain line as it is; '' for a broken record."""
    try:
        doc = json.loads(raw)
    except (json.JSONDecodeError, RecursionError):
        return raw if raw and not raw.lstrip().startswith("{") else ""
    if isinstance(doc, dict):
        line = doc.get("log")
        return line if isinstance(line, str) else ""
    return raw


def _row_ns(unix: Any, stamp: str) -> int | None:
    """TimeUnixNano unless it is missing, overflowed, or disagrees with the Timestamp column by over a day."""
    from_text: int | None = None
    if stamp:
        try:
            from_text = iso_to_ns(stamp)
        except (ValueError, InvalidInput):
            from_text = None
        if from_text is not None and not _INT64_MIN <= from_text <= _INT64_MAX:
            from_text = None
    ns = _int64(unix)
    if ns is not None and (from_text is None or abs(ns - from_text) <= _MAX_SKEW_NS):
        return ns
    return from_text


def read_spans(path: Path) -> dict[str, list[Any]]:
    t = _read_csv(path)
    cols = batch.empty("spans")
    if not t.num_rows:
        return cols
    need = {"TraceID", "SpanID", "ParentID", "PodName", "OperationName", "StartTimeUnixNano", "EndTimeUnixNano"}
    if not need <= set(t.column_names):
        log.warning("skipping trace file without the Nezha columns", extra={"path": str(path)})
        return cols
    pods = _strings(t, "PodName")
    parents = _strings(t, "ParentID")
    starts = t.column("StartTimeUnixNano").to_pylist()
    ends = t.column("EndTimeUnixNano").to_pylist()
    cols["trace_id"] = _strings(t, "TraceID")
    cols["span_id"] = _strings(t, "SpanID")
    cols["operation"] = _strings(t, "OperationName")
    n = t.num_rows
    keep = []
    for i in range(n):
        s, e = _int64(starts[i]), _int64(ends[i])
        if s is None or e is None or e < s:
            continue
        keep.append(i)
        pod = pods[i]
        svc = service_of_pod(pod)
        cols["parent_id"].append("" if parents[i] == "root" else parents[i])
        cols["service"].append(svc)
        cols["pod"].append(pod)
        cols["host"].append("")
        cols["start_ns"].append(s)
        cols["end_ns"].append(e)
        cols["duration_us"].append((e - s) / 1000)
        cols["status"].append("UNSET")
        cols["kind"].append("")
        cols["attributes"].append("")
    if len(keep) != n:
        for name in ("trace_id", "span_id", "operation"):
            cols[name] = [cols[name][i] for i in keep]
    return cols


def read_metrics(path: Path) -> dict[str, list[Any]]:
    """A per-pod metric file (or front_service.csv) as one row per (time, metric)."""
    t = _read_csv(path)
    cols = batch.empty("metrics")
    if not t.num_rows or "TimeStamp" not in t.column_names:
        return cols
    stamps = t.column("TimeStamp").to_pylist()
    front = path.name == "front_service.csv"
    pods = [""] * t.num_rows if front else _strings(t, "PodName")
    skip = {"Time", "TimeStamp", "PodName", "ServiceName"}
    metric_cols = [c for c in t.column_names if c not in skip]
    values = {c: t.column(c).to_pylist() for c in metric_cols}
    names = {c: metric_name(c) for c in metric_cols}
    for i in range(t.num_rows):
        try:
            ts = int(float(stamps[i])) * NS
        except (TypeError, ValueError, OverflowError):
            continue
        if not _INT64_MIN <= ts <= _INT64_MAX:
            continue
        pod = pods[i]
        svc = "frontend" if front else service_of_pod(pod)
        for c in metric_cols:
            v = values[c][i]
            if v is None or v == "":
                continue
            try:
                f = float(v)
            except (TypeError, ValueError):
                continue
            if f != f:  # NaN
                continue
            cols["ts_ns"].append(ts)
            cols["name"].append(names[c])
            cols["value"].append(f)
            cols["service"].append(svc)
            cols["pod"].append(pod)
            cols["host"].append("")
            cols["attributes"].append("")
    return cols


READERS = {"logs": read_logs, "spans": read_spans, "metrics": read_metrics}


def iter_batches(p: NezhaPlan) -> Iterator[tuple[NezhaFile, dict[str, list[Any]]]]:
    """Every file of the plan as (file, column batch), logs and spans first, metrics last."""
    order = {"spans": 0, "logs": 1, "metrics": 2}
    for f in sorted(p.files, key=lambda f: (order[f.kind], str(f.path))):
        yield f, READERS[f.kind](f.path)
