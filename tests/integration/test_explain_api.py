"""POST /explain and the incident routes on real engines, with the bundled Nezha sample imported once.

Each test gets its own copy of the imported sample (home folder copied, graph cloned) and its own app.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.http.app import create_app
from api.wiring import Services
from core.settings import Settings
from core.timeutil import NS, iso
from tests.conftest import ImportedSample

SERVICE = "ts-verification-code-service"


def test_the_sample_fault_is_in_the_service_these_tests_name(sample: ImportedSample) -> None:
    assert sample.fault_service == SERVICE


@pytest.fixture
def client(copied: Settings, open_fn: Callable[[Settings], Services]) -> Iterator[TestClient]:
    """The app on a private copy of the imported sample."""
    with TestClient(create_app(copied, open_fn=open_fn)) as c:
        yield c


@pytest.fixture
def bare(settings: Settings, open_fn: Callable[[Settings], Services]) -> Iterator[TestClient]:
    """The app on an empty home: for requests that are refused before any data is read."""
    with TestClient(create_app(settings, open_fn=open_fn)) as c:
        yield c


def open_incident(client: TestClient) -> dict[str, Any]:
    """An incident opened (as detection opens them) but not explained."""
    from core.incident import InvestigationRequest
    from detect.incidents import IncidentBook

    svc = services_of(client)
    book = IncidentBook(svc.events, svc.graph)
    return book.open(InvestigationRequest(service=SERVICE, at_ns=1_700_000_000 * NS), source="detection").model_dump(
        mode="json"
    )


def services_of(client: TestClient) -> Services:
    svc: Services = client.app.state.services  # type: ignore[attr-defined]
    return svc


def explain(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    r = client.post("/explain", json=body)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    assert out["explanation"]["incident_id"] == out["incident"]["id"]
    assert out["incident"]["explanation_id"]
    return out


def get_incident(client: TestClient, incident_id: str) -> dict[str, Any]:
    r = client.get(f"/incidents/{incident_id}")
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


# -- POST /explain ----------------------------------------------------------------------------------------


def test_explain_by_service_and_window(sample: ImportedSample, client: TestClient) -> None:
    start, end = sample.fault_ns, sample.fault_ns + 300 * NS
    out = explain(client, {"service": SERVICE, "start_ns": start, "end_ns": end})
    inc, expl = out["incident"], out["explanation"]
    assert (inc["service"], inc["alert_ns"], inc["start_ns"], inc["end_ns"]) == (SERVICE, start, start, end)
    assert (inc["source"], inc["status"], inc["title"]) == ("api", "open", f"{SERVICE} incident at {iso(start)}")
    assert (expl["mode"], expl["model"], expl["status"]) == ("evidence-only", "", "ok")
    assert expl["window"] == {"start_ns": start, "end_ns": end, "start": iso(start), "end": iso(end)}
    assert (inc["root_cause"], inc["confidence"]) == (
        expl["root_causes"][0]["service"],
        expl["root_causes"][0]["confidence"],
    )
    assert {s["agent"] for s in expl["run"]} == {"planner", "topology", "logs", "runbooks"}
    assert get_incident(client, inc["id"]) == out  # stored as answered


def test_explain_at_a_time_uses_the_default_window(sample: ImportedSample, client: TestClient) -> None:
    at = sample.fault_ns
    out = explain(client, {"at_ns": at})
    inc = out["incident"]
    assert (inc["service"], inc["alert_ns"], inc["start_ns"], inc["end_ns"]) == ("", at, at - 600 * NS, at + 300 * NS)
    assert inc["lead_s"] == 0 and inc["end_given"] is False  # a time given is when it started
    assert out["explanation"]["root_causes"] and out["explanation"]["status"] == "ok"
    # the same request again is the same incident, explained again
    again = explain(client, {"at_ns": at})
    assert again["incident"]["id"] == inc["id"]
    assert again["incident"]["explanation_id"] != inc["explanation_id"]


def test_explain_up_to_a_time_looks_at_the_minutes_before_it(sample: ImportedSample, client: TestClient) -> None:
    # an end alone: "what was going on up to then"; the ranked window ends there
    end = sample.fault_ns + 180 * NS
    out = explain(client, {"end_ns": end, "service": SERVICE})
    inc = out["incident"]
    assert (inc["alert_ns"], inc["start_ns"], inc["end_ns"], inc["end_given"]) == (
        end - 300 * NS,
        end - 900 * NS,
        end,
        True,
    )
    ranked = next(n for n in out["explanation"]["notes"] if n.startswith("window "))
    first, last = (int(x) for x in ranked.split()[1].split("-"))
    assert first == end - 300 * NS and sample.fault_ns < last <= end
    # no start was given: the last two, three and five minutes were each ranked (detect.rank.scales)
    assert inc["onset_given"] is False
    assert any("windows of the last 120 s, 180 s, 300 s" in n for n in out["explanation"]["notes"])
    assert out["explanation"]["root_causes"][0]["service"] == SERVICE


def test_explain_an_alertmanager_alert(sample: ImportedSample, client: TestClient) -> None:
    alert = {
        "status": "firing",
        "labels": {"alertname": "VerificationCodeErrors", "service": SERVICE, "severity": "page"},
        "annotations": {"summary": "login codes fail", "runbook_url": "https://runbooks.example/verification-code"},
        "startsAt": iso(sample.fault_ns),
        "fingerprint": "f00d",
    }
    out = explain(client, {"alert": alert})
    inc, expl = out["incident"], out["explanation"]
    assert (inc["title"], inc["service"], inc["alert_ns"], inc["fingerprint"]) == (
        "VerificationCodeErrors",
        SERVICE,
        sample.fault_ns,
        "f00d",
    )
    assert (inc["labels"], inc["annotations"]) == (alert["labels"], alert["annotations"])
    # an alert fires after its rule's `for:` delay: the ranked window starts five minutes before startsAt
    assert inc["lead_s"] == 300
    ranked = next(n for n in expl["notes"] if n.startswith("window "))
    assert int(ranked.split()[1].split("-")[0]) == sample.fault_ns - 300 * NS
    links = {r["id"]: r for r in expl["runbooks"]}
    link = "https://runbooks.example/verification-code"
    assert links[f"url:{link}"]["url"] == link
    # the alert firing again (same fingerprint, same minute) is the same incident
    assert explain(client, {"alert": alert})["incident"]["id"] == inc["id"]


def test_explain_an_incident_by_id(sample: ImportedSample, client: TestClient) -> None:
    first = explain(client, {"at_ns": sample.fault_ns, "service": SERVICE})
    again = explain(client, {"incident_id": first["incident"]["id"]})
    assert again["incident"]["id"] == first["incident"]["id"]
    assert again["incident"]["opened_ns"] == first["incident"]["opened_ns"]
    assert [r["service"] for r in again["explanation"]["root_causes"]] == [
        r["service"] for r in first["explanation"]["root_causes"]
    ]


@pytest.mark.parametrize("stream", ["false", "true"])
def test_explain_an_unknown_incident_is_404(bare: TestClient, stream: str) -> None:
    r = bare.post(f"/explain?stream={stream}", json={"incident_id": "inc-nope"})
    assert r.status_code == 404
    body = r.json()
    assert (body["error"], body["field"]) == ("NotFound", "incident_id")
    assert body["message"] == "no incident 'inc-nope'; `devmesh incidents list` shows them"


@pytest.mark.parametrize(
    ("body", "query", "field"),
    [
        ({}, "", "body"),
        ({"question": "why?"}, "", "body"),
        ({"at_ns": "soon"}, "", "at_ns"),
        ({"at_ns": -5}, "", "at_ns"),
        ({"service": SERVICE, "start_ns": NS, "end_ns": 2**63}, "", "end_ns"),  # (a reversed window holds nothing)
        ({"service": SERVICE, "servce": SERVICE}, "", "servce"),
        ({"alert": {"labels": "x"}}, "", "alert.labels"),
        ({"incident_id": "x" * 200}, "", "incident_id"),
        ({"service": SERVICE}, "?stream=maybe", "stream"),
    ],
)
def test_invalid_explain_requests_name_the_field(
    bare: TestClient, body: dict[str, Any], query: str, field: str
) -> None:
    r = bare.post(f"/explain{query}", json=body)
    assert r.status_code == 422, r.text
    assert (r.json()["error"], r.json()["field"]) == ("InvalidInput", field)
    assert bare.get("/incidents").json() == []  # nothing opened


def sse(text: str) -> list[tuple[str, Any]]:
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields["event"], json.loads(fields["data"])))
    return events


def test_streamed_explain_reports_each_agent_then_the_explanation(sample: ImportedSample, client: TestClient) -> None:
    with client.stream("POST", "/explain?stream=true", json={"at_ns": sample.fault_ns, "service": SERVICE}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = sse(r.read().decode())

    names = [name for name, _ in events]
    assert names == ["incident", "progress", "progress", "progress", "progress", "explanation", "done"]
    progress = [data["agent"] for name, data in events if name == "progress"]
    assert progress[:2] == ["planner", "topology"] and sorted(progress[2:]) == ["logs", "runbooks"]
    assert all(data["steps"] > 0 for name, data in events if name == "progress")
    opened, final = events[0][1], events[5][1]
    assert final["incident"]["id"] == opened["id"] and final["incident"]["explanation_id"]
    assert opened["explanation_id"] == "" and events[-1][1] == {}
    expl = final["explanation"]
    assert expl["incident_id"] == opened["id"] and "total" in expl["timings"]
    stored = get_incident(client, opened["id"])
    assert stored == {"incident": final["incident"], "explanation": expl}
    # streamed explanations are indexed like the others: found again by their symptoms
    assert final["incident"]["symptoms"]


# -- the incident routes ------------------------------------------------------------------------------------


def test_incidents_list_show_evidence_and_resolve(sample: ImportedSample, client: TestClient) -> None:
    quiet = sample.fault_ns - 2314 * NS  # over half an hour before the fault: metrics only
    a = explain(client, {"at_ns": sample.fault_ns, "service": SERVICE})["incident"]
    b = explain(client, {"at_ns": quiet})["incident"]

    listed = client.get("/incidents").json()
    assert [i["id"] for i in listed] == [a["id"], b["id"]]  # newest first
    assert [i["id"] for i in client.get("/incidents", params={"limit": 1}).json()] == [a["id"]]

    shown = get_incident(client, a["id"])
    evidence = client.get(f"/incidents/{a['id']}/evidence").json()
    assert evidence == {"incident_id": a["id"], "evidence": shown["explanation"]["evidence"]}
    assert len(evidence["evidence"]) > 10

    r = client.post(f"/incidents/{b['id']}/resolve")
    assert r.status_code == 200 and r.json()["status"] == "resolved" and r.json()["resolved_ns"] > 0
    assert [i["id"] for i in client.get("/incidents", params={"status": "resolved"}).json()] == [b["id"]]
    assert [i["id"] for i in client.get("/incidents", params={"status": "open"}).json()] == [a["id"]]
    graph = services_of(client).graph
    assert graph is not None
    rows = graph.graph.ro_query("MATCH (i:Incident) RETURN i.id, i.status ORDER BY i.id").result_set
    assert sorted(rows) == sorted([[a["id"], "open"], [b["id"], "resolved"]])

    for path in ("/incidents/inc-nope", "/incidents/inc-nope/evidence"):
        assert client.get(path).json()["field"] == "incident_id"
    assert client.post("/incidents/inc-nope/resolve").status_code == 404
    assert client.get("/incidents", params={"status": "closed"}).json()["field"] == "status"


def test_an_incident_not_yet_explained_is_shown_without_explanation(bare: TestClient) -> None:
    inc = open_incident(bare)
    assert get_incident(bare, inc["id"]) == {"incident": inc, "explanation": None}
    r = bare.get(f"/incidents/{inc['id']}/evidence")
    assert r.status_code == 404 and r.json()["field"] == "incident_id"


def test_feedback_is_stored_on_the_incident_and_in_the_graph(sample: ImportedSample, client: TestClient) -> None:
    inc = explain(client, {"at_ns": sample.fault_ns, "service": SERVICE})["incident"]
    body = {
        "root_cause": f" {SERVICE} ",
        "helpful": False,
        "by": "alice",
        "note": "it was the verification-code service",
    }
    r = client.post(f"/incidents/{inc['id']}/feedback", json=body)
    assert r.status_code == 200, r.text
    (fb,) = r.json()["feedback"]
    assert (fb["root_cause"], fb["helpful"], fb["by"], fb["note"]) == (SERVICE, False, "alice", body["note"])
    assert fb["time_ns"] > 0
    assert get_incident(client, inc["id"])["incident"]["feedback"] == [fb]

    graph = services_of(client).graph
    assert graph is not None
    rows = graph.graph.ro_query(
        "MATCH (i:Incident {id: $id}) RETURN i.confirmed_root_cause, i.helpful", {"id": inc["id"]}
    ).result_set
    assert rows == [[SERVICE, False]]
    # what the people said is what the next similar incident is ranked with
    svc = services_of(client)
    assert svc.vectors is not None and svc.embedder is not None
    (hit,) = svc.vectors.search("incidents", svc.embedder.embed([r.json()["symptoms"]])[0], limit=1)
    assert (hit.payload["incident_id"], hit.payload["confirmed_root_cause"]) == (inc["id"], SERVICE)

    helpful = client.post(f"/incidents/{inc['id']}/feedback", json={"helpful": True})
    assert [f["helpful"] for f in helpful.json()["feedback"]] == [False, True]
    assert graph.graph.ro_query(
        "MATCH (i:Incident {id: $id}) RETURN i.confirmed_root_cause, i.helpful", {"id": inc["id"]}
    ).result_set == [[SERVICE, True]]


@pytest.mark.parametrize(
    ("body", "field"),
    [({}, "body"), ({"root_cause": "  "}, "body"), ({"helpful": "maybe"}, "helpful"), ({"by": 3}, "by")],
)
def test_invalid_feedback_is_refused(bare: TestClient, body: dict[str, Any], field: str) -> None:
    inc = open_incident(bare)
    r = bare.post(f"/incidents/{inc['id']}/feedback", json=body)
    assert r.status_code == 422 and r.json()["field"] == field, r.text
    assert get_incident(bare, inc["id"])["incident"]["feedback"] == []
    missing = bare.post("/incidents/inc-nope/feedback", json={"helpful": True})
    assert missing.status_code == 404 and missing.json()["field"] == "incident_id"


# -- past runs, by time and by meaning -------------------------------------------------------------------------


def test_explanations_are_found_by_time_and_by_meaning(sample: ImportedSample, client: TestClient) -> None:
    from detect.incidents import INCIDENTS, IncidentBook

    quiet = sample.fault_ns - 2314 * NS
    fault = explain(client, {"at_ns": sample.fault_ns, "service": SERVICE})
    other = explain(client, {"at_ns": quiet, "service": "ts-order-service"})
    svc = services_of(client)
    book = IncidentBook(svc.events, svc.graph, svc.vectors, svc.embedder)

    around = book.explanations(since_ns=sample.fault_ns - NS, until_ns=sample.fault_ns + NS)
    assert [e["incident_id"] for e in around] == [fault["incident"]["id"]]
    assert around[0]["run"] == fault["explanation"]["run"]  # the whole run is kept with it
    assert [e["incident_id"] for e in book.explanations(until_ns=sample.fault_ns)] == [other["incident"]["id"]]
    assert [e["incident_id"] for e in book.explanations()] == [fault["incident"]["id"], other["incident"]["id"]]

    ids = (fault["incident"]["id"], other["incident"]["id"])
    window = {"since": iso(sample.fault_ns - NS), "until": str(sample.fault_ns + NS)}
    assert [i["id"] for i in client.get("/incidents", params=window).json()] == [ids[0]]
    assert [i["id"] for i in client.get("/incidents", params={"until": iso(sample.fault_ns)}).json()] == [ids[1]]
    assert client.get("/incidents", params={"since": "yesterday-ish"}).json()["field"] == "since"

    assert svc.vectors is not None and svc.embedder is not None
    for out in (fault, other):
        text = out["incident"]["symptoms"] or out["explanation"]["summary"]
        hits = svc.vectors.search(INCIDENTS, svc.embedder.embed([text])[0], limit=2)
        assert hits[0].payload["incident_id"] == out["incident"]["id"]
        assert hits[0].payload["summary"] == out["explanation"]["summary"]
        found = client.get("/incidents", params={"q": text}).json()
        assert [i["id"] for i in found] == [out["incident"]["id"], *(i for i in ids if i != out["incident"]["id"])]
    symptoms = {"q": fault["incident"]["symptoms"], "status": "resolved"}
    assert client.get("/incidents", params=symptoms).json() == []


# -- the CLI does the same --------------------------------------------------------------------------------------


def test_cli_explains_an_alert_file(sample: ImportedSample, copied: Settings, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from api.cli.main import app
    from core.errors import InvalidInput

    alert = {"labels": {"alertname": "VerificationCodeErrors", "service": SERVICE}, "startsAt": iso(sample.fault_ns)}
    webhook = tmp_path / "alert.json"
    webhook.write_text(json.dumps({"version": "4", "status": "firing", "alerts": [alert]}))
    env = {
        "DEVMESH_HOME": str(copied.home),
        "DEVMESH_FALKORDB_URL": str(copied.falkordb_url),
        "DEVMESH_GRAPH_NAME": copied.graph_name,
        "DEVMESH_EMBEDDER": "none",
        "DEVMESH_MODEL_DIR": str(copied.model_dir),
        "DEVMESH_LOG_LEVEL": "WARNING",
        "OLLAMA_HOST": "",
    }
    cli = app
    r = CliRunner().invoke(cli, ["explain", "--alert", str(webhook), "--json"], env=env)
    assert r.exit_code == 0, r.output
    expl = json.loads(r.stdout)
    assert (expl["mode"], expl["status"]) == ("evidence-only", "ok")
    r = CliRunner().invoke(cli, ["incidents", "list", "--json"], env=env)
    (inc,) = json.loads(r.stdout)
    assert (inc["id"], inc["source"], inc["title"], inc["alert_ns"]) == (
        expl["incident_id"],
        "cli",
        "VerificationCodeErrors",
        sample.fault_ns,
    )
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    for args, field in (
        (["explain", "--alert", str(bad)], "alert"),
        (["explain", "--alert", str(tmp_path / "missing.json")], "alert"),
        (["incidents", "feedback", inc["id"]], "root_cause"),
    ):
        r = CliRunner().invoke(cli, args, env=env)
        assert isinstance(r.exception, InvalidInput) and r.exception.field == field, (args, r.output)
