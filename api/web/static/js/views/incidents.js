// The incident list: status, time, top root cause, confidence and fault kind; filters in the hash; polled
// every POLL_MS so incidents that detection opens appear without a reload.
import { get } from "../api.js";
import { badge, clear, errorBox, fmtTime, h, hashLink, kindLabel, pct } from "../dom.js";

const POLL_MS = 10000;

function filterForm(params) {
  const field = (name, label, attrs) =>
    h("div", { class: "field" }, h("label", { for: `f-${name}` }, label),
      h("input", { id: `f-${name}`, name, value: params[name] || "", ...attrs }));
  const status = h("select", { id: "f-status", name: "status" },
    ["", "open", "resolved"].map((s) => h("option", { value: s, selected: (params.status || "") === s }, s || "any")));
  const form = h("form", { class: "filters", role: "search", "aria-label": "Filter incidents" },
    h("div", { class: "field" }, h("label", { for: "f-status" }, "Status"), status),
    field("service", "Service", { placeholder: "ts-order-service", list: "known-services" }),
    field("since", "Started since", { placeholder: "24h, ISO time or epoch" }),
    field("until", "Started before", { placeholder: "now, ISO time or epoch" }),
    h("button", { type: "submit" }, "Filter"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const data = Object.fromEntries(new FormData(form));
    location.hash = hashLink("/incidents", data);
  });
  return form;
}

function row(r) {
  const inc = r.incident;
  return h("tr", { "data-incident": inc.id },
    h("td", {}, badge(inc.status, inc.status)),
    h("td", {}, h("time", { datetime: new Date(inc.alert_ns / 1e6).toISOString() }, fmtTime(inc.alert_ns))),
    h("td", {}, h("a", { href: `#/incident/${encodeURIComponent(inc.id)}` }, inc.title || inc.id)),
    h("td", {}, inc.root_cause ? h("a", { href: `#/service/${encodeURIComponent(inc.root_cause)}` }, inc.root_cause) : "—"),
    h("td", { class: "num" }, r.explained ? pct(inc.confidence) : "—"),
    h("td", {}, r.explained ? kindLabel(r.fault_kind) : h("span", { class: "muted" }, "not explained")),
    h("td", {}, inc.source));
}

export async function render(main, _args, params, ctx) {
  const status = h("p", { class: "muted", role: "status", id: "poll-state" });
  const tbody = h("tbody");
  const table = h("div", { class: "scroll" },
    h("table", { class: "incidents" },
      h("caption", { class: "sr-only" }, "Incidents, newest first"),
      h("thead", {}, h("tr", {}, ["Status", "Started (UTC)", "Incident", "Top root cause", "Confidence", "Fault kind", "Source"]
        .map((t) => h("th", { scope: "col" }, t)))),
      tbody));
  main.append(h("h1", {}, "Incidents"), filterForm(params), status, table, h("datalist", { id: "known-services" }));
  const query = { status: params.status, service: params.service, since: params.since, until: params.until, limit: 200 };
  let seen = null;
  const load = async () => {
    const rows = await get("/overview/incidents", query);
    if (!ctx.isCurrent()) return;
    clear(tbody).append(...rows.map(row));
    if (!rows.length) tbody.append(h("tr", {}, h("td", { colspan: 7, class: "muted" }, "No incidents match.")));
    const ids = new Set(rows.map((r) => r.incident.id));
    const fresh = seen ? [...ids].filter((id) => !seen.has(id)).length : 0;
    seen = ids;
    const dl = document.getElementById("known-services");
    const names = [...new Set(rows.flatMap((r) => [r.incident.service, r.incident.root_cause]).filter(Boolean))].sort();
    if (dl) clear(dl).append(...names.map((n) => h("option", { value: n })));
    status.textContent = `${rows.length} incident${rows.length === 1 ? "" : "s"}; refreshed ${new Date().toLocaleTimeString()}`
      + ` every ${POLL_MS / 1000} s${fresh ? `; ${fresh} new` : ""}`;
  };
  await load();
  const timer = setInterval(() => {
    load().catch((err) => {
      if (ctx.isCurrent()) status.replaceChildren(errorBox(err));
    });
  }, POLL_MS);
  return () => clearInterval(timer);
}
