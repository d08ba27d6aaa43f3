"""What decoding one OTLP request gives, and how rejected records are counted.

`ParsedBatch` is the result of every `parse_*` entry point: the rows kept and the records rejected.
Record-level problems raise `Invalid` (internal to these modules): the walker catches it, counts the
record in `Rejects` with the reason, and goes on. Problems with the body as a whole raise
`core.errors.InvalidInput` naming the field instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MAX_ERRORS = 10
"""How many rejection messages a batch keeps (the count covers all of them)."""


class Invalid(Exception):
    """One record cannot be accepted; the message says why (internal to the OTLP decoders)."""


@dataclass
class ParsedBatch:
    """Rows decoded from one OTLP request.

    rows: column name -> values, named like the event-store columns (no event_id), ready for pyarrow.
    rejected: records (log records, spans or data points) not accepted; the valid ones are in `rows`.
    errors: the first `MAX_ERRORS` reasons, each "where: why" with the record's path in the request.
    """

    rows: dict[str, list[Any]]
    rejected: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def n_rows(self) -> int:
        return len(next(iter(self.rows.values()), []))


class Rejects:
    """Counts rejected records and keeps the first `MAX_ERRORS` reasons."""

    def __init__(self) -> None:
        self.count = 0
        self.errors: list[str] = []

    def add(self, where: str, why: str, n: int = 1) -> None:
        self.count += n
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(f"{where}: {why}")
