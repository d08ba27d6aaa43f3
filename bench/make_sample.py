"""Cut the repository's bundled sample (samples/nezha) out of a Nezha-layout data set.

    python -m bench.make_sample ../shared/datasets/nezha-trainticket --fault 2023-01-29T09:49:34 --out samples/nezha

Copies the log and trace files of the minutes around one fault, the per-pod metrics of the hour before it
to ten minutes after, the fault-free construct_data minute, and a fault list holding only that fault.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root", type=Path)
    ap.add_argument("--fault", required=True, help="inject_time of the fault, UTC, e.g. 2023-01-29T09:49:34")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--metric-before-min", type=int, default=60)
    args = ap.parse_args()
    when = datetime.fromisoformat(args.fault).replace(tzinfo=UTC)
    date = when.strftime("%Y-%m-%d")
    src, dst = args.root / date, args.out / date
    faults = json.loads((src / f"{date}-fault_list.json").read_text())
    chosen = [f for group in faults.values() for f in group if f["inject_time"] == when.strftime("%Y-%m-%d %H:%M:%S")]
    if not chosen:
        raise SystemExit(f"no fault at {args.fault}")
    if args.out.exists():
        shutil.rmtree(args.out)
    for sub in ("log", "trace", "metric"):
        (dst / sub).mkdir(parents=True)
    (dst / f"{date}-fault_list.json").write_text(json.dumps({when.strftime("%H"): chosen}, indent=4))
    for minute in range(0, 4):
        stamp = (when + timedelta(minutes=minute)).strftime("%H_%M")
        for sub, suffix in (("log", "_log.csv.gz"), ("trace", "_trace.csv.gz")):
            f = src / sub / f"{stamp}{suffix}"
            if f.exists():
                shutil.copy(f, dst / sub / f.name)
    lo = (when - timedelta(minutes=args.metric_before_min)).timestamp()
    hi = (when + timedelta(minutes=10)).timestamp()
    for f in sorted((src / "metric").glob("*.csv")):
        with f.open(newline="") as fin, (dst / "metric" / f.name).open("w", newline="") as fout:
            r, w = csv.reader(fin), csv.writer(fout)
            header = next(r)
            w.writerow(header)
            ts_col = header.index("TimeStamp")
            for row in r:
                if lo <= float(row[ts_col]) <= hi:
                    w.writerow(row)
    base = args.root / "construct_data" / date
    if base.is_dir():
        for sub in ("log", "trace"):
            (args.out / "construct_data" / date / sub).mkdir(parents=True)
            for f in (base / sub).glob("*.gz"):
                shutil.copy(f, args.out / "construct_data" / date / sub / f.name)
    for name in ("LICENSE",):
        if (args.root / name).exists():
            shutil.copy(args.root / name, args.out / name)


if __name__ == "__main__":
    main()
