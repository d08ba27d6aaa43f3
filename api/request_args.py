"""What people type, as requests: times like '30m' or an ISO time, and an `InvestigationRequest` whose
validation problems come back as `InvalidInput` naming the field (chat, MCP)."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from core.errors import InvalidInput
from core.incident import InvestigationRequest
from core.timeutil import is_duration, now_ns, parse_time_arg


def since_to_ns(text: str, *, now: int | None = None) -> int:
    """A start time from a front end: '30m' or '2h' (that long ago), '-15m', '15m ago', ISO-8601, epoch, 'now'."""
    ref = now if now is not None else now_ns()
    s = text.strip()
    try:
        return parse_time_arg("-" + s if is_duration(s) else s, now=ref)
    except InvalidInput as exc:
        shown = repr(text) if len(text) <= 60 else repr(text[:57] + "...")
        raise InvalidInput(
            f"not a time: {shown} ({exc.message}; use 30m, 2h, 1d, or an ISO-8601 time)", field="since"
        ) from None


def investigation_request(**fields: Any) -> InvestigationRequest:
    """`InvestigationRequest(**fields)`; a problem with them is InvalidInput (the first one, its field named)."""
    try:
        return InvestigationRequest(**fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or None
        raise InvalidInput(first["msg"].removeprefix("Value error, "), field=field) from None
