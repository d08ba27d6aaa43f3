"""Embedders: hashing (test-only), the persistent cache, Ollama (against a fake /api/embed), MiniLM."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.errors import EmbedderUnavailable
from core.settings import Settings
from retrieval import embedder_minilm
from retrieval.embedder_factory import make_embedder
from retrieval.embedder_minilm import MiniLMEmbedder
from retrieval.embedder_ollama import OllamaEmbedder
from retrieval.embedders import HashingEmbedder
from retrieval.embedding_cache import EmbeddingCache

REPO = Path(__file__).resolve().parents[2]


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b))


# -- a fake Ollama server speaking the real /api/embed JSON ---------------------------------------

FAKE_DIM = 6


def fake_vector(text: str) -> list[float]:
    """Deterministic, not normalized (so the client's normalization is tested)."""
    return [b / 64 + 0.5 for b in hashlib.sha256(text.encode()).digest()[:FAKE_DIM]]


class FakeOllama(ThreadingHTTPServer):
    models = {"nomic-embed-text", "broken"}

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _FakeHandler)
        self.requests: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _FakeHandler(BaseHTTPRequestHandler):
    server: FakeOllama

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        if self.path != "/api/embed":
            self._reply(404, {"error": "404 page not found"})
            return
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append(body)
        model = body.get("model", "")
        if model not in self.server.models:
            self._reply(404, {"error": f'model "{model}" not found, try pulling it first'})
            return
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        embeddings = [fake_vector(t) for t in inputs]
        if model == "broken":
            embeddings = embeddings[:-1]
        self._reply(
            200,
            {
                "model": model,
                "embeddings": embeddings,
                "total_duration": 1000,
                "load_duration": 10,
                "prompt_eval_count": len(inputs),
            },
        )


@pytest.fixture
def fake_ollama() -> Iterator[FakeOllama]:
    server = FakeOllama()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


# -- HashingEmbedder ------------------------------------------------------------------------------


def test_hashing_embedder_shape_norm_and_similarity() -> None:
    emb = HashingEmbedder(dim=64)
    vectors = emb.embed(["database connection refused", "connection refused by database host", "user logged in"])
    assert vectors.shape == (3, 64)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    assert _cos(vectors[0], vectors[1]) > _cos(vectors[0], vectors[2]) + 0.3
    assert emb.embed([]).shape == (0, 64)
    (empty,) = emb.embed([""])
    assert np.linalg.norm(empty) == pytest.approx(1.0)
    assert emb.name == "hashing-64"
    assert HashingEmbedder().dim == 384


def test_hashing_embedder_is_deterministic_across_processes() -> None:
    texts = ["Timeout calling payment-service", "kernel: oom-killer"]
    code = (
        "import json; from retrieval.embedders import HashingEmbedder; "
        f"print(json.dumps(HashingEmbedder(32).embed({texts!r}).tolist()))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True, timeout=60)
    np.testing.assert_array_equal(np.array(json.loads(out.stdout), dtype=np.float32), HashingEmbedder(32).embed(texts))


# -- EmbeddingCache -------------------------------------------------------------------------------


class CountingEmbedder:
    """Records what reaches the real embedder behind the cache."""

    def __init__(self, inner: HashingEmbedder) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.calls: list[list[str]] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return self.inner.embed(texts)


def test_cache_embeds_each_distinct_text_once_across_restarts(tmp_path: Path) -> None:
    db = tmp_path / "models" / "embeddings.sqlite"
    hashing = HashingEmbedder(dim=16)
    first = CountingEmbedder(hashing)
    cache = EmbeddingCache(first, db)
    assert (cache.name, cache.dim) == ("hashing-16", 16)

    got = cache.embed(["a b", "c d", "a b"])
    assert first.calls == [["a b", "c d"]]
    np.testing.assert_array_equal(got, hashing.embed(["a b", "c d", "a b"]))
    assert got.dtype == np.float32

    got = cache.embed(["c d", "e f"])
    assert first.calls == [["a b", "c d"], ["e f"]]
    np.testing.assert_array_equal(got, hashing.embed(["c d", "e f"]))
    assert (cache.memory_hits, cache.computed) == (1, 3)
    cache.close()

    second = CountingEmbedder(hashing)
    restarted = EmbeddingCache(second, db)
    got = restarted.embed(["e f", "a b", "c d"])
    assert second.calls == []
    assert restarted.disk_hits == 3
    np.testing.assert_array_equal(got, hashing.embed(["e f", "a b", "c d"]))
    assert restarted.embed([]).shape == (0, 16)
    restarted.close()


def test_cache_keeps_embedders_apart_and_survives_eviction(tmp_path: Path) -> None:
    db = tmp_path / "embeddings.sqlite"
    small = CountingEmbedder(HashingEmbedder(dim=8))
    cache8 = EmbeddingCache(small, db, memory_items=1)
    cache8.embed(["x", "y", "z"])
    np.testing.assert_array_equal(cache8.embed(["x", "y"]), HashingEmbedder(8).embed(["x", "y"]))
    assert small.calls == [["x", "y", "z"]]  # evicted from memory, found on disk

    other = CountingEmbedder(HashingEmbedder(dim=12))
    cache12 = EmbeddingCache(other, db)
    assert cache12.embed(["x"]).shape == (1, 12)
    assert other.calls == [["x"]]
    cache8.close()
    cache12.close()


# -- OllamaEmbedder -------------------------------------------------------------------------------


def test_ollama_embeds_in_batches_and_normalizes(fake_ollama: FakeOllama) -> None:
    emb = OllamaEmbedder(fake_ollama.url, "nomic-embed-text", batch_size=2)
    texts = ["one", "two", "three", "four", "five"]
    vectors = emb.embed(texts)
    assert emb.name == "ollama:nomic-embed-text"
    assert emb.dim == FAKE_DIM
    assert vectors.shape == (5, FAKE_DIM)
    assert vectors.dtype == np.float32
    expected = np.array([fake_vector(t) for t in texts], dtype=np.float32)
    np.testing.assert_allclose(vectors, expected / np.linalg.norm(expected, axis=1, keepdims=True), atol=1e-6)
    assert [r["input"] for r in fake_ollama.requests] == [["one", "two"], ["three", "four"], ["five"]]
    assert {r["model"] for r in fake_ollama.requests} == {"nomic-embed-text"}
    emb.close()


def test_ollama_dim_probes_the_server(fake_ollama: FakeOllama) -> None:
    emb = OllamaEmbedder(fake_ollama.url, "nomic-embed-text")
    assert fake_ollama.requests == []
    assert emb.dim == FAKE_DIM
    assert len(fake_ollama.requests) == 1
    emb.close()


def test_ollama_errors_become_embedder_unavailable(fake_ollama: FakeOllama) -> None:
    missing = OllamaEmbedder(fake_ollama.url, "no-such-model")
    with pytest.raises(EmbedderUnavailable, match="ollama pull no-such-model") as err:
        missing.embed(["x"])
    assert err.value.details == {"status": 404}

    with pytest.raises(EmbedderUnavailable, match="returned"):
        OllamaEmbedder(fake_ollama.url, "broken").embed(["a", "b"])

    port = fake_ollama.server_address[1]
    fake_ollama.shutdown()
    fake_ollama.server_close()
    with pytest.raises(EmbedderUnavailable, match="cannot reach"):
        OllamaEmbedder(f"http://127.0.0.1:{port}", "nomic-embed-text", timeout_s=5).embed(["x"])


# -- make_embedder --------------------------------------------------------------------------------


def test_make_embedder_none_and_minilm_are_lazy(tmp_path: Path) -> None:
    assert make_embedder(Settings(home=tmp_path, embedder="none", _env_file=None), tmp_path / "models") is None
    built = make_embedder(Settings(home=tmp_path, embedder="minilm", _env_file=None), tmp_path / "models")
    assert isinstance(built, EmbeddingCache)
    assert isinstance(built.embedder, MiniLMEmbedder)
    assert (built.name, built.dim) == ("all-MiniLM-L6-v2-int8", 384)
    assert built.embedder.backend is None  # nothing loaded yet
    assert not (tmp_path / "models").exists()


def test_make_embedder_ollama_end_to_end(tmp_path: Path, fake_ollama: FakeOllama) -> None:
    settings = Settings(home=tmp_path, embedder="ollama:nomic-embed-text", ollama_host=fake_ollama.url, _env_file=None)
    built = make_embedder(settings, tmp_path / "models")
    assert isinstance(built, EmbeddingCache)
    assert built.name == "ollama:nomic-embed-text"
    first = built.embed(["disk full on node-3", "disk full on node-3"])
    again = built.embed(["disk full on node-3"])
    np.testing.assert_array_equal(first[0], again[0])
    assert [r["input"] for r in fake_ollama.requests] == [["disk full on node-3"]]
    assert (tmp_path / "models" / "embeddings.sqlite").is_file()
    built.close()


def test_importing_embedders_loads_no_model() -> None:
    code = (
        "import sys, retrieval.embedders, retrieval.embedder_minilm, retrieval.embedding_cache; "
        "print(sorted(m for m in ('torch', 'onnxruntime', 'sentence_transformers', 'transformers') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


# -- MiniLM (loads the real model) ----------------------------------------------------------------

TEXTS = [
    "Connection refused to db-primary:5432",
    "user <*> logged in",
    "",
    "kernel: Out of memory: Killed process 1234 (java) total-vm:8123456kB",
    "Zeitüberschreitung beim Verbinden mit dem Zahlungsdienst ✗",
    "Timeout after 30000 ms calling payment-service /api/v1/charge, retries exhausted, circuit open. " * 30,
]


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    """Vectors from sentence-transformers itself, the definition of the model's output."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(embedder_minilm.model_dir()), device="cpu")
    return np.asarray(model.encode(TEXTS, normalize_embeddings=True), dtype=np.float32)


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.mark.slow
def test_minilm_onnx_matches_sentence_transformers(onnx_cache: Path, reference: np.ndarray) -> None:
    emb = MiniLMEmbedder(cache_dir=onnx_cache, quantize=False)
    assert emb.backend is None
    vectors = emb.embed(TEXTS)
    assert emb.backend == "onnx"
    assert embedder_minilm.onnx_path(onnx_cache).is_file()
    assert vectors.shape == (len(TEXTS), 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.sum(vectors * reference, axis=1).min() >= 0.999
    one_by_one = np.vstack([emb.embed([t]) for t in TEXTS])  # no padding: same vectors
    assert np.sum(one_by_one * reference, axis=1).min() >= 0.999


@pytest.mark.slow
def test_minilm_int8_stays_close_to_the_model(onnx_cache: Path, reference: np.ndarray) -> None:
    emb = MiniLMEmbedder(cache_dir=onnx_cache)  # the default: int8
    vectors = emb.embed(TEXTS)
    assert emb.backend == "onnx-int8"
    assert emb.name == "all-MiniLM-L6-v2-int8"
    cosines = np.sum(vectors * reference, axis=1)
    assert cosines.mean() >= 0.98 and cosines.min() >= 0.94


@pytest.mark.slow
def test_minilm_reuses_the_export_and_ranks_by_meaning(onnx_cache: Path, reference: np.ndarray) -> None:
    MiniLMEmbedder(cache_dir=onnx_cache).embed(["warm up"])  # exports if this test runs alone
    stamp = embedder_minilm.onnx_path(onnx_cache).stat().st_mtime_ns
    emb = MiniLMEmbedder(cache_dir=onnx_cache, threads=1)
    query, near, far = emb.embed(["database connection refused", "cannot connect to postgres", "user logged in"])
    assert emb.backend == "onnx-int8"
    assert embedder_minilm.onnx_path(onnx_cache).stat().st_mtime_ns == stamp
    assert _cos(query, near) > _cos(query, far)


@pytest.mark.slow
def test_minilm_falls_back_to_torch_when_export_fails(
    tmp_path: Path, reference: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_onnx(target: Path) -> Path:
        raise ModuleNotFoundError("No module named 'onnx'")

    monkeypatch.setattr(embedder_minilm, "export_onnx", no_onnx)
    emb = MiniLMEmbedder(cache_dir=tmp_path)
    vectors = emb.embed(TEXTS)
    assert emb.backend == "torch"
    assert np.sum(vectors * reference, axis=1).min() >= 0.999
    with pytest.raises(EmbedderUnavailable):
        MiniLMEmbedder(cache_dir=tmp_path, backend="onnx").embed(["x"])
