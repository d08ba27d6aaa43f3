"""POST /explain: explain an incident, in one answer or as server-sent events of the agents' progress and
of the summary's words as the language model writes them."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from agents.answer_stream import ModelWords, with_words
from api.http.access import Scope, require
from api.http.deps import get_port
from api.port import DevMeshPort, Investigation, InvestigationEvent
from core.errors import DevMeshError
from core.incident import Incident, InvestigationRequest

log = logging.getLogger(__name__)
router = APIRouter(tags=["incidents"], dependencies=[Depends(require(Scope.EXPLAIN))])

SOURCE = "api"


@router.post(
    "/explain",
    response_model=Investigation,
    summary="Explain an incident: by id, by service and time window, or from an Alertmanager-style alert",
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "With stream=true: agent progress and words"}
    },
)
def explain(
    req: InvestigationRequest,
    stream: Annotated[
        bool, Query(description="Stream agent progress, and the model's words as they come, as server-sent events.")
    ] = False,
    port: DevMeshPort = Depends(get_port),
) -> Any:
    if not stream:
        return port.explain(req, source=SOURCE)
    events = port.explain_stream(req, source=SOURCE)
    opened = next(events)  # opens the incident: errors (an unknown id) come before the stream starts
    return StreamingResponse(_sse(opened, with_words(events)), media_type="text/event-stream")


def sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, default=str)}\n\n"


def _sse(opened: InvestigationEvent, events: Iterator[InvestigationEvent | ModelWords]) -> Iterator[str]:
    """incident, then one progress event per agent as it finishes and `words` events as the model writes the
    summary (`{"text": ...}`, or `{"restart": true}`: drop the words so far), explanation (stored), done; or
    error."""
    yield sse("incident", opened.model_dump(mode="json"))
    try:
        for event in events:
            if isinstance(event, ModelWords):
                yield sse("words", event.model_dump(mode="json", exclude_defaults=True) or {"text": ""})
            elif isinstance(event, Investigation):
                yield sse("explanation", event.model_dump(mode="json"))
            elif not isinstance(event, Incident):
                yield sse("progress", event.model_dump(mode="json"))
    except DevMeshError as exc:  # the stream has started: the error is its last event
        yield sse("error", exc.to_dict())
        return
    except Exception:
        log.exception("explain stream failed", extra={"incident": getattr(opened, "id", "")})
        yield sse("error", {"error": "InternalError", "message": "unexpected server error; see the server log"})
        return
    yield sse("done", {})
