"""Front ends map to scopes: the MCP server's tools within its key's scopes, and who `devmesh mcp` acts as."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from pydantic import SecretStr

from api.cli.serve_cmds import mcp_principal
from api.http.access import LOCAL
from api.keystore import KeyStore
from api.mcp_server import build_mcp_server
from core.errors import Unauthorized
from core.settings import Settings
from tests.fakes.devmesh_port import FakePort


def call_tools(port: FakePort, scopes: frozenset[str] | None, calls: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    async def main() -> list[Any]:
        async with Client(build_mcp_server(port, scopes=scopes), raise_exceptions=True) as client:
            return [await client.call_tool(name, args) for name, args in calls]

    return anyio.run(main)


def test_mcp_tools_outside_the_scopes_are_refused_with_the_scope_named() -> None:
    port = FakePort()
    explain = ("explain_incident", {"incident_id": "inc-42"})
    listing = ("list_incidents", {"limit": 5})

    read_only = call_tools(port, frozenset({"read"}), [explain, listing])
    assert [r.is_error for r in read_only] == [True, False]
    assert "lacks the 'explain' scope" in read_only[0].content[0].text
    assert port.calls("explain") == []

    ingest_only = call_tools(port, frozenset({"ingest"}), [listing])
    assert ingest_only[0].is_error and "'read' scope" in ingest_only[0].content[0].text

    for scopes in (frozenset({"admin"}), frozenset({"read", "explain"}), None):
        assert [r.is_error for r in call_tools(port, scopes, [explain, listing])] == [False, False]


def test_devmesh_mcp_acts_as_local_without_keys_and_as_its_key_with_them(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, _env_file=None)  # type: ignore[call-arg]
    assert mcp_principal(settings) == LOCAL

    raw, key = KeyStore(settings.keys_path).create(["read"], "claude")
    with pytest.raises(Unauthorized, match="DEVMESH_API_KEY"):
        mcp_principal(settings)
    with pytest.raises(Unauthorized):
        mcp_principal(settings.model_copy(update={"api_key": SecretStr("dmk_wrong")}))
    principal = mcp_principal(settings.model_copy(update={"api_key": SecretStr(raw)}))
    assert (principal.key_id, principal.scopes) == (key.id, frozenset({"read"}))
