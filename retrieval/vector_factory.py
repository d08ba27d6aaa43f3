"""The vector store the settings ask for: Qdrant Edge in-process, or a Qdrant server through qdrant-client."""

from __future__ import annotations

from core.settings import Settings
from retrieval.qdrant_edge import EdgeVectorStore
from retrieval.vector_namespace import NamespacedVectorStore
from retrieval.vectors import VectorStore


def open_vector_store(settings: Settings) -> VectorStore:
    """Qdrant server when `settings.qdrant_url` is set, else Qdrant Edge under `settings.qdrant_dir`; with
    `settings.namespace`, every collection name carries the namespace's prefix."""
    store = _open(settings)
    return NamespacedVectorStore(store, settings.namespaced("")) if settings.namespace else store


def _open(settings: Settings) -> VectorStore:
    if settings.qdrant_url:
        # optional backend, imported here so that qdrant-client (about 1.5 s) loads only when it is used
        from qdrant_client import QdrantClient

        from retrieval.qdrant_server import ServerVectorStore

        # no background version probe: an unreachable server surfaces as EngineUnavailable on first use
        client = QdrantClient(url=settings.qdrant_url, api_key=settings.qdrant_api_key, check_compatibility=False)
        return ServerVectorStore(client)
    return EdgeVectorStore(settings.qdrant_dir)
