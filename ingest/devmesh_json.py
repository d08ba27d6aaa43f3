"""DevMesh JSON log batches (`POST /ingest/logs`, `devmesh ingest --format json`).

A batch is `{"events": [...]}` or a bare list of events. Each event is validated on its own: the valid
ones are kept, the invalid ones reported by index with the field and the problem.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError, field_validator

from core.errors import InvalidInput, PayloadTooLarge
from core.naming import normalize_level
from core.timeutil import check_sane, to_ns
from ingest import batch
from ingest.canonical import clean_text, dump_meta, short


class LogEventIn(BaseModel):
    """One event as clients send it."""

    model_config = ConfigDict(extra="allow")

    timestamp: StrictStr | int | float = Field(description="ISO-8601 string or epoch number (s, ms, us or ns).")
    message: StrictStr = Field(description="The log line.")
    source: StrictStr = ""
    service: StrictStr = ""
    host: StrictStr = ""
    pod: StrictStr = ""
    level: StrictStr = ""
    trace_id: StrictStr = ""
    span_id: StrictStr = ""
    event_type: StrictStr = "log"
    error_code: StrictStr | int = ""
    meta: dict[str, Any] = Field(default_factory=dict)

    @field_validator("timestamp", mode="before")
    @classmethod
    def _no_bool(cls, v: Any) -> Any:
        if isinstance(v, bool):
            raise ValueError("must be an ISO-8601 string or an epoch number, not a boolean")
        if isinstance(v, float) and not math.isfinite(v):
            raise ValueError("must be a finite epoch number (not NaN or Infinity)")
        return v

    @field_validator("error_code", mode="before")
    @classmethod
    def _no_bool_code(cls, v: Any) -> Any:
        if isinstance(v, bool):
            raise ValueError("must be a string or an integer, not a boolean")
        return v


class LogBatchIn(BaseModel):
    """The body of POST /ingest/logs."""

    events: list[dict[str, Any]] = Field(description="Log events; see LogEventIn for the fields.")


@dataclass
class EventError:
    index: int
    field: str
    problem: str

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "problem": self.problem}


@dataclass
class ParsedEvents:
    rows: dict[str, list[Any]]
    errors: list[EventError] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        return batch.num_rows(self.rows)


@dataclass(frozen=True)
class Limits:
    max_events: int
    max_message_chars: int
    min_year: int
    max_future_skew_s: int


def events_of(doc: Any) -> list[Any]:
    """The event list of a decoded body: {"events": [...]} or [...]."""
    if isinstance(doc, list):
        return doc
    if isinstance(doc, dict) and "events" in doc:
        if not isinstance(doc["events"], list):
            raise InvalidInput("must be a list of events", field="events")
        return doc["events"]
    if isinstance(doc, dict) and "message" in doc:
        return [doc]
    raise InvalidInput('expected {"events": [...]} or a list of events', field="body")


_EXPECTED = {"timestamp": "an ISO-8601 string or an epoch number", "error_code": "a string or an integer"}
_JSON_TYPES = {
    bool: "a boolean",
    int: "a number",
    float: "a number",
    str: "a string",
    list: "an array",
    dict: "an object",
}


def _problem(err: Any) -> str:
    if err["type"] == "missing":
        return "required field is missing"
    loc = err["loc"]
    if len(loc) > 1 and loc[0] in _EXPECTED and not err["type"].startswith("value_error"):
        got = "null" if err["input"] is None else _JSON_TYPES.get(type(err["input"]), type(err["input"]).__name__)
        return f"must be {_EXPECTED[loc[0]]}, not {got}"
    return str(err["msg"]).removeprefix("Value error, ")


def parse_events(
    items: list[Any], limits: Limits, *, default_source: str = "api", now_ns: int, index_offset: int = 0
) -> ParsedEvents:
    """Validate events one by one; errors name `events[i].field` with i counted from `index_offset`."""
    if len(items) > limits.max_events:
        raise PayloadTooLarge(
            f"{len(items)} events in one batch; the limit is {limits.max_events} (DEVMESH_MAX_BATCH_EVENTS)",
            field="events",
        )
    out = ParsedEvents(rows=batch.empty("logs"))
    for i, item in enumerate(items, start=index_offset):
        if not isinstance(item, dict):
            out.errors.append(EventError(i, f"events[{i}]", "must be a JSON object"))
            continue
        try:
            ev = LogEventIn.model_validate(item)
        except ValidationError as exc:
            err = exc.errors()[0]
            name = str(err["loc"][0]) if err["loc"] else ""  # later parts name union members ('str', 'int')
            out.errors.append(EventError(i, f"events[{i}].{name}" if name else f"events[{i}]", _problem(err)))
            continue
        try:
            ts = to_ns(ev.timestamp)
        except InvalidInput as exc:
            out.errors.append(EventError(i, f"events[{i}].timestamp", exc.message))
            continue
        bad = check_sane(ts, min_year=limits.min_year, max_future_skew_s=limits.max_future_skew_s, now=now_ns)
        if bad:
            out.errors.append(EventError(i, f"events[{i}].timestamp", bad))
            continue
        message, cut = clean_text(ev.message, limits.max_message_chars)
        meta = dict(ev.meta)
        if ev.model_extra:
            meta.update(ev.model_extra)
        if cut:
            meta["truncated"] = True
        batch.append_row(
            out.rows,
            {
                "ts_ns": ts,
                "source": short(ev.source) or default_source,
                "service": short(ev.service),
                "host": short(ev.host),
                "pod": short(ev.pod),
                "level": normalize_level(ev.level),
                "message": message,
                "trace_id": short(ev.trace_id.lower(), 64),
                "span_id": short(ev.span_id.lower(), 32),
                "event_type": short(ev.event_type) or "log",
                "error_code": short(str(ev.error_code), 64),
                "meta": clean_text(dump_meta(meta))[0],
            },
        )
    return out
