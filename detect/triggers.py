"""Is this window an incident? Rules over the ranking's signals that decide when detection opens one.

The root-cause ranking always names *some* service; detection must first decide that something broke.
It fires on signals that hurt users, not on every deviation (load comes and goes, and every service's
CPU rises with it):

- **errors**: a new error line or error span (or one much more frequent), robust z >= `error_z`;
- **path**: the requests' path through a service changed strongly (a statement no longer reached, a
  call no longer made, a loop cut short) for most of its requests: z >= `path_z` and effect >= `path_effect` (paths
  vary more than errors, so the bar is higher);
- **network**: calls between two services got slower or fail outside the callee (`detect.signals.network`)
  for most of them: z >= `network_z` and effect >= `network_effect` (the bars of errors and of paths: users
  wait on every such call, and the callee's own spans look normal, so no other rule sees it);
- **saturation**: a service's CPU or memory left its range (z >= `saturation_z`, `saturation_fold`
  times its level), it stands out from its peers (`peer_ratio` times the median change of the other
  services whose same metric rose: when load arrives, every service's CPU rises with it), *and* the
  same service shows a symptom in the same window: errors, or slower
  requests (span latency, or a latency, error or success metric of the requests it serves: a
  client-side metric describes the services it calls), z >= `symptom_z`. A busy service whose
  requests are fine is not an incident; a periodic job that burns CPU with no one waiting is not either.

The thresholds are textbook significance levels (z 4 is p ~ 3e-5 one-sided), the same for every system.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from core.rca import Modality, Signal
from detect.kinds import Trigger as Rule
from detect.kinds import kinds_for

# which signal kinds can fire which rule: `detect.kinds.KIND_TRAITS`
ERROR_KINDS = kinds_for(Rule.ERRORS)
PATH_KINDS = kinds_for(Rule.PATH)
NETWORK_KINDS = kinds_for(Rule.NETWORK)
LATENCY_KINDS = kinds_for(Rule.LATENCY)
RESOURCE_FAMILIES = frozenset({"cpu", "memory"})
SYMPTOM_FAMILIES = frozenset({"latency", "error", "success"})


@dataclass(frozen=True)
class TriggerOptions:
    error_z: float = 4.0
    path_z: float = 10.0
    path_effect: float = 0.5
    network_z: float = 4.0
    network_effect: float = 0.5
    saturation_z: float = 4.0
    saturation_fold: float = 2.0
    peer_ratio: float = 3.0
    symptom_z: float = 3.0


@dataclass(frozen=True)
class Trigger:
    """One reason to open an incident: the rule, the service and the signal behind it."""

    rule: str
    service: str
    kind: str
    key: str
    score: float
    description: str


def _is_symptom(sig: Signal, z: float) -> bool:
    if sig.score < z:
        return False
    if sig.kind in ERROR_KINDS or sig.kind in LATENCY_KINDS:
        return sig.direction == "up"
    if sig.modality == Modality.METRICS and sig.family in SYMPTOM_FAMILIES and "client" not in sig.key.lower():
        return sig.direction == ("down" if sig.family == "success" else "up")
    return False


def _peer_fold(folds: dict[str, float], service: str) -> float:
    """Median fold of the other services whose same metric rose in the window; 1 when none did."""
    others = sorted(f for svc, f in folds.items() if svc != service)
    if not others:
        return 1.0
    mid = len(others) // 2
    return others[mid] if len(others) % 2 else (others[mid - 1] + others[mid]) / 2


def find_triggers(signals: Iterable[Signal], options: TriggerOptions | None = None) -> list[Trigger]:
    """Every rule a window's signals meet, strongest first (empty: not an incident)."""
    o = options or TriggerOptions()
    sigs = list(signals)
    symptomatic = {s.service for s in sigs if _is_symptom(s, o.symptom_z)}
    rises: dict[str, dict[str, float]] = {}  # metric -> service -> largest fold up
    for s in sigs:
        if s.modality == Modality.METRICS and s.direction == "up":
            per = rises.setdefault(s.key, {})
            per[s.service] = max(per.get(s.service, 0.0), s.fold)
    out: list[Trigger] = []
    for s in sigs:
        rule = ""
        if s.direction != "up":
            continue
        if s.kind in ERROR_KINDS and s.score >= o.error_z:
            rule = "errors"
        elif s.kind in PATH_KINDS and s.score >= o.path_z and s.effect >= o.path_effect:
            rule = "path"
        elif s.kind in NETWORK_KINDS and s.score >= o.network_z and s.effect >= o.network_effect:
            rule = "network"
        elif (
            s.modality == Modality.METRICS
            and s.family in RESOURCE_FAMILIES
            and s.score >= o.saturation_z
            and s.fold >= o.saturation_fold
            and s.fold >= o.peer_ratio * _peer_fold(rises.get(s.key, {}), s.service)
            and s.service in symptomatic
        ):
            rule = "saturation"
        if rule:
            out.append(Trigger(rule, s.service, s.kind.value, s.key, round(s.score, 2), s.description))
    return sorted(out, key=lambda t: -t.score)


__all__ = ["Trigger", "TriggerOptions", "find_triggers"]
