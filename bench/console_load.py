"""Web console page load: navigation to a rendered incident page (summary, ranked causes, service map, timeline,
evidence) in headless Debian chromium, against a live `devmesh serve` on a home that holds an imported day.

    python -m bench.console_load --home <imported home> --dataset <its Nezha folder> [--loads 20] [--fault 0]

It serves the home on a free 127.0.0.1 port (loopback, no keys), explains the chosen labelled fault of the
Nezha day (`<home>`'s import of e.g. ../shared/datasets/nezha-trainticket: `devmesh import nezha <dir>`) by
service and a 5-minute window, then opens the incident page `--loads` times, each in a fresh browser context
(no cache), timing from navigation start until the page marks itself rendered. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from ingest import nezha

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
READY = "main[data-ready]:not([aria-busy])"
NS = 1_000_000_000


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(home: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DEVMESH_HOME": str(home), "DEVMESH_LOG_LEVEL": "WARNING"}
    devmesh = Path(sys.executable).parent / "devmesh"
    proc = subprocess.Popen(
        [str(devmesh), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=5, trust_env=False).status_code in (200, 503):
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise SystemExit("devmesh serve did not come up")


def run(home: Path, *, loads: int, service: str, at_ns: int, chromium: str) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _serve(home, port)
    try:
        body = {"service": service, "start_ns": at_ns, "end_ns": at_ns + 300 * NS}
        t0 = time.perf_counter()
        r = httpx.post(f"{base}/explain", json=body, timeout=600, trust_env=False)
        r.raise_for_status()
        explain_s = time.perf_counter() - t0
        incident = r.json()["incident"]
        times: list[float] = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            try:
                for _ in range(loads):
                    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
                    page = ctx.new_page()
                    page.goto(f"{base}/#/incident/{incident['id']}")
                    page.wait_for_selector(READY, timeout=120_000)
                    page.wait_for_selector("svg.service-map", timeout=1000)
                    times.append(page.evaluate("performance.now()"))
                    ctx.close()
            finally:
                browser.close()
        info = httpx.get(f"{base}/info", timeout=60, trust_env=False).json()
    finally:
        proc.terminate()
        proc.wait(timeout=120)
    times.sort()
    return {
        "bench": "console_load",
        "home": str(home),
        "incident": incident["id"],
        "root_cause": incident["root_cause"],
        "loads": loads,
        "explain_s": round(explain_s, 2),
        "load_ms": {
            "p50": round(statistics.median(times), 1),
            "p95": round(times[min(len(times) - 1, int(0.95 * len(times)))], 1),
            "min": round(times[0], 1),
            "max": round(times[-1], 1),
        },
        "events": {k: v for k, v in info.get("events", {}).items() if not k.endswith("_bytes")},
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, required=True, help="A DEVMESH_HOME holding the imported day.")
    ap.add_argument("--dataset", type=Path, required=True, help="The Nezha folder imported (for its fault list).")
    ap.add_argument("--fault", type=int, default=0, help="Which labelled fault of the day to explain (0: first).")
    ap.add_argument("--loads", type=int, default=20, help="Timed page loads.")
    ap.add_argument("--chromium", default="/usr/bin/chromium", help="The chromium binary (Debian's).")
    args = ap.parse_args(argv)
    faults = nezha.load_faults(nezha.plan(args.dataset))
    fault = faults[args.fault]
    result = run(args.home, loads=args.loads, service=fault.service, at_ns=fault.inject_ns, chromium=args.chromium)
    result["fault"] = {"service": fault.service, "inject_ns": fault.inject_ns, "index": args.fault}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
