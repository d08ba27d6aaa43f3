"""Benchmark: every attack of issue 11 replayed against a live `devmesh serve`, bounded, on loopback.

A fresh home gets three API keys (admin, ingest, read), known secrets in every secret setting (a Slack bot
token and signing secret, an LLM URL with a password), a few log lines and one explained incident. Then each
case of `bench.attack_cases` is sent and measured: status, request time, the server's CPU seconds until it
is idle again (background work included), and its peak resident-memory growth. Two cases need a server of
their own: `devmesh serve --host 0.0.0.0` on a home without keys must refuse to start, and a signed Slack
request replayed after a restart must be refused. Last, every response body and every line the server
wrote are searched for the secrets.

    .venv/bin/python -m bench.attack [--json] [--only NAME ...]

Exit status 0 when every case is refused or answered as expected, the peak growth of each case stays under
100 MB and no secret appeared; 1 otherwise. Timings are this machine's, loose on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.attack_cases import SLACK_REPLAY, Case, Ctx, cases, slack_first
from bench.attack_server import Server, base_env, devmesh, free_port, measured

PEAK_GOAL_MB = 100.0
SCOPES = ("admin", "ingest", "read", "explain")


def secrets() -> dict[str, str]:
    """Known secrets, one per secret setting, that must appear in no output."""
    closed = free_port()  # nothing listens there: remote calls fail fast
    return {
        "DEVMESH_SLACK_BOT_TOKEN": "xoxb-bench-secret-bot-4417",
        "DEVMESH_SLACK_SIGNING_SECRET": "bench-signing-secret-9931",
        "DEVMESH_SLACK_API_URL": f"http://127.0.0.1:{closed}/api/",
        "DEVMESH_LLM_URL": f"http://bench:llm-password-5521@127.0.0.1:{closed}/v1",
        "DEVMESH_LLM_API_KEY": "sk-bench-llm-key-2290",
        "DEVMESH_LLM_RETRIES": "0",
    }


SECRET_VALUES = (
    "xoxb-bench-secret-bot-4417",
    "bench-signing-secret-9931",
    "llm-password-5521",
    "sk-bench-llm-key-2290",
)


def make_keys(env: dict[str, str]) -> tuple[dict[str, str], str | None]:
    keys: dict[str, str] = {}
    for scope in SCOPES:
        done = devmesh(["keys", "create", "--scope", scope, "--name", f"bench-{scope}", "--json"], env)
        if done.returncode != 0:
            said = (done.stderr or done.stdout).strip().splitlines()
            return {}, said[-1] if said else f"exit {done.returncode}"
        keys[scope] = json.loads(done.stdout)["key"]
    return keys, None


def warm_up(client: httpx.Client, ctx: Ctx) -> dict[str, Any]:
    """What a running server has done before an attack: stored logs, loaded the embedder, explained."""
    now = time.time_ns()
    batch = [
        {"timestamp": now - i * 10**9, "service": "bench-attack", "level": "ERROR", "message": f"db timeout {i}"}
        for i in range(50)
    ]
    ingest = client.post(f"{ctx.url}/ingest/logs", json=batch, headers=ctx.headers("admin"))
    explain = client.post(
        f"{ctx.url}/explain", json={"service": "bench-attack", "end_ns": now + 1}, headers=ctx.headers("admin")
    )
    if explain.status_code == 200:
        ctx.incident_id = explain.json()["incident"]["id"]
    return {"ingest_status": ingest.status_code, "explain_status": explain.status_code, "incident": ctx.incident_id}


def run_case(client: httpx.Client, server: Server, ctx: Ctx, case: Case) -> dict[str, Any]:
    bodies: list[str] = []

    def once() -> dict[str, Any]:
        try:
            got = case.send(client, ctx)
        except httpx.HTTPError as exc:
            return {"statuses": [], "error": f"{type(exc).__name__}: {exc}"}
        responses = got if isinstance(got, list) else [got]
        bodies.extend(r.text[:2000] for r in responses)
        first = responses[0]
        return {
            "statuses": sorted({r.status_code for r in responses}),
            "retry_after": next((r.headers["retry-after"] for r in responses if "retry-after" in r.headers), None),
            "answer": first.text[:160],
        }

    if case.prepare is not None:
        case.prepare()
    result = measured(server, once, settle_cap_s=case.settle_cap_s)
    problem = None if not case.check else case.check(client, ctx)
    ok = bool(result["statuses"]) and set(result["statuses"]) <= case.expect
    if case.name == "explain_burst":
        ok = ok and 429 in result["statuses"] and result.get("retry_after") is not None
    result.update(
        case=case.name,
        what=case.what,
        expected=sorted(case.expect) if len(case.expect) < 10 else "4xx",
        stored_check=problem,
        within_memory=result["peak_growth_mb"] < PEAK_GOAL_MB,
    )
    result["ok"] = ok and problem is None and result["within_memory"]
    result["bodies"] = bodies
    return result


def public_bind_without_keys(root: Path) -> dict[str, Any]:
    """`devmesh serve --host 0.0.0.0` on a home with no key: must exit (non-zero) instead of serving."""
    home = root / "nokeys"
    env = base_env(home, {"DEVMESH_EMBEDDER": "none"})
    t0 = time.perf_counter()
    try:
        done = devmesh(["serve", "--host", "0.0.0.0", "--port", str(free_port())], env, timeout=90)
        code, said = done.returncode, (done.stderr + done.stdout).strip().splitlines()[-1:]
    except Exception as exc:  # still serving after 90 s: it started
        code, said = 0, [f"still running after 90 s ({type(exc).__name__})"]
    return {
        "case": "serve_public_without_keys",
        "what": "devmesh serve --host 0.0.0.0 with no API key configured",
        "exit_code": code,
        "said": said[0][:200] if said else "",
        "seconds": round(time.perf_counter() - t0, 1),
        "ok": code != 0,
    }


def run(only: list[str] | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="devmesh-attack-") as tmp:
        root = Path(tmp)
        env = base_env(root / "home", secrets())
        keys, keys_problem = make_keys(env)
        log_path = root / "server.log"
        ctx = Ctx(url="", keys=keys, slack_secret=env["DEVMESH_SLACK_SIGNING_SECRET"])
        results: list[dict[str, Any]] = []
        with httpx.Client(timeout=120.0) as client:
            with Server(env, log_path) as server:
                ctx.url = server.url
                warm = warm_up(client, ctx)
                for case in cases():
                    if only and case.name not in only:
                        continue
                    results.append(run_case(client, server, ctx, case))
                first_slack = slack_first(client, ctx)
            if not only or SLACK_REPLAY.name in only:
                with Server(env, log_path) as server:
                    ctx.url = server.url
                    replay = run_case(client, server, ctx, SLACK_REPLAY)
                    replay["first_status"] = first_slack.status_code
                    results.append(replay)
        if not only or "serve_public_without_keys" in only:
            results.append(public_bind_without_keys(root))
        server_log = log_path.read_text(errors="replace")
        outputs = server_log + "\n".join(b for r in results for b in r.pop("bodies", []))
        leaked = [s for s in SECRET_VALUES if s in outputs]
    failed = [r["case"] for r in results if not r["ok"]]
    return {
        "keys": sorted(keys) or None,
        "keys_problem": keys_problem,
        "warm_up": warm,
        "cases": results,
        "secrets_leaked": leaked,
        "failed": failed,
        "ok": not failed and not leaked and keys_problem is None,
        "peak_growth_goal_mb": PEAK_GOAL_MB,
    }


def _table(report: dict[str, Any]) -> str:
    lines = [f"{'case':38} {'status':>14} {'req ms':>9} {'cpu s':>7} {'peak MB':>8}  ok"]
    for r in report["cases"]:
        status = ",".join(map(str, r.get("statuses", []))) or f"exit {r.get('exit_code')}"
        lines.append(
            f"{r['case'][:38]:38} {status[:14]:>14} {r.get('request_ms', r.get('seconds', 0) * 1000):9.0f} "
            f"{r.get('server_cpu_s', 0):7.2f} {r.get('peak_growth_mb', 0):8.1f}  {'yes' if r['ok'] else 'NO'}"
        )
    lines.append(f"secrets leaked: {report['secrets_leaked'] or 'none'}; failed: {report['failed'] or 'none'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    p.add_argument("--only", nargs="*", help="run only these cases (by name)")
    a = p.parse_args(argv)
    report = run(a.only)
    print(json.dumps(report, indent=2) if a.json else _table(report))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
