"""Peers read from log lines, lines given to what they are about, fault kinds from text (logs-only regime)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from core.rca import FaultKind, SignalKind
from detect.signals.faulttext import fault_lines, phrase_of, text_kind
from detect.signals.logs import LOG_SCHEMA
from detect.signals.peers import Peer, attribute_lines, directory, kernel_to_host, peer_calls, peers_in, read_peers

S = 1_000_000_000


def test_peers_in_reads_libpq_urls_dsns_and_host_ports() -> None:
    libpq = 'connection to server at "db.lan" (10.0.0.13), port 5432 failed: Connection refused'
    assert peers_in(libpq) == [Peer("db.lan", "10.0.0.13", 5432)]
    nginx = (
        "connect() failed (111: Connection refused) while connecting to upstream, client: 192.168.1.7, "
        'server: shop.lan, request: "GET /a HTTP/2.0", upstream: "http://10.0.0.12:8000/a", host: "shop.lan"'
    )
    assert peers_in(nginx) == [Peer("", "10.0.0.12", 8000)]
    assert peers_in("Cannot connect to redis://cache.lan:6379/0: Error 111") == [Peer("cache.lan", "", 6379)]
    assert peers_in("GET / 200 host=shop.lan upstream=10.0.0.11:8000 ust=200") == [Peer("", "10.0.0.11", 8000)]
    # timestamps, dotted code paths, versions, files and lines, and clients are no peers
    assert peers_in("2026-03-14 10:28:00.000 UTC django.db.utils.OperationalError: Redis version=7.0.15") == []
    assert peers_in("ts=2026-03-14T10:28:00Z caller=head.go:123 level=info") == []
    assert peers_in("completed GET /user/events for 192.168.1.215:0, 200 OK") == []
    assert peers_in("connect() failed, client: 192.168.1.7:5555, server: shop.lan") == []
    assert peers_in("accepting AMQP connection (10.0.0.16:59126 -> 10.0.0.20:5672)") == [Peer("", "10.0.0.20", 5672)]


def test_phrases_name_the_kind_and_the_deepest_cause_wins() -> None:
    assert phrase_of('PANIC:  could not write to file "pg_wal/x": No space left on device').detail == "disk full"  # type: ignore[union-attr]
    assert phrase_of("Out of memory: Killed process 811 (redis-server) total-vm:3912044kB").detail == "out of memory"  # type: ignore[union-attr]
    assert phrase_of("FATAL:  remaining connection slots are reserved for superuser").detail == "connection limit"  # type: ignore[union-attr]
    assert phrase_of("x509: certificate has expired or is not yet valid").detail == "certificate"  # type: ignore[union-attr]
    assert phrase_of('could not translate host name "db.lan" to address').detail == "name resolution"  # type: ignore[union-attr]
    assert phrase_of("Time jumped backwards, rotating.").detail == "clock"  # type: ignore[union-attr]
    assert phrase_of("x.service: Start request repeated too quickly.").detail == "crash loop"  # type: ignore[union-attr]
    assert phrase_of("GET /api/v1/products 200 12ms") is None
    # a crash loop after a full disk is a full disk, whatever the counts
    lines = ["x.service: Main process exited, code=exited, status=1/FAILURE"] * 5 + ["No space left on device"]
    got = text_kind(lines)
    assert got is not None and got.detail == "disk full" and got.kind == FaultKind.RESOURCE_SATURATION


def _logs(rows: list[tuple[int, str, str, str, str]]) -> pa.Table:
    """(seconds, host, service, level, message) rows as a log table."""
    cols: dict[str, list[object]] = {f.name: [] for f in LOG_SCHEMA}
    for i, (t, host, service, level, message) in enumerate(rows):
        for k, v in (("event_id", str(i)), ("ts_ns", t * S), ("service", service), ("pod", "")):
            cols[k].append(v)
        for k, v in (("host", host), ("level", level), ("message", message)):
            cols[k].append(v)
        for k in ("trace_id", "span_id", "template_id"):
            cols[k].append("")
    return pa.table({f.name: pa.array(cols[f.name], f.type) for f in LOG_SCHEMA})


def test_addresses_resolve_to_the_service_that_announced_them_and_lines_go_to_what_they_are_about() -> None:
    t = _logs(
        [
            (0, "h3", "postgres", "INFO", 'LOG:  listening on IPv4 address "0.0.0.0", port 5432'),
            (1, "h3", "systemd-networkd", "INFO", "eth0: DHCPv4 address 10.0.0.13/24, gateway 10.0.0.1 acquired"),
            (2, "h1", "app", "INFO", "GET / 200"),
            (3, "h5", "other", "INFO", "hello"),
            (100, "h3", "kernel", "ERROR", "EXT4-fs warning (device sda1): ext4_dx_add_entry: Directory index full!"),
            (101, "h3", "systemd", "WARN", "postgresql@15-main.service: Failed with result 'exit-code'."),
            (
                102,
                "h1",
                "app",
                "ERROR",
                'connection to server at "db.lan" (10.0.0.13), port 5432 failed: Connection refused',
            ),
            (103, "h1", "app", "ERROR", "Cannot connect to redis://cache.lan:6379/0: Connection refused"),
        ]
    )
    t = kernel_to_host(t)
    d = directory(t)
    assert d.resolve(Peer("db.lan", "10.0.0.13", 5432)) == ("h3", "postgres")
    assert d.resolve(Peer("h5.lan", "", 0)) == ("h5", "other")
    moved = attribute_lines(t, d).column("service").to_pylist()
    assert moved[4:6] == ["h3", "postgres"]  # the kernel speaks for its host; systemd's line is about postgres
    win = np.arange(t.num_rows) >= 4
    calls = peer_calls(attribute_lines(t, d), win, d)
    assert calls.edges == {("app", "postgres"), ("app", "cache.lan")}
    assert calls.deps[6:8] == ["postgres", "cache.lan"]
    assert calls.unresolved == {"cache.lan"}
    assert calls.hosts["postgres"] == "h3" and calls.hosts["h3"] == "h3"


def test_a_peer_nobody_owns_goes_to_the_one_service_that_failed_just_before() -> None:
    t = _logs(
        [
            (0, "h5", "redis-server", "INFO", "Background saving started"),
            (0, "h2", "worker", "INFO", "task done"),
            (600, "h5", "kernel", "ERROR", "Out of memory: Killed process 811 (redis-server) total-vm:3912044kB"),
            (602, "h2", "worker", "ERROR", "Cannot connect to redis://cache.lan:6379/0: Connection refused"),
            (603, "h2", "worker", "ERROR", "Cannot connect to redis://cache.lan:6379/0: Connection refused"),
        ]
    )
    t = kernel_to_host(t)
    d = directory(t)
    moved = attribute_lines(t, d)
    assert moved.column("service").to_pylist()[2] == "redis-server"  # 'Killed process (redis-server)'
    win = np.arange(t.num_rows) >= 2
    calls = peer_calls(moved, win, d)
    assert calls.edges == {("worker", "redis-server")}
    assert calls.unresolved == set()
    kinds, signals = fault_lines(moved, win, calls.deps, width_ns=300 * S, min_z=3.0)
    assert kinds["redis-server"].detail == "out of memory"
    assert [(s.service, s.kind, s.key) for s in signals] == [
        ("redis-server", SignalKind.LOG_FAULT_PHRASE, "out of memory")
    ]
    assert signals[0].evidence_ids == ["log:2"]


def test_read_peers_reads_only_the_lines_that_concern_it_and_gives_the_same_answer() -> None:
    rows = [(0, "h5", "redis-server", "INFO", "Background saving started"), (0, "h2", "worker", "INFO", "task done")]
    rows += [(i, "h2", "worker", "INFO", f"task {i} done in {i} ms") for i in range(1, 200)]
    rows += [
        (600, "h5", "kernel", "ERROR", "Out of memory: Killed process 811 (redis-server) total-vm:3912044kB"),
        (602, "h2", "worker", "ERROR", "Cannot connect to redis://cache.lan:6379/0: Connection refused"),
    ]
    t = _logs(rows)
    n_base = len(rows) - 2
    lw, lb = t.slice(n_base), t.slice(0, n_base)
    lw2, lb2, calls, kinds, signals = read_peers(lw, lb, width_ns=300 * S, min_z=3.0, spans=False)
    assert lw2.column("service").to_pylist() == ["redis-server", "worker"]
    assert calls.edges == {("worker", "redis-server")}
    # per row of the window then the history, as the log signals read them
    assert calls.deps[:3] == ["", "redis-server", ""] and len(calls.deps) == len(rows)
    assert kinds["redis-server"].detail == "out of memory" and "worker" not in kinds  # refused names no kind
    assert [(s.service, s.key) for s in signals] == [("redis-server", "out of memory")]
