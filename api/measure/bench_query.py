"""`devmesh bench query`: log query and semantic search latency at 1,000,000 stored events.

Fills a temporary store with synthetic events shaped like the TrainTicket recording (retrieval.events.workload),
embeds their templates plus `extra_templates` distractor templates with the configured embedder, then times
the two calls users make most: a 15-minute window + service query, and a semantic search (query embedding
included) with and without a service filter.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import xxhash

from core.settings import Settings
from core.timeutil import NS
from retrieval.collections import TEMPLATES as TEMPLATE_COLLECTION
from retrieval.events import LogQuery
from retrieval.events.workload import SERVICES, TEMPLATES, bench_queries, fill_synthetic, timed
from retrieval.search import search_logs
from retrieval.vectors import VectorPoint

QUERIES = [
    "connection refused",
    "payment timed out",
    "null pointer exception while creating an order",
    "route not found",
    "server returned HTTP 500",
    "login with verification code",
    "seat allocation",
    "retrying payment",
]
_WORDS = [
    "order",
    "seat",
    "route",
    "station",
    "travel",
    "payment",
    "food",
    "user",
    "config",
    "price",
    "ticket",
    "train",
    "consign",
    "voucher",
]
_VERBS = [
    "query",
    "create",
    "update",
    "delete",
    "cancel",
    "rebook",
    "check",
    "verify",
    "distribute",
    "preserve",
    "execute",
    "notify",
]
_OUTCOMES = ["ok", "failed", "retry", "timeout", "not", "found", "empty", "rejected", "accepted", "slow", "cached"]


def _distractors(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    combos = [(w, v, o) for w in _WORDS for v in _VERBS for o in _OUTCOMES]
    rng.shuffle(combos)
    out = []
    for k in range(n):
        w, v, o = combos[k % len(combos)]
        out.append(f"[{v}{w.title()}][{v.title()} {w} {o}][{w}Id: <*>, step {k // len(combos)}]")
    return out


def run_query_bench(
    settings: Settings,
    *,
    n_events: int = 1_000_000,
    runs: int = 200,
    extra_templates: int = 2000,
    open_fn: Callable[[Settings], Any],
    on_status: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    status = on_status or (lambda s: None)
    with tempfile.TemporaryDirectory(prefix="devmesh-bench-") as tmp:
        svc = open_fn(settings.model_copy(update={"home": Path(tmp)}))
        try:
            status(f"filling {n_events} events")
            fill = fill_synthetic(svc.events, n_events, keep_examples=True)
            status("embedding templates")
            texts = [f"{t[1]}<*>{t[2]}" for t in TEMPLATES]
            ids = [xxhash.xxh64_hexdigest(t.encode()) for t in texts]
            svc.events.upsert_templates(
                [
                    {"template_id": i, "text": t, "count": 0, "level": lvl[0]}
                    for i, t, lvl in zip(ids, texts, TEMPLATES, strict=True)
                ]
            )
            svc.events.recount_templates(ids)
            extra = _distractors(extra_templates)
            all_texts = texts + extra
            all_ids = ids + [f"X{k:06d}" for k in range(len(extra))]
            t0 = time.perf_counter()
            vectors = svc.embedder.embed(all_texts)
            embed_s = time.perf_counter() - t0
            svc.vectors.ensure_collection(TEMPLATE_COLLECTION, svc.embedder.dim)
            svc.vectors.upsert(
                TEMPLATE_COLLECTION,
                [
                    VectorPoint(id=i, vector=vectors[k], payload={"text": all_texts[k], "template_id": i})
                    for k, i in enumerate(all_ids)
                ],
            )
            if hasattr(svc.vectors, "optimize"):
                svc.vectors.optimize(TEMPLATE_COLLECTION)
            status("timing queries")
            rng = random.Random(3)
            lo, hi = fill["start_ns"], fill["end_ns"]
            window = 15 * 60 * NS

            def window_service() -> None:
                s = rng.randrange(lo, hi - window)
                svc.events.query_logs(LogQuery(start_ns=s, end_ns=s + window, service=rng.choice(SERVICES[:12])))

            def search(filters: Callable[[], LogQuery]) -> Callable[[], None]:
                def run() -> None:
                    q = f"{rng.choice(QUERIES)} {rng.randrange(10**6)}"  # never a cache hit
                    search_logs(q, filters(), events=svc.events, vectors=svc.vectors, embedder=svc.embedder)

                return run

            def window_filter() -> LogQuery:
                s = rng.randrange(lo, hi - window)
                return LogQuery(start_ns=s, end_ns=s + window, service=rng.choice(SERVICES[:12]))

            stats = svc.events.stats()
            results = {
                "events": stats["tables"]["logs"]["rows"],
                "store_bytes": int(stats.get("file_bytes", 0) or 0) + int(stats.get("wal_bytes", 0) or 0),
                "templates_indexed": len(all_ids),
                "query": timed(window_service, runs),
                "search_unfiltered": timed(search(lambda: LogQuery()), runs),
                "search_15m_service": timed(search(window_filter), runs),
                "other_queries": bench_queries(svc.events, runs=max(10, runs // 4)),
                "fill": fill,
                "embed_templates_s": round(embed_s, 2),
                "embedder": getattr(svc.embedder, "name", None),
                "vectors": getattr(svc.vectors, "backend", None),
            }
        finally:
            svc.close()
    results["query_p50_ms"] = results["query"]["p50_ms"]
    results["search_p50_ms"] = results["search_unfiltered"]["p50_ms"]
    return results
