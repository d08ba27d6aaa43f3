"""A synthetic TrainTicket-shaped log workload for the event store, and timings of the queries run most.

`fill_synthetic(store, n)` appends n log lines shaped like the Nezha TrainTicket recording (its services by
volume, real line shapes, pods, hosts, trace ids) in time order and reports append rates; `bench_queries`
times the log queries retrieval and detection make. Used by `devmesh bench query` and
`python -m bench.query_events`.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from core.timeutil import NS
from retrieval.events.query import LogQuery
from retrieval.events.store import EventStore

# DuckDB's row group size: appends of at least this many rows are written straight to the file
# (no WAL), about twice as fast as smaller ones.
ROW_GROUP = 122_880

# Services that write logs in the Nezha TrainTicket recording, roughly by volume.
SERVICES = [
    "ts-seat-service",
    "ts-travel-service",
    "ts-basic-service",
    "ts-order-service",
    "ts-config-service",
    "ts-travel2-service",
    "ts-preserve-service",
    "ts-station-service",
    "ts-price-service",
    "ts-route-service",
    "ts-train-service",
    "ts-order-other-service",
    "ts-food-service",
    "ts-verification-code-service",
    "ts-execute-service",
    "ts-security-service",
    "ts-contacts-service",
    "ts-auth-service",
    "ts-train-food-service",
    "ts-station-food-service",
    "ts-inside-payment-service",
    "ts-payment-service",
]
_SERVICE_WEIGHTS = np.array([550, 444, 424, 231, 220, 87, 65, 59, 59, 55, 47, 47, 40, 32, 29, 28, 24, 24, 8, 8, 6, 2])

# (level, text before the variable, text after it): shapes of real TrainTicket application lines.
TEMPLATES: list[tuple[str, str, str]] = [
    ("INFO", "[getRouteByRouteId][Get Route By Id][Route ID：", "]"),
    ("INFO", "[getRouteByTripId][Get Route By Trip ID][TripId: D", "]"),
    ("INFO", "[Food Map Service][Get TrainFoods By TripId][TripId: G", "]"),
    ("INFO", "[queryForStationId][Query For Station Id][StationName: station-", "]"),
    ("INFO", "[getLeftTicketOfInterval][Seat Request][seat count: ", "]"),
    ("INFO", "[distributeSeat][Distribute Seat][seat number: ", "]"),
    ("INFO", "[queryConfigByName][Query Config By Name][name: DirectTicketAllocationProportion-", "]"),
    ("INFO", "[queryPriceConfigByRouteIdAndTrainType][Query price][RouteId: ", ", TrainType: GaoTieOne]"),
    ("INFO", "[getOrderById][Get Order By Id][OrderId: ", "]"),
    ("INFO", "[queryInfo][Query Travel Info][TripId: Z", ", start station: shanghai]"),
    ("INFO", "[preserve][Preserve Order][Order Id: ", ", status: 0]"),
    ("INFO", "[getToken][Login][UserName: fdse_microservice, Verify Code: ", "]"),
    ("DEBUG", "[checkSecurity][Check Security][Order count in last hour: ", "]"),
    ("WARN", "[getTripAllDetailInfo][Get Trip Detail Warn][Trip not found: T", "]"),
    ("WARN", "[queryForTravel][Query Travel Warn][Route not found: ", "]"),
    ("WARN", "[drawback][Drawback Warn][retrying payment, attempt ", "]"),
    ("ERROR", "[getRouteByRouteId][Get Route By Id Error][connection refused to ts-route-service:", "]"),
    ("ERROR", "[pay][Pay Error][Read timed out after ", " ms]"),
    ("ERROR", "[create][Create Order Error][java.lang.NullPointerException at line ", "]"),
    ("ERROR", "[queryForStationId][Station Service Error][HTTP 500 from ts-station-service, request ", "]"),
]
_TEMPLATE_WEIGHTS = np.array([9, 9, 6, 8, 10, 8, 7, 6, 6, 6, 4, 3, 3, 2, 2, 1, 1, 1, 0.5, 0.5])


def _pods(rng: np.random.Generator) -> dict[str, list[str]]:
    def part(n: int) -> str:
        return "".join(rng.choice(list("bcdfghjklmnpqrstvwxz2456789"), n))

    return {s: [f"{s}-{part(9)}-{part(5)}" for _ in range(int(rng.integers(1, 3)))] for s in SERVICES}


def _hex(rng: np.random.Generator, n: int, nbytes: int) -> pa.Array:
    raw = rng.integers(0, 256, size=(n, nbytes), dtype=np.uint8)
    return pa.array([r.tobytes().hex() for r in raw], pa.string())


def _log_batch(rng: np.random.Generator, pods: dict[str, list[str]], ts: np.ndarray) -> pa.Table:
    n = len(ts)
    svc_idx = rng.choice(len(SERVICES), n, p=_SERVICE_WEIGHTS / _SERVICE_WEIGHTS.sum())
    tpl_idx = rng.choice(len(TEMPLATES), n, p=_TEMPLATE_WEIGHTS / _TEMPLATE_WEIGHTS.sum())
    all_pods = [p for s in SERVICES for p in pods[s]]
    first_pod = np.cumsum([0] + [len(pods[s]) for s in SERVICES])[:-1]
    n_pods = np.array([len(pods[s]) for s in SERVICES])
    pod_idx = first_pod[svc_idx] + rng.integers(0, 1 << 30, n) % n_pods[svc_idx]
    traces = _hex(rng, max(1, n // 5), 16)
    variable = pc.cast(pa.array(rng.integers(0, 100_000, n)), pa.string())
    prefix = pa.array([t[1] for t in TEMPLATES]).take(pa.array(tpl_idx))
    suffix = pa.array([t[2] for t in TEMPLATES]).take(pa.array(tpl_idx))
    tpl_ids = pa.array([xxhash.xxh64_hexdigest(f"{t[1]}<*>{t[2]}".encode()) for t in TEMPLATES])
    return pa.table(
        {
            "ts_ns": pa.array(ts, pa.int64()),
            "source": pa.repeat("file", n),
            "service": pa.array(SERVICES).take(pa.array(svc_idx)),
            "host": pa.array([f"33.33.33.{x}" for x in (74, 80, 116, 125)]).take(pa.array(pod_idx % 4)),
            "pod": pa.array(all_pods).take(pa.array(pod_idx)),
            "level": pa.array([t[0] for t in TEMPLATES]).take(pa.array(tpl_idx)),
            "message": pc.binary_join_element_wise(prefix, variable, suffix, ""),
            "trace_id": traces.take(pa.array(rng.integers(0, len(traces), n))),
            "template_id": tpl_ids.take(pa.array(tpl_idx)),
        }
    )


def fill_synthetic(
    store: EventStore,
    n_events: int = 1_000_000,
    *,
    start_ns: int = 1_674_982_000 * NS,
    duration_s: int = 6 * 3600,
    batch_size: int = ROW_GROUP * 2,
    seed: int = 0,
    keep_examples: bool = False,
) -> dict[str, Any]:
    """Append `n_events` log lines spread over `duration_s`, in time order; returns rates."""
    rng = np.random.default_rng(seed)
    pods = _pods(rng)
    ts_all = np.sort(rng.integers(start_ns, start_ns + duration_s * NS, n_events))
    append_s = build_s = 0.0
    inserted = 0
    for lo in range(0, n_events, batch_size):
        t0 = time.perf_counter()
        batch = _log_batch(rng, pods, ts_all[lo : lo + batch_size])
        t1 = time.perf_counter()
        inserted += store.append_logs(batch).inserted
        if keep_examples:  # as the ingest pipeline does
            store.remember_examples(batch)
        append_s += time.perf_counter() - t1
        build_s += t1 - t0
    # Dedup under load: the last batch again, every row a repeat found by the range check.
    t0 = time.perf_counter()
    repeat = store.append_logs(batch)
    repeat_s = time.perf_counter() - t0
    return {
        "events": n_events,
        "inserted": inserted,
        "append_rows_per_s": round(n_events / append_s),
        "build_rows_per_s": round(n_events / build_s),
        "repeat_batch_rows": batch.num_rows,
        "repeat_batch_duplicates": repeat.duplicates,
        "repeat_batch_ms": round(repeat_s * 1000, 1),
        "start_ns": start_ns,
        "end_ns": start_ns + duration_s * NS,
    }


def timed(fn: Callable[[], object], runs: int) -> dict[str, float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return {
        "p50_ms": round(statistics.median(times), 2),
        "p95_ms": round(times[min(len(times) - 1, int(0.95 * len(times)))], 2),
    }


def bench_queries(store: EventStore, *, runs: int = 50, seed: int = 1) -> dict[str, Any]:
    """p50/p95 of the queries the retrieval and detection code run most."""
    rng = np.random.default_rng(seed)
    tables = store.stats()["tables"]["logs"]
    lo, hi = tables["min_ns"], tables["max_ns"]
    window = 15 * 60 * NS

    def rand_start(width: int) -> int:
        return int(rng.integers(lo, max(lo + 1, hi - width)))

    def window_service() -> None:
        s = rand_start(window)
        q = LogQuery(start_ns=s, end_ns=s + window, service=str(rng.choice(SERVICES[:12])), limit=100)
        store.query_logs(q)

    trace_ids = []
    for _ in range(runs):
        s = rand_start(window)
        events = store.query_logs(LogQuery(start_ns=s, end_ns=s + window, limit=1)).events
        trace_ids += [e["trace_id"] for e in events]
    traces = iter(trace_ids * 2)

    def trace_lookup() -> None:
        store.query_logs(LogQuery(trace_id=next(traces), order="asc", limit=100))

    def substring_hour() -> None:
        s = rand_start(3600 * NS)
        store.query_logs(LogQuery(start_ns=s, end_ns=s + 3600 * NS, contains="Connection Refused"))

    def substring_all() -> None:
        store.query_logs(LogQuery(contains=f"seat number: {int(rng.integers(0, 100_000))}]"))

    def template_counts() -> None:
        s = rand_start(window)
        store.template_counts(s, s + window)

    def template_counts_hour() -> None:
        s = rand_start(3600 * NS)
        store.template_counts(s, s + 3600 * NS)

    def error_counts_hour() -> None:
        s = rand_start(3600 * NS)
        store.error_counts(s, s + 3600 * NS, bucket_s=60)

    def second_page() -> None:
        s = rand_start(window)
        q = LogQuery(start_ns=s, end_ns=s + window, service="ts-seat-service", limit=100)
        page = store.query_logs(q)
        store.query_logs(q.model_copy(update={"cursor": page.next_cursor}))

    return {
        "window15m_service_limit100": timed(window_service, runs),
        "window15m_service_two_pages": timed(second_page, runs),
        "trace_id_lookup": timed(trace_lookup, runs),
        "substring_1h": timed(substring_hour, runs),
        "substring_all_rows": timed(substring_all, max(5, runs // 5)),
        "template_counts_15m": timed(template_counts, runs),
        "template_counts_1h": timed(template_counts_hour, runs),
        "error_counts_per_min_1h": timed(error_counts_hour, runs),
    }
