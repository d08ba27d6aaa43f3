"""When detection opens an incident: errors, strong path changes, network delays on most calls, and saturation that
hurts and stands out."""

from __future__ import annotations

from core.rca import Modality, Signal, SignalKind
from detect.triggers import TriggerOptions, find_triggers


def sig(service: str, kind: SignalKind, score: float, **kw: object) -> Signal:
    modality = Modality.METRICS if kind == SignalKind.METRIC_DEVIATION else Modality.LOGS
    fields: dict[str, object] = {"key": "k", "fold": 10.0, "effect": 0.9, "direction": "up", **kw}
    return Signal(service=service, modality=modality, kind=kind, score=score, **fields)  # type: ignore[arg-type]


def cpu(service: str, fold: float, score: float = 20.0) -> Signal:
    return sig(service, SignalKind.METRIC_DEVIATION, score, key="cpu_usage", family="cpu", fold=fold)


def rules(signals: list[Signal], **opt: float) -> list[tuple[str, str]]:
    return [(t.rule, t.service) for t in find_triggers(signals, TriggerOptions(**opt))]


def test_new_errors_open_an_incident_only_when_significant() -> None:
    assert rules([sig("pay", SignalKind.LOG_ERROR_TEMPLATE, 5.0)]) == [("errors", "pay")]
    assert rules([sig("pay", SignalKind.SPAN_ERROR, 4.5)]) == [("errors", "pay")]
    assert rules([sig("pay", SignalKind.LOG_ERROR_TEMPLATE, 3.5)]) == []
    assert rules([sig("pay", SignalKind.LOG_ERROR_TEMPLATE, 9.0, direction="down")]) == []  # errors went away


def test_a_path_change_needs_strength_and_most_requests() -> None:
    assert rules([sig("route", SignalKind.LOG_TEMPLATE_SHIFT, 16.0, effect=0.95)]) == [("path", "route")]
    assert rules([sig("route", SignalKind.LOG_TEMPLATE_SHIFT, 16.0, effect=0.25)]) == []  # a quarter of requests
    assert rules([sig("route", SignalKind.SPAN_STRUCTURE, 7.0, effect=0.95)]) == []  # below path_z


def test_calls_slowed_on_the_network_for_most_of_them_open_an_incident() -> None:
    # the callee's own spans look normal: no error, path or saturation rule sees a network delay
    assert rules([sig("cart", SignalKind.EDGE_LATENCY, 12.0, effect=0.8)]) == [("network", "cart")]
    assert rules([sig("cart", SignalKind.EDGE_ERROR, 5.0, effect=0.6)]) == [("network", "cart")]
    assert rules([sig("cart", SignalKind.EDGE_LATENCY, 12.0, effect=0.2)]) == []  # a few slow calls
    assert rules([sig("cart", SignalKind.EDGE_LATENCY, 3.0, effect=0.8)]) == []  # not significant
    assert rules([sig("cart", SignalKind.SPAN_LATENCY, 30.0, effect=0.9)]) == []  # end-to-end latency alone


def test_saturation_counts_only_with_a_symptom_of_the_same_service() -> None:
    slow = sig("contacts", SignalKind.SPAN_SELF_LATENCY, 4.0)
    assert rules([cpu("contacts", 115.0)]) == []  # a busy service whose requests are fine
    assert rules([cpu("contacts", 115.0), slow]) == [("saturation", "contacts")]
    assert rules([cpu("contacts", 115.0), sig("other", SignalKind.SPAN_SELF_LATENCY, 4.0)]) == []
    served = sig("contacts", SignalKind.METRIC_DEVIATION, 30.0, key="server_latency_p90", family="latency")
    assert rules([cpu("contacts", 115.0), served]) == [("saturation", "contacts")]


def test_client_side_latency_is_not_a_symptom_of_the_caller() -> None:
    calls = sig("ticket", SignalKind.METRIC_DEVIATION, 30.0, key="client_latency_p90", family="latency")
    assert rules([cpu("ticket", 4000.0), calls]) == []


def test_load_that_raises_every_services_cpu_is_not_saturation() -> None:
    # traffic arrives: every service's CPU rises 2-6x, one of them a little more, with slower requests
    shared = [cpu(f"svc{i}", f) for i, f in enumerate((2.8, 3.5, 2.9, 1.7, 3.0))]
    station = [cpu("station", 5.7), sig("station", SignalKind.SPAN_LATENCY, 5.0)]
    assert rules(shared + station) == []
    faulty = [cpu("station", 120.0), sig("station", SignalKind.SPAN_LATENCY, 5.0)]
    assert rules(shared + faulty) == [("saturation", "station")]


def test_strongest_trigger_first() -> None:
    found = find_triggers([sig("a", SignalKind.LOG_ERROR_TEMPLATE, 5.0), sig("b", SignalKind.SPAN_ERROR, 12.0)])
    assert [t.service for t in found] == ["b", "a"]
    assert found[0].kind == "span_error" and found[0].score == 12.0
