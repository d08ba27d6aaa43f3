"""The MCP server through the official SDK's client: in-process (direct and JSON-RPC streams) and over stdio."""

from __future__ import annotations

import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters

from api.mcp_server import build_mcp_server
from core.incident import IncidentStatus, InvestigationRequest
from tests.fakes.devmesh_port import T0, FakePort

REPO = Path(__file__).resolve().parents[2]
TOOLS = {"explain_incident", "search_logs", "query_topology", "list_incidents", "incident_logs", "node_changes"}


def with_client(port: FakePort, body: Callable[[Client], Awaitable[Any]], *, mode: str = "auto") -> Any:
    async def main() -> Any:
        async with Client(build_mcp_server(port), mode=mode, raise_exceptions=True) as client:
            return await body(client)

    return anyio.run(main)


def test_tools_are_listed_with_their_argument_schemas() -> None:
    tools = {t.name: t for t in with_client(FakePort(), lambda c: c.list_tools()).tools}
    assert set(tools) == TOOLS
    explain = tools["explain_incident"].input_schema
    assert set(explain["properties"]) == {"incident_id", "service", "since", "question"}
    assert explain.get("required", []) == []
    assert tools["query_topology"].input_schema["properties"]["hops"]["maximum"] == 3
    assert tools["search_logs"].input_schema["required"] == ["text"]
    assert tools["list_incidents"].annotations is not None and tools["list_incidents"].annotations.read_only_hint
    assert all(t.description for t in tools.values())


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_explain_incident_returns_markdown_and_the_explanation_json(mode: str) -> None:
    port = FakePort()
    result = with_client(port, lambda c: c.call_tool("explain_incident", {"incident_id": "inc-42"}), mode=mode)
    assert not result.is_error
    assert result.content[0].text.startswith("# Incident explanation: inc-42\n")
    data = result.structured_content
    assert data["incident_id"] == "inc-42" and data["mode"] == "evidence-only"
    assert [(rc["service"], rc["confidence"]) for rc in data["root_causes"]] == [
        ("ts-order-service", 0.82),
        ("ts-payment-service", 0.11),
    ]
    assert data["runbooks"][0]["steps"] == ["Check active connections", "Raise maximumPoolSize or fix the leak"]
    assert [(c.args, c.kwargs) for c in port.calls("explain")] == [
        ((InvestigationRequest(incident_id="inc-42"),), {"source": "mcp"})
    ]


def test_explain_by_service_and_since() -> None:
    port = FakePort()
    before = time.time_ns()
    args = {"service": "ts-order-service", "since": "30m", "question": "why the timeouts?"}
    result = with_client(port, lambda c: c.call_tool("explain_incident", args))
    assert not result.is_error
    (req,) = (c.args[0] for c in port.calls("explain"))
    assert (req.service, req.incident_id, req.question) == ("ts-order-service", None, "why the timeouts?")
    assert before - 30 * 60 * 10**9 <= req.start_ns <= time.time_ns() - 30 * 60 * 10**9


def test_errors_come_back_as_tool_errors() -> None:
    port = FakePort()

    async def calls(c: Client) -> list[Any]:
        return [
            await c.call_tool("explain_incident", {"incident_id": "inc-404"}),
            await c.call_tool("explain_incident", {}),
            await c.call_tool("explain_incident", {"service": "a", "since": "last tuesday"}),
            await c.call_tool("query_topology", {"service": "a", "hops": 9}),
            await c.call_tool("incident_logs", {"incident_id": "inc-404"}),
        ]

    results = with_client(port, calls)
    assert [r.is_error for r in results] == [True] * 5
    texts = [r.content[0].text for r in results]
    assert "no incident 'inc-404'; list them with `devmesh incidents`" in texts[0]
    assert "give an incident_id, a service, a time (start_ns/at_ns/end_ns) or an alert" in texts[1]
    assert "not a time: 'last tuesday'" in texts[2] and "(field: since)" in texts[2]
    assert "hops" in texts[3]
    assert "no incident 'inc-404'" in texts[4]
    assert port.calls("topology") == []


def test_search_topology_incidents_logs_and_changes() -> None:
    port = FakePort()

    async def calls(c: Client) -> list[Any]:
        return [
            await c.call_tool("search_logs", {"text": "connection refused", "service": "ts-order-service", "limit": 2}),
            await c.call_tool("query_topology", {"service": "ts-order-service", "hops": 2}),
            await c.call_tool("list_incidents", {"status": "open"}),
            await c.call_tool("incident_logs", {"incident_id": "inc-42", "limit": 1}),
            await c.call_tool("node_changes", {"incident_id": "inc-42", "node": "worker-3"}),
        ]

    search, topo, incidents, logs, changes = (r.structured_content for r in with_client(port, calls))
    assert search["count"] == 2
    assert [{k: r[k] for k in ("ts_ns", "service", "level", "message")} for r in search["logs"]] == [
        {"ts_ns": T0, "service": "ts-order-service", "level": "ERROR", "message": "connection refused #0"},
        {"ts_ns": T0 + 1, "service": "ts-order-service", "level": "ERROR", "message": "connection refused #1"},
    ]
    assert "score" not in search["logs"][0]  # only set for the engine's search hits
    assert port.calls("search_logs")[0].kwargs == {"service": "ts-order-service", "since_ns": None, "limit": 2}
    assert topo["edges"] == [
        {"source": "ts-order-service", "target": "ts-payment-service", "type": "CALLS", "calls": 120, "errors": 7}
    ]
    assert [c.args for c in port.calls("topology")] == [("ts-order-service", 2)]
    assert incidents["count"] == 1
    assert [{k: i[k] for k in ("id", "status", "title", "opened_ns")} for i in incidents["incidents"]] == [
        {"id": "inc-42", "status": "open", "title": "order errors", "opened_ns": T0}
    ]
    assert [c.kwargs for c in port.calls("list_incidents")] == [{"status": IncidentStatus.OPEN, "limit": 20}]
    assert logs["count"] == 1 and logs["logs"][0]["message"] == "Connection is not available"
    assert changes == {
        "count": 1,
        "changes": [
            {
                "pod": "ts-order-service-5b67c48447-mv5hb",
                "metric": "restarts",
                "before": 1.0,
                "during": 4.0,
                "change": 3.0,
            }
        ],
    }


def test_served_over_stdio(tmp_path: Path) -> None:
    script = tmp_path / "serve_mcp.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(REPO)!r})\n"
        "from api.mcp_server import run_stdio\n"
        "from tests.fakes.devmesh_port import FakePort\n"
        "run_stdio(FakePort())\n"
    )
    params = StdioServerParameters(command=sys.executable, args=[str(script)], cwd=str(tmp_path))

    async def main() -> tuple[set[str], Any]:
        async with Client(params, read_timeout_seconds=60) as client:
            tools = await client.list_tools()
            result = await client.call_tool("list_incidents", {"limit": 5})
            return {t.name for t in tools.tools}, result

    names, result = anyio.run(main)
    assert names == TOOLS
    assert not result.is_error and result.structured_content["incidents"][0]["id"] == "inc-42"
