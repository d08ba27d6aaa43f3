"""Who is asking and what they may do: API keys sent as `Authorization: Bearer <key>`, a scope per route.

`require(scope)` is the FastAPI dependency routes carry (a whole router at once where they share a scope).
It answers 401 for a missing, unknown or revoked key (the guard adds `WWW-Authenticate: Bearer`) and 403
for a key without the scope, and sets `request.state.principal`. With no key configured (no
`<DEVMESH_HOME>/keys.json`) the API is in loopback-only mode: every request is the principal "local" with
every scope, and `devmesh serve` refuses to listen beyond loopback.

The key store comes from `app.state.keys` (set by `create_app`); an app without one (unit tests that mount
a single router) is in loopback-only mode.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from fastapi import Request

from api.keystore import KeyStore, Scope, allows
from core.errors import Forbidden, Unauthorized
from core.settings import Settings

__all__ = [
    "ALERTS_TOKEN",
    "LOCAL",
    "SLACK",
    "Principal",
    "Scope",
    "authenticate",
    "check_scope",
    "is_loopback",
    "require",
]

CREATE_HINT = "create one with `devmesh keys create --scope admin` and send it as `Authorization: Bearer <key>`"


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: a key (its id and name), or one of the fixed principals below."""

    key_id: str
    name: str
    scopes: frozenset[str]

    def may(self, scope: Scope) -> bool:
        return allows(self.scopes, scope)


LOCAL = Principal("local", "loopback (no API keys configured)", frozenset(Scope))
SLACK = Principal("slack", "Slack (signed requests)", frozenset({Scope.READ, Scope.EXPLAIN}))
"""Slack requests are checked by their signature, not a key; the bot reads and explains."""
ALERTS_TOKEN = Principal("alerts-token", "DEVMESH_ALERTS_TOKEN", frozenset({Scope.EXPLAIN}))
"""The legacy Alertmanager token: POST /alerts/* only."""


def is_loopback(host: str) -> bool:
    """Whether a bind address or host name stays on this machine (127.0.0.0/8, ::1, localhost)."""
    name = host.strip().strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    scheme, _, value = headers.get("authorization", "").partition(" ")
    token = value.strip()
    return token if scheme.lower() == "bearer" and token else None


def authenticate(store: KeyStore | None, settings: Settings | None, headers: Mapping[str, str]) -> Principal:
    """The principal of a request's headers; Unauthorized when keys are configured and none valid is sent."""
    if store is None or not store.configured():
        if settings is not None and not is_loopback(settings.api_host):
            raise Unauthorized(f"no API key is configured and the server listens beyond loopback; {CREATE_HINT}")
        return LOCAL
    token = bearer_token(headers)
    if token is None:
        raise Unauthorized(f"this request needs an API key: {CREATE_HINT}", field="authorization")
    key = store.lookup(token)
    if key is None:
        raise Unauthorized("unknown or revoked API key (`devmesh keys list` shows the keys)", field="authorization")
    return Principal(key.id, key.name or key.id, frozenset(key.scopes))


def keys_configured(request: Request) -> bool:
    store: KeyStore | None = getattr(request.app.state, "keys", None)
    return store is not None and store.configured()


def check_scope(request: Request, scope: Scope) -> Principal:
    """Authenticate (unless the guard already did), note the principal on the request, check the scope."""
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:
        store: KeyStore | None = getattr(request.app.state, "keys", None)
        settings: Settings | None = getattr(request.app.state, "settings", None)
        principal = authenticate(store, settings, request.headers)
        request.state.principal = principal
    if not principal.may(scope):
        held = ", ".join(sorted(principal.scopes)) or "none"
        raise Forbidden(
            f"this needs the '{scope}' scope; key {principal.key_id} has: {held}"
            f" (`devmesh keys create --scope {scope}` makes a key that may)",
            field="authorization",
        )
    return principal


def require(scope: Scope) -> Callable[[Request], Awaitable[Principal]]:
    """FastAPI dependency: the request's principal, which must hold `scope` (admin holds every scope)."""

    async def dependency(request: Request) -> Principal:
        return check_scope(request, scope)

    dependency.__name__ = f"require_{scope.value}"
    return dependency
