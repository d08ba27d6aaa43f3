"""What the agents may use: the stores, the language model, the masker and the bounds of one investigation.

Every call an agent makes with them is recorded as an `AgentStep` by `core.steps.record`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agents.llm import LLMClient
    from agents.masking import Masker
    from detect.incidents import IncidentBook
    from graph.store import GraphStore
    from retrieval.embedders import Embedder
    from retrieval.events import EventStore
    from retrieval.vectors import VectorStore


@dataclass
class Budget:
    """Bounds of one investigation."""

    seconds: float = 30.0
    max_steps: int = 40


@dataclass
class Toolbox:
    events: EventStore
    graph: GraphStore | None
    vectors: VectorStore | None
    embedder: Embedder | None
    book: IncidentBook
    llm: LLMClient | None = None
    masker: Masker | None = None
    budget: Budget = field(default_factory=Budget)
    modalities: tuple[str, ...] = ("logs", "traces", "metrics")
