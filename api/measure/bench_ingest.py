"""`devmesh bench ingest DIR`: end-to-end ingestion throughput on a Nezha-layout data set.

Every log and trace file is read, parsed, templated, de-duplicated, stored and (new templates) embedded
through the same pipeline `devmesh import nezha` uses, into a fresh temporary DEVMESH_HOME.
"""

from __future__ import annotations

import resource
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from core.settings import Settings
from ingest import batch, nezha
from ingest.importers import BULK_ROWS


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_ingest_bench(
    root: Path,
    settings: Settings,
    *,
    open_fn: Callable[[Settings], Any],
    on_file: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Replay logs and spans of ROOT through the pipeline; returns throughput, time split and peak RSS."""
    plan = nezha.plan(root)
    files = [f for f in plan.files if f.kind in ("logs", "spans")]
    with tempfile.TemporaryDirectory(prefix="devmesh-bench-") as tmp:
        svc = open_fn(settings.model_copy(update={"home": Path(tmp)}))
        try:
            pipeline = svc.pipeline
            if svc.embedder is not None:  # load the model before the clock starts, as a running server has
                svc.embedder.embed(["warm up"])
            t = {
                "logs": {"read": 0.0, "pipeline": 0.0, "rows": 0, "stored": 0},
                "spans": {"read": 0.0, "pipeline": 0.0, "rows": 0, "stored": 0},
            }
            templates = 0

            def read_all() -> Iterator[tuple[Any, dict[str, list[Any]]]]:
                for f in files:
                    t0 = time.perf_counter()
                    cols = nezha.READERS[f.kind](f.path)
                    t[f.kind]["read"] += time.perf_counter() - t0
                    if on_file is not None:
                        on_file(f.path.name)
                    yield f, cols

            for kind, _, cols in batch.coalesce(read_all(), lambda f: f.kind, BULK_ROWS):
                t1 = time.perf_counter()
                report = pipeline.ingest(kind, cols, embed=False)  # type: ignore[arg-type]
                k = t[kind]
                k["pipeline"] += time.perf_counter() - t1
                k["rows"] += report.received
                k["stored"] += report.stored
                templates += report.new_templates
            t0 = time.perf_counter()
            embedded = pipeline.backfill()  # each new template embedded once, as `devmesh import` does
            embed_s = time.perf_counter() - t0
            t["logs"]["pipeline"] += embed_s
            t0 = time.perf_counter()
            topo = pipeline.refresh_topology()
            topo_s = time.perf_counter() - t0
        finally:
            svc.close()
    logs, spans = t["logs"], t["spans"]
    log_s = logs["read"] + logs["pipeline"]
    span_s = spans["read"] + spans["pipeline"]
    return {
        "dataset": str(root),
        "files": len(files),
        "log_lines": logs["rows"],
        "log_lines_stored": logs["stored"],
        "spans": spans["rows"],
        "spans_stored": spans["stored"],
        "templates": templates,
        "templates_embedded": embedded,
        "embedder": getattr(svc.embedder, "name", None),
        "lines_per_s": round(logs["rows"] / log_s, 1) if log_s else None,
        "lines_per_s_pipeline_only": round(logs["rows"] / logs["pipeline"], 1) if logs["pipeline"] else None,
        "spans_per_s": round(spans["rows"] / span_s, 1) if span_s else None,
        "spans_per_s_pipeline_only": round(spans["rows"] / spans["pipeline"], 1) if spans["pipeline"] else None,
        "seconds": {
            "logs_read": round(logs["read"], 3),
            "logs_pipeline": round(logs["pipeline"], 3),
            "spans_read": round(spans["read"], 3),
            "spans_pipeline": round(spans["pipeline"], 3),
            "embed_templates": round(embed_s, 3),
            "topology": round(topo_s, 3),
        },
        "call_edges": len(topo.calls),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
