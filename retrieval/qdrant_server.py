"""Qdrant server (or cluster) through `qdrant-client`; also how a store is chosen from settings.

The same code runs against qdrant-client's local mode (`QdrantClient(path=...)` or `":memory:"`), which
stands in for a server in tests. As with Qdrant Edge, the first filter on a payload field creates a
payload index on it (the server then filters through the index; local mode has no indexes and skips it).
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from core.breaker import EngineHealth
from core.errors import EngineUnavailable, InvalidInput, NotFound
from retrieval.qdrant_edge import (
    as_vector,
    check_collection_name,
    check_dim,
    check_filter,
    filter_fields,
    filter_is_empty_set,
)
from retrieval.vectors import VectorFilter, VectorHit, VectorPoint, point_uuid, stored_point

logger = logging.getLogger(__name__)

VECTOR_FAILURES: tuple[type[BaseException], ...] = (ResponseHandlingException, ConnectionError, OSError)
"""A server that cannot be reached (qdrant-client wraps the transport's errors in ResponseHandlingException)."""

_UPSERT_CHUNK = 256

_SCHEMA = {
    "bool": models.PayloadSchemaType.BOOL,
    "keyword": models.PayloadSchemaType.KEYWORD,
    "integer": models.PayloadSchemaType.INTEGER,
    "float": models.PayloadSchemaType.FLOAT,
}


def client_filter(flt: VectorFilter) -> models.Filter | None:
    """The qdrant-client filter for a VectorFilter (None when it has no condition)."""
    must: list[Any] = []
    for key, value in flt.match.items():
        match: Any = models.MatchAny(any=value) if isinstance(value, list) else models.MatchValue(value=value)
        must.append(models.FieldCondition(key=key, match=match))
    for key, (gte, lte) in flt.ranges.items():
        if gte is None and lte is None:
            continue
        must.append(models.FieldCondition(key=key, range=models.Range(gte=gte, lte=lte)))
    return models.Filter(must=must) if must else None


class ServerVectorStore:
    """Vector store on a Qdrant server through `client`; `close()` closes the client."""

    backend = "qdrant-server"

    def __init__(self, client: QdrantClient, *, health: EngineHealth | None = None) -> None:
        self.client = client
        self.health = health or EngineHealth("vectors", failures=VECTOR_FAILURES)
        """Calls go through its breaker: refused at once while the server is down."""
        self._dims: dict[str, int] = {}
        self._indexed: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    @contextmanager
    def _engine(self, what: str, name: str) -> Iterator[None]:
        try:
            with self.health.guarded():
                yield
        except (ResponseHandlingException, UnexpectedResponse, ConnectionError, OSError) as exc:
            raise EngineUnavailable(
                f"Qdrant server failed to {what} (collection {name!r}): {exc}; check DEVMESH_QDRANT_URL"
            ) from exc

    def _dim(self, name: str) -> int:
        dim = self._dims.get(check_collection_name(name))
        if dim is not None:
            return dim
        with self._engine("read the collection", name):
            if not self.client.collection_exists(name):
                raise NotFound(
                    f"vector collection {name!r} does not exist on the Qdrant server; "
                    "it is created when data is first embedded (ensure_collection)",
                    field="collection",
                )
            info = self.client.get_collection(name)
        params = info.config.params.vectors
        if not isinstance(params, models.VectorParams):
            raise InvalidInput(f"collection {name!r} uses named vectors; DevMesh expects one unnamed vector")
        self._dims[name] = params.size
        self._indexed[name] = set(info.payload_schema or {})
        return params.size

    def ensure_collection(self, name: str, dim: int) -> None:
        check_dim(name, dim)
        check_collection_name(name)
        with self._engine("create the collection", name):
            if not self.client.collection_exists(name):
                try:
                    self.client.create_collection(
                        name, vectors_config=models.VectorParams(size=dim, distance=models.Distance.COSINE)
                    )
                    logger.info("created vector collection", extra={"collection": name, "dim": dim})
                except (UnexpectedResponse, ValueError):
                    if not self.client.collection_exists(name):  # not a lost race with another writer
                        raise
        check_dim(name, dim, self._dim(name))

    def upsert(self, name: str, points: Sequence[VectorPoint]) -> None:
        dim = self._dim(name)
        structs = [
            models.PointStruct(
                id=point_uuid(p.id), vector=as_vector(p.vector, dim).tolist(), payload={**p.payload, "_id": p.id}
            )
            for p in points
        ]
        with self._engine("upsert points", name):
            for start in range(0, len(structs), _UPSERT_CHUNK):
                self.client.upsert(name, points=structs[start : start + _UPSERT_CHUNK], wait=True)

    def search(
        self, name: str, vector: np.ndarray, *, limit: int = 10, filter: VectorFilter | None = None
    ) -> list[VectorHit]:
        query = as_vector(vector, self._dim(name), what="query vector")
        if filter is not None:
            check_filter(filter)
        if limit <= 0 or filter_is_empty_set(filter):
            return []
        qfilter = None
        if filter is not None:
            self._index_fields(name, filter)
            qfilter = client_filter(filter)
        with self._engine("search", name):
            result = self.client.query_points(
                name, query=query.tolist(), limit=limit, query_filter=qfilter, with_payload=True
            )
        hits = []
        for sp in result.points:
            payload = dict(sp.payload or {})
            hits.append(VectorHit(id=str(payload.pop("_id")), score=float(sp.score), payload=payload))
        return hits

    def get(self, name: str, ids: Sequence[str]) -> list[VectorPoint]:
        self._dim(name)
        if not ids:
            return []
        with self._engine("retrieve points", name):
            records = self.client.retrieve(name, ids=[point_uuid(i) for i in ids], with_payload=True, with_vectors=True)
        found: dict[str, VectorPoint] = {}
        for rec in records:
            point = stored_point(rec.payload, rec.vector)
            found[point.id] = point
        return [found[i] for i in dict.fromkeys(ids) if i in found]

    def delete(self, name: str, ids: Sequence[str]) -> None:
        self._dim(name)
        if not ids:
            return
        selector = models.PointIdsList(points=[point_uuid(i) for i in ids])
        with self._engine("delete points", name):
            self.client.delete(name, points_selector=selector, wait=True)

    def count(self, name: str) -> int:
        self._dim(name)
        with self._engine("count points", name):
            return int(self.client.count(name, exact=True).count)

    def collections(self) -> list[str]:
        with self._engine("list collections", ""):
            return sorted(c.name for c in self.client.get_collections().collections)

    def dimension(self, name: str) -> int:
        """The vector size of an existing collection (NotFound otherwise)."""
        return self._dim(name)

    def export_points(self, name: str, *, page: int = 1000) -> Iterator[VectorPoint]:
        """Every point of a collection, page by page (scroll, for backups); each point is read whole."""
        self._dim(name)
        offset: Any = None
        while True:
            with self._engine("scroll points", name):
                records, offset = self.client.scroll(
                    name, limit=page, offset=offset, with_payload=True, with_vectors=True
                )
            for rec in records:
                yield stored_point(rec.payload, rec.vector)
            if offset is None:
                return

    def ping(self) -> bool:
        """Whether the server answers now (around the breaker: what the supervisor probes with)."""
        try:
            self.client.get_collections()
        except VECTOR_FAILURES:
            return False
        except UnexpectedResponse:  # it answered (with an error of its own)
            return True
        return True

    def close(self) -> None:
        self.client.close()
        self._dims.clear()
        self._indexed.clear()

    def optimize(self, name: str | None = None) -> None:
        """Nothing to do: the server builds its indexes in the background."""

    def _index_fields(self, name: str, flt: VectorFilter) -> None:
        indexed = self._indexed.setdefault(name, set())
        for key, kind in filter_fields(flt):
            if key in indexed:
                continue
            with self._lock, self._engine(f"create a payload index on {key!r}", name), warnings.catch_warnings():
                # local mode (tests) has no payload indexes and warns about it
                warnings.filterwarnings("ignore", message="Payload indexes have no effect")
                self.client.create_payload_index(name, field_name=key, field_schema=_SCHEMA[kind], wait=True)
            indexed.add(key)
            logger.info("created payload index", extra={"collection": name, "field": key, "kind": kind})
