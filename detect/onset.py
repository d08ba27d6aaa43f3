"""When did it start? Minutes whose share of error lines jumps above its recent level.

A plain, explainable detector: per minute with any log lines, the share of lines at WARN or above; the
baseline is the median and median absolute deviation of the earlier minutes that had lines (minutes
without data are gaps, not calm). Used by `devmesh demo` and as the first stage of scheduled detection.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.timeutil import NS

if TYPE_CHECKING:
    from retrieval.eventstore import EventStore

MIN_HISTORY = 2  # minutes of history before a minute can be judged
Z = 3.0  # robust z above which a minute is anomalous
MIN_RISE = 2.0  # ... and at least this many times the baseline median
MIN_LINES = 20  # minutes with fewer lines are not judged (too few to give a share)
MIN_SPREAD = 0.005  # floor of the spread (share of lines), so a flat history does not make every blip huge


@dataclass(frozen=True)
class Onset:
    at_ns: int
    count: int
    baseline: float
    z: float
    service: str


def detect_onset(
    events: EventStore, start_ns: int, end_ns: int, *, bucket_s: int = 60, min_level: str = "WARN"
) -> list[Onset]:
    """Minutes in [start_ns, end_ns) whose error lines jump above the minutes before them, strongest first."""
    totals = {
        r["bucket_ns"]: int(r["count"])
        for r in events.count_by("logs", [], start_ns=start_ns, end_ns=end_ns, bucket_s=bucket_s, limit=100_000)
    }
    errors: dict[int, int] = {}
    per_service: dict[int, dict[str, int]] = {}
    for r in events.error_counts(start_ns, end_ns, bucket_s=bucket_s, min_level=min_level):
        errors[r.bucket_ns] = errors.get(r.bucket_ns, 0) + r.count
        per_service.setdefault(r.bucket_ns, {})[r.service] = r.count
    buckets = sorted(b for b, n in totals.items() if n >= MIN_LINES)
    share = [errors.get(b, 0) / totals[b] for b in buckets]
    found = []
    for i in range(MIN_HISTORY, len(buckets)):
        history = share[max(0, i - 30) : i]
        med = statistics.median(history)
        mad = statistics.median(abs(x - med) for x in history) * 1.4826
        z = (share[i] - med) / max(mad, MIN_SPREAD)
        if z >= Z and share[i] >= MIN_RISE * max(med, MIN_SPREAD):
            services = per_service.get(buckets[i], {})
            top = max(services, key=lambda s: services[s], default="")
            found.append(
                Onset(
                    at_ns=buckets[i],
                    count=errors.get(buckets[i], 0),
                    baseline=round(med, 4),
                    z=round(z, 2),
                    service=top,
                )
            )
    return sorted(found, key=lambda o: -o.z)
