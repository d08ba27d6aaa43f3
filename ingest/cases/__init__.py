"""Incident case bundles (CASE-BUNDLES.md): reading them (`load_case`, `load_truth`), replaying one into a
home (`ingest_case`), and writing one from the stores (`export_case`)."""

from __future__ import annotations

from ingest.cases.export import ExportReport, ExportSpec, export_case
from ingest.cases.load import load_case, load_truth, telemetry_files
from ingest.cases.model import FORMAT, Case, RootCause, TelemetryFiles, Truth
from ingest.cases.replay import CaseIngest, ingest_case

__all__ = [
    "FORMAT",
    "Case",
    "CaseIngest",
    "ExportReport",
    "ExportSpec",
    "RootCause",
    "TelemetryFiles",
    "Truth",
    "export_case",
    "ingest_case",
    "load_case",
    "load_truth",
    "telemetry_files",
]
