"""DevMesh as a Model Context Protocol server (`devmesh mcp`), built with the official `mcp` SDK (2.x).

Tools: explain_incident, search_logs, query_topology, list_incidents, incident_logs, node_changes.
Each calls the `ConversationPort`; DevMesh errors come back as tool errors (isError) with their message.
Answers are the port's models as JSON (structured content).
Scopes: `explain_incident` needs `explain`, the other tools `read`; the server acts with the scopes it is
given (`devmesh mcp`: those of DEVMESH_API_KEY once API keys exist, else every scope) and refuses a tool
outside them with a tool error naming the scope.
`run_stdio` serves over stdin/stdout: the protocol owns stdout, so logs go to stderr.
"""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field

from api.keystore import Scope, allows
from api.port import ConversationPort
from api.render.markdown import to_markdown
from api.request_args import investigation_request, since_to_ns
from core.errors import DevMeshError, InvalidInput
from core.incident import IncidentStatus

INSTRUCTIONS = (
    "DevMesh explains incidents in distributed systems from their logs, traces, metrics and topology. "
    "Start with list_incidents or explain_incident (by incident id, or a service and a since time such as '30m'); "
    "every cause it names cites evidence ids. Use search_logs, incident_logs, node_changes and query_topology "
    "to look closer."
)
READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)
SOURCE = "mcp"

MaxRows = Annotated[int, Field(ge=1, le=200, description="Most rows to return.")]
Since = Annotated[str | None, Field(description="Start: '30m', '2h', '1d' ago, or an ISO-8601 time.")]


def _tool_error(exc: DevMeshError) -> ToolError:
    return ToolError(exc.message + (f" (field: {exc.field})" if exc.field else ""))


def build_mcp_server(
    port: ConversationPort, *, name: str = "devmesh", scopes: frozenset[str] | None = None
) -> MCPServer:
    """An MCPServer whose tools call `port`, within `scopes` (None: every scope). Serve it with `run_stdio`, or
    connect `mcp.Client(server)` in-process."""
    server: MCPServer = MCPServer(name=name, instructions=INSTRUCTIONS, version="0.1.0")

    def need(scope: Scope) -> None:
        if scopes is not None and not allows(scopes, scope):
            held = ", ".join(sorted(scopes)) or "none"
            raise ToolError(
                f"this DevMesh MCP server's key (DEVMESH_API_KEY) lacks the '{scope}' scope this tool needs"
                f" (it has: {held}); use a key made with `devmesh keys create --scope {scope}`"
            )

    @server.tool(annotations=ToolAnnotations(read_only_hint=False, open_world_hint=False))
    def explain_incident(
        incident_id: Annotated[str | None, Field(description="Incident id, e.g. 'inc-42'.")] = None,
        service: Annotated[str | None, Field(description="Service to explain, when there is no incident id.")] = None,
        since: Since = None,
        question: Annotated[str | None, Field(description="A question about the incident.")] = None,
    ) -> CallToolResult:
        """Explain an incident: summary, ranked root causes with confidence, cited evidence, runbook steps.

        Returns the explanation as Markdown, and as JSON in the structured content.
        """
        need(Scope.EXPLAIN)
        try:
            req = investigation_request(
                incident_id=incident_id,
                service=service,
                start_ns=since_to_ns(since) if since else None,
                question=question,
            )
            expl = port.explain(req, source=SOURCE).explanation
        except DevMeshError as exc:
            raise _tool_error(exc) from exc
        return CallToolResult(
            content=[TextContent(type="text", text=to_markdown(expl))],
            structured_content=expl.model_dump(mode="json"),
        )

    @server.tool(annotations=READ_ONLY)
    def search_logs(
        text: Annotated[str, Field(min_length=1, max_length=500, description="What to look for.")],
        service: Annotated[str | None, Field(description="Only this service's logs.")] = None,
        since: Since = None,
        limit: MaxRows = 20,
    ) -> dict[str, Any]:
        """Log lines similar to `text` (semantic and keyword search over the stored logs), newest first."""
        need(Scope.READ)
        try:
            rows = port.search_logs(text, service=service, since_ns=since_to_ns(since) if since else None, limit=limit)
        except DevMeshError as exc:
            raise _tool_error(exc) from exc
        return {"count": len(rows), "logs": [r.as_json() for r in rows]}

    @server.tool(annotations=READ_ONLY)
    def query_topology(
        service: Annotated[str, Field(min_length=1, max_length=200, description="The service in the middle.")],
        hops: Annotated[int, Field(ge=1, le=3, description="How many calls away to go.")] = 1,
    ) -> dict[str, Any]:
        """The call graph around a service: the services it calls and that call it, with call and error figures."""
        need(Scope.READ)
        try:
            return port.topology(service, hops).model_dump(mode="json")
        except DevMeshError as exc:
            raise _tool_error(exc) from exc

    @server.tool(annotations=READ_ONLY)
    def list_incidents(
        status: Annotated[str | None, Field(description="'open' or 'resolved'; unset for all.")] = None,
        limit: MaxRows = 20,
    ) -> dict[str, Any]:
        """Incidents, newest first, with their status, services and root cause when known."""
        need(Scope.READ)
        try:
            rows = port.list_incidents(status=_status(status), limit=limit)
        except DevMeshError as exc:
            raise _tool_error(exc) from exc
        return {"count": len(rows), "incidents": [i.model_dump(mode="json") for i in rows]}

    @server.tool(annotations=READ_ONLY)
    def incident_logs(
        incident_id: Annotated[str, Field(min_length=1, max_length=200, description="Incident id.")],
        limit: MaxRows = 50,
    ) -> dict[str, Any]:
        """The log lines of an incident's window and services, most telling first."""
        need(Scope.READ)
        try:
            rows = port.logs_for(incident_id, limit)
        except DevMeshError as exc:
            raise _tool_error(exc) from exc
        return {"count": len(rows), "logs": [r.as_json() for r in rows]}

    @server.tool(annotations=READ_ONLY)
    def node_changes(
        incident_id: Annotated[str, Field(min_length=1, max_length=200, description="Incident id.")],
        node: Annotated[str, Field(min_length=1, max_length=200, description="Node (host) name.")],
    ) -> dict[str, Any]:
        """What changed on a node around an incident: pods started or gone, restarts, metric shifts."""
        need(Scope.READ)
        try:
            rows = port.node_changes(incident_id, node)
        except DevMeshError as exc:
            raise _tool_error(exc) from exc
        return {"count": len(rows), "changes": [c.model_dump(mode="json") for c in rows]}

    return server


def _status(text: str | None) -> IncidentStatus | None:
    if not text:
        return None
    try:
        return IncidentStatus(text)
    except ValueError:
        raise InvalidInput(f"unknown incident status {text!r}: use open or resolved", field="status") from None


def run_stdio(port: ConversationPort, *, scopes: frozenset[str] | None = None) -> None:
    """Serve the MCP tools (within `scopes`) over stdin/stdout until the client closes the connection."""
    build_mcp_server(port, scopes=scopes).run("stdio")
