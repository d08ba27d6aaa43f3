"""When did it start? Minutes in which a service's share of error lines jumps above its own recent level.

A plain, explainable detector: per service and minute with log lines, the share of lines at WARN or above;
the baseline is the median and median absolute deviation of that service's earlier minutes with lines
(minutes without data are gaps, not calm). Used by `devmesh demo` and as the first stage of detection.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from retrieval.eventstore import EventStore

MIN_HISTORY = 2  # minutes with data before a minute can be judged
Z = 4.0  # robust z above which a minute is anomalous
MIN_ERRORS = 5  # error lines a minute needs to count at all
MIN_SPREAD = 0.02  # floor of the spread (share of lines): a flat history does not make every blip huge


@dataclass(frozen=True)
class Onset:
    at_ns: int
    service: str
    errors: int
    share: float
    baseline: float
    z: float


def detect_onset(
    events: EventStore, start_ns: int, end_ns: int, *, bucket_s: int = 60, min_level: str = "WARN"
) -> list[Onset]:
    """Anomalous (minute, service) pairs in [start_ns, end_ns), earliest first."""
    totals: dict[str, dict[int, int]] = {}
    for r in events.count_by("logs", ["service"], start_ns=start_ns, end_ns=end_ns, bucket_s=bucket_s, limit=10**6):
        totals.setdefault(r["service"], {})[r["bucket_ns"]] = int(r["count"])
    errors: dict[tuple[str, int], int] = {}
    for e in events.error_counts(start_ns, end_ns, bucket_s=bucket_s, min_level=min_level):
        errors[(e.service, e.bucket_ns)] = e.count
    found = []
    for service, per_bucket in totals.items():
        buckets = sorted(per_bucket)
        share = [errors.get((service, b), 0) / per_bucket[b] for b in buckets]
        for i in range(MIN_HISTORY, len(buckets)):
            n_err = errors.get((service, buckets[i]), 0)
            if n_err < MIN_ERRORS:
                continue
            history = share[max(0, i - 30) : i]
            med = statistics.median(history)
            mad = statistics.median(abs(x - med) for x in history) * 1.4826
            z = (share[i] - med) / max(mad, MIN_SPREAD)
            if z >= Z:
                found.append(Onset(buckets[i], service, n_err, round(share[i], 4), round(med, 4), round(z, 2)))
    return sorted(found, key=lambda o: (o.at_ns, -o.z))
