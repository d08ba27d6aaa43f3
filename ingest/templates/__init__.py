"""Log-template mining: the online miner (`miner`), its clusters (`cluster`), the grouping of a
batch's new lines (`grouping`) and the masking of variable parts of lines (`variables`)."""

from ingest.templates.cluster import TemplateMatch
from ingest.templates.miner import STATE_VERSION, MinerParams, TemplateMiner
from ingest.templates.variables import WILDCARD, mask_fast, normalize

__all__ = ["STATE_VERSION", "WILDCARD", "MinerParams", "TemplateMatch", "TemplateMiner", "mask_fast", "normalize"]
