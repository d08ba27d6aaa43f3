"""`devmesh keys create|list|revoke` (API keys, shown once, stored hashed) and `devmesh audit` (who did what)."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import typer
from rich.table import Table

from api.audit import AuditLog
from api.cli.common import JsonOpt, console, emit, state
from api.keystore import KeyStore, Scope
from core.timeutil import parse_time_arg

keys_app = typer.Typer(
    help="API keys: `Authorization: Bearer <key>` on every HTTP request once one exists. Scopes: "
    + ", ".join(s.value for s in Scope)
    + " (admin implies every scope).",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
    app.command("audit")(audit)


def _store(ctx: typer.Context) -> KeyStore:
    return KeyStore(state(ctx).settings.keys_path)


def _audit_cli(ctx: typer.Context, action: str, key_id: str, status: int = 200) -> None:
    """Key changes from the CLI go to the audit log like API writes do (the operator's user as the client)."""
    who = os.environ.get("USER") or os.environ.get("LOGNAME") or "cli"
    AuditLog(state(ctx).settings.audit_path).append(
        key_id=key_id, name="devmesh keys", method="CLI", path=f"keys {action}", status=status, client=who
    )


@keys_app.command("create")
def create(
    ctx: typer.Context,
    scope: list[str] = typer.Option(..., "--scope", "-s", help="ingest, read, explain or admin; repeat for several."),
    name: str = typer.Option("", "--name", "-n", help="What the key is for (shown by `keys list` and the audit)."),
    as_json: bool = JsonOpt,
) -> None:
    """Create a key and print it once: only its hash is kept, so copy it now."""
    raw, key = _store(ctx).create(scope, name)
    _audit_cli(ctx, "create", key.id)
    if as_json:
        sys.stdout.write(json.dumps({"key": raw, "id": key.id, "scopes": list(key.scopes)}) + "\n")
        return
    console.print(f"[bold]{raw}[/bold]", soft_wrap=True, highlight=False)
    console.print(
        f"id {key.id}, scopes {', '.join(key.scopes)}. This is the only time the key is shown: send it as "
        "`Authorization: Bearer <key>` (the CLI and the shipper read DEVMESH_API_KEY).",
        highlight=False,
    )


@keys_app.command("list")
def list_keys(ctx: typer.Context, as_json: bool = JsonOpt) -> None:
    """Every key (revoked ones too): id, name, scopes, when created and revoked. Never the keys themselves."""
    rows = [k.public() for k in _store(ctx).all_keys()]
    emit(rows, as_json, _table)


def _table(rows: list[dict[str, Any]]) -> None:
    if not rows:
        console.print("no API keys: the API is in loopback-only mode (`devmesh keys create --scope admin`)")
        return
    table = Table("id", "name", "scopes", "created", "revoked")
    for r in rows:
        table.add_row(r["id"], r["name"], ", ".join(r["scopes"]), r["created"], r["revoked"] or "")
    console.print(table)


@keys_app.command("revoke")
def revoke(ctx: typer.Context, key_id: str = typer.Argument(..., metavar="ID", help="The key's id.")) -> None:
    """Revoke a key: requests with it get 401 from the next request on (a running server re-reads the file)."""
    key = _store(ctx).revoke(key_id)
    _audit_cli(ctx, "revoke", key.id)
    console.print(f"revoked {key.id} ({key.name or 'no name'}) at {key.revoked}", highlight=False)


def audit(
    ctx: typer.Context,
    since: str | None = typer.Option(None, help="Only lines at or after: '1h', '2d', or an ISO-8601 time."),
    limit: int = typer.Option(100, min=1, max=100_000, help="At most this many lines (the newest)."),
    as_json: bool = JsonOpt,
) -> None:
    """The audit log: every state-changing request and key change (time, key, method, path, status, client)."""
    since_ns = parse_time_arg(since) if since else None
    rows = AuditLog(state(ctx).settings.audit_path).read(since_ns=since_ns, limit=limit)
    emit(rows, as_json, _audit_table)


def _audit_table(rows: list[dict[str, Any]]) -> None:
    table = Table("time", "key", "name", "method", "path", "status", "client")
    for r in rows:
        table.add_row(
            r.get("time", ""),
            r.get("key_id", ""),
            r.get("name", ""),
            r.get("method", ""),
            r.get("path", ""),
            str(r.get("status", "")),
            r.get("client", ""),
        )
    console.print(table)
