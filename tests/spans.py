"""Span rows for tests of the trace signals and the ranking: plain dicts in the event store's shape."""

from __future__ import annotations

NS = 1_000_000_000


def span(trace: str, sid: str, parent: str, svc: str, op: str, start: int, dur_us: float) -> dict:
    return {
        "trace_id": trace,
        "span_id": sid,
        "parent_id": parent,
        "service": svc,
        "pod": f"{svc}-0",
        "operation": op,
        "start_ns": start,
        "end_ns": start + int(dur_us * 1000),
        "duration_us": dur_us,
    }


def loop_requests(t0: int, n: int, *, calls: int, calcs: int, prefix: str, every_ns: int = NS) -> list[dict]:
    """n requests of 'trip' (op /trips), each a loop: per item a call to 'seat' then a 'calc' step;
    `calls` calls are made and `calcs` calc steps reached (fewer: the loop ended early). The request
    lasts as long as its work."""
    out: list[dict] = []
    for i in range(n):
        tr, s = f"{prefix}{i:04d}", t0 + i * every_ns
        out.append(span(tr, "r", "", "trip", "/trips", s, 1_000 + calls * 3_000))
        for j in range(calls):
            at = s + 1_000 + j * 3_000_000
            out.append(span(tr, f"p{j}", "r", "trip", "HTTP POST", at, 1_000))
            out.append(span(tr, f"s{j}", f"p{j}", "seat", "/left", at + 100, 500))
            if j < calcs:
                out.append(span(tr, f"c{j}", "r", "trip", "calc", at + 1_500_000, 200))
    return out
