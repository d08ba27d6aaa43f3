"""Retention as configured: the policy read from settings (`DEVMESH_RETAIN_*`) and one prune run over
the event store (by age, then by size), for `devmesh prune` and the schedule inside `devmesh serve`.

The deleting itself, with the rollups that keep counts, is `retrieval.events.retention`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from core.errors import InvalidInput
from core.settings import Settings
from core.telemetry import KINDS, Kind
from core.timeutil import NS, now_ns, parse_duration
from retrieval.events import EventStore

log = logging.getLogger(__name__)

OFF = ("", "0", "none", "off")
SIZE_MARGIN = 0.9
"""A size cap prunes down to this share of the cap, so the next rows do not cross it at once."""
SIZE_ROUNDS = 4
"""Most measure-and-prune rounds against the total cap in one run."""
REWRITE_SHARE = 0.25
"""A table is rewritten (its freed blocks made reusable) when a prune deleted at least this share of it."""


@dataclass(frozen=True)
class RetentionPolicy:
    """How long and how much of each kind's raw rows to keep (None: no limit)."""

    retain_ns: dict[Kind, int | None] = field(default_factory=dict)
    max_bytes: dict[Kind, int | None] = field(default_factory=dict)
    total_max_bytes: int | None = None

    @property
    def enabled(self) -> bool:
        return any(self.retain_ns.values()) or any(self.max_bytes.values()) or bool(self.total_max_bytes)


def period_ns(text: str | None, what: str) -> int | None:
    """'14d' -> nanoseconds; '0', 'none', 'off' or empty -> None (kept for ever)."""
    if text is None or text.strip().lower() in OFF:
        return None
    try:
        return int(parse_duration(text.strip()).total_seconds() * NS)
    except InvalidInput as exc:
        raise InvalidInput(f"{what}: {exc.message}", field=what) from exc


def policy_from_settings(settings: Settings, **overrides: str | None) -> RetentionPolicy:
    """The policy of `DEVMESH_RETAIN_*`; `overrides` (logs=, spans=, metrics=) replace an age."""
    ages = {"logs": settings.retain_logs, "spans": settings.retain_spans, "metrics": settings.retain_metrics}
    ages.update({k: v for k, v in overrides.items() if v is not None})
    caps = {
        "logs": settings.retain_logs_max_bytes,
        "spans": settings.retain_spans_max_bytes,
        "metrics": settings.retain_metrics_max_bytes,
    }
    return RetentionPolicy(
        retain_ns={k: period_ns(ages[k], f"retain_{k}") for k in KINDS},
        max_bytes={k: caps[k] or None for k in KINDS},
        total_max_bytes=settings.retain_max_bytes or None,
    )


def prune(
    events: EventStore, policy: RetentionPolicy, *, dry_run: bool = False, now: int | None = None
) -> dict[str, Any]:
    """Apply `policy` once: age limits, then per-kind size caps, then the total cap. Returns a report.

    Safe while the server runs: every batch is its own short transaction on the store's writer.
    """
    started = time.perf_counter()
    now = now_ns() if now is None else now
    before = events.footprint()
    actions: list[dict[str, Any]] = []
    touched: set[Kind] = set()

    def run(kind: Kind, cutoff: int | None, reason: str) -> None:
        if cutoff is None:
            return
        r = events.prune_before(kind, cutoff, dry_run=dry_run, reason=reason)
        if r.deleted:
            actions.append(asdict(r))
            if not dry_run and (r.deleted >= REWRITE_SHARE * r.rows_before or reason != "age"):
                touched.add(kind)

    for kind in KINDS:
        retain = policy.retain_ns.get(kind)
        if retain:
            run(kind, events.age_cutoff(kind, retain, now), "age")
    if not dry_run:
        _settle(events, touched)
    sizes = events.footprint() if not dry_run else before
    for kind in KINDS:
        cap = policy.max_bytes.get(kind)
        have = sizes["tables"].get(kind, 0)
        if cap and have > cap:
            run(kind, events.size_cutoff(kind, cap * SIZE_MARGIN / have), "size")
    if not dry_run:
        _settle(events, touched)
        sizes = events.footprint()
    cap = policy.total_max_bytes
    for _ in range(SIZE_ROUNDS):  # blocks and rollups make one estimate fall short: measure and go again
        if not cap or sizes["used_bytes"] <= cap:
            break
        raw = sum(sizes["tables"].get(k, 0) for k in KINDS)
        other = sizes["used_bytes"] - raw
        share = max(0.0, cap * SIZE_MARGIN - other) / raw if raw else 1.0
        for kind in KINDS:
            run(kind, events.size_cutoff(kind, share), "total size")
        if dry_run:
            break
        _settle(events, touched)
        sizes = events.footprint()
    after = events.footprint() if not dry_run else before
    over = bool(cap and after["used_bytes"] > cap)
    report = {
        "dry_run": dry_run,
        "actions": actions,
        "before": _brief(before),
        "after": _brief(after),
        "over_cap": over,
        "horizon_ns": events.retention_horizon(),
        "seconds": round(time.perf_counter() - started, 3),
    }
    if actions and not dry_run:
        log.info("retention applied", extra={"deleted": sum(a["deleted"] for a in actions)})
    return report


def _settle(events: EventStore, touched: set[Kind]) -> None:
    for kind in sorted(touched):
        events.rewrite_table(kind)
    touched.clear()
    events.checkpoint_file()


def _brief(fp: dict[str, Any]) -> dict[str, Any]:
    return {
        "rows": fp["rows"],
        "table_bytes": {k: fp["tables"].get(k, 0) for k in KINDS},
        "used_bytes": fp["used_bytes"],
        "free_bytes": fp["free_bytes"],
        "file_bytes": fp["file_bytes"],
        "wal_bytes": fp["wal_bytes"],
    }
