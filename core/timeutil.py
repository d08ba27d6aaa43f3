"""Timestamps: DevMesh stores nanoseconds since the Unix epoch (UTC) everywhere.

Every time and duration read from outside is bounded here, so no front end can pass an overflow down:
a time is a signed 64-bit count of nanoseconds (the years 1677 to 2262), a duration at most that long.
"""

from __future__ import annotations

import math
import re
import time
from datetime import UTC, datetime, timedelta

from core.errors import InvalidInput

NS = 1_000_000_000
MAX_NS = 2**63 - 1
"""The largest time DevMesh stores (a signed 64-bit nanosecond count: 2262-04-11)."""
MIN_NS = -(2**63)
LATEST_NS = 9_000_000_000 * NS
"""2255-03-14: the latest time a request may name (*_ns fields), so windows around it stay below MAX_NS; a
float holds it exactly, as JSON Schema tools read bounds as floats."""
MAX_DIGITS = 24
"""An epoch number longer than this is no timestamp (and converting a huge digit string costs CPU)."""
MAX_DURATION_S = MAX_NS // NS
_RANGE = "years 1677 to 2262"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")

# The time arguments the API documents (OpenAPI `pattern`) and `parse_time_arg` reads: exactly the texts that
# parse to a time DevMesh can store, so the schema and the parser cannot disagree. Years 1971-2261 (any UTC
# offset stays within 1970-2262), real calendar days (29 February in leap years only); epoch numbers in the
# unit their length implies (s: up to 10 digits, ms: 12-13, us: 15-16, ns: 18-19) and within range.
_D = "[0-9]"  # not \d, which matches every Unicode digit
_YEAR = f"(197[1-9]|19[89]{_D}|2[01]{_D}{_D}|22[0-5]{_D}|226[01])"
_MONTH_DAY = f"((0[13578]|1[02])-(0[1-9]|[12]{_D}|3[01])|(0[469]|11)-(0[1-9]|[12]{_D}|30)|02-(0[1-9]|1{_D}|2[0-8]))"
_LEAP_DAY = (
    "(19(7[26]|8[048]|9[26])|20([02468][048]|[13579][26])|21(0[48]|[2468][048]|[13579][26])"
    "|22(0[48]|[24][048]|[135][26]|60))-02-29"
)
_CLOCK = f"([01]{_D}|2[0-3]):[0-5]{_D}(:[0-5]{_D}(\\.{_D}{{1,9}})?)?(Z| UTC|[+-]([01]{_D}|2[0-3]):[0-5]{_D})?"
ISO_PATTERN = f"({_YEAR}-{_MONTH_DAY}|{_LEAP_DAY})([T ]{_CLOCK})?"
EPOCH_PATTERN = (
    f"([1-9]{_D}{{0,8}}|[1-8]{_D}{{9}})(\\.{_D}{{1,9}})?"  # seconds
    f"|[1-9]{_D}{{11}}|[1-8]{_D}{{12}}"  # milliseconds
    f"|[1-9]{_D}{{14}}|[1-8]{_D}{{15}}"  # microseconds
    f"|[1-9]{_D}{{17}}|[1-8]{_D}{{18}}"  # nanoseconds
)
_SPAN = f"{_D}{{1,4}}(\\.{_D}{{1,3}})?(ms|s|m|h|d)|{_D}{{1,3}}(\\.{_D}{{1,3}})?w"
TIME_ARG_PATTERN = f"^(now|-?({_SPAN})|({_SPAN}) ago|{ISO_PATTERN}|{EPOCH_PATTERN})$"
"""What a time argument (since, until, --since) may be: 'now', '15m' / '-15m' / '15m ago' (before now; at most
9999 of a unit, 999 weeks), ISO-8601, or an epoch number."""
TIME_PATTERN = f"^({ISO_PATTERN}|{EPOCH_PATTERN})$"
"""An absolute time: ISO-8601 or an epoch number (as TIME_ARG_PATTERN, without the relative forms)."""
_TIME_ARG = re.compile(TIME_ARG_PATTERN)
_YEAR_2001 = f"(200[1-9]|20[1-9]{_D}|21{_D}{_D}|22[0-4]{_D}|225[0-4])"
_LEAP_2001 = (
    "(20(0[48]|[2468][048]|[13579][26])|21(0[48]|[2468][048]|[13579][26])|22(0[48]|[24][048]|[13][26]|52))-02-29"
)
ISO_SINCE_2001_PATTERN = f"^({_YEAR_2001}-{_MONTH_DAY}|{_LEAP_2001})([T ]{_CLOCK})?$"
"""ISO-8601 times from 2001 to 2254 (an alert's time becomes a request's *_ns, at most LATEST_NS, 2255-03-14;
a 2260 startsAt that the pattern allowed was refused as start_ns, found by the contract test), for fields whose
handler also refuses times before
DEVMESH_MIN_TIMESTAMP_YEAR (2000; a UTC offset may reach back a day) or too far ahead of its clock (which no
static pattern can say: the field's description does)."""


_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def now_ns() -> int:
    return time.time_ns()


def to_ns(value: datetime | int | float | str) -> int:
    """Nanoseconds since the epoch from a datetime, an ISO-8601 string or an epoch number.

    Epoch numbers are taken in the unit their size implies (s, ms, us or ns), as log shippers mix them.
    Naive datetimes are taken as UTC.
    """
    if isinstance(value, bool):
        raise InvalidInput("a timestamp cannot be a boolean")
    if isinstance(value, datetime):
        dt = value if value.tzinfo else value.replace(tzinfo=UTC)
        return in_range(int(dt.timestamp()) * NS + dt.microsecond * 1000)
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidInput(f"not a timestamp: {value!r}")
        v = abs(value)
        if v < 1e11:
            return in_range(int(value * NS))
        if v < 1e14:
            return in_range(int(value * 1_000_000))
        if v < 1e17:
            return in_range(int(value * 1000))
        return in_range(int(value))
    if isinstance(value, str):
        s = value.strip()
        if re.fullmatch(r"-?\d+(\.\d+)?", s):
            if len(s) > MAX_DIGITS:
                raise InvalidInput(f"timestamp out of range: {len(s)} digits (DevMesh stores the {_RANGE})")
            return to_ns(float(s) if "." in s else int(s))
        try:
            dt = datetime.fromisoformat(s.replace("Z", "+00:00").replace(" UTC", "+00:00"))
        except (ValueError, OverflowError) as exc:
            raise InvalidInput(f"not a timestamp: {_short(value)} (use ISO-8601 or epoch seconds)") from exc
        return to_ns(dt)
    raise InvalidInput(f"not a timestamp: {_short(value)}")


def in_range(ns: int) -> int:
    """`ns` itself when it fits a signed 64-bit nanosecond count, else InvalidInput."""
    if not MIN_NS <= ns <= MAX_NS:
        raise InvalidInput(f"timestamp out of range (DevMesh stores the {_RANGE})")
    return ns


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def from_ns(ns: int) -> datetime:
    return datetime.fromtimestamp(ns // NS, tz=UTC) + timedelta(microseconds=(ns % NS) // 1000)


def iso(ns: int) -> str:
    return from_ns(ns).isoformat().replace("+00:00", "Z")


def is_duration(text: str) -> bool:
    """Whether `text` reads as a duration ('15m', '2h'), whatever its size."""
    return _DURATION.match(text) is not None


def parse_duration(text: str) -> timedelta:
    """'15m', '2h', '30s', '1d' -> timedelta."""
    m = _DURATION.match(text)
    if not m:
        raise InvalidInput(f"not a duration: {_short(text)} (examples: 30s, 15m, 2h, 1d)")
    seconds = float(m.group(1)) * _UNIT_S[m.group(2)]
    if not seconds <= MAX_DURATION_S:  # also catches inf from a float overflow
        raise InvalidInput(f"duration too long: {_short(text)} (at most {MAX_DURATION_S // 86400 // 365} years)")
    return timedelta(seconds=seconds)


def parse_time_arg(text: str, *, now: int | None = None) -> int:
    """A CLI/API time: ISO-8601, epoch number, 'now', or a relative '15m', '-15m' or '15m ago' (before now).

    The text must match TIME_ARG_PATTERN (what the API documents), else InvalidInput."""
    s = text.strip()
    if not _TIME_ARG.fullmatch(s):
        shown = repr(s) if len(s) <= 60 else repr(s[:57] + "...")
        raise InvalidInput(
            f"not a time: {shown} (use now, 15m, -15m, 15m ago, ISO-8601 between 1971 and 2261, or epoch seconds)"
        )
    ref = now if now is not None else now_ns()
    if s == "now":
        return ref
    rel = s[1:] if s.startswith("-") else s[:-4].strip() if s.endswith(" ago") else s
    if rel is not None and _DURATION.match(rel):
        return in_range(ref - int(parse_duration(rel).total_seconds() * NS))
    return to_ns(s)


def check_sane(ns: int, *, min_year: int, max_future_skew_s: int, now: int | None = None) -> str | None:
    """Why a timestamp is absurd, or None when it is fine."""
    low = int(datetime(min_year, 1, 1, tzinfo=UTC).timestamp()) * NS
    high = (now if now is not None else now_ns()) + max_future_skew_s * NS
    if ns < low:
        return f"timestamp is before {min_year}"
    if ns > high:
        return f"timestamp is more than {max_future_skew_s}s in the future"
    return None


_ISO_NS = re.compile(r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d+))?\s*(Z|[+-]\d{2}:?\d{2}|UTC)?$")


def iso_to_ns(text: str) -> int:
    """ISO-8601 with up to nanosecond fractions ('2023-01-29T08:42:22.383150913Z') -> ns; naive is UTC."""
    m = _ISO_NS.match(text.strip())
    if not m:
        return to_ns(text)
    date, hh, mm, ss, frac, tz = m.groups()
    y, mo, d = (int(x) for x in date.split("-"))
    try:
        secs = int(datetime(y, mo, d, int(hh), int(mm), int(ss), tzinfo=UTC).timestamp())
    except (ValueError, OverflowError) as exc:
        raise InvalidInput(f"not a timestamp: {_short(text)} ({exc})") from exc
    if tz and tz not in ("Z", "UTC"):
        sign = 1 if tz[0] == "+" else -1
        digits = tz[1:].replace(":", "")
        secs -= sign * (int(digits[:2]) * 3600 + int(digits[2:4]) * 60)
    ns = int((frac or "0")[:9].ljust(9, "0"))
    return in_range(secs * NS + ns)
