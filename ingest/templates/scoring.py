"""Scoring the template miner on labelled lines: Loghub grouping accuracy (`devmesh eval templates`).

`evaluate_templates(DIR)` reads a Loghub-2k style folder (one sub-folder per system holding
`<Sys>_2k.log_structured_corrected.csv`), feeds the Content column to a fresh `TemplateMiner` per
system in batches, and scores the template ids it returns (resolved through the miner's aliases
after the last line) against the EventTemplate column; optionally again in small batches (streaming).
"""

from __future__ import annotations

import csv
import logging
import time
from collections import defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from core.errors import DatasetError
from ingest.templates.miner import TemplateMiner

log = logging.getLogger(__name__)

DEFAULT_BATCH = 2000


def grouping_accuracy(predicted: Sequence[Hashable], truth: Sequence[Hashable]) -> float:
    """Loghub grouping accuracy: share of lines whose predicted group equals their true group."""
    if len(predicted) != len(truth):
        raise ValueError(f"{len(predicted)} predictions for {len(truth)} lines")
    if not truth:
        return 0.0
    pred_groups: dict[Hashable, list[int]] = defaultdict(list)
    true_groups: dict[Hashable, list[int]] = defaultdict(list)
    for i, (p, t) in enumerate(zip(predicted, truth, strict=True)):
        pred_groups[p].append(i)
        true_groups[t].append(i)
    correct = 0
    for lines in true_groups.values():
        labels = {predicted[i] for i in lines}
        if len(labels) == 1 and len(pred_groups[next(iter(labels))]) == len(lines):
            correct += len(lines)
    return correct / len(truth)


def loghub_systems(dataset_dir: Path) -> list[str]:
    """Names of the systems in a Loghub-2k folder."""
    if not dataset_dir.is_dir():
        raise DatasetError(f"{dataset_dir} is not a folder", field="dataset_dir")
    found = sorted(d.name for d in dataset_dir.iterdir() if (d / f"{d.name}_2k.log_structured_corrected.csv").is_file())
    if not found:
        raise DatasetError(
            f"{dataset_dir} holds no <Sys>/<Sys>_2k.log_structured_corrected.csv: is it a Loghub-2k folder?",
            field="dataset_dir",
        )
    return found


def load_loghub(dataset_dir: Path, system: str) -> tuple[list[str], list[str]]:
    """(Content, EventTemplate) columns of one system."""
    path = dataset_dir / system / f"{system}_2k.log_structured_corrected.csv"
    if not path.is_file():
        raise DatasetError(f"{path} does not exist", field="systems")
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not {"Content", "EventTemplate"} <= set(reader.fieldnames):
            raise DatasetError(f"{path} has no Content and EventTemplate columns", field="dataset_dir")
        rows = list(reader)
    return [r["Content"] for r in rows], [r["EventTemplate"] for r in rows]


def mine(miner: TemplateMiner, lines: Sequence[str], batch_size: int) -> tuple[list[str], float, list[str]]:
    """Template ids for lines fed in batches, the seconds it took, and the ids as first handed out.

    The first list is resolved through the miner's aliases after the last line: the template each
    stored line stands for once late merges are applied (what a reader of the store sees).
    """
    handed: list[str] = []
    start = time.perf_counter()
    for j in range(0, len(lines), batch_size):
        handed.extend(m.template_id for m in miner.add_many(lines[j : j + batch_size]))
    seconds = time.perf_counter() - start
    return [miner.resolve(i) for i in handed], seconds, handed


def _run(contents: Sequence[str], truth: Sequence[str], batch_size: int, params: dict[str, Any]) -> dict[str, Any]:
    miner = TemplateMiner(**params)
    ids, seconds, handed = mine(miner, contents, batch_size)
    return {
        "ga": round(grouping_accuracy(ids, truth), 4),
        "ga_as_handed_out": round(grouping_accuracy(handed, truth), 4),
        "templates_found": len(set(ids)),
        "lines_per_s": round(len(contents) / seconds, 1) if seconds > 0 else None,
    }


def _mean(values: Sequence[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def evaluate_templates(
    dataset_dir: Path,
    *,
    systems: list[str] | None = None,
    batch_size: int = DEFAULT_BATCH,
    stream_batch_size: int | None = None,
    hold_out: Sequence[str] = (),
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """GA per system and on average, with one parameter set for all systems.

    Each system gets a fresh miner; its lines arrive in batches of `batch_size` (the default
    covers a whole 2k sample, like an import). With `stream_batch_size` (1 = one line at a time)
    each system is mined again, fresh, in batches of that size, and reported under `stream`.
    Systems named in `hold_out` are marked, and averaged apart from the others (`averages`).
    """
    dataset_dir = Path(dataset_dir)
    names = systems or loghub_systems(dataset_dir)
    for size, field in ((batch_size, "batch_size"), (stream_batch_size, "stream_batch_size")):
        if size is not None and size < 1:
            raise DatasetError(f"{field} must be at least 1", field=field)
    unknown = sorted(set(hold_out) - set(names))
    if unknown:
        raise DatasetError(f"held-out systems {unknown} are not among {names}", field="hold_out")
    result: dict[str, Any] = {}
    params = dict(params or {})
    for name in names:
        contents, truth = load_loghub(dataset_dir, name)
        batch = _run(contents, truth, batch_size, params)
        row: dict[str, Any] = {
            "ga": batch["ga"],
            "lines": len(contents),
            "templates_true": len(set(truth)),
            "templates_found": batch["templates_found"],
            "lines_per_s": batch["lines_per_s"],
            "held_out": name in hold_out,
        }
        if stream_batch_size is not None:
            row["stream"] = _run(contents, truth, stream_batch_size, params)
        result[name] = row
        log.info("template evaluation", extra={"system": name, "ga": row["ga"]})
    averages: dict[str, Any] = {}
    for label, members in (
        ("all", names),
        ("tuned_on", [n for n in names if n not in hold_out]),
        ("held_out", [n for n in names if n in hold_out]),
    ):
        if members and (label == "all" or hold_out):
            averages[label] = {"batch": _mean([result[n]["ga"] for n in members])}
            if stream_batch_size is not None:
                averages[label]["stream"] = _mean([result[n]["stream"]["ga"] for n in members])
    return {
        "systems": result,
        "average_ga": averages["all"]["batch"],
        "average_ga_stream": averages["all"].get("stream"),
        "averages": averages,
        "parameters": {
            **asdict(TemplateMiner(**params).params),
            "batch_size": batch_size,
            "stream_batch_size": stream_batch_size,
        },
    }
