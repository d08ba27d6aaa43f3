"""The OTLP record bomb of issue 11: a ~16 KB gzip protobuf logs request holding millions of empty records.

`python -m bench.otlp_bomb [--records N] [--limit L | --no-limit]` builds the body, then decodes it the way
`POST /v1/logs` does (`ingest.otlp.decode_body` with the record limit, then `parse_logs`) in a fresh
subprocess, and prints JSON: body size, status (413 or rows parsed), CPU seconds and peak RSS growth.
`--no-limit` shows the cost without the count (keep --records small there: it grows linearly).
"""

from __future__ import annotations

import argparse
import gzip
import json
import resource
import subprocess
import sys
import time

from core.errors import DevMeshError
from ingest.otlp import decode_body, parse_logs

PB = "application/x-protobuf"
MB = 1024 * 1024


def bomb(records: int) -> bytes:
    """ExportLogsServiceRequest{resource_logs{scope_logs{log_records: {} x records}}}, gzip-compressed."""
    leaves = b"\x12\x00" * records  # ScopeLogs.log_records (field 2), an empty LogRecord each
    scope = _ld(2, leaves)  # ResourceLogs.scope_logs
    return gzip.compress(_ld(1, scope), 9)  # ExportLogsServiceRequest.resource_logs


def _ld(number: int, payload: bytes) -> bytes:
    n = len(payload)
    out = bytearray([number << 3 | 2])
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out) + payload


def run_one(records: int, limit: int | None) -> dict[str, object]:
    body = bomb(records)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cpu0 = time.process_time()
    try:
        decoded = decode_body(body, PB, "gzip", 16 * MB, max_decoded_bytes=32 * MB, signal="logs", max_records=limit)
        rows = len(parse_logs(decoded, PB, now_ns=time.time_ns(), min_year=2000, max_future_skew_s=86400).rows["ts_ns"])
        status: object = 200
    except DevMeshError as exc:
        rows, status = 0, {"status": exc.status_code, "field": exc.field, "message": exc.message}
    return {
        "records": records,
        "limit": limit,
        "gzip_bytes": len(body),
        "answer": status,
        "rows": rows,
        "cpu_s": round(time.process_time() - cpu0, 3),
        "peak_rss_growth_mb": round((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--records", type=int, default=8_300_000)
    ap.add_argument("--limit", type=int, default=100_000)
    ap.add_argument("--no-limit", action="store_true")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    limit = None if a.no_limit else a.limit
    if a.child:
        print(json.dumps(run_one(a.records, limit)))
        return
    args = [sys.executable, "-m", "bench.otlp_bomb", "--child", "--records", str(a.records)]
    args += ["--no-limit"] if limit is None else ["--limit", str(limit)]
    print(subprocess.run(args, check=True, capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
