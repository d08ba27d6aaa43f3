"""What the vectors and the event store know of items that other lists found.

A template found only by the graph or the window gets its similarity to the symptoms from its stored
vector; a first line gets its template's; a template with no line in the window gets the time of its
last line. `annotated` puts all of that on every hit of every list, whichever list found it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from retrieval.collections import TEMPLATES
from retrieval.evidence.context import Gathering, short
from retrieval.evidence.fusion import Hit, RankedList
from retrieval.evidence.vector_query import VectorQuery
from retrieval.evidence.window import WindowFindings, WindowTemplate
from retrieval.vectors import VectorPoint

if TYPE_CHECKING:
    from retrieval.events import StoredTemplate


def cosines(points: Sequence[VectorPoint], query: np.ndarray) -> dict[str, float]:
    """Cosine of each point's vector to the query, by point id."""
    out: dict[str, float] = {}
    qn = float(np.linalg.norm(query)) or 1.0
    for p in points:
        v = np.asarray(p.vector, dtype=np.float32)
        out[p.id] = float(np.dot(v, query) / ((float(np.linalg.norm(v)) or 1.0) * qn))
    return out


def similarities(
    ctx: Gathering,
    lists: Sequence[RankedList],
    sims: Mapping[str, float],
    q: VectorQuery | None,
    window: WindowFindings,
) -> tuple[dict[str, float], dict[str, int]]:
    """`sims` completed for the templates and first lines of every list, and the last line time of each
    template with no line in the window."""
    out = dict(sims)
    templates = {h.id.removeprefix("template:") for lst in lists for h in lst.hits if h.kind == "template"}
    need = sorted(t for t in templates if f"template:{t}" not in out)
    if need and q is not None and TEMPLATES in q.present:
        points: list[VectorPoint] = ctx.log.run(
            "vectors.get",
            "stored vectors of templates by id (cosine to the symptoms computed here)",
            {"collection": TEMPLATES, "ids": short(need)},
            lambda: q.vectors.get(TEMPLATES, need),
            default=[],
        )
        for tid, cos in cosines(points, q.vector).items():
            out[f"template:{tid}"] = cos
    for log_id, tid in window.log_templates.items():
        if f"template:{tid}" in out:
            out[log_id] = out[f"template:{tid}"]
    last_seen: dict[str, int] = {}
    outside = sorted(templates - set(window.active))
    if outside:
        stored: list[StoredTemplate] = ctx.log.run(
            "events.templates",
            "EventStore.templates(ids): stored templates with their count and first/last line time",
            {"ids": short(outside)},
            lambda: ctx.events.templates(outside),
            default=[],
        )
        last_seen = {t.template_id: t.last_ns for t in stored if t.last_ns}
    return out, last_seen


def annotated(
    lists: Sequence[RankedList],
    sims: Mapping[str, float],
    active: Mapping[str, WindowTemplate],
    last_seen: Mapping[str, int],
) -> list[RankedList]:
    """The lists with what the window and the vectors know about each item, whichever list found it."""
    return [replace(lst, hits=[_annotate(h, sims, active, last_seen) for h in lst.hits]) for lst in lists]


def _annotate(
    hit: Hit, sims: Mapping[str, float], active: Mapping[str, WindowTemplate], last_seen: Mapping[str, int]
) -> Hit:
    sim = sims.get(hit.id, hit.similarity)
    if hit.kind != "template":
        return replace(hit, similarity=sim)
    tid = hit.id.removeprefix("template:")
    a = active.get(tid)
    if a is None:
        return replace(hit, in_window=False, similarity=sim, time_ns=last_seen.get(tid, hit.time_ns))
    return replace(
        hit, in_window=True, time_ns=a.first_ns, services=hit.services | frozenset(a.services), similarity=sim
    )
