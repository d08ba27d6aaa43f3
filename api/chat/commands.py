"""What people type to the bot: `/devmesh explain <service|incident id> [since]` and its friends."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from api.request_args import investigation_request, since_to_ns
from core.errors import InvalidInput
from core.incident import InvestigationRequest

INCIDENT_ID = re.compile(r"^inc[-_:][\w.:-]+$", re.IGNORECASE)
TARGET = re.compile(r"^[\w.:/@-]{1,200}$")
_MENTION = re.compile(r"<@[A-Z0-9]+(?:\|[^>]*)?>")
_LINK = re.compile(r"<([^<>|]+)(?:\|([^<>]*))?>")
_FILLER = {"since", "for", "last", "over", "the", "past"}

USAGE = (
    "Usage: `/devmesh explain <service|incident id> [since]` (since: 30m, 2h, 1d or an ISO time), "
    "`/devmesh incidents [open|resolved]`, `/devmesh search <text>`, `/devmesh help`. "
    "In a thread with an answer, ask: why?, show the logs, what changed on node X?"
)

Action = Literal["explain", "incidents", "search", "help"]


@dataclass(frozen=True)
class ChatCommand:
    action: Action
    target: str = ""
    """Service name or incident id (explain)."""
    is_incident: bool = False
    since: str = ""
    text: str = ""
    """Search text, or the incident status filter (incidents)."""

    def explain_request(self, *, now: int | None = None, question: str | None = None) -> InvestigationRequest:
        start = since_to_ns(self.since, now=now) if self.since else None
        if self.is_incident:
            return investigation_request(incident_id=self.target, start_ns=start, question=question)
        return investigation_request(service=self.target, start_ns=start, question=question)

    def describe(self) -> str:
        what = f"incident {self.target}" if self.is_incident else self.target
        return what + (f" since {self.since}" if self.since else "")


def clean_slack_text(text: str) -> str:
    """Slack message text as typed: mentions removed, links and channels as their labels, entities unescaped."""
    text = _MENTION.sub(" ", text)
    text = _LINK.sub(lambda m: m.group(2) or m.group(1).lstrip("#!"), text)
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return " ".join(text.split())


def _target(tokens: list[str]) -> tuple[str, bool, list[str]]:
    if len(tokens) >= 2 and tokens[0].lower() in ("incident", "service"):
        kind, name, rest = tokens[0].lower(), tokens[1], tokens[2:]
        return name, kind == "incident", rest
    if not tokens:
        raise InvalidInput("explain what? Name a service or an incident id. " + USAGE, field="target")
    name = tokens[0]
    return name, bool(INCIDENT_ID.match(name)), tokens[1:]


def parse_command(text: str) -> ChatCommand:
    """Parse the text after the slash command (or after the @mention). InvalidInput carries the usage."""
    tokens = clean_slack_text(text).split()
    if not tokens or tokens[0].lower() in ("help", "-h", "--help", "?"):
        return ChatCommand("help")
    verb = tokens[0].lower()
    if verb == "incidents":
        status = tokens[1].lower() if len(tokens) > 1 else ""
        if status and status not in ("open", "resolved", "all"):
            raise InvalidInput(f"unknown incident status {status!r}: use open, resolved or all", field="status")
        return ChatCommand("incidents", text="" if status == "all" else status)
    if verb in ("search", "find", "grep"):
        query = " ".join(tokens[1:])
        if not query:
            raise InvalidInput("search for what? " + USAGE, field="text")
        return ChatCommand("search", text=query[:500])
    if verb in ("explain", "why"):
        tokens = tokens[1:]
    elif len(tokens) > 3:
        raise InvalidInput(f"I did not understand {tokens[0]!r}. " + USAGE, field="text")
    name, is_incident, rest = _target(tokens)
    if not TARGET.match(name):
        raise InvalidInput(f"not a service name or incident id: {name[:80]!r}", field="target")
    rest = [t for t in rest if t.lower() not in _FILLER]
    since = " ".join(rest)
    if since:
        since_to_ns(since)  # raise now, with the usage, rather than in the background
    return ChatCommand("explain", target=name, is_incident=is_incident, since=since)
