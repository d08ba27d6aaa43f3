# ruff: noqa: E501, UP031
"""Synthetic home-lab incidents from the journal alone, as case bundles (tests/data/cases/journald-*).

Made up for the tests of the logs-only path (peers read from the lines, host faults, fault kinds from
text), in the style of what the real software prints (nginx, gunicorn, celery, redis, PostgreSQL, unbound,
the kernel, systemd). They were written before the ranking was run on them and are not changed to make
it pass. `.venv/bin/python -m tests.journald_cases` rewrites them (deterministic).

Each lab has five hosts; an hour of ordinary traffic and noise (cron, sshd, timers, an unrelated error
burst) comes before the fault, the alert fires a few minutes after it and the question is asked a minute
later; a few minutes after that are kept (for --hindsight).
"""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

OUT = Path(__file__).parent / "data" / "cases"
T0 = datetime(2026, 5, 2, 13, 0, 0, tzinfo=UTC)
FAULT = T0 + timedelta(minutes=60)
END = FAULT + timedelta(minutes=12)

HOSTS = {"atlas": "10.1.0.21", "boreas": "10.1.0.22", "castor": "10.1.0.23", "draco": "10.1.0.24", "eos": "10.1.0.25"}


@dataclass
class Lab:
    rng: random.Random
    lines: list[dict[str, str]] = field(default_factory=list)

    def log(self, t: datetime, host: str, ident: str, msg: str, *, prio: int = 6, unit: str = "", pid: int = 0) -> None:
        self.lines.append(
            {
                "__REALTIME_TIMESTAMP": str(int(t.timestamp() * 1_000_000)),
                "_HOSTNAME": host,
                "PRIORITY": str(prio),
                "SYSLOG_IDENTIFIER": ident,
                "_SYSTEMD_UNIT": unit or f"{ident}.service",
                "_TRANSPORT": "kernel" if ident == "kernel" else "journal" if ident == "systemd" else "syslog",
                "_PID": str(pid or 1000 + sum(map(ord, ident)) % 5000),
                "_COMM": ident,
                "MESSAGE": msg,
            }
        )

    def every(self, start: datetime, end: datetime, mean_s: float, fn: Callable[[datetime], None]) -> None:
        t = start + timedelta(seconds=self.rng.uniform(0, mean_s))
        while t < end:
            fn(t)
            t += timedelta(seconds=self.rng.expovariate(1.0 / mean_s))


def _ts(t: datetime) -> str:
    return t.strftime("%d/%b/%Y:%H:%M:%S +0000")


def _client(rng: random.Random) -> str:
    return f"192.168.1.{rng.randint(20, 240)}"


def background(lab: Lab, *, broken: set[str], until: datetime = END) -> None:
    """The lab running normally; services in `broken` stop their usual lines at FAULT."""
    r = lab.rng

    def upto(name: str) -> datetime:
        return FAULT if name in broken else until

    paths = ["/api/v1/products", "/api/v1/cart", "/api/v1/orders/{}", "/api/v1/products/{}"]

    def web(t: datetime) -> None:
        p = r.choice(paths).format(r.randint(100, 9999))
        ms = r.uniform(0.008, 0.06)
        lab.log(
            t,
            "atlas",
            "nginx",
            f'{_client(r)} - - [{_ts(t)}] "GET {p} HTTP/2.0" 200 {r.randint(300, 20000)} "https://shop.lan/" '
            f'"Mozilla/5.0" host=shop.lan rt={ms:.3f} upstream={HOSTS["eos"]}:8080 ust=200 urt={ms:.3f}',
        )
        lab.log(
            t + timedelta(milliseconds=2),
            "eos",
            "shopd",
            f"INFO access: GET {p} 200 {int(ms * 1000)}ms",
            unit="shopd.service",
        )

    lab.every(T0, upto("shopd"), 6, web)

    def static(t: datetime) -> None:
        lab.log(
            t,
            "atlas",
            "nginx",
            f'{_client(r)} - - [{_ts(t)}] "GET /static/app.js HTTP/2.0" 200 48213 "https://shop.lan/" "Mozilla/5.0" '
            f"host=shop.lan rt=0.002 upstream=- ust=- urt=-",
        )

    lab.every(T0, until, 15, static)

    def auth(t: datetime) -> None:
        ms = r.uniform(0.01, 0.04)
        lab.log(
            t,
            "atlas",
            "nginx",
            f'{_client(r)} - - [{_ts(t)}] "POST /realms/lab/protocol/openid-connect/token HTTP/2.0" 200 4198 "-" '
            f'"Mozilla/5.0" host=auth.lan rt={ms:.3f} upstream={HOSTS["boreas"]}:8443 ust=200 urt={ms:.3f}',
        )
        lab.log(
            t,
            "boreas",
            "idp",
            f"INFO [token] issued token for client shop-web in {int(ms * 1000)} ms",
            unit="idp.service",
        )

    lab.every(T0, upto("idp"), 25, auth)

    def task(t: datetime) -> None:
        tid = "%08x-%04x" % (r.getrandbits(32), r.getrandbits(16))
        name = r.choice(["shop.tasks.send_receipt", "shop.tasks.sync_stock", "shop.tasks.expire_carts"])
        lab.log(
            t,
            "draco",
            "celery",
            f"[{t:%Y-%m-%d %H:%M:%S},{r.randint(0, 999):03d}: INFO/MainProcess] Task {name}[{tid}] received",
            unit="shop-worker.service",
        )
        lab.log(
            t + timedelta(milliseconds=r.randint(20, 300)),
            "draco",
            "celery",
            f"[{t:%Y-%m-%d %H:%M:%S},{r.randint(0, 999):03d}: INFO/ForkPoolWorker-{r.randint(1, 4)}] Task {name}[{tid}] succeeded in {r.uniform(0.01, 0.3):.3f}s: None",
            unit="shop-worker.service",
        )

    lab.every(T0, upto("celery"), 12, task)

    def redis_save(t: datetime) -> None:
        lab.log(
            t,
            "castor",
            "redis-server",
            "1:M 02 May 2026 %s * 100 changes in 300 seconds. Saving..." % t.strftime("%H:%M:%S.000"),
        )
        lab.log(
            t,
            "castor",
            "redis-server",
            "1:M 02 May 2026 %s * Background saving started by pid %d"
            % (t.strftime("%H:%M:%S.001"), r.randint(3000, 9000)),
        )
        lab.log(
            t + timedelta(seconds=1),
            "castor",
            "redis-server",
            "1:M 02 May 2026 %s * Background saving terminated with success"
            % (t + timedelta(seconds=1)).strftime("%H:%M:%S.210"),
        )

    lab.every(T0, upto("redis-server"), 300, redis_save)

    def pg(t: datetime) -> None:
        lab.log(
            t,
            "castor",
            "postgres",
            f"[{r.randint(10, 99)}-1] {t:%Y-%m-%d %H:%M:%S}.492 UTC [2428] LOG:  checkpoint starting: time",
            unit="postgresql@15-main.service",
        )
        lab.log(
            t + timedelta(seconds=90),
            "castor",
            "postgres",
            f"[{r.randint(10, 99)}-1] {t + timedelta(seconds=90):%Y-%m-%d %H:%M:%S}.113 UTC [2428] LOG:  checkpoint complete: wrote {r.randint(50, 2000)} buffers",
            unit="postgresql@15-main.service",
        )

    lab.every(T0, upto("postgres"), 300, pg)

    def unbound(t: datetime) -> None:
        lab.log(
            t,
            "boreas",
            "unbound",
            f"[812:0] info: server stats for thread 0: {r.randint(200, 900)} queries, {r.randint(100, 800)} answers from cache, {r.randint(10, 90)} recursions",
            unit="unbound.service",
        )

    lab.every(T0, upto("unbound"), 600, unbound)

    for host in HOSTS:
        lab.every(T0, until, 600, lambda t, h=host: _sysstat(lab, t, h))
        lab.every(T0, until, 1500, lambda t, h=host: _sshd(lab, t, h))
        lab.every(
            T0,
            until,
            1800,
            lambda t, h=host: lab.log(
                t, h, "CRON", "(root) CMD (cd / && run-parts --report /etc/cron.hourly)", unit="cron.service"
            ),
        )
    lab.every(
        T0,
        until,
        900,
        lambda t: lab.log(
            t, "draco", "kernel", "[UFW BLOCK] IN=eth0 OUT= SRC=10.1.0.1 DST=224.0.0.1 LEN=36 TTL=1 PROTO=2", prio=4
        ),
    )
    # an unrelated error burst half an hour before the fault
    noise = T0 + timedelta(minutes=28)
    for i in range(6):
        lab.log(
            noise + timedelta(seconds=i * 7),
            "eos",
            "shopd",
            f"ERROR payments: webhook signature mismatch for event evt_{r.getrandbits(40):x}",
            prio=3,
            unit="shopd.service",
        )


def _sysstat(lab: Lab, t: datetime, host: str) -> None:
    lab.log(
        t, host, "systemd", "Starting sysstat-collect.service - system activity accounting tool...", unit="init.scope"
    )
    lab.log(t, host, "systemd", "sysstat-collect.service: Deactivated successfully.", unit="init.scope")


def _sshd(lab: Lab, t: datetime, host: str) -> None:
    lab.log(
        t,
        host,
        "sshd",
        f"Accepted publickey for ops from 10.1.0.5 port {lab.rng.randint(30000, 60000)} ssh2: ED25519 SHA256:k1uEGvG8",
        unit="ssh.service",
    )


# -- the incidents -------------------------------------------------------------------------------------------


def oom_redis(lab: Lab) -> dict:
    """redis-server on castor killed for memory (twice); celery workers on draco cannot reach cache.lan:6379."""
    r = lab.rng
    background(lab, broken={"redis-server", "celery"})
    t = FAULT
    lab.log(
        t - timedelta(seconds=20),
        "castor",
        "redis-server",
        "1:M 02 May 2026 %s # WARNING: Used memory is above maxmemory"
        % (t - timedelta(seconds=20)).strftime("%H:%M:%S.000"),
        prio=4,
    )
    for k, dt in enumerate((0, 95)):
        at = t + timedelta(seconds=dt)
        lab.log(
            at,
            "castor",
            "kernel",
            "redis-server invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP), order=0, oom_score_adj=0",
            prio=4,
        )
        lab.log(
            at,
            "castor",
            "kernel",
            "oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/system.slice/redis-server.service,task=redis-server,pid=%d,uid=112"
            % (811 + k),
            prio=3,
        )
        lab.log(
            at,
            "castor",
            "kernel",
            "Out of memory: Killed process %d (redis-server) total-vm:3912044kB, anon-rss:3650212kB, file-rss:0kB, shmem-rss:0kB, UID:112 pgtables:7312kB oom_score_adj:0"
            % (811 + k),
            prio=3,
        )
        lab.log(
            at + timedelta(milliseconds=40),
            "castor",
            "systemd",
            "redis-server.service: A process of this unit has been killed by the OOM killer.",
            prio=5,
            unit="init.scope",
        )
        lab.log(
            at + timedelta(milliseconds=41),
            "castor",
            "systemd",
            "redis-server.service: Main process exited, code=killed, status=9/KILL",
            prio=5,
            unit="init.scope",
        )
        lab.log(
            at + timedelta(milliseconds=42),
            "castor",
            "systemd",
            "redis-server.service: Failed with result 'oom-kill'.",
            prio=4,
            unit="init.scope",
        )
        lab.log(
            at + timedelta(seconds=5),
            "castor",
            "systemd",
            "redis-server.service: Scheduled restart job, restart counter is at %d." % (k + 1),
            unit="init.scope",
        )
        lab.log(
            at + timedelta(seconds=5),
            "castor",
            "redis-server",
            "1:C 02 May 2026 %s # Redis version=7.0.15, bits=64, commit=00000000, modified=0, pid=%d, just started"
            % ((at + timedelta(seconds=5)).strftime("%H:%M:%S.100"), 900 + k),
        )
        lab.log(
            at + timedelta(seconds=6),
            "castor",
            "redis-server",
            "1:M 02 May 2026 %s * Loading RDB produced by version 7.0.15"
            % (at + timedelta(seconds=6)).strftime("%H:%M:%S.300"),
        )
    end = t + timedelta(minutes=11)

    def worker_err(at: datetime) -> None:
        lab.log(
            at,
            "draco",
            "celery",
            f"[{at:%Y-%m-%d %H:%M:%S},{r.randint(0, 999):03d}: ERROR/MainProcess] consumer: Cannot connect to redis://cache.lan:6379/0: Error 111 connecting to cache.lan:6379. Connection refused..",
            prio=3,
            unit="shop-worker.service",
        )
        lab.log(at, "draco", "celery", "Trying again in 2.00 seconds... (1/100)", unit="shop-worker.service")

    lab.every(t + timedelta(seconds=2), end, 8, worker_err)

    def api_err(at: datetime) -> None:
        lab.log(
            at,
            "eos",
            "shopd",
            "ERROR cart: redis.exceptions.ConnectionError: Error 111 connecting to cache.lan:6379. Connection refused.",
            prio=3,
            unit="shopd.service",
        )

    lab.every(t + timedelta(seconds=3), end, 20, api_err)
    return {
        "alert": {"alertname": "CeleryQueueBacklog", "service": "celery", "summary": "shop-worker queue is growing"},
        "alert_at": t + timedelta(minutes=3),
        "truth": {
            "service": "redis-server",
            "aliases": ["redis", "redis-server.service", "cache.lan", "10.1.0.23:6379"],
            "host": "castor",
            "host_aliases": ["castor.lan", HOSTS["castor"]],
        },
        "kind": "oom_killed",
    }


def crash_loop(lab: Lab) -> dict:
    """shopd on eos crash-loops after a deploy (nil pointer at start); nginx on atlas answers 502."""
    r = lab.rng
    background(lab, broken={"shopd"})
    t = FAULT
    lab.log(
        t - timedelta(seconds=30),
        "eos",
        "sudo",
        "    ops : TTY=pts/0 ; PWD=/home/ops ; USER=root ; COMMAND=/usr/bin/systemctl restart shopd",
        unit="session-88.scope",
    )
    for k in range(5):
        at = t + timedelta(seconds=k * 11)
        lab.log(
            at,
            "eos",
            "shopd",
            "panic: runtime error: invalid memory address or nil pointer dereference",
            prio=3,
            unit="shopd.service",
        )
        lab.log(
            at,
            "eos",
            "shopd",
            "[signal SIGSEGV: segmentation violation code=0x1 addr=0x18 pc=0x8a1f3c]",
            prio=3,
            unit="shopd.service",
        )
        lab.log(at, "eos", "shopd", "goroutine 1 [running]:", unit="shopd.service")
        lab.log(at, "eos", "shopd", "main.loadConfig(0x0)", unit="shopd.service")
        lab.log(
            at + timedelta(milliseconds=5),
            "eos",
            "systemd",
            "shopd.service: Main process exited, code=exited, status=2/INVALIDARGUMENT",
            prio=5,
            unit="init.scope",
        )
        lab.log(
            at + timedelta(milliseconds=6),
            "eos",
            "systemd",
            "shopd.service: Failed with result 'exit-code'.",
            prio=4,
            unit="init.scope",
        )
        lab.log(
            at + timedelta(seconds=10),
            "eos",
            "systemd",
            f"shopd.service: Scheduled restart job, restart counter is at {k + 1}.",
            unit="init.scope",
        )
    lab.log(
        t + timedelta(seconds=56),
        "eos",
        "systemd",
        "shopd.service: Start request repeated too quickly.",
        prio=4,
        unit="init.scope",
    )
    lab.log(
        t + timedelta(seconds=56),
        "eos",
        "systemd",
        "shopd.service: Failed with result 'exit-code'.",
        prio=4,
        unit="init.scope",
    )
    lab.log(
        t + timedelta(seconds=56),
        "eos",
        "systemd",
        "Failed to start shopd.service - shop API.",
        prio=3,
        unit="init.scope",
    )
    end = t + timedelta(minutes=11)

    def bad_gw(at: datetime) -> None:
        p = r.choice(["/api/v1/products", "/api/v1/cart"])
        c = _client(r)
        lab.log(
            at,
            "atlas",
            "nginx",
            f'{at:%Y/%m/%d %H:%M:%S} [error] 1811#1811: *{r.randint(10000, 99999)} connect() failed (111: Connection refused) while connecting to upstream, client: {c}, server: shop.lan, request: "GET {p} HTTP/2.0", upstream: "http://{HOSTS["eos"]}:8080{p}", host: "shop.lan"',
            prio=3,
            unit="nginx.service",
        )
        lab.log(
            at,
            "atlas",
            "nginx",
            f'{c} - - [{_ts(at)}] "GET {p} HTTP/2.0" 502 157 "https://shop.lan/" "Mozilla/5.0" host=shop.lan rt=0.001 upstream={HOSTS["eos"]}:8080 ust=502 urt=0.001',
        )

    lab.every(t + timedelta(seconds=1), end, 6, bad_gw)
    return {
        "alert": {"alertname": "NginxHigh5xxRate", "service": "nginx", "summary": "shop.lan is answering 5xx"},
        "alert_at": t + timedelta(minutes=3),
        "truth": {
            "service": "shopd",
            "aliases": ["shopd.service", "10.1.0.25:8080"],
            "host": "eos",
            "host_aliases": ["eos.lan", HOSTS["eos"]],
        },
        "kind": "crash_loop",
    }


def cert_expired(lab: Lab) -> dict:
    """The certificate of idp on boreas (auth.lan:8443) expired; nginx and shopd fail their TLS handshakes."""
    r = lab.rng
    background(lab, broken={"idp"})
    t = FAULT
    end = t + timedelta(minutes=11)

    def handshake(at: datetime) -> None:
        c = _client(r)
        lab.log(
            at,
            "atlas",
            "nginx",
            f'{at:%Y/%m/%d %H:%M:%S} [error] 1811#1811: *{r.randint(10000, 99999)} upstream SSL certificate verify error: (10:certificate has expired) while SSL handshaking to upstream, client: {c}, server: auth.lan, request: "POST /realms/lab/protocol/openid-connect/token HTTP/2.0", upstream: "https://{HOSTS["boreas"]}:8443/realms/lab/protocol/openid-connect/token", host: "auth.lan"',
            prio=3,
            unit="nginx.service",
        )
        lab.log(
            at,
            "atlas",
            "nginx",
            f'{c} - - [{_ts(at)}] "POST /realms/lab/protocol/openid-connect/token HTTP/2.0" 502 157 "-" "Mozilla/5.0" host=auth.lan rt=0.004 upstream={HOSTS["boreas"]}:8443 ust=502 urt=0.004',
        )
        lab.log(
            at,
            "boreas",
            "idp",
            f"WARN [io.vertx.core.net.impl.ConnectionBase] (vert.x-eventloop-thread-1) javax.net.ssl.SSLHandshakeException: Received fatal alert: certificate_expired from /{HOSTS['atlas']}:{r.randint(30000, 60000)}",
            prio=4,
            unit="idp.service",
        )

    lab.every(t, end, 9, handshake)

    def introspect(at: datetime) -> None:
        lab.log(
            at,
            "eos",
            "shopd",
            f'ERROR auth: token introspection failed: Post "https://auth.lan:8443/realms/lab/protocol/openid-connect/token/introspect": x509: certificate has expired or is not yet valid: current time {at:%Y-%m-%dT%H:%M:%SZ} is after {t:%Y-%m-%dT%H:%M:%SZ}',
            prio=3,
            unit="shopd.service",
        )

    lab.every(t + timedelta(seconds=4), end, 15, introspect)
    return {
        "alert": {"alertname": "NginxHigh5xxRate", "service": "nginx", "summary": "auth.lan is answering 5xx"},
        "alert_at": t + timedelta(minutes=3),
        "truth": {
            "service": "idp",
            "aliases": ["idp.service", "auth.lan", "10.1.0.22:8443"],
            "host": "boreas",
            "host_aliases": ["boreas.lan", HOSTS["boreas"]],
        },
        "kind": "certificate_expired",
    }


def dns_down(lab: Lab) -> dict:
    """unbound on boreas (the lab's resolver, 10.1.0.22) stops answering; clients cannot resolve db.lan, cache.lan."""
    r = lab.rng
    background(lab, broken={"unbound", "celery"})
    t = FAULT
    lab.log(
        t - timedelta(seconds=3),
        "boreas",
        "unbound",
        "[812:0] error: /etc/unbound/unbound.conf.d/lab.conf:14: syntax error",
        prio=3,
        unit="unbound.service",
    )
    lab.log(
        t,
        "boreas",
        "unbound",
        "[812:0] fatal error: Could not read config file: /etc/unbound/unbound.conf. Maybe try unbound -dd, it stays on the commandline to see more errors, or unbound-checkconf",
        prio=2,
        unit="unbound.service",
    )
    lab.log(
        t,
        "boreas",
        "systemd",
        "unbound.service: Main process exited, code=exited, status=1/FAILURE",
        prio=5,
        unit="init.scope",
    )
    lab.log(t, "boreas", "systemd", "unbound.service: Failed with result 'exit-code'.", prio=4, unit="init.scope")
    end = t + timedelta(minutes=11)
    for host in ("atlas", "draco", "eos"):
        lab.every(
            t + timedelta(seconds=5),
            end,
            60,
            lambda at, h=host: lab.log(
                at,
                h,
                "systemd-resolved",
                f"Using degraded feature set UDP instead of UDP+EDNS0 for DNS server {HOSTS['boreas']}.",
                prio=4,
                unit="systemd-resolved.service",
            ),
        )

    def worker_err(at: datetime) -> None:
        lab.log(
            at,
            "draco",
            "celery",
            f"[{at:%Y-%m-%d %H:%M:%S},{r.randint(0, 999):03d}: ERROR/MainProcess] consumer: Cannot connect to redis://cache.lan:6379/0: Error -3 connecting to cache.lan:6379. Temporary failure in name resolution.",
            prio=3,
            unit="shop-worker.service",
        )

    lab.every(t + timedelta(seconds=2), end, 10, worker_err)

    def api_err(at: datetime) -> None:
        lab.log(
            at,
            "eos",
            "shopd",
            'ERROR db: could not translate host name "db.lan" to address: Temporary failure in name resolution',
            prio=3,
            unit="shopd.service",
        )

    lab.every(t + timedelta(seconds=2), end, 12, api_err)
    return {
        "alert": {"alertname": "CeleryQueueBacklog", "service": "celery", "summary": "shop-worker queue is growing"},
        "alert_at": t + timedelta(minutes=3),
        "truth": {
            "service": "unbound",
            "aliases": ["unbound.service", "10.1.0.22:53"],
            "host": "boreas",
            "host_aliases": ["boreas.lan", HOSTS["boreas"]],
        },
        "kind": "name_resolution",
    }


def too_many_connections(lab: Lab) -> dict:
    """postgres on castor refuses new connections (slots used up by a leaking job); shopd and celery fail."""
    r = lab.rng
    background(lab, broken=set())
    t = FAULT
    end = t + timedelta(minutes=11)

    def pg_full(at: datetime) -> None:
        lab.log(
            at,
            "castor",
            "postgres",
            f"[1-1] {at:%Y-%m-%d %H:%M:%S}.{r.randint(0, 999):03d} UTC [{r.randint(3000, 9000)}] shop@shop FATAL:  sorry, too many clients already",
            prio=3,
            unit="postgresql@15-main.service",
        )

    lab.every(t, end, 4, pg_full)

    def api_err(at: datetime) -> None:
        lab.log(
            at,
            "eos",
            "shopd",
            f'ERROR db: connection to server at "db.lan" ({HOSTS["castor"]}), port 5432 failed: FATAL:  sorry, too many clients already',
            prio=3,
            unit="shopd.service",
        )

    lab.every(t + timedelta(seconds=1), end, 7, api_err)

    def worker_err(at: datetime) -> None:
        lab.log(
            at,
            "draco",
            "celery",
            f"[{at:%Y-%m-%d %H:%M:%S},{r.randint(0, 999):03d}: ERROR/ForkPoolWorker-2] Task shop.tasks.sync_stock raised unexpected: OperationalError('connection to server at \"db.lan\" ({HOSTS['castor']}), port 5432 failed: FATAL:  remaining connection slots are reserved for non-replication superuser connections')",
            prio=3,
            unit="shop-worker.service",
        )

    lab.every(t + timedelta(seconds=2), end, 15, worker_err)
    return {
        "alert": {"alertname": "ShopApiErrors", "service": "shopd", "summary": "shop API error rate above 5%"},
        "alert_at": t + timedelta(minutes=3),
        "truth": {
            "service": "postgres",
            "aliases": ["postgresql", "postgresql@15-main.service", "db.lan", "10.1.0.23:5432"],
            "host": "castor",
            "host_aliases": ["castor.lan", HOSTS["castor"]],
        },
        "kind": "connection_limit",
    }


CASES: dict[str, Callable[[Lab], dict]] = {
    "journald-oom-redis": oom_redis,
    "journald-crash-loop": crash_loop,
    "journald-cert-expired": cert_expired,
    "journald-dns-down": dns_down,
    "journald-too-many-connections": too_many_connections,
}


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def write(name: str, make: Callable[[Lab], dict], out: Path = OUT) -> Path:
    lab = Lab(random.Random(name))
    spec = make(lab)
    root = out / name
    (root / "telemetry").mkdir(parents=True, exist_ok=True)
    alert_at: datetime = spec["alert_at"]
    case = {
        "format": "devmesh-case/1",
        "id": name,
        "system": "homelab-journald-synthetic",
        "asked_at": _iso(alert_at + timedelta(minutes=1)),
        "alert": {
            "labels": {
                "alertname": spec["alert"]["alertname"],
                "severity": "critical",
                "service": spec["alert"]["service"],
            },
            "annotations": {"summary": spec["alert"]["summary"]},
            "startsAt": _iso(alert_at),
        },
        "notes": "Synthetic home lab of five Linux nodes; the journal of every node, as `journalctl -o json` lines. No traces, no metrics.",
    }
    truth = {"fault_time": _iso(FAULT), "root_cause": spec["truth"], "kind": spec["kind"]}
    (root / "case.json").write_text(json.dumps(case, indent=2) + "\n")
    (root / "truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    lines = sorted(lab.lines, key=lambda d: int(d["__REALTIME_TIMESTAMP"]))
    body = "".join(json.dumps(d, sort_keys=True) + "\n" for d in lines).encode()
    with gzip.GzipFile(root / "telemetry" / "journal.journal.jsonl.gz", "wb", mtime=0) as f:
        f.write(body)
    return root


def main() -> None:
    for name, make in CASES.items():
        print(write(name, make))


if __name__ == "__main__":
    main()
