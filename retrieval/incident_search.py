"""The one search of past incidents by meaning, in the `incidents` vector collection.

Incidents are indexed by their symptoms (`detect.incidents`); a search embeds the query text (or takes
the caller's embedding of it) and returns the nearest incidents, best first. The incident book, the
agents' similar-incident step and the evidence gathering all search through `search_incidents`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from retrieval.collections import INCIDENTS
from retrieval.vectors import VectorFilter

if TYPE_CHECKING:
    from retrieval.embedders import Embedder
    from retrieval.vectors import VectorStore

MAX_QUERY_CHARS = 2000
"""Query text beyond this is not embedded (incidents are indexed by at most as much)."""


@dataclass(frozen=True)
class IncidentHit:
    """A past incident near the query."""

    incident_id: str
    similarity: float
    """Cosine similarity of its indexed text to the query, as the vector store gave it."""
    payload: Mapping[str, Any]
    """What the index keeps: summary, symptoms, root_cause, confirmed_root_cause, time_ns."""


def incident_filter(*, before_ns: int | None = None, ids: Sequence[str] | None = None) -> VectorFilter | None:
    """The filter of a search: incidents at or before `before_ns`, or only those of `ids`."""
    if ids is None and before_ns is None:
        return None
    return VectorFilter(
        match={"incident_id": list(ids)} if ids is not None else {},
        ranges={"time_ns": (None, before_ns)} if before_ns is not None else {},
    )


def fetch_limit(limit: int, exclude: str | None) -> int:
    """Points asked of the store: one more than `limit` when one incident is to be left out."""
    return limit + 1 if exclude else limit


def search_incidents(
    vectors: VectorStore,
    embedder: Embedder,
    text: str,
    *,
    vector: np.ndarray | None = None,
    limit: int = 10,
    min_similarity: float | None = None,
    exclude: str | None = None,
    before_ns: int | None = None,
    ids: Sequence[str] | None = None,
) -> list[IncidentHit]:
    """At most `limit` past incidents nearest to `text`, best first.

    `vector` is the embedding of `text` when the caller has it already (else `text` is embedded, its first
    `MAX_QUERY_CHARS` characters). Left out: incidents less similar than `min_similarity`, the incident
    `exclude` (the one being explained), incidents after `before_ns` and, when `ids` is given, any other
    incident. The collection must exist (`INCIDENTS in vectors.collections()`).
    """
    query = vector if vector is not None else np.asarray(embedder.embed([text[:MAX_QUERY_CHARS]])[0])
    found = vectors.search(
        INCIDENTS,
        query,
        limit=fetch_limit(limit, exclude),
        filter=incident_filter(before_ns=before_ns, ids=ids),
    )
    hits: list[IncidentHit] = []
    for h in found:
        incident_id = str(h.payload.get("incident_id") or h.id)
        if exclude and exclude in (incident_id, h.id):
            continue
        if min_similarity is not None and h.score < min_similarity:
            continue
        hits.append(IncidentHit(incident_id=incident_id, similarity=float(h.score), payload=h.payload))
    return hits[:limit]
