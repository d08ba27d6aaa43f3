"""Scheduled detection (and retention on a shared event store) in `devmesh serve`, on one replica at a time:
the holder of the lease runs it.

The lease (`graph.lease`, a key on the FalkorDB server the replicas share) is kept by its own loop, renewed
every third of its time to live; a replica that does not hold it stands by and tries again at each of its
detection ticks. A holder whose renewal fails (the server unreachable, or the key expired and another
replica took it) starts no further run; a run already under way finishes (its writes are idempotent:
incidents are keyed by window and service, and the run marker only moves forward).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import redis
from starlette.concurrency import run_in_threadpool

from core.settings import Settings
from graph.lease import DETECT_LEASE, Lease

log = logging.getLogger(__name__)


def lease_key(settings: Settings, base: str) -> str:
    """The key of a lease of this deployment: '[<namespace>_]<base>:<graph name>' (one deployment, one graph)."""
    return settings.namespaced(f"{base}:{settings.graph_name}")


def scheduled_lease(settings: Settings, graph_url: str | None, base: str = DETECT_LEASE) -> Lease | None:
    """A lease (detection's by default) on the graph's server, in the deployment's namespace; None without one."""
    if not graph_url:
        return None
    client = redis.Redis.from_url(graph_url, socket_timeout=10, socket_connect_timeout=10, decode_responses=True)
    return Lease(client, lease_key(settings, base), ttl_ms=int(settings.detect_lease_s * 1000))


async def keep_lease(lease: Lease) -> None:
    """Renew the lease while held (or try to take it) every third of its time to live; released when cancelled."""
    try:
        while True:
            await run_in_threadpool(lease.keep)
            await asyncio.sleep(lease.ttl_ms / 3000)
    finally:
        if lease.held:
            try:
                await run_in_threadpool(lease.release)  # another replica can take over at once
            except redis.RedisError:
                log.warning("lease not released; it expires by itself", extra={"key": lease.key})
        lease.client.close()


async def leased_loop(
    run: Callable[[], object], every_s: float, lease: Lease | None, *, what: str = "detection", wait_first: bool = False
) -> None:
    """Call `run` every `every_s` seconds while this replica holds `lease` (always without a lease); with
    `wait_first`, the first call comes after `every_s`."""
    if wait_first:
        await asyncio.sleep(every_s)
    while True:
        held = lease is None or lease.held or await run_in_threadpool(lease.keep)
        if held:
            try:
                await run_in_threadpool(run)
            except Exception:
                log.exception("%s run failed; will retry", what)
        else:
            log.debug("%s lease held by another replica; standing by", what)
        await asyncio.sleep(every_s)
