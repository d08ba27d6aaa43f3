"""Reading a case bundle: `load_case` (case.json and the telemetry files, for the code that explains) and
`load_truth` (truth.json, for the scorer only).

Problems with a bundle are `DatasetError`s that name the file and the field: a missing case.json, a
format other than `devmesh-case/1`, an `asked_at` that is not an ISO-8601 time, and the like.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from core.errors import DatasetError, InvalidInput
from core.incident import AlertIn
from core.timeutil import iso_to_ns
from ingest.cases.model import (
    CASE_FILE,
    DEVMESH_SUFFIX,
    FORMAT,
    JOURNAL_SUFFIX,
    OTLP_SUFFIX,
    RUNBOOKS_DIR,
    TELEMETRY_DIR,
    TOPOLOGY_FILE,
    TRUTH_FILE,
    Case,
    RootCause,
    TelemetryFiles,
    Truth,
)


def load_case(root: Path | str) -> Case:
    """The case of the bundle in folder `root` (never its truth)."""
    root = Path(root)
    path = root / CASE_FILE
    doc = _json_object(path, "a case bundle needs one: see CASE-BUNDLES.md")
    got = doc.get("format")
    if got != FORMAT:
        raise DatasetError(f"{path}: format is {got!r}; this DevMesh reads {FORMAT!r} bundles", field="format")
    alert = doc.get("alert")
    try:
        parsed_alert = None if alert is None else AlertIn.model_validate(alert)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in ("alert", *err["loc"]))
        raise DatasetError(f"{path}: {where}: {err['msg']}", field=where) from None
    return Case(
        root=root,
        id=_text(doc, "id", path) or root.name,
        system=_text(doc, "system", path) or "unknown",
        asked_at_ns=_time(doc, "asked_at", path, required=True) or 0,
        alert=parsed_alert,
        notes=_text(doc, "notes", path),
        telemetry=telemetry_files(root),
        runbooks=root / RUNBOOKS_DIR if (root / RUNBOOKS_DIR).is_dir() else None,
    )


def load_truth(root: Path | str) -> Truth:
    """The label of the bundle in folder `root` (`truth.json`); for the scorer, never for the explainer."""
    path = Path(root) / TRUTH_FILE
    doc = _json_object(path, "the scorer needs the case's label")
    rc = doc.get("root_cause")
    if not isinstance(rc, dict):
        raise DatasetError(f"{path}: root_cause must be an object with a service or a host", field="root_cause")
    try:
        cause = RootCause.model_validate({k: rc[k] for k in ("service", "aliases", "host") if k in rc})
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in ("root_cause", *err["loc"]))
        raise DatasetError(f"{path}: {where}: {err['msg']}", field=where) from None
    if not (cause.service or cause.host):
        raise DatasetError(f"{path}: root_cause names neither a service nor a host", field="root_cause")
    kind = doc.get("kind")
    if kind is not None and not isinstance(kind, str):
        raise DatasetError(f"{path}: kind must be a string or null", field="kind")
    return Truth(fault_time_ns=_time(doc, "fault_time", path, required=False), root_cause=cause, kind=kind)


def telemetry_files(root: Path) -> TelemetryFiles:
    """The files of `root/telemetry/` by kind, chosen by suffix (a plain or a .gz file)."""
    folder = root / TELEMETRY_DIR
    if not folder.is_dir():
        raise DatasetError(f"{folder} is missing: a case bundle keeps what DevMesh ingests there", field="telemetry")
    found: dict[str, list[Path]] = {"otlp": [], "journal": [], "devmesh": [], "ignored": []}
    topology = None
    for p in sorted(folder.iterdir()):
        name = p.name.removesuffix(".gz")
        if not p.is_file():
            found["ignored"].append(p)
        elif p.name == TOPOLOGY_FILE:
            topology = p
        elif name.endswith(OTLP_SUFFIX):
            found["otlp"].append(p)
        elif name.endswith(JOURNAL_SUFFIX):
            found["journal"].append(p)
        elif name.endswith(DEVMESH_SUFFIX):
            found["devmesh"].append(p)
        else:
            found["ignored"].append(p)
    return TelemetryFiles(topology=topology, **found)


def _json_object(path: Path, why: str) -> dict[str, Any]:
    if not path.is_file():
        raise DatasetError(f"{path} is missing: {why}", field=path.name)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DatasetError(f"{path}: not readable as JSON: {exc}", field=path.name) from None
    if not isinstance(doc, dict):
        raise DatasetError(f"{path}: must hold a JSON object, not {type(doc).__name__}", field=path.name)
    return doc


def _text(doc: dict[str, Any], key: str, path: Path) -> str:
    value = doc.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DatasetError(f"{path}: {key} must be a string, not {type(value).__name__}", field=key)
    return value


def _time(doc: dict[str, Any], key: str, path: Path, *, required: bool) -> int | None:
    value = doc.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise DatasetError(f"{path}: {key} must be an ISO-8601 time such as 2023-09-22T08:17:00Z", field=key)
    try:
        return iso_to_ns(value)
    except (InvalidInput, ValueError, OverflowError):
        raise DatasetError(
            f"{path}: {key} {value!r} is not an ISO-8601 time such as 2023-09-22T08:17:00Z", field=key
        ) from None
