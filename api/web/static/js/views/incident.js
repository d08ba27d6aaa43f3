// The incident page: summary, ranked causes, service map (before vs during), error timeline, evidence with
// links to the lines and spans behind it, runbooks, similar incidents, the agents' steps, feedback and resolve.
import { get, post } from "../api.js";
import { serviceMap, legend, pathList } from "../graph.js";
import { timelineChart } from "../timeline.js";
import { badge, clear, errorBox, fmtTime, h, hashLink, isoOf, kindLabel, num, pct, section } from "../dom.js";

const EVIDENCE_SHOWN = 40;

function serviceLink(name, win) {
  return hashLink(`/service/${encodeURIComponent(name)}`, { since: isoOf(win.start_ns), until: isoOf(win.end_ns) });
}

// The spans the ranking's findings cite, to open the trace behind an edge, operation, pod or node item: a span
// item's provenance is "detect.signals <signal kind> <key>", the key an operation or "<operation>-><callee>".
function citedSpans(evidence) {
  return evidence.filter((e) => e.kind === "span" && e.id.split(":").length >= 3).map((e) => {
    const words = (e.provenance || "").split(" ");
    return { ids: e.id.split(":").slice(1), service: e.service, provenance: e.provenance,
      key: words[0] === "detect.signals" ? words.slice(2).join(" ") : null };
  });
}

// The first cited span behind `item`: for operation:<service>:<op>, a span of that service whose finding is about
// <op>; for edge:<caller>-><callee>, one about the caller's calls to the callee; else (pods, nodes, either of
// those) a span the same finding cites. None: the item links to its service page.
function spanBehind(item, spans) {
  const [kind, ...rest] = item.id.split(":");
  const ref = rest.join(":");
  let hit = null;
  if (kind === "operation") {
    const [service, ...op] = rest;
    const name = op.join(":");
    hit = spans.find((s) => s.service === service && s.key !== null && (s.key === name || s.key.startsWith(`${name}->`)));
  } else if (kind === "edge" && ref.includes("->")) {
    const [caller, callee] = ref.split("->");
    hit = spans.find((s) => s.service === caller && s.key !== null && s.key.endsWith(`->${callee}`));
  }
  return hit || spans.find((s) => s.provenance && s.provenance === item.provenance) || null;
}

// Where the log lines or spans behind an evidence item are: a log page, a trace, or a service page.
export function evidenceHref(item, win, spans = []) {
  const [kind, ...rest] = item.id.split(":");
  const traced = kind !== "span" && kind !== "log" && kind !== "template" ? spanBehind(item, spans) : null;
  if (traced) return hashLink(`/trace/${encodeURIComponent(traced.ids[0])}`, { span: traced.ids[1] });
  if (kind === "log" && item.time) {
    const t = Date.parse(item.time);
    return hashLink("/logs", { service: item.service, since: new Date(t - 2000).toISOString(),
      until: new Date(t + 2000).toISOString(), highlight: rest.join(":") });
  }
  if (kind === "span" && rest.length >= 2) return hashLink(`/trace/${encodeURIComponent(rest[0])}`, { span: rest[1] });
  if (kind === "template") {
    return hashLink("/logs", { template_id: rest.join(":"), since: isoOf(win.start_ns - (win.end_ns - win.start_ns)), until: isoOf(win.end_ns) });
  }
  if (item.service) return serviceLink(item.service, win);
  return null;
}

function causes(expl, win) {
  if (!expl.root_causes.length) return h("p", { class: "muted" }, "No root cause ranked (insufficient evidence).");
  return h("ol", { class: "causes" }, expl.root_causes.map((rc) =>
    h("li", { "data-service": rc.service, "data-rank": rc.rank },
      h("div", { class: "cause-head" },
        h("a", { href: serviceLink(rc.service, win), class: "svc" }, rc.service),
        h("meter", { min: 0, max: 1, value: rc.confidence, "aria-label": `confidence ${pct(rc.confidence)}` }),
        h("span", { class: "conf" }, pct(rc.confidence)), badge(kindLabel(rc.fault_kind), "kind")),
      rc.reasoning ? h("p", { class: "reason" }, rc.reasoning) : null,
      rc.evidence_ids.length ? h("p", { class: "cites" }, "Evidence: ",
        rc.evidence_ids.map((id) => h("button", { type: "button", class: "cite", "data-cite": id, onclick: () => showEvidence(id) }, id))) : null)));
}

function showEvidence(id) {
  let el = document.getElementById(`ev-${id}`);
  if (!el) {
    const more = document.getElementById("ev-more");
    if (more) more.click();
    el = document.getElementById(`ev-${id}`);
  }
  if (!el) return;
  el.setAttribute("tabindex", "-1");
  el.scrollIntoView({ block: "center" });
  el.focus({ preventScroll: true });
}

function edgeTable(map) {
  const cell = (b, d, f) => h("td", { class: "num" }, `${f(b)} → ${f(d)}`);
  return h("details", { class: "edges" }, h("summary", {}, `Call edges: before vs during (${map.edges.length})`),
    h("div", { class: "scroll" }, h("table", {},
      h("caption", {}, `Before ${fmtTime(map.before_start_ns)} – ${fmtTime(map.start_ns)}; during ${fmtTime(map.start_ns)} – ${fmtTime(map.end_ns)}`),
      h("thead", {}, h("tr", {}, ["Caller → callee", "Calls/min", "Errors", "p50 ms", "p95 ms"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, map.edges.map((e) => h("tr", { class: e.on_path ? "on-path" : "" },
        h("th", { scope: "row" }, `${e.caller} → ${e.callee}`),
        cell(e.before, e.during, (x) => num(x.per_min)),
        cell(e.before, e.during, (x) => `${x.errors} (${pct(x.error_rate)})`),
        cell(e.before, e.during, (x) => num(x.p50_ms)),
        cell(e.before, e.during, (x) => num(x.p95_ms))))))));
}

function evidenceList(expl, win) {
  const list = h("ul", { class: "evidence" });
  const spans = citedSpans(expl.evidence);
  const fill = (n) => clear(list).append(...expl.evidence.slice(0, n).map((e) => {
    const href = evidenceHref(e, win, spans);
    const toTrace = href && href.startsWith("#/trace/");
    return h("li", { id: `ev-${e.id}`, "data-kind": e.kind },
      h("div", { class: "ev-head" }, badge(e.kind, "kind"), h("code", {}, e.id),
        e.service ? h("span", { class: "muted" }, e.service) : null, e.time ? h("span", { class: "muted" }, fmtTime(e.time)) : null),
      h("p", { class: "ev-text" }, e.text),
      href ? h("a", { href, class: "ev-link" }, toTrace ? "Open the trace" : e.kind === "log" ? "Open the log lines"
        : e.kind === "template" ? "Open the lines of this template" : "Open the service") : null);
  }));
  fill(EVIDENCE_SHOWN);
  const more = expl.evidence.length > EVIDENCE_SHOWN
    ? h("button", { type: "button", id: "ev-more", onclick: (ev) => { fill(expl.evidence.length); ev.target.remove(); } }, `Show all ${expl.evidence.length}`)
    : null;
  return [list, more];
}

function runbooks(expl) {
  if (!expl.runbooks.length) return h("p", { class: "muted" }, "No runbook linked.");
  return expl.runbooks.map((rb) => h("article", { class: "runbook" },
    h("h3", {}, rb.url ? h("a", { href: rb.url, rel: "noopener noreferrer" }, rb.title) : rb.title, rb.draft ? badge("draft", "draft") : null),
    h("ol", {}, rb.steps.map((s) => h("li", {}, s)))));
}

function similar(expl) {
  if (!expl.similar_incidents.length) return h("p", { class: "muted" }, "No similar past incident found.");
  return h("ul", {}, expl.similar_incidents.map((s) => h("li", {},
    h("a", { href: `#/incident/${encodeURIComponent(s.incident_id)}` }, s.incident_id), ` · ${pct(s.similarity)} alike`,
    s.root_cause ? ` · root cause ${s.root_cause}` : "", s.time ? ` · ${fmtTime(s.time)}` : "", s.summary ? h("p", { class: "muted" }, s.summary) : null)));
}

function agentSteps(expl) {
  return h("details", {}, h("summary", {}, `Agent steps (${expl.run.length} tool calls)`),
    h("div", { class: "scroll" }, h("table", {},
      h("thead", {}, h("tr", {}, ["Agent", "Tool", "Status", "Items", "ms", "Query"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, expl.run.map((s) => h("tr", {}, h("td", {}, s.agent), h("td", {}, h("code", {}, s.tool)),
        h("td", {}, badge(s.status, s.status)), h("td", { class: "num" }, s.items), h("td", { class: "num" }, num(s.duration_ms)),
        h("td", { class: "query" }, h("code", {}, s.query), s.detail ? h("p", { class: "muted" }, s.detail) : null)))))));
}

function feedbackForm(inc, expl, map, rerender) {
  const choices = [...new Set([...(expl ? expl.root_causes.map((r) => r.service) : []), ...(map ? map.nodes.map((n) => n.service) : [])])];
  const out = h("p", { role: "status", class: "muted", id: "feedback-state" });
  const form = h("form", { class: "feedback", "aria-labelledby": "fb-title" },
    h("div", { class: "field" }, h("label", { for: "fb-root" }, "The real root cause"),
      h("input", { id: "fb-root", name: "root_cause", list: "fb-services", value: inc.root_cause || "", required: true }),
      h("datalist", { id: "fb-services" }, choices.map((c) => h("option", { value: c })))),
    h("fieldset", {}, h("legend", {}, "Did the explanation help?"),
      ["yes", "no"].map((v) => h("label", { class: "inline" }, h("input", { type: "radio", name: "helpful", value: v }), ` ${v}`))),
    h("div", { class: "field" }, h("label", { for: "fb-note" }, "Note"), h("textarea", { id: "fb-note", name: "note", rows: 2, maxlength: 4000 })),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Confirm / correct root cause"),
      h("button", { type: "button", id: "resolve", disabled: inc.status === "resolved", onclick: async () => {
        try {
          await post(`/incidents/${encodeURIComponent(inc.id)}/resolve`);
          out.textContent = "Resolved.";
          rerender();
        } catch (err) { out.replaceChildren(errorBox(err)); }
      } }, inc.status === "resolved" ? "Resolved" : "Resolve incident")), out);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const data = new FormData(form);
    const body = { root_cause: String(data.get("root_cause") || "").trim(), note: String(data.get("note") || "") };
    if (data.get("helpful")) body.helpful = data.get("helpful") === "yes";
    try {
      const updated = await post(`/incidents/${encodeURIComponent(inc.id)}/feedback`, body);
      out.textContent = `Recorded: root cause ${body.root_cause} (${updated.feedback.length} feedback so far).`;
    } catch (err) { out.replaceChildren(errorBox(err)); }
  });
  const past = inc.feedback.length ? h("ul", { class: "muted" }, inc.feedback.map((f) =>
    h("li", {}, `${fmtTime(f.time_ns)}: ${f.root_cause || "—"}${f.helpful === null || f.helpful === undefined ? "" : f.helpful ? " · helpful" : " · not helpful"}${f.by ? ` · by ${f.by}` : ""}${f.note ? ` · ${f.note}` : ""}`))) : null;
  return [h("h2", { id: "fb-title" }, "Feedback and resolve"), past, form];
}

export async function render(main, [id], _params, ctx) {
  const enc = encodeURIComponent(id);
  const [resp, map, tl] = await Promise.all([
    get(`/incidents/${enc}`), get(`/incidents/${enc}/map`).catch((e) => e), get(`/incidents/${enc}/timeline`).catch((e) => e),
  ]);
  if (!ctx.isCurrent()) return;
  const { incident: inc, explanation: expl } = resp;
  const win = expl && expl.window ? expl.window : { start_ns: inc.start_ns, end_ns: inc.end_ns };
  const rerender = () => window.dispatchEvent(new HashChangeEvent("hashchange"));
  main.append(h("h1", {}, inc.title || inc.id),
    h("p", { class: "meta" }, badge(inc.status, inc.status), ` started ${fmtTime(inc.alert_ns)} · window ${fmtTime(win.start_ns)} – ${fmtTime(win.end_ns)} · source ${inc.source} · `,
      h("code", {}, inc.id)));
  if (!expl) {
    main.append(section("Not explained yet", "s-none", h("p", {}, "This incident has no explanation yet. "),
      h("a", { href: hashLink("/explain", { incident: inc.id }) }, "Explain it now")));
  } else {
    main.append(
      section("Summary", "s-summary", h("p", { class: "mode" }, expl.mode === "llm" ? `Written by ${expl.model}; citations checked` : "Evidence-only (no language model)"),
        h("p", { class: "summary" }, expl.summary),
        expl.notes.length ? h("ul", { class: "muted notes" }, expl.notes.map((n) => h("li", {}, n))) : null),
      section("Ranked root causes", "s-causes", causes(expl, win)));
  }
  const mapBody = map instanceof Error ? errorBox(map)
    : [h("div", { class: "scroll map-wrap" }, serviceMap(map, (s) => serviceLink(s, win))),
      pathList(expl ? expl.propagation_path : []), legend(), edgeTable(map)];
  main.append(section("Service map", "s-map", mapBody));
  main.append(section("Signal timeline", "s-timeline", tl instanceof Error ? errorBox(tl) : timelineChart(tl)));
  if (expl) {
    main.append(section(`Evidence (${expl.evidence.length})`, "s-evidence", evidenceList(expl, win)),
      section("Runbook steps", "s-runbooks", runbooks(expl)),
      section("Similar past incidents", "s-similar", similar(expl)),
      section("How it was worked out", "s-agents", agentSteps(expl)));
  }
  main.append(h("section", { class: "card" }, feedbackForm(inc, expl, map instanceof Error ? null : map, rerender)));
  return undefined;
}
