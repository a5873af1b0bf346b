// Sluice console: sign-in, then the Query, Watch and (for admins) Administer views.

import { credential, setCredential, json } from "./api.js";
import { startSignIn, finishSignIn } from "./auth.js";
import { el, clear, showError } from "./ui.js";
import { QueryView } from "./query.js";
import { WatchView } from "./watch.js";
import { AdminView } from "./admin.js";

const app = document.getElementById("app");
const nonce = document.querySelector('meta[name="csp-nonce"]')?.content;

async function boot() {
  let settings = {};
  try {
    settings = await (await fetch("/console/config.json", { cache: "no-store" })).json();
  } catch {
    // Sign-in with a key still works.
  }
  let failure = null;
  try {
    await finishSignIn(settings.oidc);
  } catch (e) {
    failure = { code: "sign_in_failed", message: e.message };
  }
  if (credential() && !failure) {
    try {
      const me = await json("/v1/me");
      return start({ settings, me, nonce });
    } catch (e) {
      setCredential(null);
      failure = e;
    }
  }
  signIn(settings, failure);
}

function signIn(settings, failure) {
  clear(app);
  const key = el("input", { id: "api-key", type: "password", autocomplete: "off", required: true, placeholder: "sluice_key_…", "aria-describedby": "key-help" });
  const error = el("div", { id: "signin-error", role: "alert" });
  const form = el("form", { onsubmit: async (e) => {
    e.preventDefault();
    setCredential(key.value.trim());
    try {
      const me = await json("/v1/me");
      start({ settings, me, nonce });
    } catch (err) {
      setCredential(null);
      showError(error, err);
      key.focus();
    }
  } },
    el("label", { for: "api-key", style: "display:block" }, "API key"),
    key,
    el("div", { id: "key-help", class: "muted" }, "Kept in this tab's session storage only; closing the tab signs you out."),
    el("button", { class: "primary", type: "submit", id: "sign-in" }, "Sign in"));
  const panel = el("section", { class: "panel signin", "aria-labelledby": "signin-title" },
    el("h2", { id: "signin-title" }, "Sign in to Sluice"), form, error);
  if (settings.oidc) {
    panel.append(el("hr"), el("button", { id: "sign-in-oidc", onclick: () => startSignIn(settings.oidc).catch((e) => showError(error, { code: "sign_in_failed", message: e.message })) },
      `Sign in with ${new URL(settings.oidc.issuer).host}`));
  }
  app.append(el("header", { class: "top" }, el("h1", {}, "Sluice")), el("main", {}, panel));
  if (failure) showError(error, failure);
  key.focus();
}

let current = null;

// A credential that stops working mid-session (expired token, revoked key) signs the tab out,
// saying why.
window.addEventListener("sluice:signed-out", (e) => {
  if (!current) return;
  const settings = current.settings;
  current.views.watch.stop();
  current = null;
  setCredential(null);
  signIn(settings, e.detail);
});

function start(ctx) {
  clear(app);
  const admin = ctx.me.role === "admin";
  const views = {};
  const nav = el("nav", { role: "tablist", "aria-label": "Views" });
  const main = el("main", {});
  const tabs = [["query", "Query"], ["watch", "Watch"], ...(admin ? [["admin", "Administer"]] : [])];
  for (const [id, label] of tabs) {
    nav.append(el("button", { role: "tab", id: `nav-${id}`, "aria-controls": `view-${id}`, onclick: () => show(id) }, label));
    main.append(el("section", { class: "view", id: `view-${id}`, role: "tabpanel", "aria-labelledby": `nav-${id}` }));
  }
  const who = el("div", { class: "who" },
    el("span", { id: "whoami" }, `${ctx.me.name} · ${ctx.me.role}`),
    el("button", { id: "sign-out", onclick: () => { current = null; setCredential(null); location.replace("/console/"); } }, "Sign out"));
  app.append(el("header", { class: "top" }, el("h1", {}, "Sluice"), nav, who), main);

  const query = new QueryView(main.querySelector("#view-query"), ctx);
  views.query = query;
  views.watch = new WatchView(main.querySelector("#view-watch"), ctx);
  if (admin) views.admin = new AdminView(main.querySelector("#view-admin"), ctx);
  current = { settings: ctx.settings, views };
  query.loadTables();

  function show(id) {
    if (!views[id]) id = "query";
    for (const [v] of tabs) {
      document.getElementById(`nav-${v}`).setAttribute("aria-selected", String(v === id));
      document.getElementById(`view-${v}`).classList.toggle("active", v === id);
    }
    if (id === "watch") views.watch.start();
    else views.watch.stop();
    if (id === "admin") views.admin.load();
    if (location.hash !== "#" + id) history.replaceState(null, "", "#" + id);
    if (id === "query") query.editor.focus();
  }
  window.addEventListener("hashchange", () => show(location.hash.slice(1)));
  // Alt-1, Alt-2, Alt-3 switch views.
  window.addEventListener("keydown", (e) => {
    if (e.altKey && !e.ctrlKey && !e.metaKey && /^[1-3]$/.test(e.key) && tabs[Number(e.key) - 1]) {
      e.preventDefault();
      show(tabs[Number(e.key) - 1][0]);
    }
  });
  show(location.hash.slice(1) || "query");
}

boot();
