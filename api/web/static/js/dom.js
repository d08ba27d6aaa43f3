// Small DOM helpers: elements built with text nodes only (never HTML from data), and formatting.
const SVG_NS = "http://www.w3.org/2000/svg";

function fill(el, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.setAttribute("class", v);
    else if (k === "text") el.textContent = v;
    else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function h(tag, attrs, ...children) {
  return fill(document.createElement(tag), attrs, children);
}

export function svg(tag, attrs, ...children) {
  return fill(document.createElementNS(SVG_NS, tag), attrs, children);
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

// A time given as ns since the epoch (a number) or ISO text, shown as UTC to the second.
export function fmtTime(t) {
  if (t === undefined || t === null || t === "" || t === 0) return "—";
  const d = typeof t === "number" ? new Date(t / 1e6) : new Date(t);
  if (Number.isNaN(d.getTime())) return String(t);
  return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

export function isoOf(ns) {
  return new Date(ns / 1e6).toISOString();
}

export function pct(x) {
  return x === undefined || x === null ? "—" : `${Math.round(x * 100)}%`;
}

export function num(x, digits = 1) {
  if (x === undefined || x === null) return "—";
  return Number(x).toLocaleString("en-US", { maximumFractionDigits: digits });
}

export function kindLabel(kind) {
  return kind ? kind.replace(/_/g, " ") : "—";
}

export function hashParams(query) {
  return Object.fromEntries(new URLSearchParams(query || ""));
}

export function hashLink(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const s = q.toString();
  return `#${path}${s ? `?${s}` : ""}`;
}

// An error from the API as an alert the reader cannot miss; 401 and 403 say what to do.
export function errorBox(err) {
  let text = err && err.message ? err.message : String(err);
  let title = "Something went wrong";
  if (err && err.status === 401) {
    title = "Refused (401): this server needs an API key";
    text = `${text}. Enter a key above (\`devmesh keys create --scope read\`).`;
  } else if (err && err.status === 403) {
    title = "Refused (403): the key lacks a scope";
  } else if (err && err.status) {
    title = `Error ${err.status}${err.field ? ` (field ${err.field})` : ""}`;
  }
  return h("div", { class: "error", role: "alert", "data-status": err && err.status ? err.status : "" },
    h("strong", {}, title), h("p", {}, text));
}

export function badge(text, cls) {
  return h("span", { class: `badge ${cls || ""}` }, text);
}

export function section(title, id, ...children) {
  return h("section", { class: "card", "aria-labelledby": id }, h("h2", { id }, title), ...children);
}
