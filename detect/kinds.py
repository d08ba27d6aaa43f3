"""What each kind of signal means to the ranking and to detection, in one table.

Adding a signal kind: add the member to `core.rca.SignalKind`, write its detector in `detect/signals/`,
and give it one row here. Nothing else names signal kinds: the ranking (`detect.rank.ranking`) reads the
weight and the fault kind from this table, detection's triggers (`detect.triggers`) read the trigger.
The values are domain priors, not fitted to any data set.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from core.rca import FaultKind, SignalKind


class Trigger(StrEnum):
    """Which detection rule a signal of this kind can fire (see `detect.triggers`)."""

    ERRORS = "errors"
    PATH = "path"
    LATENCY = "latency"
    """Not a rule of its own: a symptom that makes a saturated resource count."""
    NETWORK = "network"
    """Calls slowed or failing between two services while the callee's own work did not change."""
    NONE = "none"


@dataclass(frozen=True)
class KindTraits:
    weight: float
    """How much one signal of this kind says about the service's *own* behaviour (a new error after a step,
    a step no longer taken or more time in its own code says more than a longer end-to-end duration,
    which callee slowness also explains)."""
    fault: FaultKind | None
    """The fault kind it suggests; None: it says nothing about the kind of fault."""
    fault_weight: float = 1.0
    """How strongly it suggests that fault kind, relative to its strength."""
    trigger: Trigger = Trigger.NONE


KIND_TRAITS: dict[SignalKind, KindTraits] = {
    SignalKind.LOG_ERROR_TEMPLATE: KindTraits(1.0, FaultKind.CODE_ERROR, trigger=Trigger.ERRORS),
    SignalKind.LOG_TEMPLATE_SHIFT: KindTraits(0.8, FaultKind.CODE_ERROR, 0.8, Trigger.PATH),
    # its fault kind is the one its phrase names (detect.signals.faulttext), put on the candidate by the ranking
    SignalKind.LOG_FAULT_PHRASE: KindTraits(1.0, None, trigger=Trigger.ERRORS),
    SignalKind.LOG_VOLUME: KindTraits(0.8, None),
    SignalKind.SPAN_SELF_LATENCY: KindTraits(1.0, FaultKind.RESOURCE_SATURATION, 0.8, Trigger.LATENCY),
    SignalKind.SPAN_ERROR: KindTraits(0.8, FaultKind.CODE_ERROR, trigger=Trigger.ERRORS),
    SignalKind.SPAN_STRUCTURE: KindTraits(0.7, FaultKind.CODE_ERROR, 0.8, Trigger.PATH),
    # a loop step no longer followed by the rest of the loop: a step no longer reached, as a path loss
    SignalKind.LOOP_SHORTENED: KindTraits(0.8, FaultKind.CODE_ERROR, 0.8, Trigger.PATH),
    SignalKind.EDGE_LATENCY: KindTraits(0.8, FaultKind.NETWORK_DELAY, trigger=Trigger.NETWORK),
    SignalKind.EDGE_ERROR: KindTraits(0.8, FaultKind.NETWORK_DELAY, trigger=Trigger.NETWORK),
    SignalKind.SPAN_LATENCY: KindTraits(0.3, None, trigger=Trigger.LATENCY),
    # metric deviations are weighed by their metric family (detect.rank.ranking.METRIC_FAMILY_WEIGHT)
    SignalKind.METRIC_DEVIATION: KindTraits(0.2, None),
}


def kinds_for(trigger: Trigger) -> frozenset[SignalKind]:
    """The signal kinds that can fire `trigger`."""
    return frozenset(k for k, t in KIND_TRAITS.items() if t.trigger == trigger)


__all__ = ["KIND_TRAITS", "KindTraits", "Trigger", "kinds_for"]
