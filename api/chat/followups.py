"""Follow-up questions in a thread with an answer: what was asked, and the port calls that answer it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from api.chat.threads import ThreadContext
from api.port import ConversationPort
from api.render import slack_blocks as bk
from api.render import slack_rows as rows_bk
from api.request_args import investigation_request
from core.explanation import Explanation
from core.incident import InvestigationRequest

LOG_ROWS = 20
SEARCH_ROWS = 20
TOPOLOGY_HOPS = 1
SOURCE = "chat"

_NODE = r"([\w][\w.:/-]{0,199})"
_NODE_CHANGES = (
    re.compile(r"\bwhat(?:'s| has| did)?\s+chang\w*\s+(?:on|in|at|for)\s+(?:the\s+)?(?:node|host|machine)?\s*" + _NODE),
    re.compile(r"\bchanges?\s+(?:on|in|at|for|to)\s+(?:the\s+)?(?:node|host|machine)\s+" + _NODE),
    re.compile(r"\b(?:node|host)\s+" + _NODE + r"\s+changes?\b"),
)
_LOGS = re.compile(r"^logs?$|\b(?:show|give|list|see|get|print|display|pull)\b.*\blogs?\b|\blog lines?\b")
_SEARCH = re.compile(r"^(?:search|find|grep)\s+(?:for\s+)?(.+)$")
_TOPOLOGY = re.compile(
    r"\b(?:topology|dependencies|depends on|dependents|neighbou?rs?|upstream|downstream|call graph|who calls)\b"
)
_WHY = re.compile(r"^(?:why\b|how do you know|what(?:'s| is) the evidence|evidence\b|explain (?:more|why)|reason)")


class FollowUpKind(StrEnum):
    WHY = "why"
    LOGS = "logs"
    NODE_CHANGES = "node_changes"
    TOPOLOGY = "topology"
    SEARCH = "search"
    ASK = "ask"


@dataclass(frozen=True)
class FollowUp:
    kind: FollowUpKind
    text: str
    arg: str = ""
    """The node (node_changes) or search text (search)."""


@dataclass(frozen=True)
class Reply:
    text: str
    blocks: list[dict[str, Any]]
    explanation: Explanation | None = None
    """The explanation when the port explained again (the caller keeps the thread's context fresh)."""


def classify(text: str) -> FollowUp:
    """'why?', 'show the logs', 'what changed on node X?', 'search <text>', 'topology', else a free question."""
    t = " ".join(text.strip().split())
    low = t.lower().rstrip("?!. ")
    for pattern in _NODE_CHANGES:
        m = pattern.search(low)
        if m:
            start = m.start(1)
            node = t[start : start + len(m.group(1))].rstrip("?!.,")
            return FollowUp(FollowUpKind.NODE_CHANGES, t, node)
    m = _SEARCH.match(low)
    if m:
        return FollowUp(FollowUpKind.SEARCH, t, t[m.start(1) :].rstrip("?"))
    if _LOGS.search(low):
        return FollowUp(FollowUpKind.LOGS, t)
    if _TOPOLOGY.search(low):
        return FollowUp(FollowUpKind.TOPOLOGY, t)
    if _WHY.match(low):
        return FollowUp(FollowUpKind.WHY, t)
    return FollowUp(FollowUpKind.ASK, t)


def _request(ctx: ThreadContext, question: str) -> InvestigationRequest:
    return investigation_request(
        incident_id=ctx.incident_id or None,
        service=None if ctx.incident_id else (ctx.service or None),
        start_ns=ctx.start_ns,
        end_ns=ctx.end_ns,
        question=question[:2000],
    )


def answer(fu: FollowUp, ctx: ThreadContext, port: ConversationPort) -> Reply:
    """Answer a follow-up with the thread's incident as context. Port errors propagate (DevMeshError)."""
    if fu.kind is FollowUpKind.LOGS:
        if ctx.incident_id:
            rows = port.logs_for(ctx.incident_id, LOG_ROWS)
            title = f"Logs of {ctx.incident_id}"
        else:
            rows = port.search_logs("error", service=ctx.service or None, since_ns=ctx.start_ns, limit=LOG_ROWS)
            title = f"Error logs of {ctx.service}"
        return Reply(f"{len(rows)} log lines", rows_bk.logs_blocks(title, rows))
    if fu.kind is FollowUpKind.NODE_CHANGES:
        if not ctx.incident_id:
            return Reply("no incident", rows_bk.notice_blocks("This thread has no incident id to look up changes for."))
        changes = port.node_changes(ctx.incident_id, fu.arg)
        return Reply(f"{len(changes)} changes on {bk.esc(fu.arg)}", rows_bk.changes_blocks(fu.arg, changes))
    if fu.kind is FollowUpKind.SEARCH:
        rows = port.search_logs(fu.arg, service=ctx.service or None, since_ns=ctx.start_ns, limit=SEARCH_ROWS)
        return Reply(f"{len(rows)} log lines", rows_bk.logs_blocks(f"Logs like “{fu.arg}”", rows))
    if fu.kind is FollowUpKind.TOPOLOGY:
        service = ctx.root_causes[0] if ctx.root_causes else ctx.service
        if not service:
            return Reply("no service", rows_bk.notice_blocks("This thread names no service to show the calls of."))
        topo = port.topology(service, TOPOLOGY_HOPS)
        return Reply(f"calls around {bk.esc(service)}", rows_bk.topology_blocks(service, topo))
    expl = port.explain(_request(ctx, fu.text), source=SOURCE).explanation
    if fu.kind is FollowUpKind.WHY:
        return Reply(bk.fallback_text(expl), bk.why_blocks(expl), expl)
    return Reply(bk.fallback_text(expl), bk.answer_blocks(expl), expl)
