"""Network faults (detect.signals.network): the caller's view of a call against the callee's own time, and
which end the ranking blames. Hand-made traces: `front` calls `db` and `cache`, `worker` calls `db`."""

from __future__ import annotations

from core.rca import FaultKind, SignalKind
from detect.rank.ranking import rank_window
from detect.signals import compute_signals
from tests.spans import span

NS = 1_000_000_000
T0 = 1_700_000_000 * NS
MIN = 60 * NS
WINDOW_T = T0 + 30 * MIN
WINDOW = (WINDOW_T, WINDOW_T + MIN)
MS = 1000.0  # span durations are in microseconds


def calls(
    t0: int,
    n: int,
    *,
    prefix: str,
    every_ns: int,
    wire_db: float = 0.0,
    wire_cache: float = 0.0,
    wire_worker_db: float = 0.0,
    db_cpu: float = 0.0,
) -> list[dict]:
    """n requests of `front` (calls db then cache) and n of `worker` (calls db). `wire_*` ms are added
    between a client span and the callee's server span (on the wire); `db_cpu` ms to the db's own time."""
    out: list[dict] = []
    for i in range(n):
        s = t0 + i * every_ns
        tr = f"{prefix}f{i:04d}"
        gap_db, gap_cache = wire_db * MS, wire_cache * MS
        db = 2 * MS + db_cpu * MS
        out.append(span(tr, "f1", "", "front", "/page", s, 10 * MS + gap_db + gap_cache + db_cpu * MS))
        out.append(span(tr, "f2", "f1", "front", "GET db", s + 1000, MS + db + gap_db))
        out.append(span(tr, "d1", "f2", "db", "/get", s + 1000 + int(gap_db * 500), db))
        c0 = s + 1000 + int((MS + db + gap_db) * 1000) + 100_000
        out.append(span(tr, "f3", "f1", "front", "GET cache", c0, MS + gap_cache))
        out.append(span(tr, "k1", "f3", "cache", "/k", c0 + int(gap_cache * 500) + 100, 0.5 * MS))
        tr = f"{prefix}w{i:04d}"
        gap = wire_worker_db * MS
        out.append(span(tr, "w1", "", "worker", "/job", s + 7, 8 * MS + gap + db_cpu * MS))
        out.append(span(tr, "w2", "w1", "worker", "GET db", s + 1007, MS + db + gap))
        out.append(span(tr, "e1", "w2", "db", "/get", s + 1007 + int(gap * 500), db))
    return out


def history(n_slices: int = 10, per_slice: int = 20) -> list[dict]:
    out: list[dict] = []
    for j in range(n_slices):
        out += calls(T0 + j * MIN, per_slice, prefix=f"h{j:02d}-", every_ns=MIN // per_slice)
    return out


def rank(win: list[dict]):  # type: ignore[no-untyped-def]
    return rank_window(None, None, win, history(), None, None, None, window=WINDOW)


def test_calls_to_one_callee_slower_on_the_wire_blame_the_callee_as_network() -> None:
    win = calls(WINDOW_T, 40, prefix="w", every_ns=NS, wire_db=15, wire_worker_db=15)
    ws = compute_signals(None, None, win, history(), None, None, window=WINDOW)
    edge = sorted((s.service, s.key) for s in ws.signals if s.kind == SignalKind.EDGE_LATENCY)
    assert edge == [("db", "front->db"), ("db", "worker->db")]
    assert not [s for s in ws.signals if s.kind == SignalKind.SPAN_SELF_LATENCY]
    res = rank(win)
    assert res.status == "ok"
    top = res.candidates[0]
    assert (top.service, top.fault_kind) == ("db", FaultKind.NETWORK_DELAY)
    assert "2 of 2 callers of db see it" in top.signals[0].description


def test_a_callee_slow_in_its_own_code_is_not_a_network_fault() -> None:
    win = calls(WINDOW_T, 40, prefix="w", every_ns=NS, db_cpu=15)
    ws = compute_signals(None, None, win, history(), None, None, window=WINDOW)
    assert not [s for s in ws.signals if s.kind in (SignalKind.EDGE_LATENCY, SignalKind.EDGE_ERROR)]
    top = rank(win).candidates[0]
    assert top.service == "db"
    assert top.fault_kind == FaultKind.RESOURCE_SATURATION


def test_one_caller_slow_to_every_callee_blames_the_caller() -> None:
    # front's calls to the db and to the cache are late on the wire; worker's calls to the db are not
    win = calls(WINDOW_T, 40, prefix="w", every_ns=NS, wire_db=15, wire_cache=15)
    ws = compute_signals(None, None, win, history(), None, None, window=WINDOW)
    edge = sorted((s.service, s.key) for s in ws.signals if s.kind == SignalKind.EDGE_LATENCY)
    assert edge == [("front", "front->cache"), ("front", "front->db")]
    top = rank(win).candidates[0]
    assert (top.service, top.fault_kind) == ("front", FaultKind.NETWORK_DELAY)


def test_calls_failing_at_the_caller_while_the_callee_saw_no_error_are_edge_errors() -> None:
    win = calls(WINDOW_T, 40, prefix="w", every_ns=NS)
    for s in win:
        if s["span_id"] in ("f2", "w2") and int(s["trace_id"][-4:]) % 2 == 0:
            s["status"] = "ERROR"  # the client gave up; the db answered normally
    ws = compute_signals(None, None, win, history(), None, None, window=WINDOW)
    errs = sorted((s.service, s.key) for s in ws.signals if s.kind == SignalKind.EDGE_ERROR)
    assert errs == [("db", "front->db"), ("db", "worker->db")]
    top = rank(win).candidates[0]
    assert (top.service, top.fault_kind) == ("db", FaultKind.NETWORK_DELAY)


def test_calls_with_no_server_span_give_no_network_signal() -> None:
    # partial traces: the db is not traced, so the front's and worker's calls to it have no server view
    win = [
        s for s in calls(WINDOW_T, 40, prefix="w", every_ns=NS, wire_db=15, wire_worker_db=15) if s["service"] != "db"
    ]
    hist = [s for s in history() if s["service"] != "db"]
    ws = compute_signals(None, None, win, hist, None, None, window=WINDOW)
    assert not [s for s in ws.signals if s.kind in (SignalKind.EDGE_LATENCY, SignalKind.EDGE_ERROR)]
