"""Embedding throughput and latency for each backend that can run here; prints JSON.

    .venv/bin/python -m bench.embed [--texts 512] [--singles 50] [--cache-dir DIR] [--ollama URL:MODEL]

For each backend: texts/s embedding a batch of distinct log-like texts, and p50/p95 latency of one
short text (what a search query pays). Also the cached path (EmbeddingCache hit for a repeated query),
and a semantic query end to end: embed one new text with MiniLM, then search a Qdrant Edge collection
of `--search-points` random unit vectors (exact search, as before an optimize) for the top 10.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import EmbedderUnavailable
from retrieval.embedder_minilm import MiniLMEmbedder
from retrieval.embedder_ollama import OllamaEmbedder
from retrieval.embedders import Embedder, HashingEmbedder
from retrieval.embedding_cache import EmbeddingCache
from retrieval.qdrant_edge import EdgeVectorStore
from retrieval.vectors import VectorPoint

_SERVICES = ["checkout", "payment", "cart", "auth", "ts-order-service", "db-primary", "gateway", "redis"]
_TEMPLATES = [
    "Connection refused to {svc}:{port} after {n} retries",
    "Timeout after {n} ms calling {svc} /api/v1/{op}",
    "user <*> logged in from {ip}",
    "kernel: Out of memory: Killed process {n} ({svc})",
    "HTTP {code} from {svc} on POST /api/v1/{op}: upstream reset before headers",
    "Slow query on {svc}: SELECT * FROM {op} WHERE id = <*> took {n} ms",
    "Circuit breaker for {svc} is OPEN; failing fast for {op}",
    "Pod {svc}-{n} restarted: CrashLoopBackOff (exit code {code})",
]


def log_texts(count: int, seed: int = 7) -> list[str]:
    """Distinct, log-template-like texts (deterministic)."""
    rng = random.Random(seed)
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < count:
        text = rng.choice(_TEMPLATES).format(
            svc=rng.choice(_SERVICES),
            port=rng.choice([80, 443, 5432, 6379, 8080]),
            n=rng.randint(1, 99_999),
            op=rng.choice(["charge", "orders", "cart", "login", "refund", "inventory"]),
            ip=f"10.0.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
            code=rng.choice([500, 502, 503, 504, 137, 1]),
        )
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out


def _latency_ms(fn: Callable[[], Any], repeats: int) -> dict[str, float]:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return {
        "p50_ms": round(statistics.median(samples), 3),
        "p95_ms": round(samples[min(len(samples) - 1, int(0.95 * len(samples)))], 3),
    }


def measure(embedder: Embedder, texts: list[str], singles: int) -> dict[str, Any]:
    """Load time, batch throughput and single-text latency for one embedder."""
    started = time.perf_counter()
    embedder.embed(["warm up"])
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    embedder.embed(texts)
    batch_s = time.perf_counter() - started
    queries = log_texts(singles, seed=99)
    it = iter(queries * 2)
    result: dict[str, Any] = {
        "name": embedder.name,
        "dim": embedder.dim,
        "load_s": round(load_s, 3),
        "batch_texts": len(texts),
        "texts_per_s": round(len(texts) / batch_s, 1),
        "single": _latency_ms(lambda: embedder.embed([next(it)]), singles),
    }
    return result


def semantic_query(cache_dir: Path, scratch: Path, points: int, singles: int) -> dict[str, Any]:
    """p50 of embedding a new query text plus an Edge search over `points` 384-d vectors."""
    rng = np.random.default_rng(11)
    store = EdgeVectorStore(scratch / "qdrant", optimize_after=None)
    store.ensure_collection("bench", 384)
    vectors = rng.standard_normal((points, 384)).astype(np.float32)
    for start in range(0, points, 5000):
        batch = vectors[start : start + 5000]
        store.upsert("bench", [VectorPoint(id=f"p{start + i}", vector=v) for i, v in enumerate(batch)])
    embedder = MiniLMEmbedder(cache_dir=cache_dir)
    embedder.embed(["warm up"])
    queries = iter(log_texts(singles, seed=123))
    search_only = _latency_ms(lambda: store.search("bench", vectors[0], limit=10), singles)
    total = _latency_ms(lambda: store.search("bench", embedder.embed([next(queries)])[0], limit=10), singles)
    store.close()
    return {"points": points, "backend": embedder.backend, "search_only": search_only, "embed_and_search": total}


def run(
    cache_dir: Path,
    n_texts: int = 512,
    singles: int = 50,
    ollama: tuple[str, str] | None = None,
    search_points: int = 20_000,
) -> dict[str, Any]:
    texts = log_texts(n_texts)
    backends: dict[str, Callable[[], Embedder]] = {
        "hashing": lambda: HashingEmbedder(),
        "minilm-onnx": lambda: MiniLMEmbedder(cache_dir=cache_dir, backend="onnx"),
        "minilm-torch": lambda: MiniLMEmbedder(backend="torch"),
    }
    if ollama is not None:
        backends["ollama"] = lambda: OllamaEmbedder(ollama[0], ollama[1])
    results: dict[str, Any] = {}
    for label, build in backends.items():
        try:
            results[label] = measure(build(), texts, singles)
        except EmbedderUnavailable as exc:
            results[label] = {"unavailable": exc.message}

    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        cached = EmbeddingCache(MiniLMEmbedder(cache_dir=cache_dir), scratch / "embeddings.sqlite")
        cached.embed(["database connection refused"])
        results["minilm-cached-repeat"] = {
            "single": _latency_ms(lambda: cached.embed(["database connection refused"]), singles)
        }
        cached.close()
        if search_points:
            results["semantic-query"] = semantic_query(cache_dir, scratch, search_points, singles)
    return {"benchmark": "embed", "threads": MiniLMEmbedder().threads, "results": results}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=512, help="texts in the batch measurement")
    parser.add_argument("--singles", type=int, default=50, help="single-text calls for the latency")
    parser.add_argument("--cache-dir", type=Path, help="where the ONNX export lives (default: a temp dir)")
    parser.add_argument("--search-points", type=int, default=20_000, help="points for the query test (0: skip)")
    parser.add_argument("--ollama", help="URL:MODEL of an Ollama server to measure too, e.g. http://h:11434:nomic")
    args = parser.parse_args(argv)
    ollama = None
    if args.ollama:
        url, _, model = args.ollama.rpartition(":")
        ollama = (url, model)
    if args.cache_dir:
        report = run(args.cache_dir, args.texts, args.singles, ollama, args.search_points)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            report = run(Path(tmp), args.texts, args.singles, ollama, args.search_points)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
