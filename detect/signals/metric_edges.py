"""Calls read from metrics that follow OpenTelemetry's semantic conventions.

A client-side metric (a name with the token `client`: `http.client.request.duration`,
`rpc.client.duration`, `db.client.operation.duration`, ...) whose data points name the server they
called (`peer.service`, `server.address`, `net.peer.name`, `rpc.service`), or any metric carrying
`peer.service`, is a call from the resource's service to that peer. The peer is resolved against the
services the metrics know: the name itself, else its first DNS label (`cartservice.shop.svc:7070`),
else the last part of an RPC service name (`shop.CartService` -> `cartservice`), compared without
case; an unknown peer keeps its host name (a database, an outside API is a node of the call graph too).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from detect.signals.metric_families import parse_attrs, split_part

_PEER_KEYS = ("peer.service", "server.address", "net.peer.name", "rpc.service")
_CLIENT = re.compile(r"(^|[._\-])client([._\-]|$)", re.IGNORECASE)
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


def is_client_metric(name: str) -> bool:
    return bool(_CLIENT.search(split_part(name)[0]))


def resolve_peer(value: str, known: dict[str, str]) -> str:
    """The service a peer address names (`known`: casefolded name -> name), else its host name."""
    v = _SCHEME.sub("", value.strip()).split("/", 1)[0]
    if v.startswith("["):  # [v6]:port
        v = v[1:].split("]", 1)[0]
    elif v.count(":") == 1:
        v = v.split(":", 1)[0]
    low = v.casefold()
    if low in known:
        return known[low]
    label = low.split(".", 1)[0]
    if label in known and not label.isdigit():
        return known[label]
    last = low.rsplit(".", 1)[-1]
    if last in known:
        return known[last]
    return v


def peer_of(name: str, attrs_json: str, known: dict[str, str]) -> str:
    """The called service a series names ('' when it names none or is not client-side)."""
    if not attrs_json:
        return ""
    attrs = parse_attrs(attrs_json)
    if not attrs:
        return ""
    if attrs.get("peer.service"):
        return resolve_peer(str(attrs["peer.service"]), known)
    if not is_client_metric(name):
        return ""
    for k in _PEER_KEYS[1:]:
        if attrs.get(k):
            return resolve_peer(str(attrs[k]), known)
    return ""


def known_services(services: Iterable[str]) -> dict[str, str]:
    return {s.casefold(): s for s in services if s}


def call_edges(keys: Iterable[tuple[str, str, str, str]]) -> dict[tuple[str, str, str, str], str]:
    """Per series key (service, pod, name, attributes) that names a called peer: that peer (not itself)."""
    keys = list(keys)
    known = known_services(k[0] for k in keys)
    out: dict[tuple[str, str, str, str], str] = {}
    for key in keys:
        peer = peer_of(key[2], key[3], known)
        if peer and peer.casefold() != key[0].casefold():
            out[key] = peer
    return out
