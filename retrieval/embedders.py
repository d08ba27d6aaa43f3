"""The embedder interface, a dependency-free hashing embedder for tests, and the factory.

Backends: `retrieval/embedder_minilm.py` (local all-MiniLM-L6-v2, the default),
`retrieval/embedder_ollama.py` (an Ollama server), and `retrieval/embedding_cache.py`, which wraps any
of them so each distinct text is embedded once, across restarts.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Protocol

import numpy as np

_TOKEN_RE = re.compile(r"[a-z0-9]+")


class Embedder(Protocol):
    """Turns texts into L2-normalized float32 vectors of shape (len(texts), dim)."""

    @property
    def name(self) -> str:
        """Identifies the model; vectors from embedders with different names are not comparable."""

    @property
    def dim(self) -> int:
        """Length of every vector."""

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


class HashingEmbedder:
    """Feature hashing of words and character trigrams. TEST-ONLY QUALITY.

    Deterministic across processes and dependency-free, so tests of other modules can embed without
    loading a model. Texts that share words get similar vectors; nothing more semantic than that.
    """

    def __init__(self, dim: int = 384) -> None:
        if dim <= 0:
            raise ValueError("dim must be positive")
        self.dim = dim
        self.name = f"hashing-{dim}"

    def _features(self, text: str) -> list[str]:
        words = _TOKEN_RE.findall(text.lower())
        grams = [f"#{w[i : i + 3]}" for w in words for i in range(max(1, len(w) - 2))]
        return words + grams or ["<empty>"]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for feature in self._features(text):
                digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
                bucket = int.from_bytes(digest[:4], "little") % self.dim
                out[row, bucket] += 1.0 if digest[4] & 1 else -1.0
        empty = ~out.any(axis=1)  # every feature cancelled out: fall back to a fixed unit vector
        out[empty, 0] = 1.0
        return l2_normalize(out)
