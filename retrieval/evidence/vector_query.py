"""The symptoms embedded once for every vector search of a gathering, and the recorded search itself.

`vector_params` writes a search down for its step (collection, limit and the filter, long id lists
shortened); `search` runs one search as a step, or records why it did not (the collection is missing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from retrieval.evidence.context import Gathering, short
from retrieval.vectors import VectorFilter, VectorHit

if TYPE_CHECKING:
    from retrieval.embedders import Embedder
    from retrieval.vectors import VectorStore


@dataclass(frozen=True)
class VectorQuery:
    """The symptom text, its embedding, and the stores and collections to search with it."""

    text: str
    vector: np.ndarray
    present: tuple[str, ...]
    """The collections that exist."""
    vectors: VectorStore
    embedder: Embedder


def embed_symptoms(ctx: Gathering, text: str) -> VectorQuery | None:
    """The symptoms embedded, and the collections listed; None (and a note) when there is nothing to search
    with."""
    vectors, embedder = ctx.vectors, ctx.embedder
    if vectors is None or embedder is None:
        ctx.notes.append("no embedder or vector store: vector search skipped")
        return None
    if not text:
        ctx.notes.append("no symptom text (no signals, no error lines in the window): vector search skipped")
        return None
    vector: np.ndarray | None = ctx.log.run(
        "embedder.embed",
        text,
        {"model": embedder.name, "texts": 1},
        lambda: np.asarray(embedder.embed([text])[0], dtype=np.float32),
        default=None,
        count=lambda v: 0 if v is None else 1,
    )
    if vector is None:
        return None
    present = ctx.log.run("vectors.collections", "list the collections", {}, vectors.collections, default=[])
    return VectorQuery(text=text, vector=vector, present=tuple(present), vectors=vectors, embedder=embedder)


def vector_params(collection: str, limit: int, flt: VectorFilter | None) -> dict[str, Any]:
    """A search as the parameters of its step."""
    params: dict[str, Any] = {"collection": collection, "limit": limit}
    if flt is not None:
        match = {k: short([str(x) for x in v]) if isinstance(v, list) else v for k, v in flt.match.items()}
        params["filter"] = {"match": match, "ranges": {k: list(v) for k, v in flt.ranges.items()}}
    return params


def search(ctx: Gathering, q: VectorQuery, name: str, limit: int, flt: VectorFilter | None = None) -> list[VectorHit]:
    """One recorded search of collection `name` near the symptoms ([] when it does not exist)."""
    params = vector_params(name, limit, flt)
    if name not in q.present:
        ctx.log.skip("vectors.search", q.text, params, f"collection {name!r} does not exist")
        return []
    found: list[VectorHit] = ctx.log.run(
        "vectors.search",
        q.text,
        params,
        lambda: q.vectors.search(name, q.vector, limit=limit, filter=flt),
        default=[],
    )
    return found
