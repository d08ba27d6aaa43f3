"""The vector store interface. Backends: Qdrant Edge (embedded, default) and qdrant-client (server).

Both pass the same conformance suite (`tests/integration/test_vectorstore_conformance.py`).
Point ids are DevMesh string ids; backends map them to UUIDs and keep the original in the payload
under `_id`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

_NAMESPACE = uuid.UUID("6f1c2a4e-9d7b-4c1e-8a53-2b6f0e9d4c71")


def point_uuid(point_id: str) -> str:
    """Stable UUID for a DevMesh string id."""
    return str(uuid.uuid5(_NAMESPACE, point_id))


@dataclass(frozen=True)
class VectorPoint:
    id: str
    vector: np.ndarray
    payload: dict[str, Any] = field(default_factory=dict)


def stored_point(payload: dict[str, Any] | None, vector: Any) -> VectorPoint:
    """A point as a backend returns it, back as DevMesh's: the original id comes out of the payload (`_id`)."""
    rest = dict(payload or {})
    pid = str(rest.pop("_id"))
    return VectorPoint(id=pid, vector=np.asarray(vector, dtype=np.float32), payload=rest)


@dataclass(frozen=True)
class VectorHit:
    id: str
    score: float
    payload: dict[str, Any]


@dataclass(frozen=True)
class VectorFilter:
    """Conjunction of conditions on payload fields.

    `match`: field equals the value, or any of the values when a list is given.
    `ranges`: field within [gte, lte]; either bound may be None.
    """

    match: dict[str, str | int | bool | list[str] | list[int]] = field(default_factory=dict)
    ranges: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)


class VectorStore(Protocol):
    backend: str

    def ensure_collection(self, name: str, dim: int) -> None:
        """Create the collection (cosine distance) if it does not exist; idempotent."""

    def upsert(self, name: str, points: Sequence[VectorPoint]) -> None: ...

    def search(
        self, name: str, vector: np.ndarray, *, limit: int = 10, filter: VectorFilter | None = None
    ) -> list[VectorHit]:
        """Nearest points by cosine similarity, best first; score in [-1, 1]."""

    def get(self, name: str, ids: Sequence[str]) -> list[VectorPoint]: ...

    def delete(self, name: str, ids: Sequence[str]) -> None: ...

    def count(self, name: str) -> int: ...

    def collections(self) -> list[str]: ...

    def dimension(self, name: str) -> int:
        """The vector size of an existing collection; NotFound when it does not exist."""

    def export_points(self, name: str, *, page: int = 1000) -> Iterator[VectorPoint]:
        """Every point of the collection (id, vector, payload), page by page (backups)."""

    def close(self) -> None:
        """Flush and release; data persists for the next open."""
