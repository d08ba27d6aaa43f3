// A service page: its calls (in and out, from the spans), its log templates and its incidents, over a window.
import { get } from "../api.js";
import { badge, fmtTime, h, hashLink, isoOf, kindLabel, num, pct } from "../dom.js";

export async function render(main, [service], params, ctx) {
  let { since, until } = params;
  if (!since || !until) {
    until = until || "now";
    since = since || "1h";
  }
  const out = await get(`/services/${encodeURIComponent(service)}/overview`, { since, until });
  if (!ctx.isCurrent()) return undefined;
  const win = { since: isoOf(out.since_ns), until: isoOf(out.until_ns) };
  const f = h("form", { class: "filters", "aria-label": "Window" },
    h("div", { class: "field" }, h("label", { for: "w-since" }, "Since"), h("input", { id: "w-since", name: "since", value: since })),
    h("div", { class: "field" }, h("label", { for: "w-until" }, "Until"), h("input", { id: "w-until", name: "until", value: until })),
    h("button", { type: "submit" }, "Show"));
  f.addEventListener("submit", (ev) => {
    ev.preventDefault();
    location.hash = hashLink(`/service/${encodeURIComponent(service)}`, Object.fromEntries(new FormData(f)));
  });
  const calls = out.calls.length ? h("div", { class: "scroll" }, h("table", {},
    h("thead", {}, h("tr", {}, ["Caller → callee", "Calls/min", "Errors", "p50 ms", "p95 ms"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, out.calls.map((c) => h("tr", {},
      h("th", { scope: "row" }, h("a", { href: hashLink(`/service/${encodeURIComponent(c.caller)}`, win) }, c.caller), " → ",
        h("a", { href: hashLink(`/service/${encodeURIComponent(c.callee)}`, win) }, c.callee)),
      h("td", { class: "num" }, num(c.figures.per_min)), h("td", { class: "num" }, `${c.figures.errors} (${pct(c.figures.error_rate)})`),
      h("td", { class: "num" }, num(c.figures.p50_ms)), h("td", { class: "num" }, num(c.figures.p95_ms)))))))
    : h("p", { class: "muted" }, "No calls in this window.");
  const templates = out.templates.length ? h("ol", { class: "hits" }, out.templates.map((t) => h("li", {},
    h("div", { class: "ev-head" }, badge(`${num(t.count, 0)} lines`, "count"), t.level ? badge(t.level, "kind") : null,
      h("a", { href: hashLink("/logs", { template_id: t.template_id, service, ...win }) }, "Lines")),
    h("p", {}, h("code", {}, t.text || t.template_id)))))
    : h("p", { class: "muted" }, "No log lines in this window.");
  const incidents = out.incidents.length ? h("ul", {}, out.incidents.map((r) => h("li", {},
    h("a", { href: `#/incident/${encodeURIComponent(r.incident.id)}` }, r.incident.title || r.incident.id),
    ` · ${fmtTime(r.incident.alert_ns)} · root cause ${r.incident.root_cause || "—"} (${pct(r.incident.confidence)}, ${kindLabel(r.fault_kind)})`)))
    : h("p", { class: "muted" }, "No incident names this service.");
  main.append(h("h1", {}, service), h("p", { class: "muted" }, `${fmtTime(out.since_ns)} – ${fmtTime(out.until_ns)}`), f,
    h("section", { class: "card", "aria-labelledby": "sv-calls" }, h("h2", { id: "sv-calls" }, "Calls"), calls),
    h("section", { class: "card", "aria-labelledby": "sv-tpl" }, h("h2", { id: "sv-tpl" }, "Log templates"), templates),
    h("section", { class: "card", "aria-labelledby": "sv-inc" }, h("h2", { id: "sv-inc" }, "Incidents"), incidents),
    h("p", {}, h("a", { href: hashLink("/explain", { service }) }, `Explain a problem on ${service}`)));
  return undefined;
}
