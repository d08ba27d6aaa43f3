// Explain on demand: a service and a time (or a pasted Alertmanager alert, or an incident id), the agents'
// progress as the server streams it (POST /explain?stream=true), then the incident page.
import { get, postStream } from "../api.js";
import { clear, errorBox, h, hashLink } from "../dom.js";

async function knownServices(list) {
  try {
    const out = await get("/query/sql", { statement: "SELECT service FROM logs GROUP BY service ORDER BY service", limit: 1000 });
    clear(list).append(...out.rows.map((r) => h("option", { value: r[0] })));
  } catch {
    // the list only helps typing; the form works without it
  }
}

function requestOf(data) {
  if (data.mode === "alert") {
    let alert;
    try {
      alert = JSON.parse(data.alert);
    } catch (err) {
      throw Object.assign(new Error(`the alert is not JSON: ${err.message}`), { field: "alert" });
    }
    if (alert && Array.isArray(alert.alerts)) alert = alert.alerts.find((a) => (a.status || "firing") === "firing") || alert.alerts[0];
    return { alert };
  }
  if (data.mode === "incident") return { incident_id: data.incident.trim() };
  const req = {};
  if (data.service.trim()) req.service = data.service.trim();
  if (data.at) {
    const ms = Date.parse(`${data.at}Z`);
    if (Number.isNaN(ms)) throw Object.assign(new Error("not a time"), { field: "at" });
    req.at_ns = ms * 1e6;
  }
  if (!req.service && !req.at_ns) throw Object.assign(new Error("give a service, a time, or both"), { field: "service" });
  return req;
}

export async function render(main, _args, params) {
  const mode = params.incident ? "incident" : params.mode || "service";
  const list = h("datalist", { id: "explain-services" });
  const progress = h("ol", { class: "progress", "aria-label": "Progress" });
  const words = h("p", { class: "words" });
  const state = h("div", { role: "status", id: "explain-state" });
  const radio = (value, label) => h("label", { class: "inline" },
    h("input", { type: "radio", name: "mode", value, checked: mode === value }), ` ${label}`);
  const form = h("form", { class: "explain", "aria-labelledby": "explain-h" },
    h("fieldset", {}, h("legend", {}, "What to explain"),
      radio("service", "a service and a time"), radio("alert", "a pasted alert"), radio("incident", "an incident again")),
    h("div", { class: "field" }, h("label", { for: "x-service" }, "Service"),
      h("input", { id: "x-service", name: "service", list: "explain-services", value: params.service || "", placeholder: "ts-order-service" })),
    h("div", { class: "field" }, h("label", { for: "x-at" }, "When it started (UTC)"),
      h("input", { id: "x-at", name: "at", type: "datetime-local", step: 1, value: params.at || "" })),
    h("div", { class: "field wide" }, h("label", { for: "x-alert" }, "Alert (Alertmanager JSON: one alert or a webhook body)"),
      h("textarea", { id: "x-alert", name: "alert", rows: 5, spellcheck: "false" })),
    h("div", { class: "field" }, h("label", { for: "x-incident" }, "Incident id"),
      h("input", { id: "x-incident", name: "incident", value: params.incident || "" })),
    h("div", { class: "actions" }, h("button", { type: "submit", id: "explain-go" }, "Explain")));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clear(progress);
    words.textContent = "";
    let req;
    try {
      req = requestOf(Object.fromEntries(new FormData(form)));
    } catch (err) {
      state.replaceChildren(errorBox(err));
      return;
    }
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    state.replaceChildren(h("span", { class: "spinner", "aria-hidden": "true" }), " The agents are at work…");
    let incidentId = null;
    let failed = null;
    try {
      await postStream("/explain", req, (name, data) => {
        if (name === "incident") {
          incidentId = data.id;
          progress.append(h("li", {}, `Incident ${data.id} opened: ${data.title}`));
        } else if (name === "progress") {
          progress.append(h("li", { "data-agent": data.agent }, `${data.agent}: ${data.steps} tool calls, ${data.evidence} evidence items`));
        } else if (name === "words") {
          if (data.restart) words.textContent = "";
          else words.textContent += data.text || "";
        } else if (name === "explanation") {
          progress.append(h("li", {}, "Explanation written and stored."));
        } else if (name === "error") {
          failed = Object.assign(new Error(data.message || "the explanation failed"), { status: 0 });
        }
      });
    } catch (err) {
      failed = err;
    } finally {
      button.disabled = false;
    }
    if (failed) {
      state.replaceChildren(errorBox(failed));
      return;
    }
    state.replaceChildren("Done. ", h("a", { href: `#/incident/${encodeURIComponent(incidentId)}` }, "Open the incident"));
    location.hash = `#/incident/${encodeURIComponent(incidentId)}`;
  });
  main.append(h("h1", { id: "explain-h" }, "Explain an incident"),
    h("p", { class: "muted" }, "Name a service and when the trouble started, paste the alert that fired, or explain an incident again. "
      + "The agents' progress appears as they finish; the incident page opens at the end."),
    form, list, state, progress, words, h("p", {}, h("a", { href: hashLink("/incidents") }, "Back to the incidents")));
  knownServices(list);
  return undefined;
}
