"""Names of the vector collections, defined once for every module that writes or searches them."""

from __future__ import annotations

TEMPLATES = "templates"
"""Log templates (point id = template id), embedded at ingest (`ingest.pipeline`)."""
RUNBOOKS = "runbooks"
"""Runbook sections (point id = section id, payload `runbook_id`), embedded at import (`ingest.importers`)."""
INCIDENTS = "incidents"
"""Explained incidents by their symptoms (point id = incident id), written by `detect.incidents`; the
event store keeps the incident documents under the same name."""
SPANS = "spans"
"""Span summaries of incident windows (`retrieval.evidence.span_summaries`), embedded on first use."""
