// Search: log templates by meaning (GET /search/logs) under filters, with their line counts and examples.
import { get } from "../api.js";
import { badge, fmtTime, h, hashLink, num } from "../dom.js";

function form(params) {
  const field = (name, label, attrs) => h("div", { class: "field" }, h("label", { for: `s-${name}` }, label),
    h("input", { id: `s-${name}`, name, value: params[name] || "", ...attrs }));
  const level = h("select", { id: "s-level", name: "level" },
    ["", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"].map((l) => h("option", { value: l, selected: (params.level || "") === l }, l || "any")));
  const f = h("form", { class: "filters", role: "search", "aria-label": "Search logs" },
    field("q", "Look for", { required: true, placeholder: "connection refused to the database", class: "grow" }),
    field("service", "Service", {}), field("since", "Since", { placeholder: "ISO, epoch or 1h" }),
    field("until", "Until", { placeholder: "ISO, epoch or now" }),
    h("div", { class: "field" }, h("label", { for: "s-level" }, "Level at least"), level),
    h("button", { type: "submit" }, "Search"));
  f.addEventListener("submit", (ev) => {
    ev.preventDefault();
    location.hash = hashLink("/search", Object.fromEntries(new FormData(f)));
  });
  return f;
}

function hit(t) {
  return h("li", { class: "hit", "data-template": t.template_id },
    h("div", { class: "ev-head" }, badge(`${num(t.count, 0)} lines`, "count"), t.level ? badge(t.level, "kind") : null,
      h("span", { class: "muted" }, `similarity ${t.score.toFixed(3)}`),
      h("a", { href: hashLink("/logs", { template_id: t.template_id }) }, "All lines")),
    h("p", {}, h("code", {}, t.text)),
    t.examples.length ? h("ul", { class: "examples" }, t.examples.map((e) => h("li", {},
      h("span", { class: "muted" }, `${fmtTime(e.ts)} ${e.service} `), e.message,
      e.trace_id ? [" ", h("a", { href: `#/trace/${encodeURIComponent(e.trace_id)}` }, "trace")] : null))) : null);
}

export async function render(main, _args, params, ctx) {
  main.append(h("h1", {}, "Search logs"), form(params));
  if (!params.q) {
    main.append(h("p", { class: "muted" }, "Words find log templates by meaning; the filters narrow the lines counted."));
    return undefined;
  }
  const out = await get("/search/logs", { q: params.q, service: params.service, since: params.since, until: params.until,
    level: params.level, limit: 20 });
  if (!ctx.isCurrent()) return undefined;
  main.append(h("p", { class: "muted", role: "status" }, `${out.hits.length} templates in ${num(out.took_ms)} ms`),
    out.hits.length ? h("ol", { class: "hits" }, out.hits.map(hit)) : h("p", {}, "Nothing found."));
  return undefined;
}
