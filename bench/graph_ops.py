"""Graph benchmark: load a synthetic topology, then time neighborhoods, shortest paths, incident writes.

    .venv/bin/python -m bench.graph_ops [--services 1000 --pods 5000 --nodes 200 --calls 20000
                                         --templates 0 --queries 50 --seed 7 --url redis://...]

Starts an embedded FalkorDB under a temporary directory unless --url is given; prints JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from core.telemetry import CallEdge, PodPlacement, Topology
from graph.neighborhood import neighborhood
from graph.schema import ensure_schema
from graph.server import EmbeddedFalkorDB, connect_url
from graph.store import GraphStore


def synthetic_topology(services: int, pods: int, nodes: int, calls: int, seed: int) -> Topology:
    rng = random.Random(seed)
    names = [f"svc-{i:04d}" for i in range(services)]
    placements = [
        PodPlacement(pod=f"pod-{i:05d}", service=names[i % services], host=f"node-{rng.randrange(nodes):03d}")
        for i in range(pods)
    ]
    pairs: set[tuple[int, int]] = set()
    while len(pairs) < min(calls, services * (services - 1)):
        a, b = rng.randrange(services), rng.randrange(services)
        if a != b:
            pairs.add((a, b))
    edges = [
        CallEdge(
            caller=names[a],
            callee=names[b],
            calls=rng.randrange(1, 10_000),
            errors=rng.randrange(0, 50),
            mean_ms=round(rng.uniform(1, 200), 3),
            p95_ms=round(rng.uniform(200, 900), 3),
        )
        for a, b in sorted(pairs)
    ]
    return Topology(services=names, pods=placements, calls=edges)


def _ms(samples: list[float]) -> dict[str, float]:
    samples = sorted(samples)
    return {
        "median_ms": round(statistics.median(samples) * 1000, 3),
        "p95_ms": round(samples[int(0.95 * (len(samples) - 1))] * 1000, 3),
    }


def run(url: str, args: argparse.Namespace) -> dict[str, Any]:
    db, graph = connect_url(url, "bench_graph_ops")
    store = GraphStore(graph)
    graph_exists = "bench_graph_ops" in db.list_graphs()
    if graph_exists:
        graph.delete()
    ensure_schema(graph)
    topo = synthetic_topology(args.services, args.pods, args.nodes, args.calls, args.seed)
    out: dict[str, Any] = {
        "services": args.services,
        "pods": args.pods,
        "nodes": args.nodes,
        "calls": len(topo.calls),
        "templates": args.templates,
    }

    t0 = time.perf_counter()
    store.upsert_topology(topo)
    out["load_topology_s"] = round(time.perf_counter() - t0, 3)
    t0 = time.perf_counter()
    store.upsert_topology(topo)
    out["reload_topology_s"] = round(time.perf_counter() - t0, 3)

    if args.templates:
        rng = random.Random(args.seed + 1)
        rows = [
            {
                "service": topo.services[i % args.services],
                "template_id": f"tpl-{i:06d}",
                "text": f"request <*> failed with code <*> after <*> ms (family {i})",
                "level": rng.choice(["INFO", "WARN", "ERROR"]),
                "count": rng.randrange(1, 1000),
            }
            for i in range(args.templates)
        ]
        t0 = time.perf_counter()
        store.upsert_templates(rows)
        out["load_templates_s"] = round(time.perf_counter() - t0, 3)

    out["counts"] = store.counts()
    rng = random.Random(args.seed + 2)
    picks = [rng.choice(topo.services) for _ in range(args.queries)]

    times, sizes = [], []
    for name in picks:
        t0 = time.perf_counter()
        sub = neighborhood(graph, [("Service", name)], hops=2, limit=args.limit)
        times.append(time.perf_counter() - t0)
        sizes.append((len(sub.nodes), len(sub.edges)))
    out["neighborhood_2hop"] = {
        **_ms(times),
        "limit": args.limit,
        "median_nodes": statistics.median(s[0] for s in sizes),
        "median_edges": statistics.median(s[1] for s in sizes),
        "truncated_share": round(sum(1 for s in sizes if s[0] >= args.limit) / len(sizes), 3),
    }
    times = []
    for name in picks:
        t0 = time.perf_counter()
        sub = neighborhood(graph, [("Service", name)], hops=2, limit=100_000)
        times.append(time.perf_counter() - t0)
        sizes.append((len(sub.nodes), len(sub.edges)))
    out["neighborhood_2hop_unlimited"] = {
        **_ms(times),
        "median_nodes": statistics.median(s[0] for s in sizes[len(picks) :]),
        "median_edges": statistics.median(s[1] for s in sizes[len(picks) :]),
    }

    times, lengths = [], []
    for i in range(args.queries):
        a, b = picks[i], picks[(i + 1) % len(picks)]
        t0 = time.perf_counter()
        path = store.shortest_call_path(a, b)
        times.append(time.perf_counter() - t0)
        lengths.append(len(path))
    out["shortest_call_path"] = {**_ms(times), "median_len": statistics.median(lengths)}

    times = []
    for i in range(args.queries):
        inc = {
            "id": f"inc-{i}",
            "title": "latency spike",
            "status": "open",
            "opened_ns": 1_700_000_000_000_000_000 + i,
            "services": topo.services[i : i + 5],
            "nodes": [f"node-{j:03d}" for j in range(5)],
            "root_causes": [{"service": topo.services[i], "score": 0.9, "rank": 1}],
            "metrics": [{"name": "latency_p95_s", "value": 1.5, "service": s} for s in topo.services[i : i + 4]],
            "similar": [f"inc-{j}" for j in range(max(0, i - 5), i)],
        }
        t0 = time.perf_counter()
        store.upsert_incident(inc)
        times.append(time.perf_counter() - t0)
    out["write_incident_20_edges"] = _ms(times)

    info = db.connection.info("memory")
    out["server_used_memory_mb"] = round(info["used_memory"] / 2**20, 1)
    graph.delete()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--services", type=int, default=1000)
    p.add_argument("--pods", type=int, default=5000)
    p.add_argument("--nodes", type=int, default=200)
    p.add_argument("--calls", type=int, default=20000)
    p.add_argument("--templates", type=int, default=0)
    p.add_argument("--queries", type=int, default=50)
    p.add_argument("--limit", type=int, default=500)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--url", default=None, help="FalkorDB URL; default: embedded server in a temp dir")
    args = p.parse_args()
    if args.url:
        result = run(args.url, args)
    else:
        with tempfile.TemporaryDirectory(prefix="devmesh-bench-") as tmp:
            server = EmbeddedFalkorDB(Path(tmp) / "falkordb")
            try:
                result = run(server.start(), args)
            finally:
                server.stop()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
