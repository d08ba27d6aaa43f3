"""Scoring the template miner on labelled lines: Loghub grouping accuracy (`devmesh eval templates`).

`evaluate_templates(DIR)` reads a Loghub-2k style folder (one sub-folder per system holding
`<Sys>_2k.log_structured_corrected.csv`), feeds the Content column to a fresh `TemplateMiner` per
system in batches, and scores the template ids it returns against the EventTemplate column.
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


def mine(miner: TemplateMiner, lines: Sequence[str], batch_size: int) -> tuple[list[str], float]:
    """Template ids for lines fed in batches, and the seconds it took."""
    ids: list[str] = []
    start = time.perf_counter()
    for j in range(0, len(lines), batch_size):
        ids.extend(m.template_id for m in miner.add_many(lines[j : j + batch_size]))
    return ids, time.perf_counter() - start


def evaluate_templates(
    dataset_dir: Path,
    *,
    systems: list[str] | None = None,
    batch_size: int = DEFAULT_BATCH,
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """GA per system and on average, with one parameter set for all systems.

    Each system gets a fresh miner; its lines arrive in batches of `batch_size` (the default
    covers a whole 2k sample, like an import; smaller batches parse worse, see the report).
    """
    dataset_dir = Path(dataset_dir)
    names = systems or loghub_systems(dataset_dir)
    if batch_size < 1:
        raise DatasetError("batch_size must be at least 1", field="batch_size")
    result: dict[str, Any] = {}
    miner_params: dict[str, Any] = {}
    for name in names:
        contents, truth = load_loghub(dataset_dir, name)
        miner = TemplateMiner(**(params or {}))
        miner_params = asdict(miner.params)
        ids, seconds = mine(miner, contents, batch_size)
        result[name] = {
            "ga": round(grouping_accuracy(ids, truth), 4),
            "lines": len(contents),
            "templates_true": len(set(truth)),
            "templates_found": len(set(ids)),
            "lines_per_s": round(len(contents) / seconds, 1) if seconds > 0 else None,
        }
        log.info("template evaluation", extra={"system": name, **result[name]})
    average = sum(r["ga"] for r in result.values()) / len(result)
    return {
        "systems": result,
        "average_ga": round(average, 4),
        "parameters": {**miner_params, "batch_size": batch_size},
    }
