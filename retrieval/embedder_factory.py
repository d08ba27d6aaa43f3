"""The embedder the settings ask for: MiniLM, Ollama or none, behind a persistent cache."""

from __future__ import annotations

from pathlib import Path

from core.settings import Settings
from retrieval.embedder_minilm import MiniLMEmbedder
from retrieval.embedder_ollama import OllamaEmbedder
from retrieval.embedders import Embedder
from retrieval.embedding_cache import EmbeddingCache


def make_embedder(settings: Settings, cache_dir: Path) -> Embedder | None:
    """The embedder the settings ask for, wrapped in a persistent cache under `cache_dir`.

    `cache_dir` (normally `DEVMESH_HOME/models`) holds `embeddings.sqlite`; the ONNX export of MiniLM is
    kept in `settings.model_dir`, shared by every DEVMESH_HOME. Returns None for `embedder = 'none'`.
    Nothing is loaded until the first embed.
    """
    inner: Embedder
    if settings.embedder == "none":
        return None
    if settings.embedder == "minilm":
        inner = MiniLMEmbedder(cache_dir=settings.model_dir)
    elif settings.embedder.startswith("ollama:"):
        inner = OllamaEmbedder(host=settings.ollama_host, model=settings.embedder.removeprefix("ollama:"))
    else:  # Settings validates the value; this is a programming error
        raise ValueError(f"unknown embedder {settings.embedder!r}")
    return EmbeddingCache(inner, cache_dir / "embeddings.sqlite")
