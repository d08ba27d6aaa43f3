"""Event store benchmark: fill with synthetic TrainTicket-shaped logs (retrieval.events.workload), time appends
and queries, the file size, and reopening.

    .venv/bin/python -m bench.query_events --events 1000000 [--path /tmp/ev.duckdb] [--no-trace-index]

Prints JSON. Goal (issue): a 15-minute window + service query, 100 rows, p50 under 20 ms at
1,000,000 stored events.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from retrieval.events import EventStore
from retrieval.events.workload import ROW_GROUP, bench_queries, fill_synthetic, timed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--path", type=Path, default=None, help="DuckDB file (default: a temporary one)")
    ap.add_argument("--no-trace-index", action="store_true", help="skip the ART index on trace_id")
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--batch-size", type=int, default=ROW_GROUP * 2, help="rows per append")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.path or Path(tmp) / "events.duckdb"
        store = EventStore(path, trace_index=not args.no_trace_index)
        fill = fill_synthetic(store, args.events, batch_size=args.batch_size)
        store.checkpoint()
        queries = bench_queries(store, runs=args.runs)
        stats = store.stats()
        store.close()
        store = EventStore(path)
        reopened = timed(lambda: store.stats(), 3)
        store.close()
    result = {
        "trace_index": not args.no_trace_index,
        "batch_size": args.batch_size,
        "fill": fill,
        "file_mb": round(stats["file_bytes"] / 1e6, 1),
        "queries": queries,
        "stats_after_reopen": reopened,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
