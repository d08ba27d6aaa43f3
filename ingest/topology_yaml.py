"""A declared topology in YAML, for what spans cannot show (or where there are no traces).

```yaml
services:
  - name: checkout
    calls: [payment, inventory]
    pods:
      - {name: checkout-7d9f-abcde, node: node-1}
  - name: payment
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, Field, ValidationError

from core.errors import InvalidInput
from core.telemetry import CallEdge, PodPlacement, Topology


class _PodDecl(BaseModel):
    name: str = Field(min_length=1, max_length=256)
    node: str = Field(default="", max_length=256)


class _ServiceDecl(BaseModel):
    name: str = Field(min_length=1, max_length=256)
    calls: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(default_factory=list)
    pods: list[_PodDecl] = Field(default_factory=list)


class _TopologyDecl(BaseModel):
    services: list[_ServiceDecl]


def parse_topology(data: Any) -> Topology:
    """A topology from a decoded YAML document; InvalidInput names the first bad field ('services[0].name')."""
    if not isinstance(data, dict):
        got = "empty" if data is None else f"a {type(data).__name__}"
        raise InvalidInput(f"a topology file must be a mapping with a 'services' list, not {got}", field="services")
    try:
        decl = _TopologyDecl.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".")
        raise InvalidInput(f"{field}: {err['msg']}", field=field or "services") from exc
    names = {s.name for s in decl.services} | {c for s in decl.services for c in s.calls}
    return Topology(
        services=sorted(names),
        pods=[PodPlacement(pod=p.name, service=s.name, host=p.node) for s in decl.services for p in s.pods],
        calls=[CallEdge(caller=s.name, callee=c) for s in decl.services for c in s.calls],
    )


def read_topology(path: Path) -> Topology:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    # ValueError: not UTF-8, or an integer of over 4,300 digits; RecursionError: nested too deeply
    except (OSError, ValueError, yaml.YAMLError, RecursionError) as exc:
        raise InvalidInput(f"cannot read topology YAML {path}: {exc}", field="FILE") from exc
    return parse_topology(data)
