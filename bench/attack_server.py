"""A `devmesh serve` subprocess for the attack benchmark: a fresh home, loopback, and its cost per case.

The server runs as a user runs it (`devmesh serve` in its own process), so what a case costs is read from
that process: CPU seconds (user + system) until the server is idle again, which counts background work a
request started, and the growth of its resident memory above what it held before the case (the peak is
reset through /proc/PID/clear_refs before each case, so every case's peak is its own).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import psutil

CLI = [sys.executable, "-c", "from api.cli import main; main()"]
"""The `devmesh` command of this interpreter (works without the console script on PATH)."""

START_TIMEOUT_S = 120.0
IDLE_CPU_S = 0.05
"""The server counts as idle once it used less than this much CPU in half a second."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def devmesh(args: list[str], env: Mapping[str, str], timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """Run one `devmesh` command to its end (bounded)."""
    return subprocess.run([*CLI, *args], env=dict(env), capture_output=True, text=True, timeout=timeout)


class Server:
    """`devmesh serve` on 127.0.0.1:PORT with ENV; its output is kept in `log_path` for the secrets check."""

    def __init__(self, env: Mapping[str, str], log_path: Path) -> None:
        self.env = dict(env)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.ps: psutil.Process | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [*CLI, "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.ps = psutil.Process(self.proc.pid)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"devmesh serve exited with {self.proc.returncode}; see {self.log_path}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2.0).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"devmesh serve did not answer /health within {START_TIMEOUT_S:.0f} s")

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None
        self.ps = None

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what a case costs -------------------------------------------------------------------------------
    def _tree(self) -> list[psutil.Process]:
        assert self.ps is not None
        return [self.ps, *self.ps.children(recursive=True)]

    def cpu_s(self) -> float:
        """CPU seconds of the server process (its embedded FalkorDB is a child: counted too)."""
        total = 0.0
        for p in self._tree():
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
        return total

    def rss_mb(self) -> float:
        assert self.ps is not None
        return self.ps.memory_info().rss / 2**20

    def reset_peak(self) -> bool:
        """Reset VmHWM to the current RSS (Linux ≥ 4.0); False where the kernel does not allow it."""
        assert self.proc is not None
        try:
            Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")
            return True
        except OSError:
            return False

    def peak_mb(self) -> float | None:
        assert self.proc is not None
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None

    def settle(self, cap_s: float) -> float:
        """Wait (at most CAP_S) until the server is idle; the seconds waited."""
        t0 = time.monotonic()
        last = self.cpu_s()
        while time.monotonic() - t0 < cap_s:
            time.sleep(0.5)
            now = self.cpu_s()
            if now - last < IDLE_CPU_S:
                break
            last = now
        return time.monotonic() - t0


def measured(server: Server, run: Any, *, settle_cap_s: float = 15.0) -> dict[str, Any]:
    """Run `run()` (one case) and add the server's CPU, wall time and memory growth to its result."""
    server.settle(5.0)
    before_rss = server.rss_mb()
    reset = server.reset_peak()
    cpu0 = server.cpu_s()
    t0 = time.perf_counter()
    result: dict[str, Any] = run()
    wall_ms = (time.perf_counter() - t0) * 1000
    waited = server.settle(settle_cap_s)
    peak = server.peak_mb() if reset else None
    result.update(
        request_ms=round(wall_ms, 1),
        server_cpu_s=round(server.cpu_s() - cpu0, 3),
        background_wait_s=round(waited, 1),
        rss_before_mb=round(before_rss, 1),
        peak_growth_mb=round(max(0.0, (peak or server.rss_mb()) - before_rss), 1),
        peak_is_exact=reset,
    )
    return result


def base_env(home: Path, extra: Mapping[str, str]) -> dict[str, str]:
    """The server's environment: this one without DEVMESH_* settings of the caller, plus HOME and EXTRA."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEVMESH_")}
    env.update({"DEVMESH_HOME": str(home), "HF_HUB_OFFLINE": "1", **extra})
    return env
