"""Resources, and the walk down an OTLP request's resource -> scope -> record nesting.

`resource_info` keeps the resource attributes the event-store rows use (service, host, pod, and the
`RESOURCE_META_KEYS` extras). `pb_leaves` and `json_leaves` yield every leaf record (log record, span or
metric) of a decoded request with its resource, scope name and indices, for either encoding; `path`
names a record by those indices in rejection messages.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message

from core.errors import InvalidInput
from ingest.otlp.column_text import check_text, render
from ingest.otlp.json_values import j_obj, j_str, jget, json_attrs
from ingest.otlp.pb_values import pb_attrs
from ingest.otlp.result import Invalid, Rejects

# Resource attributes that logs keep in `meta` (service/host/pod have their own columns).
RESOURCE_META_KEYS = (
    "deployment.environment.name",
    "deployment.environment",
    "service.namespace",
    "service.version",
    "k8s.namespace.name",
    "container.name",
)


@dataclass(frozen=True, slots=True)
class ResourceInfo:
    service: str
    host: str
    pod: str
    extras: dict[str, Any]


def resource_info(attrs: dict[str, Any]) -> ResourceInfo:
    host = attrs.get("host.name")
    if host is None or host == "":
        host = attrs.get("k8s.node.name")
    return ResourceInfo(
        service=render(attrs.get("service.name")),
        host=render(host),
        pod=render(attrs.get("k8s.pod.name")),
        extras={k: attrs[k] for k in RESOURCE_META_KEYS if k in attrs},
    )


Index = tuple[int, int, int]
Leaf = tuple[ResourceInfo, str, Index, Any]
Counter = Callable[[Any], int]  # how many leaf records a list of records holds


def path(names: tuple[str, str, str], idx: Index, *more: str) -> str:
    p = f"{names[0]}[{idx[0]}].{names[1]}[{idx[1]}].{names[2]}[{idx[2]}]"
    return ".".join((p, *more)) if more else p


def pb_leaves(
    req: Message, fields: tuple[str, str, str], names: tuple[str, str, str], rej: Rejects, count: Counter = len
) -> Iterator[Leaf]:
    """(resource, scope name, indices, record) for every record of a decoded request.

    A resource whose attributes cannot be read (nested too deep) rejects the records under it.
    """
    f_res, f_scope, f_rec = fields
    for ri, rr in enumerate(getattr(req, f_res)):
        scopes = getattr(rr, f_scope)
        try:
            res = resource_info(pb_attrs(rr.resource.attributes))
        except Invalid as exc:
            rej.add(f"{names[0]}[{ri}].resource", str(exc), sum(count(getattr(ss, f_rec)) for ss in scopes))
            continue
        for si, ss in enumerate(scopes):
            scope_name = ss.scope.name
            for li, rec in enumerate(getattr(ss, f_rec)):
                yield res, scope_name, (ri, si, li), rec


def json_leaves(
    doc: dict[str, Any],
    names: tuple[str, str, str],
    snakes: tuple[str, str, str],
    rej: Rejects,
    count: Counter = len,
) -> Iterator[Leaf]:
    """Same as `pb_leaves` over an OTLP/JSON document.

    A container of the wrong type (say `scopeLogs` is a string) makes the body malformed; a resource or
    scope whose own fields are wrong rejects the records under it, counted with `count`.
    """
    top = jget(doc, names[0], snakes[0])
    if top is None:
        return
    if type(top) is not list:
        raise InvalidInput(f"{names[0]} must be a list", field=names[0])
    for ri, rr in enumerate(top):
        where = f"{names[0]}[{ri}]"
        if type(rr) is not dict:
            raise InvalidInput(f"{where} must be an object", field=where)
        scopes = jget(rr, names[1], snakes[1])
        if scopes is None:
            continue
        if type(scopes) is not list:
            raise InvalidInput(f"{where}.{names[1]} must be a list", field=f"{where}.{names[1]}")
        try:
            res = resource_info(json_attrs(j_obj(rr.get("resource"), "resource").get("attributes")))
            check_text(res.service, res.host, res.pod)
        except Invalid as exc:
            rej.add(f"{where}.resource", str(exc), _count_scopes(scopes, names[2], snakes[2], count))
            continue
        for si, ss in enumerate(scopes):
            swhere = f"{where}.{names[1]}[{si}]"
            if type(ss) is not dict:
                raise InvalidInput(f"{swhere} must be an object", field=swhere)
            recs = jget(ss, names[2], snakes[2])
            if recs is None:
                continue
            if type(recs) is not list:
                raise InvalidInput(f"{swhere}.{names[2]} must be a list", field=f"{swhere}.{names[2]}")
            try:
                scope_name = j_str(j_obj(ss.get("scope"), "scope").get("name"), "scope.name")
                check_text(scope_name)
            except Invalid as exc:
                rej.add(f"{swhere}.scope", str(exc), count(recs))
                continue
            for li, rec in enumerate(recs):
                yield res, scope_name, (ri, si, li), rec


def _count_scopes(scopes: list[Any], name: str, snake: str, count: Counter) -> int:
    n = 0
    for ss in scopes:
        recs = jget(ss, name, snake) if type(ss) is dict else None
        if type(recs) is list:
            n += count(recs)
    return n
