"""`<home>/serve.json`: the URL and pid of the `devmesh serve` that owns a home, so the CLI goes through it.

`devmesh serve` records it when it starts and removes it when it exits; a file left by a server that died
(its pid gone, or its URL not answering `/health`) is ignored.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

FILE_NAME = "serve.json"
PROBE_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class Served:
    """What a server recorded: where it answers and its process id."""

    url: str
    pid: int


def serve_path(home: Path) -> Path:
    return home / FILE_NAME


def local_url(host: str, port: int) -> str:
    """The URL a client on this machine reaches a server bound to `host` at: a wildcard bind by loopback."""
    name = host.strip().strip("[]")
    if name in ("", "0.0.0.0", "::"):
        name = "127.0.0.1"
    elif ":" in name:
        name = f"[{name}]"
    return f"http://{name}:{port}"


def record(home: Path, url: str) -> bool:
    """Write serve.json for this process (atomically: a reader never sees half a file), unless another live
    process recorded itself there (a second server on the same home, which will not get its files)."""
    found = read(home)
    if found is not None and found.pid != os.getpid() and pid_alive(found.pid):
        return False
    path = serve_path(home)
    home.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{FILE_NAME}.{os.getpid()}")
    tmp.write_text(json.dumps({"url": url, "pid": os.getpid()}) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return True


def forget(home: Path) -> None:
    """Remove serve.json if this process wrote it (a newer server's file is left alone)."""
    found = read(home)
    if found is not None and found.pid == os.getpid():
        with contextlib.suppress(FileNotFoundError):
            serve_path(home).unlink()


def read(home: Path) -> Served | None:
    """What serve.json says, or None when there is none (or it is unreadable)."""
    try:
        data = json.loads(serve_path(home).read_text(encoding="utf-8"))
        return Served(url=str(data["url"]), pid=int(data["pid"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def answers(url: str) -> bool:
    """Whether a DevMesh server answers GET /health at `url` (200 or 503: it is up, maybe degraded)."""
    import httpx  # the HTTP client (and the access rules) load only when a serve.json is found

    from api.http.access import is_loopback

    host = httpx.URL(url).host
    try:
        r = httpx.get(url.rstrip("/") + "/health", timeout=PROBE_TIMEOUT_S, trust_env=not is_loopback(host))
    except httpx.HTTPError:
        return False
    return r.status_code in (200, 503)


def live_server(home: Path) -> Served | None:
    """The server that owns `home`, or None when none is recorded or the recorded one is gone."""
    found = read(home)
    if found is None or not pid_alive(found.pid) or not answers(found.url):
        return None
    return found
