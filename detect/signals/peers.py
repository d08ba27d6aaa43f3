"""Who depends on whom, read from what log lines say, for logs without traces (a few hosts' journals).

- `peers_in`: the peers a line names: libpq's 'server at "db.lan" (10.0.0.13), port 5432', URLs and DSNs
  ('http://10.0.0.12:8000/', 'redis://cache.lan:6379'), host:port tokens ('upstream=10.0.0.11:8000').
- `Directory`: who owns an address, from the lines themselves: the host that wrote a line (the journal's
  hostname), the addresses a host prints as its own ('listening on IPv4 address "0.0.0.0", port 5432',
  'DHCPv4 address 10.0.0.13/24', the right side of '10.0.0.16:59126 -> 10.0.0.20:5672'), a host name
  whose first label is a host's ('n3.lan'), a service's name.
- `kernel_to_host`, `attribute_lines`: lines about something else than their writer are given to what they
  are about: the kernel's lines to the host, a service manager's 'x.service: ...' to the service of unit x on that host,
  'Killed process 811 (redis-server)' to that service.
- `peer_calls`: caller -> callee edges (caller: the service whose line names the peer; callee: the
  service that owns it, else its host, else the peer as the line names it) and, per line, the callee it
  names; a line that cannot resolve a name calls the resolver (`RESOLVER`), not the host it names. A
  peer nobody here owns is given to the service whose own lines show a fault phrase
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
from detect.signals.common import ERROR_LEVELS, ERROR_WORDS
from detect.signals.faulttext import PHRASE_RE, PHRASES, Phrase, fault_lines

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
_SOURCE_FILE = re.compile(r"\.(?:go|py|java|kt|scala|js|ts|c|cc|cpp|h|hpp|rs|rb|php|cs|ex|exs|erl|lua)$")
_CLIENT_BEFORE = re.compile(
    r"(?:\bfrom|\bfor|\bclient[:=]?|\bsrc=|\bremote[_ ]?addr[:=]?|\bpeer[:=]?)\s*[\"'(\[]?$", re.I
)
_OWN_ADDR = re.compile(r"\baddress (" + _IP + r")/\d{1,2}\b")
_PREFILTER = r"://|\d:\d{2,5}\b|port \d|\w\.\w+:\d|address \d"
_DIRECTORY_HINT = r"listen|bound|binding|serving|accepting conn| -> |address \d"
_ATTRIBUTE_HINT = r"\.(?:service|socket|scope|mount|timer): |Killed process "
_UNIT = re.compile(r"^([\w.:-]+?)(?:@[\w.:-]*)?\.(?:service|socket|scope|mount|timer): ")
_KILLED = re.compile(r"Killed process \d+ \(([^)]+)\)")
ANY = {"0.0.0.0", "*", "::", "[::]"}
ONSET_S = 120
RESOLVER = "name resolver"
"""The callee of a line that could not resolve a name, until a service is found for it."""
_RESOLVING = next(p.pattern for p in PHRASES if p.detail == "name resolution")
SAMPLE_PER_STATEMENT = 20


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
        if not port or _SOURCE_FILE.search(host) or _CLIENT_BEFORE.search(text[: m.start()]):
            continue  # a file and line, a client's address ('from 10.0.0.5 port', 'client: ...', 'A:p -> B:q')
        if text[m.end() : m.end() + 4].lstrip().startswith("->"):
            continue
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


def writers(t: pa.Table) -> set[tuple[str, str]]:
    """The (host, service) pairs that wrote the lines of a log table."""
    g = t.group_by(["host", "service"]).aggregate([])
    return set(zip(g.column("host").to_pylist(), g.column("service").to_pylist(), strict=True))


def directory(t: pa.Table, pairs: set[tuple[str, str]] | None = None) -> Directory:
    """The directory learnt from a log table (host, service, message columns); `pairs`: the (host, service)
    writers of all the lines when `t` holds only some of them."""
    d = Directory()
    hosts = t.column("host").to_pylist()
    services = t.column("service").to_pylist()
    for h, s in writers(t) if pairs is None else pairs:
        if h:
            d.hosts.add(h)
        if h and s:
            d.services[s].add(h)
    hit = pc.match_substring_regex(t.column("message"), _DIRECTORY_HINT, ignore_case=True)
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
    hit = pc.match_substring_regex(t.column("message"), _ATTRIBUTE_HINT)
    hit_np = pc.fill_null(hit, False).to_numpy(zero_copy_only=False)
    changed = False
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
    messages = t.column("message")
    err = pc.is_in(pc.utf8_upper(t.column("level")), value_set=pa.array(sorted(ERROR_LEVELS))).to_numpy(
        zero_copy_only=False
    ) | pc.fill_null(pc.match_substring_regex(messages, ERROR_WORDS.pattern), False).to_numpy(zero_copy_only=False)
    hit = pc.fill_null(pc.match_substring_regex(messages, _PREFILTER), False).to_numpy(zero_copy_only=False)
    hit |= err & pc.fill_null(pc.match_substring_regex(messages, _RESOLVING.pattern, ignore_case=True), False).to_numpy(
        zero_copy_only=False
    )
    rows = np.nonzero(hit)[0]
    idx = pa.array(rows, pa.int64())
    cache: dict[Peer, tuple[str, str]] = {}
    msgs = messages.take(idx).to_pylist()
    services = t.column("service").take(idx).to_pylist()
    hosts = t.column("host").take(idx).to_pylist()
    tids = t.column("template_id").take(idx).to_pylist()
    seen: dict[tuple[str, str], int] = defaultdict(int)
    for i, msg, me, host, tid in zip(rows.tolist(), msgs, services, hosts, tids, strict=True):
        if not err[i]:  # ordinary lines tell the calls, not which request failed: a few of each statement do
            key = (me, tid or (msg or "")[:24])
            seen[key] += 1
            if seen[key] > SAMPLE_PER_STATEMENT:
                continue
        if err[i] and me and _RESOLVING.search((msg or "")[:2000]):
            # a name that cannot be resolved says nothing against the host it names: the resolver failed
            out.unresolved.add(RESOLVER)
            out.edges.add((me, RESOLVER))
            out.deps[i] = RESOLVER
            continue
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
    _by_onset(t, in_window, err, out)
    return out


def _by_onset(t: pa.Table, in_window: np.ndarray, err: np.ndarray, calls: PeerCalls) -> None:
    """Give each unresolved callee to the one service whose own window lines show a fault phrase in the
    `ONSET_S` before the first error naming the callee (module doc)."""
    if not calls.unresolved:
        return
    ts = t.column("ts_ns").to_numpy(zero_copy_only=False)
    phrased = pc.fill_null(pc.match_substring_regex(t.column("message"), PHRASE_RE, ignore_case=True), False)
    rows = np.nonzero(phrased.to_numpy(zero_copy_only=False) & in_window)[0]
    idx = pa.array(rows, pa.int64())
    who = zip(t.column("service").take(idx).to_pylist(), t.column("host").take(idx).to_pylist(), strict=True)
    faults = [(int(ts[i]), s, h) for i, (s, h) in zip(rows.tolist(), who, strict=True)]
    first: dict[str, int] = {}
    callers: dict[str, set[str]] = defaultdict(set)
    named = [i for i, dep in enumerate(calls.deps) if dep in calls.unresolved and in_window[i] and err[i]]
    writers = t.column("service").take(pa.array(named, pa.int64())).to_pylist()
    for i, me in zip(named, writers, strict=True):
        dep = calls.deps[i]
        first[dep] = min(first.get(dep, int(ts[i])), int(ts[i]))
        callers[dep].add(me)
    alias: dict[str, str] = {}
    for dep, t0 in first.items():
        near = {
            (s, h) for at, s, h in faults if t0 - ONSET_S * NS <= at <= t0 + NS and s not in callers[dep] and s != dep
        }
        on_hosts = {h for _, h in near}
        own = {s for s, _ in near if s not in on_hosts}  # the host itself (its kernel) beside one of its services
        if len(on_hosts) == 1 and len(own) <= 1:
            alias[dep] = next(iter(own)) if own else next(iter(on_hosts))
    if not alias:
        return
    calls.deps = [alias.get(x, x) for x in calls.deps]
    calls.edges = {(a, alias.get(b, b)) for a, b in calls.edges if a != alias.get(b, b)}
    calls.unresolved -= alias.keys()


def kernel_to_host(t: pa.Table) -> pa.Table:
    """The kernel's lines given to the host they were written on (it speaks for the machine)."""
    kernel = pc.and_(pc.equal(t.column("service"), "kernel"), pc.not_equal(t.column("host"), ""))
    if not pc.any(kernel).as_py():
        return t
    return t.set_column(
        t.schema.get_field_index("service"), "service", pc.if_else(kernel, t.column("host"), t.column("service"))
    )


def read_peers(
    lw: pa.Table, lb: pa.Table, *, width_ns: int, min_z: float, spans: bool
) -> tuple[pa.Table, pa.Table, PeerCalls, dict[str, Phrase], list[Signal]]:
    """Window and history log tables, the calls their lines name, the fault phrase of each node (its own
    lines and those naming it: `detect.signals.faulttext.fault_lines`) and the fault-phrase signals.
    Without spans (`spans` False) lines are first given to what they are about and the calls are read
    from them. One pass over the text finds the lines any of that may concern; the rest reads those."""
    logs = pa.concat_tables([lw, lb])
    n, n_win = logs.num_rows, lw.num_rows
    in_window = np.arange(n) < n_win
    hist_ts = logs.column("ts_ns").to_numpy(zero_copy_only=False)[n_win:]
    history_ns = int(hist_ts.max() - hist_ts.min()) if len(hist_ts) else 0
    if not spans:
        logs = kernel_to_host(logs)
    pattern = PHRASE_RE if spans else "|".join((PHRASE_RE, _PREFILTER, _DIRECTORY_HINT, _ATTRIBUTE_HINT))
    hit = pc.fill_null(pc.match_substring_regex(logs.column("message"), pattern, ignore_case=True), False)
    rows = np.nonzero(hit.to_numpy(zero_copy_only=False))[0]
    sub, sub_win = logs.take(pa.array(rows, pa.int64())), in_window[rows]
    calls, deps = PeerCalls(), None
    if not spans:
        d = directory(sub, writers(logs))
        moved = attribute_lines(sub, d)
        if moved is not sub:
            services = logs.column("service").to_numpy(zero_copy_only=False).astype(object)
            services[rows] = moved.column("service").to_numpy(zero_copy_only=False)
            logs = logs.set_column(logs.schema.get_field_index("service"), "service", pa.array(services, pa.string()))
            sub = moved
        calls = peer_calls(sub, sub_win, d)
        deps = calls.deps
        full = [""] * n
        for i, dep in zip(rows.tolist(), deps, strict=True):
            full[i] = dep
        calls.deps = full
    kinds, signals = fault_lines(sub, sub_win, deps, width_ns=width_ns, min_z=min_z, history_ns=history_ns)
    return logs.slice(0, n_win), logs.slice(n_win), calls, kinds, signals


__all__ = [
    "Directory",
    "Peer",
    "PeerCalls",
    "attribute_lines",
    "directory",
    "kernel_to_host",
    "peer_calls",
    "peers_in",
    "read_peers",
]
