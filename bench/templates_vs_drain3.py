"""The template miner against drain3 on the same lines: lines per second, and drain3's grouping accuracy.

`compare_with_drain3(lines)` times our miner and drain3 (defaults, and with its example masks) on the same
lines; `drain3_grouping_accuracy(DIR)` scores drain3 on a Loghub-2k folder for reference. Our own grouping
accuracy is `devmesh eval templates` (ingest.templates.scoring).

    .venv/bin/python -m bench.templates_vs_drain3 LOGHUB_DIR [--drain3] [--nezha NEZHA_LOG_DIR] [--limit N]

Prints JSON. drain3 is a development dependency (`pip install -e '.[dev]'`).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import logging
import statistics
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from core.errors import DatasetError
from ingest.templates import TemplateMiner
from ingest.templates.scoring import (
    DEFAULT_BATCH,
    evaluate_templates,
    grouping_accuracy,
    load_loghub,
    loghub_systems,
    mine,
)

log = logging.getLogger(__name__)

# drain3's documented example masks (drain3.ini in its repository), for the "masked" drain3 run.
_DRAIN3_MASKS = [
    (r"((?<=[^A-Za-z0-9])|^)(([0-9a-f]{2,}:){3,}([0-9a-f]{2,}))((?=[^A-Za-z0-9])|$)", "ID"),
    (r"((?<=[^A-Za-z0-9])|^)(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})((?=[^A-Za-z0-9])|$)", "IP"),
    (r"((?<=[^A-Za-z0-9])|^)([0-9a-f]{6,} ?){3,}((?=[^A-Za-z0-9])|$)", "SEQ"),
    (r"((?<=[^A-Za-z0-9])|^)([0-9A-F]{4} ?){4,}((?=[^A-Za-z0-9])|$)", "SEQ"),
    (r"((?<=[^A-Za-z0-9])|^)(0x[a-f0-9A-F]+)((?=[^A-Za-z0-9])|$)", "HEX"),
    (r"((?<=[^A-Za-z0-9])|^)([\-\+]?\d+)((?=[^A-Za-z0-9])|$)", "NUM"),
    (r"(?<=executed cmd )(\".+?\")", "CMD"),
]


def read_nezha_log_lines(log_dir: Path, *, limit: int | None = None) -> list[str]:
    """Application lines (the `log` member of the Docker JSON in the Log column) of Nezha log CSVs.

    Malformed rows (bad JSON, missing member) are skipped.
    """
    files = sorted(Path(log_dir).glob("*.csv.gz"))
    if not files:
        raise DatasetError(f"{log_dir} holds no *_log.csv.gz files", field="log_dir")
    csv.field_size_limit(1 << 27)
    lines: list[str] = []
    skipped = 0
    for path in files:
        with gzip.open(path, "rt", newline="", encoding="utf-8", errors="replace") as fh:
            for row in csv.DictReader(fh):
                try:
                    text = json.loads(row["Log"])["log"]
                except (KeyError, TypeError, ValueError):
                    skipped += 1
                    continue
                if not isinstance(text, str):
                    skipped += 1
                    continue
                lines.append(text.rstrip("\n"))
                if limit is not None and len(lines) >= limit:
                    return lines
    if skipped:
        log.warning("skipped malformed log rows", extra={"rows": skipped})
    return lines


def compare_with_drain3(
    lines: Sequence[str], *, batch_size: int = 1000, repeats: int = 1, params: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Lines/s of our miner and of drain3 (defaults, and with its example masks) on the same lines.

    Each miner starts empty and sees every line once; with `repeats` > 1 the median run counts.
    """
    from drain3 import TemplateMiner as Drain3Miner
    from drain3.masking import MaskingInstruction
    from drain3.template_miner_config import TemplateMinerConfig

    lines = list(lines)
    runs = []
    for _ in range(max(repeats, 1)):
        ours = TemplateMiner(**(params or {}))
        runs.append(mine(ours, lines, batch_size)[1])
    ours_s = statistics.median(runs)
    out: dict[str, Any] = {
        "lines": len(lines),
        "repeats": max(repeats, 1),
        "mean_chars": round(sum(map(len, lines)) / max(len(lines), 1), 1),
        "ours": {
            "lines_per_s": round(len(lines) / ours_s, 1),
            "templates": len(ours.templates()),
            "batch_size": batch_size,
        },
    }
    for label, masks in (("drain3_default", []), ("drain3_masked", _DRAIN3_MASKS)):
        config = TemplateMinerConfig()
        config.profiling_enabled = False
        config.masking_instructions = [MaskingInstruction(p, name) for p, name in masks]
        runs = []
        for _ in range(max(repeats, 1)):
            drain = Drain3Miner(config=config)
            start = time.perf_counter()
            for line in lines:
                drain.add_log_message(line)
            runs.append(time.perf_counter() - start)
        seconds = statistics.median(runs)
        out[label] = {"lines_per_s": round(len(lines) / seconds, 1), "templates": len(drain.drain.clusters)}
    out["speedup_vs_drain3_default"] = round(out["ours"]["lines_per_s"] / out["drain3_default"]["lines_per_s"], 2)
    out["speedup_vs_drain3_masked"] = round(out["ours"]["lines_per_s"] / out["drain3_masked"]["lines_per_s"], 2)
    return out


def drain3_grouping_accuracy(dataset_dir: Path, systems: Iterable[str] | None = None) -> dict[str, Any]:
    """drain3 with default settings on the same Loghub input, for reference."""
    from drain3 import TemplateMiner as Drain3Miner
    from drain3.template_miner_config import TemplateMinerConfig

    dataset_dir = Path(dataset_dir)
    result = {}
    for name in systems or loghub_systems(dataset_dir):
        contents, truth = load_loghub(dataset_dir, name)
        drain = Drain3Miner(config=TemplateMinerConfig())
        ids = [drain.add_log_message(c)["cluster_id"] for c in contents]
        result[name] = round(grouping_accuracy(ids, truth), 4)
    return {"systems": result, "average_ga": round(sum(result.values()) / len(result), 4)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("loghub_dir", type=Path)
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH)
    parser.add_argument("--nezha", type=Path, help="a Nezha log folder (…/YYYY-MM-DD/log) to time on")
    parser.add_argument("--limit", type=int, default=None, help="at most this many Nezha lines")
    parser.add_argument("--drain3", action="store_true", help="also score drain3's GA")
    args = parser.parse_args(argv)
    report: dict[str, Any] = {"ga": evaluate_templates(args.loghub_dir, batch_size=args.batch_size)}
    loghub_lines: list[str] = []
    for name in loghub_systems(args.loghub_dir):
        loghub_lines.extend(load_loghub(args.loghub_dir, name)[0])
    report["speed_loghub"] = compare_with_drain3(loghub_lines, repeats=3)
    if args.drain3:
        report["drain3_ga"] = drain3_grouping_accuracy(args.loghub_dir)
    if args.nezha:
        report["speed_trainticket"] = compare_with_drain3(read_nezha_log_lines(args.nezha, limit=args.limit))
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
