"""A Qdrant REST server on 127.0.0.1 for the fault benchmark: the routes DevMesh's `ServerVectorStore` calls,
answered by qdrant-client's local mode (persisted under a folder, so a killed fake started again has its
points). No Qdrant server binary can be installed here (not on PyPI, npm or Debian); this one can be killed.

Routes: GET /collections, GET /collections/{c}, GET /collections/{c}/exists, PUT /collections/{c},
PUT /collections/{c}/index, PUT /collections/{c}/points, POST /collections/{c}/points (retrieve),
POST .../points/query, .../points/delete, .../points/count, .../points/scroll. Answers are Qdrant's
`{"result", "status", "time"}`; an unknown collection is 404.
"""

from __future__ import annotations

import json
import re
import threading
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from qdrant_client import QdrantClient, models

_ROUTE = re.compile(r"^/collections(?:/(?P<c>[^/?]+)(?P<rest>/[^?]*)?)?(?:\?.*)?$")
_DONE = {"operation_id": 0, "status": "completed"}


class QdrantRestServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, path: str) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.client = QdrantClient(path=path)
        self.lock = threading.Lock()  # local mode is not meant for concurrent callers


def _dump(value: Any) -> Any:
    if isinstance(value, list):
        return [_dump(v) for v in value]
    return value.model_dump(mode="json", exclude_none=True) if hasattr(value, "model_dump") else value


class _Handler(BaseHTTPRequestHandler):
    server: QdrantRestServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, status: int, result: Any = None, error: str = "") -> None:
        body = {"result": _dump(result), "status": "ok", "time": 0.0} if not error else {"status": {"error": error}}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict[str, Any]:
        n = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(n)) if n else {}

    def do_GET(self) -> None:
        self._route("GET")

    def do_PUT(self) -> None:
        self._route("PUT")

    def do_POST(self) -> None:
        self._route("POST")

    def _route(self, method: str) -> None:
        m = _ROUTE.match(self.path)
        if m is None:
            self._reply(404, error="not found")
            return
        c, rest = m.group("c"), m.group("rest") or ""
        body = self._body() if method != "GET" else {}
        q = self.server.client
        with self.server.lock, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if c is None:
                self._reply(200, q.get_collections())
            elif rest == "/exists":
                self._reply(200, {"exists": q.collection_exists(c)})
            elif method == "PUT" and rest == "":
                q.create_collection(c, vectors_config=models.VectorParams(**body["vectors"]))
                self._reply(200, True)
            elif not q.collection_exists(c):
                self._reply(404, error=f"Not found: Collection `{c}` doesn't exist!")
            else:
                try:
                    self._reply(200, self._points(q, method, c, rest, body))
                except Exception as exc:  # a route or an argument the fake does not know: say so
                    self._reply(500, error=f"{type(exc).__name__}: {exc}")

    def _points(self, q: QdrantClient, method: str, c: str, rest: str, body: dict[str, Any]) -> Any:
        flt = models.Filter(**body["filter"]) if body.get("filter") else None
        if method == "GET" and rest == "":
            return q.get_collection(c)
        if rest == "/index":
            return _DONE
        if method == "PUT" and rest == "/points":
            q.upsert(c, points=[models.PointStruct(**p) for p in body["points"]])
            return _DONE
        if rest == "/points":
            return q.retrieve(
                c,
                ids=body["ids"],
                with_payload=body.get("with_payload", True),
                with_vectors=body.get("with_vector", False),
            )
        if rest == "/points/query":
            query = body["query"]
            return q.query_points(
                c,
                query=query["nearest"] if isinstance(query, dict) else query,
                limit=body.get("limit", 10),
                query_filter=flt,
                with_payload=body.get("with_payload", True),
            )
        if rest == "/points/delete":
            q.delete(c, points_selector=models.PointIdsList(points=body["points"]))
            return _DONE
        if rest == "/points/scroll":
            points, offset = q.scroll(
                c,
                scroll_filter=flt,
                limit=body.get("limit", 10),
                offset=body.get("offset"),
                with_payload=body.get("with_payload", True),
                with_vectors=body.get("with_vector", False),
            )
            return {"points": _dump(points), "next_page_offset": offset}
        if rest == "/points/count":
            return q.count(c, count_filter=flt, exact=body.get("exact", True))
        raise ValueError(f"route not faked: {method} {rest}")
