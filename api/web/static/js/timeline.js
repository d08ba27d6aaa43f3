// The signal timeline as inline SVG: one lane per series, grouped (error lines per service, the busiest error
// templates, latency p50/p95 of the root cause and its callers, saturation metrics, restarts), all on one time
// axis with the fault time marked. Each lane is a <g class="tl-lane"> with data-kind and a <title>.
import { fmtTime, h, num, svg } from "./dom.js";

const WIDTH = 760;
const LEFT = 250;
const RIGHT = 70;
const LANE = 30;
const HEAD = 22;

function cut(text, n) {
  return text.length > n ? `${text.slice(0, n - 1)}…` : text;
}

function groups(tl) {
  const services = [...new Set(tl.errors.map((p) => p.service))].sort();
  const bars = (points, value) => points.map((p) => ({ t: p.bucket_ns, v: value(p) }));
  return [
    ["Error lines per minute", services.map((s) => ({
      kind: "errors", service: s, label: s, unit: "lines",
      bars: bars(tl.errors.filter((p) => p.service === s), (p) => p.errors),
    }))],
    ["Error templates", tl.templates.map((t) => ({
      kind: "template", service: t.service, key: t.template_id, label: `${t.service}: ${t.text || t.template_id}`,
      unit: "lines", bars: bars(t.points, (p) => p.count),
    }))],
    ["Latency of the root cause and its callers (p95 solid, p50 dashed)", tl.latency.map((l) => ({
      kind: "latency", service: l.service, key: l.operation, label: `${l.service} ${l.operation} (${l.role})`, unit: "ms",
      lines: [bars(l.points, (p) => p.p95_ms), bars(l.points, (p) => p.p50_ms)],
    }))],
    ["Saturation", tl.saturation.map((m) => ({
      kind: "saturation", service: m.service, key: m.name, label: `${m.service} ${m.name}${m.cited ? " (cited)" : ""}`,
      unit: "", lines: [bars(m.points, (p) => p.value)],
    }))],
    ["Restarts", tl.restarts.length ? [{ kind: "restarts", label: "crash loops, OOM kills, pod changes", marks: tl.restarts }] : []],
  ].filter(([, lanes]) => lanes.length);
}

export function timelineChart(tl) {
  const gs = groups(tl);
  const notes = tl.notes.length ? h("ul", { class: "muted notes" }, tl.notes.map((n) => h("li", {}, n))) : null;
  if (!gs.length) return [h("p", { class: "muted" }, "No error lines, spans, metrics or restarts around the incident."), notes];
  const span = tl.end_ns - tl.start_ns;
  const plotW = WIDTH - LEFT - RIGHT;
  const xOf = (ns) => LEFT + ((ns - tl.start_ns) / span) * plotW;
  const bw = Math.max(2, ((tl.bucket_s * 1e9) / span) * plotW - 1);
  const height = gs.reduce((n, [, lanes]) => n + HEAD + lanes.length * LANE, 0) + 30;
  const per = tl.bucket_s === 60 ? "minute" : `${tl.bucket_s / 60} minutes`;
  const chart = svg("svg", { class: "timeline", width: WIDTH, height, viewBox: `0 0 ${WIDTH} ${height}`, role: "img",
    "aria-label": `Signals per ${per} around the incident (${gs.map(([t]) => t).join("; ")}); the fault time is marked` });
  let y = 0;
  for (const [title, lanes] of gs) {
    chart.append(svg("text", { x: 0, y: y + 15, class: "tl-group" }, title));
    y += HEAD;
    for (const lane of lanes) {
      const y0 = y + LANE - 4;
      const g = svg("g", { class: `tl-lane ${lane.kind}`, "data-kind": lane.kind, "data-service": lane.service || "", "data-key": lane.key || "" },
        svg("title", {}, lane.label),
        svg("text", { x: 0, y: y0 - 6, class: "tl-label" }, cut(lane.label, 38)),
        svg("line", { x1: LEFT, x2: LEFT + plotW, y1: y0, y2: y0, class: "tl-axis" }));
      const values = lane.bars || (lane.lines || []).flat();
      const max = Math.max(0, ...values.map((p) => p.v));
      const yOf = (v) => y0 - (max > 0 ? (v / max) * (LANE - 8) : 0);
      for (const p of lane.bars || []) {
        g.append(svg("rect", { x: xOf(p.t), y: yOf(p.v), width: bw, height: Math.max(1, y0 - yOf(p.v)), class: "tl-bar" },
          svg("title", {}, `${lane.label}: ${p.v} ${lane.unit} in the ${per} from ${fmtTime(p.t)}`)));
      }
      (lane.lines || []).forEach((pts, i) => {
        if (!pts.length) return;
        const d = pts.map((p, j) => `${j ? "L" : "M"}${(xOf(p.t) + bw / 2).toFixed(1)},${yOf(p.v).toFixed(1)}`).join(" ");
        g.append(svg("path", { d, class: `tl-line${i ? " second" : ""}` }));
        for (const p of i ? [] : pts) {
          g.append(svg("circle", { cx: xOf(p.t) + bw / 2, cy: yOf(p.v), r: 2, class: "tl-dot" },
            svg("title", {}, `${lane.label} from ${fmtTime(p.t)}: ${num(p.v, 2)} ${lane.unit}`)));
        }
      });
      if (max > 0) g.append(svg("text", { x: LEFT + plotW + 4, y: y0 - 12, class: "tl-note" }, `max ${num(max, max < 10 ? 2 : 0)}`));
      for (const m of lane.marks || []) {
        g.append(svg("path", { d: `M${xOf(m.bucket_ns) + bw / 2},${y0 - 18} l6,10 l-12,0 z`, class: `tl-mark ${m.what.replace(/ /g, "-")}`,
          "data-what": m.what, "data-pod": m.pod },
          svg("title", {}, `${m.what}: ${m.service}${m.pod ? ` pod ${m.pod}` : ""} in the ${per} from ${fmtTime(m.bucket_ns)}${m.count > 1 ? ` (${m.count} lines)` : ""}${m.text ? `: ${m.text}` : ""}`)));
      }
      chart.append(g);
      y += LANE;
    }
  }
  const fx = xOf(tl.alert_ns);
  chart.append(svg("line", { x1: fx, x2: fx, y1: 4, y2: height - 22, class: "tl-fault" }),
    svg("text", { x: fx + 4, y: height - 8, class: "tl-note" }, `fault ${fmtTime(tl.alert_ns)}`),
    svg("text", { x: LEFT, y: height - 8, class: "tl-note", "text-anchor": "end" }, fmtTime(tl.start_ns)));
  return [h("div", { class: "scroll" }, chart), notes];
}
