"""Qdrant Edge (`qdrant-edge-py`): the embedded, in-process vector store, one shard per collection.

Layout: `<path>/<collection>/` is one Edge shard (its own WAL, segments and `edge_config.json`).
Only one process may open a shard at a time; a second one gets `EngineUnavailable`.

Indexing, following ENGINE-NOTES:
- Payload filters are pushed down to the engine. The first time a field is used in a filter, a payload
  index of the matching type is created on it (and persists): a filtered search without one scans
  payloads (8.7 ms at 20k points) and with one takes ~0.15 ms at 100k. Fields never filtered stay unindexed.
- Edge builds HNSW only when asked (`optimize`), and only over segments above its indexing threshold
  (~6.6k 384-d vectors). Until then search is exact: ~1 ms at 20k points, ~4 ms at 50k, ~9 ms at 100k;
  with HNSW ~1.6 ms at 50k. Optimizing holds the GIL, so the whole process pauses while it runs (87 s
  for 50k random vectors here; real embeddings index about 3 times faster). Hence: an `upsert` call
  that carries at least `optimize_after` points (a bulk load, whose caller is waiting anyway) is
  followed by `optimize`; small incremental upserts never optimize by themselves, and bulk loaders
  that write in small batches call `optimize()` once at the end. Not from request handlers.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as qe

from core.errors import EngineUnavailable, InvalidInput, NotFound
from retrieval.vectors import VectorFilter, VectorHit, VectorPoint, point_uuid, stored_point

logger = logging.getLogger(__name__)

_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_CONFIG_FILE = "edge_config.json"
_UPSERT_CHUNK = 1024


def check_collection_name(name: str) -> str:
    """Collection names become directory names: letters, digits, '_' and '-', at most 64."""
    if not _NAME_RE.match(name):
        raise InvalidInput(
            f"invalid vector collection name {name!r}: use 1-64 letters, digits, '_' or '-'",
            field="collection",
        )
    return name


def check_dim(name: str, dim: int, have: int | None = None) -> None:
    """A collection's vectors have a positive dimension, and the one it was created with (`have`)."""
    if dim <= 0:
        raise InvalidInput(f"vector dimension must be positive, got {dim}", field="dim")
    if have is not None and have != dim:
        raise InvalidInput(
            f"vector collection {name!r} holds {have}-d vectors, not {dim}-d; "
            "use another collection name or delete it and re-embed",
            field="dim",
        )


def as_vector(vector: Any, dim: int, *, what: str = "vector") -> np.ndarray:
    """A 1-D float32 array of length `dim` with finite values, or InvalidInput."""
    arr = np.asarray(vector, dtype=np.float32)
    if arr.ndim != 1 or arr.shape[0] != dim:
        raise InvalidInput(f"{what} has shape {arr.shape}, expected ({dim},)", field=what)
    if not np.isfinite(arr).all():
        raise InvalidInput(f"{what} contains NaN or infinite values", field=what)
    return arr


def index_kind_for(value: Any, *, is_range: bool) -> str:
    """Payload index kind for a filter value: 'bool', 'keyword', 'integer' or 'float'."""
    if is_range:
        return "float"
    sample = value[0] if isinstance(value, list) and value else value
    if isinstance(sample, bool):
        return "bool"
    if isinstance(sample, int):
        return "integer"
    return "keyword"


_EDGE_SCHEMA = {
    "bool": qe.PayloadSchemaType.Bool,
    "keyword": qe.PayloadSchemaType.Keyword,
    "integer": qe.PayloadSchemaType.Integer,
    "float": qe.PayloadSchemaType.Float,
}


def _edge_match(value: Any) -> Any:
    if isinstance(value, list):
        return qe.MatchAny(value)
    if isinstance(value, bool):
        # qdrant-edge-py 0.9.0 turns a Python bool into an int (True -> 1), which then matches no
        # boolean payload; numpy.bool_ is converted to a real boolean.
        return qe.MatchValue(np.bool_(value))  # type: ignore[arg-type]
    return qe.MatchValue(value)


def edge_filter(flt: VectorFilter) -> qe.Filter | None:
    """The Edge filter for a VectorFilter (None when it has no condition)."""
    must: list[Any] = []
    for key, value in flt.match.items():
        must.append(qe.FieldCondition(key, match=_edge_match(value)))
    for key, (gte, lte) in flt.ranges.items():
        if gte is None and lte is None:
            continue
        must.append(qe.FieldCondition(key, range=qe.RangeFloat(gte=gte, lte=lte)))
    return qe.Filter(must=must) if must else None


def check_filter(flt: VectorFilter) -> None:
    """Refuse what neither backend can express: a list of booleans (match True or False instead)."""
    for key, value in flt.match.items():
        if isinstance(value, list) and any(isinstance(v, bool) for v in value):
            raise InvalidInput(f"filter on {key!r}: a list of booleans cannot be matched", field="filter")


def filter_is_empty_set(flt: VectorFilter | None) -> bool:
    """True when the filter matches nothing by construction (an empty list of allowed values)."""
    return flt is not None and any(isinstance(v, list) and not v for v in flt.match.values())


def filter_fields(flt: VectorFilter) -> list[tuple[str, str]]:
    """(field, index kind) for every field the filter reads."""
    fields = [(k, index_kind_for(v, is_range=False)) for k, v in flt.match.items()]
    fields += [(k, "float") for k, (lo, hi) in flt.ranges.items() if lo is not None or hi is not None]
    return fields


class _Collection:
    def __init__(self, shard: qe.EdgeShard, dim: int, indexed: set[str]) -> None:
        self.shard = shard
        self.dim = dim
        self.indexed = indexed
        self.pending = 0  # points upserted since the last optimize (in this process)
        self.warned = False


class EdgeVectorStore:
    """Vector store on Qdrant Edge shards under `path`, one shard per collection."""

    backend = "qdrant-edge"

    def __init__(self, path: Path, *, optimize_after: int | None = 5_000, warn_pending: int = 50_000) -> None:
        self.path = Path(path)
        self.optimize_after = optimize_after
        self.warn_pending = warn_pending
        self._open: dict[str, _Collection] = {}
        self._lock = threading.RLock()

    # -- shards ---------------------------------------------------------------------------------

    def _dir(self, name: str) -> Path:
        return self.path / check_collection_name(name)

    @staticmethod
    def _stored_dim(directory: Path) -> int:
        config = json.loads((directory / _CONFIG_FILE).read_text())
        return int(config["vectors"][""]["size"])

    @contextmanager
    def _engine(self, what: str, name: str) -> Iterator[None]:
        try:
            yield
        except (InvalidInput, NotFound):
            raise
        except Exception as exc:  # the bindings raise plain Exception
            raise EngineUnavailable(
                f"Qdrant Edge failed to {what} (collection {name!r} under {self.path}): {exc}"
            ) from exc

    def _collection(self, name: str) -> _Collection:
        with self._lock:
            coll = self._open.get(name)
            if coll is not None:
                return coll
            directory = self._dir(name)
            if not (directory / _CONFIG_FILE).exists():
                raise NotFound(
                    f"vector collection {name!r} does not exist under {self.path}; "
                    "it is created when data is first embedded (ensure_collection)",
                    field="collection",
                )
            with self._engine("open the shard (is another DevMesh process using it?)", name):
                shard = qe.EdgeShard.load(str(directory))
                indexed = set(shard.info().payload_schema)
            coll = _Collection(shard, self._stored_dim(directory), indexed)
            self._open[name] = coll
            return coll

    # -- VectorStore ----------------------------------------------------------------------------

    def ensure_collection(self, name: str, dim: int) -> None:
        check_dim(name, dim)
        with self._lock:
            directory = self._dir(name)
            if not (directory / _CONFIG_FILE).exists():
                directory.mkdir(parents=True, exist_ok=True)
                config = qe.EdgeConfig(vectors=qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine))
                with self._engine("create the shard", name):
                    shard = qe.EdgeShard.create(str(directory), config)
                self._open[name] = _Collection(shard, dim, set())
                logger.info("created vector collection", extra={"collection": name, "dim": dim})
                return
            check_dim(name, dim, self._collection(name).dim)

    def upsert(self, name: str, points: Sequence[VectorPoint]) -> None:
        coll = self._collection(name)
        edge_points = [self._point(p, coll.dim) for p in points]
        with self._engine("upsert points", name):
            for start in range(0, len(edge_points), _UPSERT_CHUNK):
                chunk = edge_points[start : start + _UPSERT_CHUNK]
                coll.shard.update(qe.UpdateOperation.upsert_points(chunk))
        coll.pending += len(edge_points)
        if self.optimize_after is not None and len(edge_points) >= self.optimize_after:
            self.optimize(name)
        elif coll.pending >= self.warn_pending and not coll.warned:
            coll.warned = True
            logger.warning(
                "many vectors upserted without optimize; searches stay exact but slow down",
                extra={"collection": name, "pending": coll.pending},
            )

    @staticmethod
    def _point(point: VectorPoint, dim: int) -> qe.Point:
        vector = as_vector(point.vector, dim).tolist()
        try:
            return qe.Point(point_uuid(point.id), vector, {**point.payload, "_id": point.id})
        except (TypeError, ValueError) as exc:
            raise InvalidInput(
                f"payload of point {point.id!r} holds a value that is not JSON "
                f"(str, finite number, bool, null, list, object): {str(exc).splitlines()[0]}",
                field="payload",
            ) from exc

    def search(
        self, name: str, vector: np.ndarray, *, limit: int = 10, filter: VectorFilter | None = None
    ) -> list[VectorHit]:
        coll = self._collection(name)
        query = as_vector(vector, coll.dim, what="query vector")
        if filter is not None:
            check_filter(filter)
        if limit <= 0 or filter_is_empty_set(filter):
            return []
        edge_flt = None
        if filter is not None:
            self._index_fields(name, coll, filter)
            edge_flt = edge_filter(filter)
        request = qe.QueryRequest(
            limit=limit, query=qe.Query.Nearest(query.tolist()), filter=edge_flt, with_payload=True
        )
        with self._engine("search", name):
            scored = coll.shard.query(request)
        hits = []
        for sp in scored:
            payload = dict(sp.payload or {})
            hits.append(VectorHit(id=str(payload.pop("_id")), score=float(sp.score), payload=payload))
        return hits

    def get(self, name: str, ids: Sequence[str]) -> list[VectorPoint]:
        coll = self._collection(name)
        if not ids:
            return []
        with self._engine("retrieve points", name):
            records = coll.shard.retrieve([point_uuid(i) for i in ids], with_payload=True, with_vector=True)
        found: dict[str, VectorPoint] = {}
        for rec in records:
            point = stored_point(rec.payload, rec.vector)
            found[point.id] = point
        return [found[i] for i in dict.fromkeys(ids) if i in found]

    def delete(self, name: str, ids: Sequence[str]) -> None:
        coll = self._collection(name)
        if not ids:
            return
        with self._engine("delete points", name):
            coll.shard.update(qe.UpdateOperation.delete_points([point_uuid(i) for i in ids]))

    def count(self, name: str) -> int:
        coll = self._collection(name)
        with self._engine("count points", name):
            return int(coll.shard.count(qe.CountRequest(exact=True)))

    def collections(self) -> list[str]:
        if not self.path.is_dir():
            return []
        return sorted(p.name for p in self.path.iterdir() if (p / _CONFIG_FILE).is_file())

    def close(self) -> None:
        with self._lock:
            for name, coll in list(self._open.items()):
                with self._engine("flush and close the shard", name):
                    coll.shard.flush()
                    coll.shard.close()
            self._open.clear()

    # -- Edge-specific ----------------------------------------------------------------------------

    def dimension(self, name: str) -> int:
        """The vector size of an existing collection (NotFound otherwise)."""
        return self._collection(name).dim

    def export_points(self, name: str, *, page: int = 1000) -> Iterator[VectorPoint]:
        """Every point of a collection, page by page (for backups); each point is read whole."""
        coll = self._collection(name)
        offset = None
        while True:
            with self._engine("scroll points", name):
                records, offset = coll.shard.scroll(
                    qe.ScrollRequest(offset=offset, limit=page, with_payload=True, with_vector=True)
                )
            for rec in records:
                yield stored_point(rec.payload, rec.vector)
            if offset is None:
                return

    def optimize(self, name: str | None = None) -> None:
        """Merge segments and build HNSW where a segment is large enough; blocks until done.

        Call once after a bulk load, from a batch job: it holds the GIL, seconds for tens of thousands
        of points, minutes for hundreds of thousands (ENGINE-NOTES). Cheap when nothing is to do.
        """
        names = [name] if name is not None else self.collections()
        for n in names:
            coll = self._collection(n)
            started = time.perf_counter()
            with self._engine("optimize", n):
                changed = coll.shard.optimize()
            coll.pending, coll.warned = 0, False
            logger.info(
                "optimized vector collection",
                extra={"collection": n, "changed": changed, "seconds": round(time.perf_counter() - started, 3)},
            )

    def indexed_vectors(self, name: str) -> int:
        """How many vectors of the collection are in an HNSW index (the rest are searched exactly)."""
        with self._engine("read shard info", name):
            return int(self._collection(name).shard.info().indexed_vectors_count)

    def payload_indexes(self, name: str) -> list[str]:
        """Payload fields with an index (created on first use in a filter)."""
        with self._engine("read shard info", name):
            return sorted(self._collection(name).shard.info().payload_schema)

    def _index_fields(self, name: str, coll: _Collection, flt: VectorFilter) -> None:
        for key, kind in filter_fields(flt):
            if key in coll.indexed:
                continue
            with self._lock:
                if key in coll.indexed:
                    continue
                with self._engine(f"create a payload index on {key!r}", name):
                    coll.shard.update(qe.UpdateOperation.create_field_index(key, _EDGE_SCHEMA[kind]))
                coll.indexed.add(key)
            logger.info("created payload index", extra={"collection": name, "field": key, "kind": kind})
