"""The signal timeline's window: minute buckets up to an hour, wider ones beyond, never more than 60, and a
window over six hours cut around the fault time."""

from __future__ import annotations

from core.timeutil import NS
from detect.timeline import MAX_BUCKETS, bounds

T = 1_700_000_040 * NS  # minute-aligned
MIN = 60 * NS


def test_an_hour_is_sixty_minutes_aligned_to_the_minute() -> None:
    assert bounds(T + 5 * NS, T + 60 * MIN, T + 30 * MIN) == (T, T + 60 * MIN, 60, [])


def test_a_longer_window_takes_wider_buckets() -> None:
    lo, hi, bucket_s, notes = bounds(T, T + 150 * MIN, T + 100 * MIN)
    assert (bucket_s, notes) == (240, [])
    assert lo <= T and hi >= T + 150 * MIN and (hi - lo) // (bucket_s * NS) <= MAX_BUCKETS


def test_a_day_is_cut_to_six_hours_around_the_fault() -> None:
    alert = T + 12 * 60 * MIN
    lo, hi, bucket_s, notes = bounds(T, T + 24 * 60 * MIN, alert)
    assert notes == ["timeline cut to 6 h around the fault time"]
    assert lo <= alert - 3 * 60 * MIN and hi >= alert + 3 * 60 * MIN and hi - lo <= 6 * 60 * MIN + 2 * bucket_s * NS
    assert (hi - lo) // (bucket_s * NS) <= MAX_BUCKETS
