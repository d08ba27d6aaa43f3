"""ASGI middleware at the door: Host allow-list, cross-origin writes, content types, who is asking, audit.

In this order, before any route runs or any body is read:

1. Host: the `Host` header must name a loopback name, the bind host or one of `DEVMESH_ALLOWED_HOSTS`
   (400 otherwise: DNS rebinding). `/health` is exempt (probes call it by address).
2. Writes (POST, PUT, PATCH, DELETE) with an `Origin` header must come from the server's own origin or
   one of `DEVMESH_CORS_ORIGINS` (403 otherwise), and a body must be JSON (OTLP receivers: protobuf or
   JSON; Slack's form posts are checked by their signature instead): 415 otherwise. So a web page cannot
   write with a "simple" cross-origin request.
3. Who: every path but `/health`, the docs, the web console's page and assets (`/`, `/console/*`: no data),
   `/slack/*` (signed) and `/alerts/*` (their own token check)
   needs a valid key once keys exist (401, with `WWW-Authenticate: Bearer`); the principal is put on the
   request (`request.state.principal`) for the routes' scope checks (`api.http.access.require`).
4. Audit: every write gets one line in the audit log (who, method, path, status, client), whatever the
   answer, and never its body.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import JSONResponse

from api.audit import NOBODY, AuditLog
from api.http.access import SLACK, Principal, authenticate
from api.keystore import KeyStore
from core.errors import DevMeshError, Forbidden, UnsupportedMediaType
from core.settings import Settings
from ingest.otlp import media_kind

log = logging.getLogger(__name__)

WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
OPEN_PATHS = frozenset({"/health", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json", "/"})
OPEN_PREFIXES = ("/console/",)
"""The web console's assets: static files without data (its data calls go to the API with the user's key)."""
OWN_CHECK_PREFIXES = ("/slack/", "/alerts/")
OTLP_PATHS = frozenset({"/v1/logs", "/v1/traces", "/v1/metrics"})


def allowed_hosts(settings: Settings) -> frozenset[str] | None:
    """Host names the API answers to (None: any, when DEVMESH_ALLOWED_HOSTS holds '*')."""
    extra = {_bare(h) for h in settings.allowed_hosts}
    if "*" in extra:
        return None
    return frozenset(LOOPBACK_NAMES | extra | {_bare(settings.api_host)})


def _bare(host: str) -> str:
    """A host name without port or IPv6 brackets, lower case: '[::1]:8080' -> '::1'."""
    h = host.strip().lower()
    if h.startswith("["):
        return h[1 : h.find("]")] if "]" in h else h
    if h.count(":") == 1:
        h = h.split(":", 1)[0]
    return h.rstrip(".")


def _is_json(media: str) -> bool:
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


class AccessGuard:
    def __init__(self, app: Any, *, settings: Settings, keys: KeyStore, audit: AuditLog) -> None:
        self.app = app
        self.settings = settings
        self.keys = keys
        self.audit = audit
        self.hosts = allowed_hosts(settings)
        self.origins = frozenset(o.strip().rstrip("/").lower() for o in settings.cors_origins)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        state = scope.setdefault("state", {})

        async def send_noting(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if status == 401 and not any(k.lower() == b"www-authenticate" for k, _ in message["headers"]):
                    message = {**message, "headers": [*message["headers"], (b"www-authenticate", b"Bearer")]}
            await send(message)

        try:
            refusal = self._check(scope, state)
            if refusal is not None:
                await refusal(scope, receive, send_noting)
            else:
                await self.app(scope, receive, send_noting)
        finally:
            if scope["method"] in WRITES:
                self._audit(scope, state.get("principal"), status)

    def _check(self, scope: dict[str, Any], state: dict[str, Any]) -> JSONResponse | None:
        path: str = scope["path"]
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        if path != "/health" and self.hosts is not None and _bare(host) not in self.hosts:
            log.warning("refused a request for an unknown Host", extra={"host": host[:200], "path": path})
            message = f"Host {host[:200]!r} is not one this server answers to; add it to DEVMESH_ALLOWED_HOSTS"
            return JSONResponse({"error": "InvalidInput", "message": message, "field": "host"}, status_code=400)
        try:
            if scope["method"] in WRITES:
                self._check_origin(headers, host)
                if not path.startswith("/slack/"):
                    self._check_media(path, headers)
            if path.startswith("/slack/"):
                state["principal"] = SLACK
            elif (
                path not in OPEN_PATHS
                and not path.startswith(OWN_CHECK_PREFIXES + OPEN_PREFIXES)
                and scope["method"] != "OPTIONS"
            ):
                state["principal"] = authenticate(self.keys, self.settings, headers)
        except DevMeshError as exc:
            return JSONResponse(exc.to_dict(), status_code=exc.status_code)
        return None

    def _check_origin(self, headers: Headers, host: str) -> None:
        origin = headers.get("origin")
        if origin is None:
            return
        same = urlsplit(origin).netloc.lower() == host.lower() and host != ""
        if not same and origin.rstrip("/").lower() not in self.origins:
            raise Forbidden(
                f"cross-origin writes are refused (Origin {origin[:200]!r}); add the origin to DEVMESH_CORS_ORIGINS",
                field="origin",
            )

    @staticmethod
    def _check_media(path: str, headers: Headers) -> None:
        content_type = headers.get("content-type")
        has_body = headers.get("content-length", "0") != "0" or "transfer-encoding" in headers
        if content_type is None and not has_body:
            return  # a POST without a body (resolve): nothing a form could smuggle
        if path in OTLP_PATHS:
            media_kind(content_type)  # 415 unless protobuf or JSON
            return
        media = (content_type or "").split(";", 1)[0].strip().lower()
        if not _is_json(media):
            raise UnsupportedMediaType(
                f"Content-Type {content_type!r} is not accepted here; send application/json", field="content-type"
            )

    def _audit(self, scope: dict[str, Any], principal: Principal | None, status: int) -> None:
        client = scope.get("client")
        try:
            self.audit.append(
                key_id=principal.key_id if principal else NOBODY,
                name=principal.name if principal else "",
                method=scope["method"],
                path=scope["path"],
                status=status,
                client=str(client[0]) if client else "",
            )
        except OSError:
            log.exception("could not write the audit log", extra={"path": str(self.audit.path)})
