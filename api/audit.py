"""The audit log: one JSON line per state-changing request or key change, in `<DEVMESH_HOME>/audit.jsonl`.

A line says who (key id and name), what (method and path, or a key action), when, the answer's status
and the client's address; never a body, a query string or a key. Lines are appended with one `write` on a
file opened for appending (O_APPEND), so writers in several processes do not interleave.
"""

from __future__ import annotations

import json
import os
import threading
from collections import deque
from pathlib import Path
from typing import Any

from core.errors import InvalidInput
from core.timeutil import iso, iso_to_ns, now_ns

NOBODY = "-"
"""The key id of a request refused before it showed a valid key."""


class AuditLog:
    """Appends and reads the audit lines of one DevMesh home."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def append(
        self,
        *,
        key_id: str,
        name: str,
        method: str,
        path: str,
        status: int,
        client: str,
        time_ns: int | None = None,
    ) -> None:
        """Write one line (the request's path without its query string)."""
        line = {
            "time": iso(time_ns if time_ns is not None else now_ns()),
            "key_id": key_id,
            "name": name,
            "method": method,
            "path": path.split("?", 1)[0][:1000],
            "status": status,
            "client": client,
        }
        data = (json.dumps(line, ensure_ascii=False) + "\n").encode("utf-8")
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)

    def read(self, *, since_ns: int | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """The last `limit` lines at or after `since_ns`, oldest first (unreadable lines are skipped)."""
        if limit < 1:
            raise InvalidInput("limit must be at least 1", field="limit")
        out: deque[dict[str, Any]] = deque(maxlen=limit)
        try:
            f = self.path.open(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return []
        with f:
            for text in f:
                try:
                    line = json.loads(text)
                    if since_ns is not None and iso_to_ns(line["time"]) < since_ns:
                        continue
                except (ValueError, KeyError, TypeError, InvalidInput):
                    continue
                out.append(line)
        return list(out)
