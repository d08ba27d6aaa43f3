"""`devmesh bench backup`: seconds and bytes of a backup, of the graph's logical dump and load (what a remote
FalkorDB gets), of a restore into a fresh home, and of the event store's compaction inside a process that
keeps appending, measured on an existing home (e.g. a Nezha day imported with `devmesh import nezha`).

Nothing of the home is changed: the backup goes to a temporary folder, the graph is loaded again into a
graph of another name on the same server (deleted after), the restore goes into a temporary home, and the
compaction runs on a copy of the event store.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa

from api.backup import backup_home, current_counts, load_graph_rows, load_vectors, restore_files
from api.wiring import Services
from core.settings import Settings
from core.telemetry import KINDS
from core.timeutil import NS
from graph.dump import export_graph, load_graph, rows_of
from graph.store import GraphStore
from retrieval.events import EventStore


def run_backup_bench(
    settings: Settings,
    open_fn: Callable[[Settings], Services],
    *,
    keep_hours: float = 1.0,
    work_dir: Path | None = None,
) -> dict[str, Any]:
    """Backup, graph dump/load, restore and compaction figures for the home `settings` names (not held by serve)."""
    tmp = Path(tempfile.mkdtemp(prefix="devmesh-bench-backup-", dir=work_dir))
    try:
        out: dict[str, Any] = {"home": str(settings.home)}
        with open_fn(settings) as svc:
            svc.events.check_sole_writer()
            out["counts"] = current_counts(svc)
            started = time.perf_counter()
            manifest = backup_home(svc, tmp / "backup")
            out["backup"] = {
                "seconds": round(time.perf_counter() - started, 3),
                "bytes": sum(f["bytes"] for f in manifest["files"].values()),
                "parts": manifest["parts"],
                "files": {k: v["bytes"] for k, v in manifest["files"].items() if "/" not in k or k.startswith("vec")},
            }
            if svc.graph is not None:
                out["graph_dump"] = _graph_dump_load(svc.graph, tmp / "graph.jsonl")
        out["restore"] = _restore(settings, open_fn, tmp / "backup", tmp / "restored", out["counts"])
        out["compaction"] = _compaction(settings.events_path, tmp / "compact", keep_hours)
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _graph_dump_load(store: GraphStore, path: Path) -> dict[str, Any]:
    """Export the graph as rows and load them into a fresh graph on the same server: the remote-engine path."""
    started = time.perf_counter()
    with path.open("w", encoding="utf-8") as fh:
        done = export_graph(store.graph, lambda row: fh.write(json.dumps(row, sort_keys=True) + "\n"))
    exported = time.perf_counter() - started
    copy = GraphStore(type(store.graph)(store.graph.client, f"{store.graph.name}__bench_{uuid.uuid4().hex[:8]}"))
    try:
        started = time.perf_counter()
        with path.open(encoding="utf-8") as fh:
            loaded = load_graph(copy.graph, rows_of(fh))
        load_s = time.perf_counter() - started
        same = copy.counts() == store.counts()
    finally:
        copy.graph.delete()
    return {
        **done,
        "bytes": path.stat().st_size,
        "export_seconds": round(exported, 3),
        "load_seconds": round(load_s, 3),
        "loaded": loaded,
        "counts_equal": same,
    }


def _restore(
    settings: Settings, open_fn: Callable[[Settings], Services], backup: Path, home: Path, want: dict[str, Any]
) -> dict[str, Any]:
    target = settings.model_copy(update={"home": home, "falkordb_url": None, "qdrant_url": None})
    started = time.perf_counter()
    restore_files(target, backup)
    files_s = time.perf_counter() - started
    svc = open_fn(target)
    try:
        load_graph_rows(svc, backup)
        load_vectors(svc, backup)
        have = current_counts(svc)
    finally:
        svc.close()
    return {
        "seconds": round(time.perf_counter() - started, 3),
        "files_seconds": round(files_s, 3),
        "counts_equal": all(have.get(k) == v for k, v in want.items()),
    }


def _compaction(events_path: Path, folder: Path, keep_hours: float) -> dict[str, Any]:
    """Prune a copy of the event store to its last `keep_hours` of logs, spans and metric points, then compact
    it in place while another thread keeps appending log lines; how long appends waited, and none lost."""
    folder.mkdir()
    shutil.copyfile(events_path, folder / "events.duckdb")
    ev = EventStore(folder / "events.duckdb")
    try:
        started = time.perf_counter()
        deleted = 0
        tables = ev.stats()["tables"]
        for kind in KINDS:
            newest = tables[kind]["max_ns"]
            if newest is not None:
                deleted += ev.prune_before(kind, int(newest) - int(keep_hours * 3600 * NS)).deleted
        prune_s = time.perf_counter() - started
        ev.checkpoint_file()
        appended: list[float] = []  # seconds each append took
        stop = threading.Event()

        def append_loop() -> None:
            k = 0
            while not stop.is_set() and k < 100_000:
                t = time.perf_counter()
                ev.append_logs(_lines(k))
                appended.append(time.perf_counter() - t)
                k += 1

        writer = threading.Thread(target=append_loop)
        writer.start()
        try:
            while not appended:
                time.sleep(0.01)
            report = ev.compact_in_place()
        finally:
            stop.set()
            writer.join(timeout=600)
        _, rows = ev.sql("SELECT count(*) FROM logs WHERE service = 'bench-compact'")
        return {
            "pruned_rows": deleted,
            "prune_seconds": round(prune_s, 3),
            **report,
            "appends": len(appended),
            "append_max_seconds": round(max(appended), 3),
            "appended_rows_present": int(rows[0][0]) == 100 * len(appended),
        }
    finally:
        ev.close()


def _lines(k: int) -> pa.Table:
    t0 = time.time_ns()
    return pa.table(
        {
            "ts_ns": pa.array([t0 + i for i in range(100)], pa.int64()),
            "service": pa.array(["bench-compact"] * 100),
            "level": pa.array(["INFO"] * 100),
            "message": pa.array([f"bench append {k}-{i}" for i in range(100)]),
            "template_id": pa.array(["bench"] * 100),
        }
    )
