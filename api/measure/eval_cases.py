"""Scoring a folder of case bundles (CASE-BUNDLES.md): `devmesh eval rca cases` and `devmesh eval detect cases`.

Every subfolder holding a case.json is a case. Each is replayed and explained (or run through detection)
by `api.measure.case_replay`, in a fresh home of its own, from case.json and its telemetry only; this module
is the scorer, the one place that reads truth.json (`load_truth`), and only once the case's run has
returned. A bundle that cannot be read (or whose run fails) is reported under `errors`, naming the case and
the problem; the other cases still run. The figures are `detect.scoring`'s.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from api.measure.case_replay import CaseExplained, detect_case, explain_case
from core.errors import DatasetError, DevMeshError
from core.settings import Settings
from core.timeutil import NS, iso, iso_to_ns
from detect.scoring import (
    CaseLabel,
    case_scores,
    case_scores_by,
    kind_right,
    rank_in,
    score_case_detection,
    seconds_summary,
)
from ingest.cases import Case, load_case, load_truth
from ingest.cases.model import CASE_FILE, TRUTH_FILE
from retrieval.embedders import Embedder

log = logging.getLogger(__name__)

OnCase = Callable[[dict[str, Any]], None]


def find_cases(root: Path) -> list[Path]:
    """The bundle folders under `root` (every folder holding a case.json; `root` itself when it does)."""
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder of case bundles", field="DIR")
    found = sorted(p.parent for p in root.rglob(CASE_FILE))
    if not found:
        raise DatasetError(
            f"{root} holds no case bundles (no folder with a {CASE_FILE}; see CASE-BUNDLES.md)", field="DIR"
        )
    return found


@dataclass(frozen=True)
class Label:
    """The scorer's reading of truth.json: the names a right answer may carry, the fault's time, the other
    labelled faults in the bundle, and (for people) the root cause as the label names it."""

    names: CaseLabel
    service: str | None
    host: str | None
    fault_ns: int | None
    others: list[int]

    def summary(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "host": self.host,
            "names": sorted(self.names.services | self.names.hosts),
            "fault_time": iso(self.fault_ns) if self.fault_ns is not None else None,
        }


def label_of(root: Path) -> Label:
    """The scorer's label of a bundle (`Label`), from its truth.json."""
    truth = load_truth(root)
    raw = json.loads((root / TRUTH_FILE).read_text(encoding="utf-8"))
    extra = raw.get("root_cause", {}).get("host_aliases") or []  # not (yet) in ingest.cases.RootCause
    if not isinstance(extra, list) or not all(isinstance(h, str) for h in extra):
        raise DatasetError(
            f"{root / TRUTH_FILE}: root_cause.host_aliases must be a list of names", field="host_aliases"
        )
    rc = truth.root_cause
    hosts = [rc.host, *extra] if rc.host else []
    label = CaseLabel.of([rc.service, *rc.aliases], hosts, truth.kind)
    others = []
    for i, o in enumerate(raw.get("other_faults") or []):
        try:
            others.append(iso_to_ns(str(o["fault_time"])))
        except (KeyError, TypeError, ValueError, DevMeshError):
            raise DatasetError(
                f"{root / TRUTH_FILE}: other_faults[{i}].fault_time is not a time", field="other_faults"
            ) from None
    return Label(label, rc.service, rc.host, truth.fault_time_ns, others)


def _run_each(
    paths: list[Path], run: Callable[[Path, Case], dict[str, Any]], on_case: OnCase | None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """`run(path, case)` for every readable bundle; problems become {"case", "path", "problem"} errors."""
    rows: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for path in paths:
        name = path.name
        try:
            case = load_case(path)
            name = case.id
            if not (path / TRUTH_FILE).is_file():
                raise DatasetError(
                    f"{path / TRUTH_FILE} is missing: the scorer needs the case's label", field=TRUTH_FILE
                )
            row = run(path, case)
        except DevMeshError as exc:
            errors.append({"case": name, "path": str(path), "problem": exc.message})
            row = None
        except Exception as exc:  # one case failing must not stop the others; it is reported
            log.exception("case failed", extra={"case": name})
            errors.append({"case": name, "path": str(path), "problem": f"failed: {exc!r}"})
            row = None
        if row is not None:
            rows.append(row)
        if on_case is not None:
            on_case(row or {"id": name, "error": errors[-1]["problem"]})
    return rows, errors


def evaluate_rca_cases(
    root: Path,
    settings: Settings,
    *,
    hindsight: bool = False,
    embedder: Embedder | None = None,
    embedder_note: str = "",
    on_case: OnCase | None = None,
) -> dict[str, Any]:
    """Explain every bundle under `root` in its own home (live, or in hindsight) and score the rankings."""
    paths = find_cases(root)

    def run(path: Path, case: Case) -> dict[str, Any]:
        t0 = time.perf_counter()
        done = explain_case(case, settings, hindsight=hindsight, embedder=embedder)
        total = time.perf_counter() - t0
        label = label_of(path)  # read only now: the explanation is made
        return _rca_row(case, done, label, total)

    rows, errors = _run_each(paths, run, on_case)
    return {
        "dataset": str(root),
        "mode": "hindsight" if hindsight else "live",
        "embedder": embedder_note or (embedder.name if embedder is not None else "none"),
        **case_scores(rows),
        "by_system": case_scores_by(rows, "system"),
        "by_kind": case_scores_by(rows, "kind"),
        **seconds_summary([r["seconds"] for r in rows]),
        "median_total_s": seconds_summary([r["total_s"] for r in rows])["median_case_s"],
        "tail_disagreements": sum(1 for r in rows if not r["tail_agrees"]),
        "errors": errors,
        "results": rows,
    }


def _rca_row(case: Case, done: CaseExplained, label: Label, total: float) -> dict[str, Any]:
    names = label.names
    rank = rank_in(names, [(r.service, r.pod) for r in done.ranking])
    top = done.ranking[0] if done.ranking else None
    return {
        "id": case.id,
        "system": case.system,
        "kind": names.kind or "unknown",
        "truth": label.summary(),
        "asked_at": iso(case.asked_at_ns),
        "ranking": [r.as_dict() for r in done.ranking],
        "rank": rank,
        "kind_right": kind_right(names.kind, top.fault_kind) if top is not None and rank == 1 else None,
        "status": done.status,
        "tail_agrees": done.tail_agrees,
        "ingested": {k: r.stored for k, r in done.ingested.kinds().items()},
        "later": done.ingested.later,
        "seconds": round(done.explain_s, 3),
        "total_s": round(total, 3),
    }


def evaluate_detect_cases(root: Path, settings: Settings, *, on_case: OnCase | None = None) -> dict[str, Any]:
    """Replay detection over every bundle under `root` (all its telemetry) and score each against its label."""
    paths = find_cases(root)

    def run(path: Path, case: Case) -> dict[str, Any]:
        done = detect_case(case, settings)
        label = label_of(path)  # read only now: detection has run
        fault_ns = label.fault_ns
        if fault_ns is None:
            raise DatasetError(f"{path / TRUTH_FILE}: fault_time is needed to score detection", field="fault_time")
        scored = score_case_detection(label.names, fault_ns, done.seen, done.root_of, other_faults_ns=label.others)
        before_h = max(0, min(done.end_ns, fault_ns - 60 * NS) - done.start_ns) / NS / 3600
        return {
            "id": case.id,
            "system": case.system,
            "kind": label.names.kind or "unknown",
            "truth": label.summary(),
            **scored,
            "replayed_h": round((done.end_ns - done.start_ns) / NS / 3600, 3),
            "before_h": round(before_h, 3),
            "runs": done.runs,
            "seconds": round(done.detect_s, 2),
        }

    rows, errors = _run_each(paths, run, on_case)
    n = len(rows)
    before_h = sum(r["before_h"] for r in rows)
    false = sum(r["false_incidents"] for r in rows)
    return {
        "dataset": str(root),
        "cases": n,
        "detected": round(sum(r["detected"] for r in rows) / n, 4) if n else 0.0,
        "right_root": round(sum(r["right"] for r in rows) / n, 4) if n else 0.0,
        "false_incidents": false,
        "false_per_hour": round(false / before_h, 3) if before_h else None,
        "hours_before_faults": round(before_h, 2),
        "hours_replayed": round(sum(r["replayed_h"] for r in rows), 2),
        "errors": errors,
        "results": rows,
    }
