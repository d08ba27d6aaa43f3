"""Embeddings from an Ollama server (`DEVMESH_EMBEDDER=ollama:<model>`), through its /api/embed."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

import httpx
import numpy as np
import ollama

from core.errors import EmbedderUnavailable
from retrieval.embedders import l2_normalize

logger = logging.getLogger(__name__)

DEFAULT_HOST = "http://127.0.0.1:11434"


class OllamaEmbedder:
    """Embeds with `model` on the Ollama server at `host`; `dim` is learned from the first answer."""

    def __init__(self, host: str | None, model: str, *, batch_size: int = 64, timeout_s: float = 60.0) -> None:
        self.host = host or DEFAULT_HOST
        self.model = model
        self.name = f"ollama:{model}"
        self.batch_size = batch_size
        self._client = ollama.Client(host=self.host, timeout=timeout_s)
        self._dim: int | None = None
        self._lock = threading.Lock()

    @property
    def dim(self) -> int:
        """Vector length; asks the server once (embedding a probe text) if nothing was embedded yet."""
        if self._dim is None:
            self.embed(["dimension probe"])
        assert self._dim is not None
        return self._dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self._dim or 0), dtype=np.float32)
        rows: list[np.ndarray] = []
        for start in range(0, len(texts), self.batch_size):
            rows.append(self._request(texts[start : start + self.batch_size]))
        vectors = np.vstack(rows)
        with self._lock:
            if self._dim is None:
                self._dim = vectors.shape[1]
            elif vectors.shape[1] != self._dim:
                raise EmbedderUnavailable(
                    f"Ollama model {self.model!r} returned {vectors.shape[1]}-d vectors after {self._dim}-d ones"
                )
        return l2_normalize(vectors)

    def close(self) -> None:
        self._client.close()

    def _request(self, batch: list[str]) -> np.ndarray:
        where = f"Ollama at {self.host}"
        try:
            response = self._client.embed(model=self.model, input=batch)
        except ollama.ResponseError as exc:
            raise EmbedderUnavailable(
                f"{where} refused to embed with {self.model!r} (HTTP {exc.status_code}: {exc.error}); "
                f"run `ollama pull {self.model}` or pick another DEVMESH_EMBEDDER",
                details={"status": exc.status_code},
            ) from exc
        except (ConnectionError, httpx.HTTPError) as exc:
            raise EmbedderUnavailable(
                f"cannot reach {where} ({exc}); start Ollama or set OLLAMA_HOST / DEVMESH_EMBEDDER"
            ) from exc
        except ValueError as exc:  # a body that is not JSON, or JSON without "embeddings"
            raise EmbedderUnavailable(f"{where} sent an answer that is not an embedding: {exc}") from exc
        vectors = np.asarray(response.embeddings, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(batch) or vectors.shape[1] == 0:
            raise EmbedderUnavailable(
                f"{where} returned {vectors.shape} embeddings for {len(batch)} texts with {self.model!r}"
            )
        return vectors
