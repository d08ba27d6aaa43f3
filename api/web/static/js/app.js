// The console's router: hash routes (#/incidents, #/incident/<id>, #/explain, #/search, #/logs, #/trace/<id>,
// #/service/<name>), each rendered by a view module into <main>; the API key form in the header.
import { getKey, setKey } from "./api.js";
import { clear, errorBox, hashParams } from "./dom.js";
import * as explain from "./views/explain.js";
import * as incident from "./views/incident.js";
import * as incidents from "./views/incidents.js";
import * as logs from "./views/logs.js";
import * as search from "./views/search.js";
import * as service from "./views/service.js";

const ROUTES = [
  [/^\/?$/, incidents, "incidents"],
  [/^\/incidents$/, incidents, "incidents"],
  [/^\/incident\/([^/]+)$/, incident, "incidents"],
  [/^\/explain$/, explain, "explain"],
  [/^\/search$/, search, "search"],
  [/^\/logs$/, logs.logsView, "search"],
  [/^\/trace\/([^/]+)$/, logs.traceView, "search"],
  [/^\/service\/([^/]+)$/, service, "incidents"],
];

let cleanup = null;
let generation = 0;

async function route() {
  const main = document.getElementById("view");
  const raw = location.hash.replace(/^#/, "");
  if (raw && !raw.startsWith("/")) return; // an in-page anchor (the skip link), not a page
  const [path, query] = raw.split("?");
  if (cleanup) {
    cleanup();
    cleanup = null;
  }
  const gen = ++generation;
  const found = ROUTES.find(([re]) => re.test(path));
  clear(main);
  if (!found) {
    main.append(errorBox(new Error(`no page at #${path}`)));
    return;
  }
  const [re, view, nav] = found;
  for (const a of document.querySelectorAll("[data-nav]")) {
    if (a.dataset.nav === nav) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const args = path.match(re).slice(1).map(decodeURIComponent);
  main.setAttribute("aria-busy", "true");
  try {
    const result = await view.render(main, args, hashParams(query), { isCurrent: () => gen === generation });
    if (gen === generation && typeof result === "function") cleanup = result;
  } catch (err) {
    if (gen !== generation) return;
    clear(main).append(errorBox(err));
  } finally {
    if (gen === generation) {
      main.removeAttribute("aria-busy");
      main.dataset.ready = String(gen);
      const heading = main.querySelector("h1");
      if (heading) {
        document.title = `${heading.textContent} · DevMesh`;
        if (document.activeElement === document.body || document.activeElement === main) {
          heading.setAttribute("tabindex", "-1");
          heading.focus({ preventScroll: true });
        }
      }
    }
  }
}

function keyForm() {
  const form = document.getElementById("key-form");
  const input = document.getElementById("api-key");
  const state = document.getElementById("key-state");
  const show = () => {
    state.textContent = getKey() ? "key set for this tab" : "no key (loopback servers without keys answer anyway)";
  };
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    setKey(input.value.trim());
    input.value = "";
    show();
    route();
  });
  document.getElementById("key-forget").addEventListener("click", () => {
    setKey("");
    show();
    route();
  });
  show();
}

keyForm();
window.addEventListener("hashchange", route);
route();
