// The service map as inline SVG: services layered left to right by call depth (callers before callees),
// ordered within a layer by their callers' positions; root causes, candidates and the propagation path marked.
import { h, kindLabel, pct, svg } from "./dom.js";

const W = 200;
const H = 46;
const GAP_X = 70;
const GAP_Y = 22;
const PAD = 16;

function depths(names, edges) {
  const depth = new Map(names.map((n) => [n, 0]));
  for (let i = 0; i < names.length; i++) {
    let changed = false;
    for (const e of edges) {
      if (e.caller === e.callee) continue;
      const d = depth.get(e.caller) + 1;
      if (d > depth.get(e.callee) && d < names.length) {
        depth.set(e.callee, d);
        changed = true;
      }
    }
    if (!changed) break;
  }
  return depth;
}

export function layout(nodes, edges) {
  const names = nodes.map((n) => n.service);
  const depth = depths(names, edges);
  const layers = [];
  for (const n of [...names].sort()) {
    const d = depth.get(n);
    (layers[d] ||= []).push(n);
  }
  const dense = layers.filter(Boolean);
  const pos = new Map();
  const place = () => dense.forEach((layer, x) => layer.forEach((n, y) => pos.set(n, { x, y })));
  place();
  for (let sweep = 0; sweep < 3; sweep++) {
    for (const layer of dense.slice(1)) {
      const bary = new Map(layer.map((n) => {
        const ys = edges.filter((e) => e.callee === n && pos.get(e.caller).x < pos.get(n).x).map((e) => pos.get(e.caller).y);
        return [n, ys.length ? ys.reduce((a, b) => a + b, 0) / ys.length : pos.get(n).y];
      }));
      layer.sort((a, b) => bary.get(a) - bary.get(b) || a.localeCompare(b));
    }
    place();
  }
  const rows = Math.max(1, ...dense.map((l) => l.length));
  return { pos, columns: dense.length, rows };
}

function shortName(name) {
  return name.length > 24 ? `${name.slice(0, 23)}…` : name;
}

function worse(e) {
  const b = e.before;
  const d = e.during;
  return d.error_rate > b.error_rate + 0.05 || (b.p95_ms && d.p95_ms && d.p95_ms > 2 * b.p95_ms) || (b.calls > 0 && d.calls === 0);
}

function edgeTitle(e) {
  const f = (x) => `${x.per_min}/min, ${x.errors} errors (${pct(x.error_rate)}), p95 ${x.p95_ms ?? "—"} ms`;
  return `${e.caller} → ${e.callee}\nbefore: ${f(e.before)}\nduring: ${f(e.during)}`;
}

export function serviceMap(map, serviceHref) {
  const { pos, columns, rows } = layout(map.nodes, map.edges);
  const width = PAD * 2 + columns * W + (columns - 1) * GAP_X;
  const height = PAD * 2 + rows * H + (rows - 1) * GAP_Y;
  const at = (n) => {
    const p = pos.get(n);
    return { x: PAD + p.x * (W + GAP_X), y: PAD + p.y * (H + GAP_Y) };
  };
  const root = map.nodes.find((n) => n.rank === 1);
  const el = svg("svg", {
    class: "service-map", width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-labelledby": "map-title map-desc",
  },
  svg("title", { id: "map-title" }, "Service map around the incident"),
  svg("desc", { id: "map-desc" }, `${map.nodes.length} services and ${map.edges.length} call edges; `
    + (root ? `root cause ${root.service} highlighted.` : "no root cause ranked.")
    + " The table below lists every edge's figures."),
  svg("defs", {},
    ...[["arrow", "edge-arrow"], ["arrow-hot", "edge-arrow hot"]].map(([id, cls]) =>
      svg("marker", { id, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
        svg("path", { d: "M0,0 L10,5 L0,10 z", class: cls })))));
  for (const e of map.edges) {
    const a = at(e.caller);
    const b = at(e.callee);
    let d;
    if (pos.get(e.callee).x > pos.get(e.caller).x) {
      const x1 = a.x + W;
      const y1 = a.y + H / 2;
      const x2 = b.x - 2;
      const y2 = b.y + H / 2;
      const mx = (x1 + x2) / 2;
      d = `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`;
    } else {
      const x1 = a.x + W / 2;
      const y1 = a.y + H;
      const x2 = b.x + W / 2;
      const y2 = b.y + H + 2;
      d = `M${x1},${y1} C${x1},${y1 + 40} ${x2},${y2 + 40} ${x2},${y2}`;
    }
    const hot = e.on_path || worse(e);
    const widthPx = Math.min(6, 1 + Math.log10(1 + e.during.per_min));
    const step = e.path_step ? { "data-path-step": e.path_step } : {};
    el.append(svg("path", {
      d, class: `edge${e.on_path ? " path" : ""}${worse(e) ? " worse" : ""}`, "stroke-width": widthPx.toFixed(2),
      "marker-end": `url(#${hot ? "arrow-hot" : "arrow"})`, "data-caller": e.caller, "data-callee": e.callee, ...step,
    }, svg("title", {}, `${e.path_step ? `propagation step ${e.path_step}: ` : ""}${edgeTitle(e)}`)));
  }
  for (const n of map.nodes) {
    const { x, y } = at(n.service);
    const role = n.rank === 1 ? "root" : n.rank ? "candidate" : n.on_path ? "path" : "plain";
    const second = n.rank ? `#${n.rank} · ${pct(n.confidence)} · ${kindLabel(n.fault_kind)}` : n.named ? "named by the incident" : "";
    const label = `${n.service}${n.rank ? `, ranked ${n.rank} with ${pct(n.confidence)} confidence, ${kindLabel(n.fault_kind)}` : ""}`;
    el.append(svg("a", { href: serviceHref(n.service), "aria-label": label },
      svg("g", { class: `node ${role}${n.named ? " named" : ""}${n.on_path ? " on-path" : ""}`, "data-service": n.service, "data-role": role },
        svg("rect", { x, y, width: W, height: H, rx: 6 }),
        svg("text", { x: x + 10, y: y + (second ? 19 : 28), class: "name" }, shortName(n.service)),
        second ? svg("text", { x: x + 10, y: y + 37, class: "sub" }, second) : null,
        svg("title", {}, label))));
  }
  return el;
}

// The propagation path in words, root cause first (the map's path edges carry the same order in data-path-step).
export function pathList(steps) {
  if (!steps || !steps.length) return null;
  return h("div", { class: "path-list", id: "map-path" }, "Propagation path: ",
    h("ol", { class: "inline-steps", "aria-label": "propagation path from the root cause to the symptom" },
      [steps[0].source, ...steps.map((s) => s.target)].map((name, i) => h("li", { "data-step": i }, name))));
}

export function legend() {
  const item = (cls, text) => h("li", {}, h("span", { class: `swatch ${cls}`, "aria-hidden": "true" }), text);
  return h("ul", { class: "legend", "aria-label": "Map legend" },
    item("root", "top root cause"), item("candidate", "other ranked causes"), item("path", "propagation path"),
    item("worse", "edge worse during than before (errors, p95 or calls stopped)"));
}
