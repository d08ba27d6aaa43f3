"""Root-cause ranking: the windows around an incident, the blame walk over the one call graph,
propagation paths and feedback from past incidents. `rank_incident` is the entry point."""

from detect.rank.feedback import apply_feedback
from detect.rank.ranking import RankOptions, rank_window
from detect.rank.windows import MODALITIES, IncidentOptions, IncidentWindows, choose_windows, rank_incident

__all__ = [
    "MODALITIES",
    "IncidentOptions",
    "IncidentWindows",
    "RankOptions",
    "apply_feedback",
    "choose_windows",
    "rank_incident",
    "rank_window",
]
