// The lines and spans behind evidence: a filtered log page (GET /query/logs) with the cited line marked, and
// a trace's spans (GET /traces/{id}) as a tree with the cited span marked, and the trace's log lines.
import { get } from "../api.js";
import { badge, fmtTime, h, hashLink, num } from "../dom.js";

function lineRow(e, highlight) {
  const hit = highlight && Number(highlight) === Number(e.event_id);
  return h("tr", { class: hit ? "hit" : "", "data-event": String(e.event_id), "aria-current": hit ? "true" : false },
    h("td", {}, fmtTime(e.ts)), h("td", {}, badge(e.level || "—", `lvl-${(e.level || "").toLowerCase()}`)),
    h("td", {}, h("a", { href: `#/service/${encodeURIComponent(e.service)}` }, e.service)),
    h("td", { class: "msg" }, e.message),
    h("td", {}, e.trace_id ? h("a", { href: `#/trace/${encodeURIComponent(e.trace_id)}`, "aria-label": `trace ${e.trace_id}` }, "trace") : ""));
}

function linesTable(caption) {
  const tbody = h("tbody");
  const table = h("div", { class: "scroll" }, h("table", { class: "lines" }, h("caption", {}, caption),
    h("thead", {}, h("tr", {}, ["Time (UTC)", "Level", "Service", "Message", ""].map((t) => h("th", { scope: "col" }, t)))), tbody));
  return { table, tbody };
}

export const logsView = {
  async render(main, _args, params, ctx) {
    const filters = { since: params.since, until: params.until, service: params.service, template_id: params.template_id,
      trace_id: params.trace_id, level: params.level, contains: params.contains, order: "asc", limit: 200 };
    const shown = Object.entries(filters).filter(([k, v]) => v && !["order", "limit"].includes(k)).map(([k, v]) => `${k} ${v}`);
    main.append(h("h1", {}, "Log lines"), h("p", { class: "muted" }, shown.join(" · ") || "all lines"));
    const { table, tbody } = linesTable("Oldest first");
    const more = h("button", { type: "button", hidden: true }, "Later lines");
    main.append(table, more);
    let cursor = null;
    const load = async () => {
      const page = await get("/query/logs", { ...filters, cursor });
      if (!ctx.isCurrent()) return;
      tbody.append(...page.events.map((e) => lineRow(e, params.highlight)));
      cursor = page.next_cursor;
      more.hidden = !cursor;
    };
    more.addEventListener("click", () => load());
    await load();
    if (!tbody.children.length) tbody.append(h("tr", {}, h("td", { colspan: 5, class: "muted" }, "No lines match.")));
    const hit = tbody.querySelector("tr.hit");
    if (hit) hit.scrollIntoView({ block: "center" });
    return undefined;
  },
};

function spanTree(spans) {
  const byId = new Map(spans.map((s) => [s.span_id, s]));
  const depth = (s) => {
    let d = 0;
    let p = s;
    while (p && p.parent_id && byId.has(p.parent_id) && d < 50) {
      p = byId.get(p.parent_id);
      d++;
    }
    return d;
  };
  return spans.map((s) => ({ ...s, depth: depth(s) }));
}

export const traceView = {
  async render(main, [traceId], params, ctx) {
    const [trace, logs] = await Promise.all([
      get(`/traces/${encodeURIComponent(traceId)}`), get("/query/logs", { trace_id: traceId, order: "asc", limit: 500 }),
    ]);
    if (!ctx.isCurrent()) return undefined;
    main.append(h("h1", {}, `Trace ${traceId}`));
    const rows = spanTree(trace.spans).map((s) => {
      const hit = params.span && params.span === s.span_id;
      return h("tr", { class: hit ? "hit" : "", "data-span": s.span_id, "aria-current": hit ? "true" : false },
        h("td", { class: `indent-${Math.min(s.depth, 12)}` }, s.operation),
        h("td", {}, h("a", { href: `#/service/${encodeURIComponent(s.service)}` }, s.service)),
        h("td", {}, fmtTime(s.start)), h("td", { class: "num" }, num(s.duration_us / 1000, 2)),
        h("td", {}, badge(s.status || "—", s.status === "ERROR" ? "lvl-error" : "")), h("td", {}, h("code", {}, s.span_id)));
    });
    main.append(h("section", { class: "card", "aria-labelledby": "t-spans" }, h("h2", { id: "t-spans" }, `Spans (${trace.spans.length})`),
      trace.spans.length ? h("div", { class: "scroll" }, h("table", { class: "spans" },
        h("thead", {}, h("tr", {}, ["Operation", "Service", "Start (UTC)", "ms", "Status", "Span"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, rows))) : h("p", { class: "muted" }, "No spans stored for this trace.")));
    const { table, tbody } = linesTable("Log lines of this trace, oldest first");
    tbody.append(...logs.events.map((e) => lineRow(e, null)));
    main.append(h("section", { class: "card", "aria-labelledby": "t-logs" }, h("h2", { id: "t-logs" }, `Log lines (${logs.events.length})`), table),
      h("p", {}, h("a", { href: hashLink("/logs", { trace_id: traceId }) }, "Open as a log page")));
    return undefined;
  },
};
