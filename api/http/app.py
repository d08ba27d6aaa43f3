"""The FastAPI application: built from settings, engines opened in the lifespan, routers mounted."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable

import redis
from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.middleware.cors import CORSMiddleware

from api import alerts
from api.audit import AuditLog
from api.chat import routes as chat_routes
from api.chat.slack_app import slack_bot_from_settings
from api.detect_schedule import keep_lease, leased_loop, scheduled_lease
from api.engine_port import EnginePort
from api.http import (
    admin,
    detect,
    explain,
    incident_map,
    incidents,
    ingest,
    journald,
    meta,
    otlp,
    query,
    service_page,
)
from api.http.errors import install_error_handlers
from api.http.guard import AccessGuard
from api.http.limits import BodyLimitMiddleware
from api.http.openapi_doc import install_openapi_doc
from api.http.ratelimit import Buckets, RateLimitMiddleware, rates_of
from api.keystore import KeyStore
from api.notify import notifier_from_settings
from api.port import DevMeshPort
from api.retention import period_ns, policy_from_settings, prune
from api.supervision import supervise
from api.web import install_console
from api.wiring import Services, open_services
from core.settings import Settings
from core.timeutil import now_ns, parse_duration
from detect.runner import DetectOptions
from graph.buckets import SharedTokenBuckets
from graph.lease import PRUNE_LEASE
from ingest.repair import repair_owed

log = logging.getLogger(__name__)

TOPOLOGY_REFRESH_S = 15.0
REPAIR_S = 30.0
"""How often the server completes owed graph and vector writes (`ingest.repair`)."""
ROUTERS = (
    meta.router,
    ingest.router,
    journald.router,
    otlp.router,
    query.router,
    explain.router,
    incidents.router,
    incident_map.router,
    service_page.router,
    detect.router,
    admin.router,
    alerts.router,
    chat_routes.router,
)


def create_app(settings: Settings, *, open_fn: Callable[[Settings], Services] = open_services) -> FastAPI:
    """The API. `open_fn` builds the services at start-up (tests pass their own)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        svc = await run_in_threadpool(open_fn, settings)
        app.state.services = svc
        supervise(svc)  # engines that die are restarted or waited for; owed writes replayed when back
        port = await run_in_threadpool(EnginePort, svc, notify=notifier_from_settings(settings))
        app.state.port = port
        app.state.slack = slack_bot_from_settings(settings, port)
        if settings.alerts_token is not None:
            app.state.alerts_token = settings.alerts_token.get_secret_value()
        tasks = [asyncio.create_task(_refresh_topology_loop(svc)), asyncio.create_task(_repair_loop(svc))]
        if settings.detect_every:  # on one replica at a time: the holder of the lease on the graph's server
            every_s = parse_duration(settings.detect_every).total_seconds()
            lease = scheduled_lease(settings, svc.graph_url)
            if lease is not None:
                tasks.append(asyncio.create_task(keep_lease(lease)))
            tasks.append(asyncio.create_task(leased_loop(lambda: _detect_now(port), every_s, lease)))
        prune_every_ns = period_ns(settings.prune_every, "prune_every")
        policy = policy_from_settings(settings) if prune_every_ns else None
        if prune_every_ns and policy is not None and policy.enabled:  # a shared event store: one replica prunes
            prune_lease = scheduled_lease(settings, svc.graph_url, PRUNE_LEASE) if settings.events_url else None
            if prune_lease is not None:
                tasks.append(asyncio.create_task(keep_lease(prune_lease)))
            run_prune = functools.partial(prune, svc.events, policy)
            every_s = prune_every_ns / 1e9
            tasks.append(
                asyncio.create_task(leased_loop(run_prune, every_s, prune_lease, what="retention", wait_first=True))
            )
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if app.state.slack is not None:
                app.state.slack.close()
            await run_in_threadpool(svc.close)

    app = FastAPI(
        title="DevMesh",
        summary="Local incident explainer: telemetry in, ranked root causes and cited explanations out.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    if settings.cors_origins:  # off unless configured; the guard refuses other origins' writes
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Content-Encoding"],
        )
    app.state.keys = KeyStore(settings.keys_path)
    app.add_middleware(AccessGuard, settings=settings, keys=app.state.keys, audit=AuditLog(settings.audit_path))
    app.add_middleware(  # outermost: before the body or the key
        RateLimitMiddleware, rates=rates_of(settings), shared=shared_buckets(settings)
    )
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    install_openapi_doc(app)
    install_console(app)  # the web console at / (static assets; its data calls go to the routes above)
    return app


async def _repair_loop(svc: Services) -> None:
    """Complete the writes owed to the graph and the vector store, from the event store, no operator needed."""
    while True:
        await asyncio.sleep(REPAIR_S)
        try:
            await run_in_threadpool(repair_owed, svc)
        except Exception:
            log.exception("repair of owed writes failed; will retry")


async def _refresh_topology_loop(svc: Services) -> None:
    """Re-derive CALLS edges from stored spans while new spans keep arriving."""
    while True:
        await asyncio.sleep(TOPOLOGY_REFRESH_S)
        if svc.pipeline.spans_since_refresh:
            try:
                await run_in_threadpool(svc.pipeline.refresh_topology)
            except Exception:
                log.exception("topology refresh failed; will retry")


def shared_buckets(settings: Settings) -> Callable[[str, int], Buckets] | None:
    """With DEVMESH_RATE_SHARED and a FalkorDB server, rate-limit buckets on it per deployment and route class."""
    if not (settings.rate_shared and settings.falkordb_url):
        return None
    client = redis.Redis.from_url(settings.falkordb_url, socket_timeout=1, socket_connect_timeout=1)
    prefix = settings.namespaced(f"devmesh:rate:{settings.graph_name}")
    return lambda name, per_min: SharedTokenBuckets(client, f"{prefix}:{name}", per_min)


def _detect_now(port: DevMeshPort) -> object:
    """One scheduled detection run; the run marker in the event store carries over restarts and replicas."""
    return port.detect(end_ns=now_ns(), options=DetectOptions())
