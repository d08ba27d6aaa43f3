"""GraphRAG evidence for one incident: graph neighborhood + vector neighbors + the window's events, fused
and reranked into one evidence list (`gather.gather_evidence`; the steps are listed in its module doc).

Ids are those the ranking uses (`template:<id>`, `operation:<service>:<op>`, `edge:<a>-><b>`,
`log:<event_id>`), and `service:`, `pod:`, `node:`, `alert:`, `runbook:<runbook id>`,
`section:<section id>`, `incident:<id>` for the rest.
"""

from retrieval.evidence.gather import EvidenceBundle, gather_evidence
from retrieval.evidence.options import GatherOptions
from retrieval.evidence.symptoms import as_data, build_symptoms

__all__ = ["EvidenceBundle", "GatherOptions", "as_data", "build_symptoms", "gather_evidence"]
