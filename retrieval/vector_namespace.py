"""Vector collections of one deployment on a shared Qdrant: every collection name gets the namespace's prefix.

`DEVMESH_NAMESPACE=prod` makes the `templates` collection `prod_templates` on the server; callers keep the
plain names of `retrieval.collections`, and `collections()` lists only this namespace's, without the prefix.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from retrieval.vectors import VectorFilter, VectorHit, VectorPoint, VectorStore


class NamespacedVectorStore:
    """A `VectorStore` whose collection names carry `prefix`; anything else is the inner store's."""

    def __init__(self, inner: VectorStore, prefix: str) -> None:
        self.inner: Any = inner  # the Protocol plus each backend's own calls (optimize, ping, health)
        self.prefix = prefix
        self.backend = inner.backend

    def _n(self, name: str) -> str:
        return self.prefix + name

    def ensure_collection(self, name: str, dim: int) -> None:
        self.inner.ensure_collection(self._n(name), dim)

    def upsert(self, name: str, points: Sequence[VectorPoint]) -> None:
        self.inner.upsert(self._n(name), points)

    def search(
        self, name: str, vector: np.ndarray, *, limit: int = 10, filter: VectorFilter | None = None
    ) -> list[VectorHit]:
        return self.inner.search(self._n(name), vector, limit=limit, filter=filter)

    def get(self, name: str, ids: Sequence[str]) -> list[VectorPoint]:
        return self.inner.get(self._n(name), ids)

    def delete(self, name: str, ids: Sequence[str]) -> None:
        self.inner.delete(self._n(name), ids)

    def count(self, name: str) -> int:
        return self.inner.count(self._n(name))

    def collections(self) -> list[str]:
        return sorted(c[len(self.prefix) :] for c in self.inner.collections() if c.startswith(self.prefix))

    def dimension(self, name: str) -> int:
        return int(self.inner.dimension(self._n(name)))

    def export_points(self, name: str, *, page: int = 1000) -> Iterator[VectorPoint]:
        points: Iterator[VectorPoint] = self.inner.export_points(self._n(name), page=page)
        return points

    def optimize(self, name: str | None = None) -> None:
        self.inner.optimize(None if name is None else self._n(name))

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, attr: str) -> Any:  # health, ping and the other backend-specific calls
        return getattr(self.inner, attr)
