"""What the graph holds that the event store implies: pod placements and EMITS edges (with line counts).

One home for the derivation, used by the pipeline for each batch and by the repair and `devmesh rebuild
graph` for ranges of stored events or all of them, so all three write the same graph. CALLS edges are
derived by `Pipeline.refresh_topology`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from core.telemetry import PodPlacement, Topology

if TYPE_CHECKING:
    from retrieval.events import EventStore

CHUNK = 5000
"""Template ids or pods read and written at a time."""
ALL = 1 << 62
"""A row limit that is no limit."""


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def template_links(
    events: EventStore, template_ids: Sequence[str], texts: Mapping[str, tuple[str, str]] | None = None
) -> list[dict[str, Any]]:
    """EMITS rows (service, template_id, text, level, count) for these templates: each service's stored
    line count. `texts` gives (text, level) per id; the stored templates' are used for the others."""
    if not template_ids:
        return []
    known = dict(texts or {})
    missing = [t for t in template_ids if t not in known]
    if missing:
        known.update({t.template_id: (t.text, t.level) for t in events.templates(missing)})
    rows = [
        r
        for part in chunks(template_ids)
        for r in events.count_by("logs", ["service", "template_id"], where={"template_id": list(part)}, limit=ALL)
    ]
    return [
        {
            "service": r["service"],
            "template_id": r["template_id"],
            "text": known.get(r["template_id"], ("", ""))[0],
            "level": known.get(r["template_id"], ("", ""))[1],
            "count": int(r["count"]),
        }
        for r in rows
        if r["service"]
    ]


def placements(events: EventStore, pods: Sequence[str] | None = None) -> Topology:
    """Services and pods (with their latest service and host) of the named pods, or of all."""
    rows = events.latest_placements(pods)
    found = [PodPlacement(pod=p, service=s, host=h) for p, s, h in rows]
    return Topology(services=sorted({p.service for p in found}), pods=found)


def in_range(events: EventStore, kind: str, column: str, lo_ns: int, hi_ns: int) -> list[str]:
    """Distinct non-empty values of `column` in the `kind` rows stamped in [lo_ns, hi_ns]."""
    rows = events.count_by(kind, [column], start_ns=lo_ns, end_ns=hi_ns + 1, limit=ALL)  # type: ignore[arg-type]
    return sorted(r[column] for r in rows if r[column])
