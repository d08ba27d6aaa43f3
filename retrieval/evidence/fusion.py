"""Fusion of ranked evidence lists into one list, and a cheap cross-signal reranker.

Fusion: weighted reciprocal-rank fusion (Cormack, Clarke and Buettcher, SIGIR 2009). Each list `l`
(the graph neighborhood, one per vector collection, the event store's window queries) ranks its
items from 1; an item's fused score is

    rrf(d) = sum over the lists l that hold d of  w_l / (k + rank_l(d)),      k = 60

Items are one per id: an item found by several lists keeps every provenance (list, rank, native
score, how it was found) and the union of what each list knew about it, so an item that the graph
*and* the vectors found scores higher than one either found alone.

Rerank: a linear mix of the normalized fusion score and four features, each in [0, 1]:

    score(d) = 0.40 * rrf(d) / max rrf        fusion: agreement and rank across lists
             + 0.25 * svc(d)                  tied to a top candidate: max over the item's services
                                              of 1 / candidate rank (top-k candidates only, else 0)
             + 0.15 * win(d)                  1 if it has events in the incident window, 0 if it only
                                              has events outside it, 0.5 if timeless (runbooks, pods)
             + 0.10 * err(d)                  1 for ERROR/FATAL lines or error counts > 0, 0.5 WARN, else 0
             + 0.10 * max(0, cos(d))          cosine of the item's stored vector to the symptom text
                                              (same embedder); 0 when the item has no text vector

The weights (`RerankWeights`) sum to 1, so scores are in [0, 1] and comparable within one result.
Ties go to the higher fusion score, then to the id. An optional cap per kind keeps one kind (log
templates, usually) from filling the whole list.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from core.explanation import EvidenceItem, EvidenceSource
from core.naming import level_rank, normalize_level

RRF_K = 60
SOURCE_ORDER: tuple[EvidenceSource, ...] = (
    EvidenceSource.GRAPH,
    EvidenceSource.VECTOR,
    EvidenceSource.EVENTS,
    EvidenceSource.SIGNALS,
    EvidenceSource.RUNBOOKS,
)
_ERROR_RANK = level_rank("ERROR")
_WARN_RANK = level_rank("WARN")


@dataclass(frozen=True)
class Hit:
    """One item as one list found it. Empty fields mean "this list does not know"."""

    id: str
    kind: str
    text: str = ""
    service: str = ""
    pod: str = ""
    time_ns: int | None = None
    services: frozenset[str] = frozenset()
    """Services the item is tied to (emitters of a template, services a runbook covers, edge ends)."""
    level: str = ""
    errors: int = 0
    in_window: bool | None = None
    """True: it has events inside the incident window; False: only outside; None: timeless."""
    similarity: float | None = None
    """Cosine of the item's vector to the symptom text, when known."""
    score: float | None = None
    """The list's own score (cosine, graph activation, line count), for the provenance."""
    detail: str = ""


@dataclass(frozen=True)
class RankedList:
    """Hits best first, from one source. `name` names the list in provenances ('graph', 'vector:templates')."""

    name: str
    source: EvidenceSource
    hits: Sequence[Hit]
    weight: float = 1.0


@dataclass(frozen=True)
class Provenance:
    list: str
    source: EvidenceSource
    rank: int
    contribution: float
    score: float | None = None
    detail: str = ""

    def describe(self) -> str:
        score = f" score {self.score:.3g}" if self.score is not None else ""
        detail = f" ({self.detail})" if self.detail else ""
        return f"{self.list} #{self.rank}{score}{detail}"


@dataclass(frozen=True)
class Fused:
    """One item after fusion (and, once reranked, with its features and final score)."""

    id: str
    kind: str
    text: str
    service: str
    pod: str
    time_ns: int | None
    services: frozenset[str]
    level: str
    errors: int
    in_window: bool | None
    similarity: float | None
    rrf: float
    provenances: tuple[Provenance, ...]
    features: Mapping[str, float] = field(default_factory=dict)
    score: float = 0.0

    @property
    def sources(self) -> list[EvidenceSource]:
        """Every source that found the item, in SOURCE_ORDER."""
        found = {p.source for p in self.provenances}
        return [s for s in SOURCE_ORDER if s in found]

    @property
    def best_source(self) -> EvidenceSource:
        """The source that contributed most to the fusion score (ties: SOURCE_ORDER)."""
        best = max(self.provenances, key=lambda p: (p.contribution, -SOURCE_ORDER.index(p.source)))
        return best.source


@dataclass(frozen=True)
class RerankWeights:
    """Weights of the rerank formula (see the module doc). They should sum to 1."""

    fusion: float = 0.40
    service: float = 0.25
    window: float = 0.15
    error: float = 0.10
    similarity: float = 0.10


def _merge(old: Fused, hit: Hit, prov: Provenance) -> Fused:
    if hit.in_window is True or old.in_window is True:
        in_window: bool | None = True
    elif hit.in_window is False or old.in_window is False:
        in_window = False
    else:
        in_window = None
    sims = [s for s in (old.similarity, hit.similarity) if s is not None]
    level = old.level
    if hit.level and (not level or level_rank(normalize_level(hit.level)) > level_rank(normalize_level(level))):
        level = hit.level
    return replace(
        old,
        text=old.text or hit.text,
        service=old.service or hit.service,
        pod=old.pod or hit.pod,
        time_ns=old.time_ns if old.time_ns is not None else hit.time_ns,
        services=old.services | hit.services | ({hit.service} if hit.service else frozenset()),
        level=level,
        errors=max(old.errors, hit.errors),
        in_window=in_window,
        similarity=max(sims) if sims else None,
        rrf=old.rrf + prov.contribution,
        provenances=(*old.provenances, prov),
    )


def rrf_fuse(lists: Iterable[RankedList], *, k: int = RRF_K) -> list[Fused]:
    """One item per id, by weighted reciprocal-rank fusion; best first (ties by id).

    Within a list only an id's first hit counts, and ranks count distinct ids. Lists with a weight of
    zero or less are left out.
    """
    if k < 0:
        raise ValueError("k must be >= 0")
    items: dict[str, Fused] = {}
    for lst in lists:
        if lst.weight <= 0:
            continue
        rank = 0
        seen: set[str] = set()
        for hit in lst.hits:
            if hit.id in seen:
                continue
            seen.add(hit.id)
            rank += 1
            prov = Provenance(
                list=lst.name,
                source=lst.source,
                rank=rank,
                contribution=lst.weight / (k + rank),
                score=hit.score,
                detail=hit.detail,
            )
            old = items.get(hit.id)
            if old is None:
                items[hit.id] = Fused(
                    id=hit.id,
                    kind=hit.kind,
                    text=hit.text,
                    service=hit.service,
                    pod=hit.pod,
                    time_ns=hit.time_ns,
                    services=hit.services | ({hit.service} if hit.service else frozenset()),
                    level=hit.level,
                    errors=hit.errors,
                    in_window=hit.in_window,
                    similarity=hit.similarity,
                    rrf=prov.contribution,
                    provenances=(prov,),
                )
            else:
                items[hit.id] = _merge(old, hit, prov)
    return sorted(items.values(), key=lambda f: (-f.rrf, f.id))


def features(item: Fused, candidates: Mapping[str, float], *, rrf_max: float) -> dict[str, float]:
    """The rerank features of one item (module doc); `candidates` maps service -> 1 / rank."""
    svc = max((candidates.get(s, 0.0) for s in item.services), default=0.0)
    win = 0.5 if item.in_window is None else (1.0 if item.in_window else 0.0)
    rank = level_rank(normalize_level(item.level, default="")) if item.level else -1
    if item.errors > 0 or rank >= _ERROR_RANK:
        err = 1.0
    elif rank >= _WARN_RANK:
        err = 0.5
    else:
        err = 0.0
    cos = max(0.0, min(1.0, item.similarity)) if item.similarity is not None else 0.0
    return {
        "fusion": item.rrf / rrf_max if rrf_max > 0 else 0.0,
        "service": svc,
        "window": win,
        "error": err,
        "similarity": cos,
    }


def rerank(
    items: Sequence[Fused],
    *,
    candidates: Mapping[str, float],
    weights: RerankWeights | None = None,
    limit: int | None = None,
    max_per_kind: int | None = None,
) -> list[Fused]:
    """Items scored by the rerank formula, best first; at most `max_per_kind` of a kind, `limit` in all."""
    w = weights or RerankWeights()
    rrf_max = max((f.rrf for f in items), default=0.0)
    scored: list[Fused] = []
    for item in items:
        feats = features(item, candidates, rrf_max=rrf_max)
        score = (
            w.fusion * feats["fusion"]
            + w.service * feats["service"]
            + w.window * feats["window"]
            + w.error * feats["error"]
            + w.similarity * feats["similarity"]
        )
        scored.append(replace(item, features=feats, score=score))
    scored.sort(key=lambda f: (-round(f.score, 12), -f.rrf, f.id))
    out: list[Fused] = []
    per_kind: dict[str, int] = {}
    for item in scored:
        if max_per_kind is not None and per_kind.get(item.kind, 0) >= max_per_kind:
            continue
        per_kind[item.kind] = per_kind.get(item.kind, 0) + 1
        out.append(item)
        if limit is not None and len(out) >= limit:
            break
    return out


def candidate_weights(services_by_rank: Sequence[str]) -> dict[str, float]:
    """Service -> 1 / rank for candidates given best first (a service listed twice keeps its best rank)."""
    out: dict[str, float] = {}
    for rank, service in enumerate(services_by_rank, start=1):
        out.setdefault(service, 1.0 / rank)
    return out


def to_evidence(item: Fused) -> EvidenceItem:
    """The EvidenceItem of a fused item: `source` is its strongest source, `provenance` lists every list
    that found it ("graph #2 ...; vector:templates #1 ..."), `score` is the rerank score."""
    return EvidenceItem(
        id=item.id,
        kind=item.kind,
        source=item.best_source,
        time_ns=item.time_ns,
        service=item.service,
        pod=item.pod,
        text=item.text,
        score=round(item.score, 4),
        provenance="; ".join(p.describe() for p in item.provenances),
    )
