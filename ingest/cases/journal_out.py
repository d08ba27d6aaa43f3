"""Stored journald lines written back as `journalctl -o json` entries, which `ingest.journald` reads into
the same rows.

The store keeps a journald line's text, time, host, identifier (as the service), level and the journald
fields it keeps in `meta` (`_PID`, `_SYSTEMD_UNIT`, `_BOOT_ID`, `_TRANSPORT`, `__CURSOR`, `_COMM`,
`CONTAINER_ID`); those are what an entry gets back. The level becomes a PRIORITY that reads back as the
same level.
"""

from __future__ import annotations

from typing import Any

from ingest.cases.otlp_out import Mask, attributes_of

JOURNALD_SOURCE = "journald"
"""The `source` the journald reader stamps on its rows."""

PRIORITY = {"FATAL": "2", "ERROR": "3", "WARN": "4", "INFO": "6", "DEBUG": "7", "TRACE": "6"}
"""Level -> PRIORITY. TRACE has no priority of its own: it came from the line's own level word (with
priority 6), and reads back from it."""


def journal_entry(row: dict[str, Any], mask: Mask) -> dict[str, str]:
    """A `journalctl -o json` entry of a stored journald line (a `logs` row)."""
    entry: dict[str, str] = {
        "__REALTIME_TIMESTAMP": str(row["ts_ns"] // 1000),
        "PRIORITY": PRIORITY.get(row["level"], "6"),
        "MESSAGE": mask(row["message"]),
    }
    if row["host"]:
        entry["_HOSTNAME"] = row["host"]
    if row["service"]:
        entry["SYSLOG_IDENTIFIER"] = row["service"]
    if row["trace_id"]:
        entry["TRACE_ID"] = row["trace_id"]
    if row["span_id"]:
        entry["SPAN_ID"] = row["span_id"]
    if row["pod"]:  # the reader takes a pod from a Kubernetes container name: k8s_<container>_<pod>_...
        entry["CONTAINER_NAME"] = f"k8s_container_{row['pod']}_default_0_0"
    for key, value in attributes_of(row["meta"]).items():
        if key[:1] == "_" or key.isupper():  # journald's own fields; DevMesh's notes (truncated) are not
            entry.setdefault(key, mask(value if isinstance(value, str) else str(value)))
    return entry
