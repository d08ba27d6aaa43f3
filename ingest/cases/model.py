"""Incident case bundles as typed values: the case a responder knows (`Case`) and its label (`Truth`).

The bundle format is `CASE-BUNDLES.md` (format `devmesh-case/1`): `case.json`, `truth.json`, `telemetry/`
and an optional `runbooks/` folder. `Case` never carries the truth: only `load_truth` reads it, for the
scorer.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from core.incident import AlertIn

FORMAT = "devmesh-case/1"
CASE_FILE = "case.json"
TRUTH_FILE = "truth.json"
TELEMETRY_DIR = "telemetry"
RUNBOOKS_DIR = "runbooks"
TOPOLOGY_FILE = "topology.yaml"

OTLP_SUFFIX = ".otlp.jsonl"
JOURNAL_SUFFIX = ".journal.jsonl"
DEVMESH_SUFFIX = ".devmesh.jsonl"


class TelemetryFiles(BaseModel):
    """The files of `telemetry/`, by what they hold (each list sorted by name)."""

    model_config = ConfigDict(frozen=True)

    otlp: list[Path] = Field(default_factory=list, description="*.otlp.jsonl[.gz]: OTLP/JSON requests, a line each.")
    journal: list[Path] = Field(default_factory=list, description="*.journal.jsonl[.gz]: `journalctl -o json` lines.")
    devmesh: list[Path] = Field(default_factory=list, description="*.devmesh.jsonl[.gz]: DevMesh JSON events.")
    topology: Path | None = Field(default=None, description="topology.yaml: a declared topology, if any.")
    ignored: list[Path] = Field(default_factory=list, description="Files of no known kind (not ingested).")

    @property
    def count(self) -> int:
        """Telemetry files to ingest (the topology included)."""
        return len(self.otlp) + len(self.journal) + len(self.devmesh) + (self.topology is not None)


class Case(BaseModel):
    """What a responder knows when the question is asked: `case.json` and where the telemetry is."""

    model_config = ConfigDict(frozen=True)

    root: Path = Field(description="The bundle's folder.")
    id: str = Field(description="The case id (case.json `id`; the folder name when absent).")
    system: str = Field(description="The system it happened in (case.json `system`), for figures per system.")
    asked_at_ns: int = Field(description="When the explanation is asked for, ns since the epoch (UTC).")
    alert: AlertIn | None = Field(default=None, description="The alert as `POST /explain` would get it, if any.")
    notes: str = ""
    telemetry: TelemetryFiles
    runbooks: Path | None = Field(default=None, description="The bundle's runbooks/ folder, if it has one.")


class RootCause(BaseModel):
    """Where the fault was: a service (with other names it goes by) and, for a node-level fault, a host."""

    model_config = ConfigDict(frozen=True)

    service: str | None = None
    aliases: list[str] = Field(default_factory=list)
    host: str | None = None

    def matches(self, candidate: str) -> bool:
        """True when a ranked candidate names this root cause (the service, an alias, or the host)."""
        return candidate != "" and candidate in {self.service, *self.aliases, self.host}


class Truth(BaseModel):
    """The label of a case (`truth.json`): read only by the scorer."""

    model_config = ConfigDict(frozen=True)

    fault_time_ns: int | None = Field(default=None, description="When the fault began, ns since the epoch.")
    root_cause: RootCause
    kind: str | None = Field(default=None, description="The fault kind (memory_leak, ...), if labelled.")
