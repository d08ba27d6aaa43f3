"""The web console in headless Chromium against a live `devmesh serve` holding the imported Nezha sample: every
page renders without console errors (at 1280x800 and 390 px wide, screenshots written), the map highlights the
ranked root cause, navigation, search, evidence links, explain on demand, feedback and resolve work, and a
browser without a key sees the 401 refusal and no data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.timeutil import iso
from tests.browser.conftest import Console

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(600)]

READY = "main[data-ready]:not([aria-busy])"
KINDS = {"code_error": "code error", "resource_saturation": "resource saturation"}


class Page:
    """A Playwright page that records console errors and waits for the console's views to finish rendering."""

    def __init__(self, page: Any, base: str) -> None:
        self.page = page
        self.base = base
        self.errors: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    def open(self, fragment: str) -> Any:
        if self.page.url.startswith(self.base):
            self.page.evaluate("document.getElementById('view').removeAttribute('data-ready')")
        self.page.goto(f"{self.base}/{fragment}")
        self.page.wait_for_selector(READY, timeout=60_000)
        return self.page

    def gen(self) -> str:
        return str(self.page.evaluate("document.getElementById('view').dataset.ready || ''"))

    def wait_after(self, gen: str) -> None:
        """Wait until a view newer than `gen` has rendered (a click's hash change is handled after it returns)."""
        self.page.wait_for_function(
            "g => { const m = document.getElementById('view');"
            " return (m.dataset.ready || '') !== g && !m.hasAttribute('aria-busy'); }",
            arg=gen,
            timeout=120_000,
        )


@pytest.fixture
def page(browser: Any, console: Console) -> Iterator[Page]:
    """A tab with the API key in its sessionStorage (as the key form stores it)."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    ctx.add_init_script(f"sessionStorage.setItem('devmesh.apiKey', {console.key!r})")
    yield Page(ctx.new_page(), console.url)
    ctx.close()


def h1(p: Any) -> str:
    return str(p.locator("main h1").inner_text())


def test_every_page_renders_without_console_errors(browser: Any, console: Console, shots: Path) -> None:
    window = f"since={iso(console.fault_ns - 600 * 10**9)}&until={iso(console.fault_ns + 600 * 10**9)}"
    trace = console.api("GET", "/query/logs", params={"service": console.fault_service, "limit": 1})["events"][0]
    pages = {
        "incidents": ("#/incidents", "Incidents"),
        "incident": (f"#/incident/{console.incident_id}", f"{console.fault_service} incident at"),
        "explain": ("#/explain", "Explain an incident"),
        "search": ("#/search?q=verify+code+error", "Search logs"),
        "service": (f"#/service/{console.fault_service}?{window}", console.fault_service),
        "logs": (f"#/logs?service={console.fault_service}&{window}", "Log lines"),
        "trace": (f"#/trace/{trace['trace_id']}", f"Trace {trace['trace_id']}"),
    }
    for width, height, tag in ((1280, 800, "desktop"), (390, 844, "phone")):
        ctx = browser.new_context(viewport={"width": width, "height": height})
        ctx.add_init_script(f"sessionStorage.setItem('devmesh.apiKey', {console.key!r})")
        tab = Page(ctx.new_page(), console.url)
        for name, (fragment, title) in pages.items():
            p = tab.open(fragment)
            assert h1(p).startswith(title), (name, h1(p))
            assert p.locator("main .error").count() == 0, (name, p.locator("main .error").all_inner_texts())
            # nothing wider than the screen but the scrollable tables and the map
            overflow = p.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert overflow <= 1, (name, tag, overflow)
            p.screenshot(path=str(shots / f"{name}-{tag}.png"), full_page=True)
        assert tab.errors == [], tab.errors
        ctx.close()
    for name in pages:
        for tag in ("desktop", "phone"):
            assert (shots / f"{name}-{tag}.png").stat().st_size > 0


def test_list_and_map_show_the_ranked_root_cause(page: Page, console: Console) -> None:
    got = console.api("GET", f"/incidents/{console.incident_id}")
    top = got["explanation"]["root_causes"][0]
    assert top["service"] == console.fault_service  # the sample's labelled fault is ranked first
    p = page.open("#/incidents")
    row = p.locator(f"tr[data-incident='{console.incident_id}'] td")
    cells = row.all_inner_texts()
    assert cells[0:1] == ["open"]
    assert cells[3:6] == [console.fault_service, f"{round(top['confidence'] * 100)}%", KINDS[top["fault_kind"]]]
    p = page.open(f"#/incident/{console.incident_id}")
    roots = p.locator("svg.service-map g.node[data-role='root']")
    assert roots.count() == 1
    assert roots.get_attribute("data-service") == console.fault_service
    ranked = [n.get_attribute("data-service") for n in p.locator("svg.service-map g.node[data-role='candidate']").all()]
    assert sorted(ranked) == sorted(rc["service"] for rc in got["explanation"]["root_causes"][1:])
    causes = p.locator("ol.causes > li").all()
    assert [c.get_attribute("data-service") for c in causes] == [
        rc["service"] for rc in got["explanation"]["root_causes"]
    ]
    # every call edge of the map is drawn, and its figures listed before vs during
    figures = console.api("GET", f"/incidents/{console.incident_id}/map")
    assert p.locator("svg.service-map path.edge").count() == len(figures["edges"]) > 0
    assert p.locator("details.edges tbody tr").count() == len(figures["edges"])
    assert page.errors == []


def test_navigation_by_links_and_keyboard(page: Page, console: Console) -> None:
    p = page.open("")
    assert h1(p) == "Incidents"
    assert p.evaluate("document.activeElement.tagName") == "H1"  # focus moves to the new page's heading
    p.keyboard.press("Tab")
    assert p.evaluate("document.activeElement.id") == "f-status"  # then on to its first control
    gen = page.gen()
    p.locator(f"tr[data-incident='{console.incident_id}'] a").first.click()
    page.wait_after(gen)
    assert h1(p).startswith(console.fault_service)
    gen = page.gen()
    p.locator(f"svg.service-map a:has(g[data-service='{console.fault_service}'])").click()
    page.wait_after(gen)
    assert h1(p) == console.fault_service
    assert p.locator("section[aria-labelledby='sv-inc'] a", has_text=console.fault_service).count() >= 1
    gen = page.gen()
    p.go_back()
    page.wait_after(gen)
    assert h1(p).startswith(console.fault_service + " incident")
    gen = page.gen()
    p.locator("nav a", has_text="Search").focus()
    p.keyboard.press("Enter")
    page.wait_after(gen)
    assert h1(p) == "Search logs"
    assert p.locator("nav a[aria-current='page']").inner_text() == "Search"
    assert page.errors == []


def test_evidence_links_open_the_line_behind_it(page: Page, console: Console) -> None:
    expl = console.api("GET", f"/incidents/{console.incident_id}")["explanation"]
    first_log = next(e for e in expl["evidence"] if e["kind"] == "log")
    p = page.open(f"#/incident/{console.incident_id}")
    gen = page.gen()
    p.locator(f"li[data-kind='log'][id='ev-{first_log['id']}'] a.ev-link").click()
    page.wait_after(gen)
    assert h1(p) == "Log lines"
    hit = p.locator("tr.hit")
    assert hit.count() == 1
    assert first_log["text"] in hit.locator("td.msg").inner_text()
    assert page.errors == []


def test_search_shows_templates_with_counts(page: Page, console: Console) -> None:
    q = "verification code not found"
    want = console.api("GET", "/search/logs", params={"q": q, "service": console.fault_service, "limit": 20})
    p = page.open("#/search")
    p.get_by_label("Look for").fill(q)
    p.get_by_label("Service").fill(console.fault_service)
    gen = page.gen()
    p.get_by_role("button", name="Search").click()
    page.wait_after(gen)
    hits = p.locator("ol.hits > li")
    assert [h.get_attribute("data-template") for h in hits.all()] == [t["template_id"] for t in want["hits"]]
    assert hits.first.locator(".badge.count").inner_text() == f"{want['hits'][0]['count']:,} lines"
    assert page.errors == []


def test_explain_on_demand_streams_progress_then_opens_the_incident(page: Page, console: Console) -> None:
    p = page.open("#/explain")
    p.get_by_label("Service", exact=True).fill("ts-order-service")
    p.get_by_label("When it started (UTC)").fill(iso(console.fault_ns)[:19])
    with p.expect_response(lambda r: "/explain?stream=true" in r.url) as resp:
        p.get_by_role("button", name="Explain").click()
    assert resp.value.status == 200
    assert resp.value.headers["content-type"].startswith("text/event-stream")
    p.wait_for_url("**/#/incident/*", timeout=120_000)
    page.wait_after("")
    incident_id = p.url.rsplit("/", 1)[1]
    got = console.api("GET", f"/incidents/{incident_id}")
    assert (got["incident"]["service"], got["incident"]["alert_ns"]) == ("ts-order-service", console.fault_ns)
    assert h1(p) == got["incident"]["title"]
    assert p.locator("ol.causes > li").count() == len(got["explanation"]["root_causes"]) > 0
    assert page.errors == []


def test_feedback_and_resolve(page: Page, console: Console) -> None:
    opened = console.api("POST", "/explain", json={"service": "ts-seat-service", "at_ns": console.fault_ns})
    incident_id = opened["incident"]["id"]
    p = page.open(f"#/incident/{incident_id}")
    p.get_by_label("The real root cause").fill(console.fault_service)
    p.get_by_role("radio", name="no").check()
    p.get_by_label("Note").fill("the verification code service returned errors")
    p.get_by_role("button", name="Confirm / correct root cause").click()
    p.wait_for_selector("#feedback-state:has-text('Recorded')")
    (fb,) = console.api("GET", f"/incidents/{incident_id}")["incident"]["feedback"]
    assert (fb["root_cause"], fb["helpful"], fb["note"]) == (
        console.fault_service,
        False,
        "the verification code service returned errors",
    )
    p.get_by_role("button", name="Resolve incident").click()
    p.wait_for_selector("button#resolve:disabled")
    assert console.api("GET", f"/incidents/{incident_id}")["incident"]["status"] == "resolved"
    assert page.errors == []


def test_a_browser_without_a_key_is_refused(browser: Any, console: Console, shots: Path) -> None:
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    tab = Page(ctx.new_page(), console.url)
    for fragment in ("#/incidents", f"#/incident/{console.incident_id}"):
        p = tab.open(fragment)
        refusal = p.locator("main .error[role='alert']")
        assert refusal.get_attribute("data-status") == "401"
        assert "needs an API key" in refusal.inner_text()
        assert p.locator("tr[data-incident], svg.service-map, ol.causes").count() == 0
        assert console.fault_service not in p.locator("main").inner_text()
    p.screenshot(path=str(shots / "refused-desktop.png"))
    # the key form lets the same tab in
    p.get_by_label("API key").fill(console.key)
    gen = tab.gen()
    p.get_by_role("button", name="Use key").click()
    tab.wait_after(gen)
    assert p.locator("svg.service-map g.node[data-role='root']").get_attribute("data-service") == console.fault_service
    ctx.close()


def test_the_propagation_path_is_highlighted_from_root_cause_to_symptom(
    page: Page, console: Console, shots: Path
) -> None:
    expl = console.api("GET", f"/incidents/{console.chain_id}")["explanation"]
    assert [(s["source"], s["target"]) for s in expl["propagation_path"]] == [("db", "api"), ("api", "frontend")]
    p = page.open(f"#/incident/{console.chain_id}")
    assert p.locator("svg.service-map g.node[data-role='root']").get_attribute("data-service") == "db"
    on_path = [
        (int(e.get_attribute("data-path-step")), e.get_attribute("data-caller"), e.get_attribute("data-callee"))
        for e in p.locator("svg.service-map path.edge.path").all()
    ]
    # each step's edge, in order from the root cause: api calls db, then frontend calls api
    assert sorted(on_path) == [(1, "api", "db"), (2, "frontend", "api")]
    assert p.locator("svg.service-map path.edge:not(.path)[data-path-step]").count() == 0
    assert p.locator("#map-path li").all_inner_texts() == ["db", "api", "frontend"]
    assert p.locator("svg.service-map g.node.on-path").count() == 3
    p.screenshot(path=str(shots / "incident-path-desktop.png"), full_page=True)
    assert page.errors == []


def test_the_timeline_shows_templates_latency_saturation_and_restarts(page: Page, console: Console) -> None:
    tl = console.api("GET", f"/incidents/{console.chain_id}/timeline")
    p = page.open(f"#/incident/{console.chain_id}")
    chart = p.locator("section[aria-labelledby='s-timeline'] svg.timeline")
    lanes = chart.locator("g.tl-lane")
    kinds = [g.get_attribute("data-kind") for g in lanes.all()]
    want = (
        ["errors"] * len({e["service"] for e in tl["errors"]})
        + ["template"] * len(tl["templates"])
        + ["latency"] * len(tl["latency"])
        + ["saturation"] * len(tl["saturation"])
        + ["restarts"]
    )
    assert kinds == want
    assert chart.locator("g.tl-lane[data-kind='latency'][data-service='db'] path.tl-line").count() == 2  # p95, p50
    assert chart.locator("g.tl-lane[data-kind='saturation'][data-key='cpu_usage_rate'] circle.tl-dot").count() == 15
    marks = chart.locator("g.tl-lane[data-kind='restarts'] path.tl-mark")
    assert [m.get_attribute("data-what") for m in marks.all()] == ["crash loop", "pod stopped", "pod started"]
    assert chart.locator("line.tl-fault").count() == 1
    assert page.errors == []


def test_a_span_backed_evidence_item_opens_its_trace(page: Page, console: Console) -> None:
    expl = console.api("GET", f"/incidents/{console.chain_id}")["explanation"]
    op = next(e for e in expl["evidence"] if e["id"] == "operation:db:/query")
    # the first span the ranking cites for a finding about db's /query (the operation item itself may have been
    # found by another step, with another provenance)
    span = next(
        e
        for e in expl["evidence"]
        if e["kind"] == "span"
        and e["service"] == "db"
        and e["provenance"].startswith("detect.signals ")
        and e["provenance"].endswith(" /query")
    )
    _, trace_id, span_id = span["id"].split(":")
    p = page.open(f"#/incident/{console.chain_id}")
    if p.locator("#ev-more").count():
        p.locator("#ev-more").click()  # the first 40 items are shown until asked for all
    link = p.locator(f"li[id='ev-{op['id']}'] a.ev-link")
    assert link.inner_text() == "Open the trace"
    assert link.get_attribute("href") == f"#/trace/{trace_id}?span={span_id}"
    gen = page.gen()
    link.click()
    page.wait_after(gen)
    assert h1(p) == f"Trace {trace_id}"
    assert page.errors == []
