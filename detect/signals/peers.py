"""Who depends on whom, read from what log lines say, for logs without traces (a few hosts' journals).

- `peers_in`: the peers a line names: libpq's 'server at "db.lan" (10.0.0.13), port 5432', URLs and DSNs
  ('http://10.0.0.12:8000/', 'redis://cache.lan:6379'), host:port tokens ('upstream=10.0.0.11:8000').
- `Directory`: who owns an address, from the lines themselves: the host that wrote a line (the journal's
  hostname), the addresses a host prints as its own ('listening on IPv4 address "0.0.0.0", port 5432',
  'DHCPv4 address 10.0.0.13/24', the right side of '10.0.0.16:59126 -> 10.0.0.20:5672'), a host name
  whose first label is a host's ('n3.lan'), a service's name.
- `attribute_lines`: lines about something else than their writer are given to what they are about: the
  kernel's lines to the host, a service manager's 'x.service: ...' to the service of unit x on that host,
  'Killed process 811 (redis-server)' to that service.
- `peer_calls`: caller -> callee edges (caller: the service whose line names the peer; callee: the
  service that owns it, else its host, else the peer as the line names it) and, per line, the callee it
  names. A peer nobody here owns is given to the service whose own lines show a fault phrase
  (`detect.signals.faulttext`) in the two minutes before the first failure naming the peer, when there is
  exactly one such service on one host (the callers' failures begin when it fails).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core.rca import Signal
from core.timeutil import NS
from detect.signals.common import is_error_line
from detect.signals.faulttext import PHRASE_RE, Phrase, phrase_of, phrase_signals, text_kind

_IP = r"(?:\d{1,3}\.){3}\d{1,3}"
_NAME = r"[A-Za-z][\w-]*(?:\.[A-Za-z0-9][\w-]*)+"
_LIBPQ = re.compile(r'server at "([^"]+)" \((' + _IP + r")\), port (\d+)")
_URL = re.compile(r"\b[A-Za-z][\w+.-]*://(?:[^\s/@\"']+@)?(" + _IP + "|" + _NAME + r"|[A-Za-z][\w-]*)(?::(\d{1,5}))?")
_HOSTPORT = re.compile(r"(?<![\w.:/@-])(" + _IP + "|" + _NAME + r"):(\d{1,5})\b(?![.:]\d)")
_INBOUND = re.compile(_IP + r":\d+ -> (" + _IP + r"):(\d{1,5})")
_LISTEN = re.compile(
    r"\b(?:listen(?:ing|s)?|bound|binding|serving|accepting connections)\b[^\n]{0,40}?"
    r"(?:(" + _IP + r'|\*|\[?::\]?)"?[:,]? ?(?:port )?(\d{2,5})\b|port[= ](\d{2,5})\b)',
    re.IGNORECASE,
)
_OWN_ADDR = re.compile(r"\baddress (" + _IP + r")/\d{1,2}\b")
_PREFILTER = r"://|\d:\d{2,5}\b|port \d|\w\.\w+:\d|address \d"
_UNIT = re.compile(r"^([\w.:-]+?)(?:@[\w.:-]*)?\.(?:service|socket|scope|mount|timer): ")
_KILLED = re.compile(r"Killed process \d+ \(([^)]+)\)")
ANY = {"0.0.0.0", "*", "::", "[::]"}
ONSET_S = 120


class Peer(NamedTuple):
    name: str
    address: str
    port: int

    @property
    def label(self) -> str:
        return self.name or (f"{self.address}:{self.port}" if self.port else self.address)


def peers_in(message: str) -> list[Peer]:
    """Peers a line names, those with a port first (a line that names a port names what it called)."""
    text = message[:2000]
    out: list[Peer] = []
    for m in _LIBPQ.finditer(text):
        out.append(Peer(m.group(1).lower(), m.group(2), int(m.group(3))))
    for m in _URL.finditer(text):
        host, port = m.group(1).lower(), int(m.group(2) or 0)
        out.append(Peer("", host, port) if re.fullmatch(_IP, host) else Peer(host, "", port))
    for m in _HOSTPORT.finditer(text):
        host, port = m.group(1).lower(), int(m.group(2))
        out.append(Peer("", host, port) if re.fullmatch(_IP, host) else Peer(host, "", port))
    seen: set[Peer] = set()
    uniq = [p for p in out if not (p in seen or seen.add(p))]  # type: ignore[func-returns-value]
    with_port = [p for p in uniq if p.port]
    return with_port or uniq


@dataclass
class Directory:
    """Who owns names and addresses, learnt from the lines (see module doc)."""

    hosts: set[str] = field(default_factory=set)
    services: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    """service -> hosts it writes on."""
    address: dict[str, str] = field(default_factory=dict)
    """address -> host."""
    ports: dict[tuple[str, int], str] = field(default_factory=dict)
    """(host, port) -> service listening there."""

    def learn(self, host: str, service: str, message: str) -> None:
        for m in _LISTEN.finditer(message[:600]):
            addr, port = m.group(1) or "", int(m.group(2) or m.group(3))
            if addr and addr not in ANY and not addr.startswith("127."):
                self.address.setdefault(addr, host)
            self.ports.setdefault((host, port), service)
        for m in _INBOUND.finditer(message[:600]):
            self.address.setdefault(m.group(1), host)
            self.ports.setdefault((host, int(m.group(2))), service)
        for m in _OWN_ADDR.finditer(message[:600]):
            if not m.group(1).startswith("127."):
                self.address.setdefault(m.group(1), host)

    def own_services(self, host: str) -> list[str]:
        """Services writing on `host` that do not write on most hosts (those are the machine's own tools)."""
        common = max(2, (len(self.hosts) + 1) // 2)
        return sorted(s for s, hs in self.services.items() if host in hs and len(hs) < common and s not in self.hosts)

    def resolve(self, peer: Peer) -> tuple[str, str]:
        """(host, service) owning a peer; '' for what is not known."""
        host = self.address.get(peer.address, "") or self.address.get(peer.name, "")
        first = peer.name.split(".")[0] if peer.name else ""
        if not host and (peer.name in self.hosts or first in self.hosts):
            host = peer.name if peer.name in self.hosts else first
        if not host:
            named = peer.name if peer.name in self.services else first if first in self.services else ""
            if named and named not in self.hosts:
                hs = self.services[named]
                return (next(iter(hs)) if len(hs) == 1 else "", named)
            return "", ""
        service = self.ports.get((host, peer.port), "") if peer.port else ""
        if not service:
            own = self.own_services(host)
            service = own[0] if len(own) == 1 else ""
        return host, service


def _same_host_service(name: str, host: str, d: Directory) -> str:
    """The service on `host` a unit or process name stands for: the same name, or one a prefix of the other."""
    name = name.lower()
    on_host = [s for s, hs in d.services.items() if host in hs]
    exact = [s for s in on_host if s.lower() == name]
    if exact:
        return exact[0]
    near = [
        s for s in on_host if min(len(s), len(name)) >= 3 and (s.lower().startswith(name) or name.startswith(s.lower()))
    ]
    return near[0] if len(near) == 1 else ""


def directory(t: pa.Table) -> Directory:
    """The directory learnt from a log table (host, service, message columns)."""
    d = Directory()
    hosts = t.column("host").to_pylist()
    services = t.column("service").to_pylist()
    d.hosts = {h for h in hosts if h}
    for h, s in set(zip(hosts, services, strict=True)):
        if h and s:
            d.services[s].add(h)
    hit = pc.match_substring_regex(
        t.column("message"), r"(?i)listen|bound|binding|serving|accepting conn| -> |address \d"
    )
    rows = np.nonzero(pc.fill_null(hit, False).to_numpy(zero_copy_only=False))[0]
    msgs = t.column("message").take(pa.array(rows, pa.int64())).to_pylist()
    for i, m in zip(rows.tolist(), msgs, strict=True):
        if hosts[i]:
            d.learn(hosts[i], services[i], m or "")
    return d


def attribute_lines(t: pa.Table, d: Directory) -> pa.Table:
    """The log table with lines about something else than their writer given to what they are about."""
    if t.num_rows == 0:
        return t
    services = t.column("service").to_pylist()
    hosts = t.column("host").to_pylist()
    hit = pc.match_substring_regex(t.column("message"), r"\.(?:service|socket|scope|mount|timer): |Killed process ")
    hit_np = pc.fill_null(hit, False).to_numpy(zero_copy_only=False)
    changed = False
    for i in range(t.num_rows):
        if services[i] == "kernel" and hosts[i]:
            services[i] = hosts[i]
            changed = True
    for i in np.nonzero(hit_np)[0].tolist():
        msg, host = t.column("message")[i].as_py() or "", hosts[i]
        m = _UNIT.match(msg) or _KILLED.search(msg)
        about = _same_host_service(m.group(1), host, d) if m and host else ""
        if about and about != services[i]:
            services[i] = about
            changed = True
    if not changed:
        return t
    return t.set_column(t.schema.get_field_index("service"), "service", pa.array(services, pa.string()))


@dataclass
class PeerCalls:
    edges: set[tuple[str, str]] = field(default_factory=set)
    deps: list[str] = field(default_factory=list)
    """Per row, the callee the line names ('' when none)."""
    unresolved: set[str] = field(default_factory=set)
    """Callees named as the lines name them: nobody here owns them."""
    hosts: dict[str, str] = field(default_factory=dict)
    """Node -> the host it is on, when one."""


def peer_calls(t: pa.Table, in_window: np.ndarray, d: Directory) -> PeerCalls:
    """Calls named in the lines of a log table (module doc); `in_window` flags the incident window's rows."""
    n = t.num_rows
    out = PeerCalls(deps=[""] * n)
    for s, hs in d.services.items():
        if len(hs) == 1:
            out.hosts[s] = next(iter(hs))
    for h in d.hosts:
        out.hosts[h] = h
    if n == 0:
        return out
    hit = pc.fill_null(pc.match_substring_regex(t.column("message"), _PREFILTER), False).to_numpy(zero_copy_only=False)
    rows = np.nonzero(hit)[0]
    idx = pa.array(rows, pa.int64())
    cache: dict[Peer, tuple[str, str]] = {}
    msgs = t.column("message").take(idx).to_pylist()
    services = t.column("service").take(idx).to_pylist()
    hosts = t.column("host").take(idx).to_pylist()
    for i, msg, me, host in zip(rows.tolist(), msgs, services, hosts, strict=True):
        for p in peers_in(msg or ""):
            if p not in cache:
                cache[p] = d.resolve(p)
            h, s = cache[p]
            callee = s or h or p.label
            if not me or callee == me or (not s and h == host):
                continue
            if not (s or h):
                out.unresolved.add(callee)
            out.edges.add((me, callee))
            if not out.deps[i]:
                out.deps[i] = callee
    _by_onset(t, in_window, out)
    return out


def _by_onset(t: pa.Table, in_window: np.ndarray, calls: PeerCalls) -> None:
    """Give each unresolved callee to the one service whose own window lines show a fault phrase in the
    `ONSET_S` before the first error naming the callee (module doc)."""
    if not calls.unresolved:
        return
    ts = t.column("ts_ns").to_numpy(zero_copy_only=False)
    services = t.column("service").to_pylist()
    hosts = t.column("host").to_pylist()
    levels = t.column("level").to_pylist()
    msgs = t.column("message").to_pylist()
    win = np.nonzero(in_window)[0].tolist()
    faults = [(int(ts[i]), services[i], hosts[i]) for i in win if phrase_of(msgs[i] or "")]
    first: dict[str, int] = {}
    callers: dict[str, set[str]] = defaultdict(set)
    for i in win:
        dep = calls.deps[i]
        if dep in calls.unresolved and is_error_line(levels[i] or "", msgs[i] or ""):
            first[dep] = min(first.get(dep, int(ts[i])), int(ts[i]))
            callers[dep].add(services[i])
    alias: dict[str, str] = {}
    for dep, t0 in first.items():
        near = {
            (s, h) for at, s, h in faults if t0 - ONSET_S * NS <= at <= t0 + NS and s not in callers[dep] and s != dep
        }
        on_hosts = {h for _, h in near}
        services = {s for s, _ in near if s not in on_hosts}  # the host itself (its kernel) beside one of its services
        if len(on_hosts) == 1 and len(services) <= 1 and near:
            alias[dep] = next(iter(services)) if services else next(iter(on_hosts))
    if not alias:
        return
    calls.deps = [alias.get(x, x) for x in calls.deps]
    calls.edges = {(a, alias.get(b, b)) for a, b in calls.edges if a != alias.get(b, b)}
    calls.unresolved -= alias.keys()


def fault_lines(
    t: pa.Table, in_window: np.ndarray, deps: list[str] | None = None, *, width_ns: int = 0, min_z: float = 3.0
) -> tuple[dict[str, Phrase], list[Signal]]:
    """Per service, the fault phrase its own window lines name (`detect.signals.faulttext`) and, per callee
    nobody here owns (`deps` given), the phrase of the window lines that name it; with `width_ns` (the
    window's), a LOG_FAULT_PHRASE signal per service and phrase that the window has more of than history."""
    if t.num_rows == 0:
        return {}, []
    hit = pc.fill_null(pc.match_substring_regex(t.column("message"), PHRASE_RE, ignore_case=True), False)
    rows = np.nonzero(hit.to_numpy(zero_copy_only=False))[0]
    idx = pa.array(rows, pa.int64())
    by_node: dict[str, list[str]] = defaultdict(list)
    services = t.column("service").take(idx).to_pylist()
    msgs = t.column("message").take(idx).to_pylist()
    eids = t.column("event_id").take(idx).to_pylist()
    ts = t.column("ts_ns").take(idx).to_pylist()
    found: list[tuple[str, Phrase, str, bool]] = []
    for i, s, m, e, at in zip(rows.tolist(), services, msgs, eids, ts, strict=True):
        p = phrase_of(m or "")
        if p is None:
            continue
        found.append((s, p, f"log:{e}" if e else f"log:{at}:", bool(in_window[i])))
        if in_window[i]:
            by_node[s].append(m or "")
            if deps is not None and deps[i]:
                by_node[f"peer:{deps[i]}"].append(m or "")
    kinds = {node: p for node, msgs_ in by_node.items() if (p := text_kind(msgs_)) is not None}
    if not width_ns or not found:
        return kinds, []
    all_ts = t.column("ts_ns").to_numpy(zero_copy_only=False)[~in_window]
    history_ns = int(all_ts.max() - all_ts.min()) if len(all_ts) else 0
    cols = list(zip(*found, strict=True))
    signals = phrase_signals(list(cols[0]), list(cols[1]), list(cols[2]), list(cols[3]), width_ns, history_ns, min_z)
    return kinds, signals


def read_peers(
    lw: pa.Table, lb: pa.Table, *, width_ns: int, min_z: float, spans: bool
) -> tuple[pa.Table, pa.Table, PeerCalls, dict[str, Phrase], list[Signal]]:
    """Window and history log tables, the calls their lines name, the fault phrase of each node (a callee
    nobody here owns: of the lines that name it) and the fault-phrase signals. Without spans (`spans`
    False) lines are first given to what they are about and the calls are read from them."""
    calls = PeerCalls()
    if not spans:
        d = directory(pa.concat_tables([lw, lb]))
        lw, lb = attribute_lines(lw, d), attribute_lines(lb, d)
    logs = pa.concat_tables([lw, lb])
    in_window = np.arange(logs.num_rows) < lw.num_rows
    if not spans:
        calls = peer_calls(logs, in_window, d)
    kinds, signals = fault_lines(logs, in_window, calls.deps if not spans else None, width_ns=width_ns, min_z=min_z)
    own = {k: v for k, v in kinds.items() if not k.startswith("peer:")}
    for node in calls.unresolved:
        if f"peer:{node}" in kinds:
            own[node] = kinds[f"peer:{node}"]
    return lw, lb, calls, own, signals


__all__ = [
    "Directory",
    "Peer",
    "PeerCalls",
    "attribute_lines",
    "directory",
    "peer_calls",
    "peers_in",
    "read_peers",
    "fault_lines",
]
