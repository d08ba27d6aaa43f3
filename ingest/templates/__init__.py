"""Log-template mining: the online miner (`miner`) and its parameters (`params`), its clusters
(`cluster`), the grouping of a batch's new lines (`grouping`), the late merging of templates
(`regroup`), the masking of variable parts of lines (`variables`) and the Loghub scoring (`scoring`)."""

from ingest.templates.cluster import TemplateMatch
from ingest.templates.miner import STATE_VERSION, TemplateMiner
from ingest.templates.params import MinerParams
from ingest.templates.variables import WILDCARD, mask_fast, normalize

__all__ = ["STATE_VERSION", "WILDCARD", "MinerParams", "TemplateMatch", "TemplateMiner", "mask_fast", "normalize"]
