// The Administer view (admins only; the API refuses everyone else anyway): keys with their
// grants and limits, created, rotated and revoked, the secret shown once; usage per key per day.

import { call, json } from "./api.js";
import { el, clear, bytes, number, showError, copy } from "./ui.js";

/** `src.schema.table` patterns, comma- or line-separated, as grants (`*` in any part). */
export function parseGrants(text) {
  return text
    .split(/[\s,]+/)
    .filter(Boolean)
    .map((g) => {
      const [source = "*", schema = "*", table = "*", ...rest] = g.split(".");
      if (rest.length) throw new Error(`grant ${g}: at most source.schema.table`);
      return { source, schema, table };
    });
}

export class AdminView {
  constructor(root, ctx) {
    this.ctx = ctx;
    this.error = el("div", { id: "admin-error", role: "alert" });
    this.secret = el("div", { id: "secret-box" });
    this.keys = el("tbody", { id: "keys-body" });
    this.usage = el("div", { id: "usage" });
    const field = (label, input) => el("label", {}, label, input);
    this.form = el("form", { class: "grid-form", id: "create-key", onsubmit: (e) => { e.preventDefault(); this.create(); } },
      field("Name", el("input", { name: "name", required: true, autocomplete: "off" })),
      field("Role", el("select", { name: "role" }, el("option", { value: "reader" }, "reader"), el("option", { value: "admin" }, "admin"))),
      field("Grants (source.schema.table, * allowed)", el("input", { name: "grants", placeholder: "local.public.*", autocomplete: "off" })),
      field("Requests per second", el("input", { name: "per_second", type: "number", min: 1 })),
      field("Burst", el("input", { name: "burst", type: "number", min: 1 })),
      field("Concurrent queries", el("input", { name: "max_concurrent", type: "number", min: 1 })),
      field("Expires (UTC)", el("input", { name: "expires_at", type: "datetime-local" })),
      el("div", {}, el("button", { class: "primary", type: "submit", id: "create-key-submit" }, "Create key")));
    root.append(
      this.error,
      el("section", { class: "panel", "aria-label": "Create a key" }, el("h2", {}, "Create a key"), this.form, this.secret),
      el("section", { class: "panel", "aria-label": "Keys" }, el("h2", {}, "Keys"),
        el("table", { class: "list", id: "keys" },
          el("thead", {}, el("tr", {}, ...["name", "id", "role", "grants", "limits", "created", "state", ""].map((h) => el("th", {}, h)))),
          this.keys)),
      el("section", { class: "panel", "aria-label": "Usage" }, el("h2", {}, "Usage per day"), this.usage),
    );
  }

  async load() {
    try {
      const { keys } = await json("/v1/keys");
      showError(this.error, null);
      clear(this.keys);
      for (const k of keys) this.keys.append(this.row(k));
    } catch (e) {
      showError(this.error, e);
    }
  }

  row(k) {
    const state = k.revoked_at ? "revoked" : k.expires_at && Date.parse(k.expires_at) < Date.now() ? "expired" : "active";
    const grants = k.role === "admin" ? "everything" : k.grants.map((g) => `${g.source}.${g.schema}.${g.table}`).join(", ") || "none";
    const limits = [
      k.rate_limit ? `${k.rate_limit.per_second}/s${k.rate_limit.burst ? ` burst ${k.rate_limit.burst}` : ""}` : null,
      k.max_concurrent ? `${k.max_concurrent} at once` : null,
    ].filter(Boolean).join(", ") || "role's";
    const actions = el("td", {},
      el("button", { onclick: () => this.showUsage(k) }, "Usage"), " ",
      state === "active" ? el("button", { "data-rotate": k.name, onclick: () => this.rotate(k) }, "Rotate") : null, " ",
      state === "active" ? el("button", { class: "danger", "data-revoke": k.name, onclick: () => this.revoke(k) }, "Revoke") : null);
    return el("tr", { "data-key": k.id, "data-name": k.name, "data-state": state },
      el("td", {}, k.name, k.id === this.ctx.me.id ? el("span", { class: "muted" }, " (you)") : null),
      el("td", { class: "mono" }, k.id), el("td", {}, k.role),
      el("td", { class: "mono" }, grants), el("td", {}, limits),
      el("td", {}, new Date(k.created_at).toLocaleString()), el("td", {}, state), actions);
  }

  showSecret(created, what) {
    clear(this.secret).append(el("div", { class: "secret", role: "status" },
      el("div", {}, el("b", {}, `${what} ${created.name} (${created.id}). `), "Its secret is shown this once: copy it now."),
      el("code", { id: "new-secret" }, created.key), " ",
      el("button", { onclick: () => copy(created.key) }, "Copy"), " ",
      el("button", { onclick: () => clear(this.secret) }, "Done")));
  }

  async create() {
    const f = new FormData(this.form);
    try {
      const body = { name: f.get("name"), role: f.get("role") };
      if (body.role === "reader") body.grants = parseGrants(String(f.get("grants") || ""));
      const per = Number(f.get("per_second"));
      if (per) body.rate_limit = { per_second: per, ...(Number(f.get("burst")) ? { burst: Number(f.get("burst")) } : {}) };
      if (Number(f.get("max_concurrent"))) body.max_concurrent = Number(f.get("max_concurrent"));
      if (f.get("expires_at")) body.expires_at = new Date(f.get("expires_at") + "Z").toISOString();
      const created = await json("/v1/keys", { method: "POST", body });
      showError(this.error, null);
      this.form.reset();
      this.showSecret(created, "Created");
      await this.load();
    } catch (e) {
      showError(this.error, e);
    }
  }

  async rotate(k) {
    if (!confirm(`Rotate ${k.name}? Its current secret keeps working for the grace period only.`)) return;
    try {
      this.showSecret(await json(`/v1/keys/${encodeURIComponent(k.id)}/rotate`, { method: "POST" }), "Rotated");
      await this.load();
    } catch (e) {
      showError(this.error, e);
    }
  }

  async revoke(k) {
    if (!confirm(`Revoke ${k.name}? It stops working at once.`)) return;
    try {
      await call(`/v1/keys/${encodeURIComponent(k.id)}`, { method: "DELETE" });
      await this.load();
    } catch (e) {
      showError(this.error, e);
    }
  }

  async showUsage(k) {
    try {
      const u = await json(`/v1/keys/${encodeURIComponent(k.id)}/usage`);
      clear(this.usage).append(el("h3", {}, `${k.name} (${k.id})`));
      if (!u.days.length) {
        this.usage.append(el("div", { class: "muted" }, "No use yet."));
        return;
      }
      this.usage.append(el("table", { class: "list", id: "usage-table" },
        el("thead", {}, el("tr", {}, ...["day", "queries", "rows", "bytes", "errors"].map((h) => el("th", {}, h)))),
        el("tbody", {}, ...u.days.map((d) => el("tr", {},
          el("td", {}, d.day), el("td", { class: "num" }, number(d.queries)), el("td", { class: "num" }, number(d.rows)),
          el("td", { class: "num" }, bytes(d.bytes)), el("td", { class: "num" }, number(d.errors)))))));
    } catch (e) {
      showError(this.error, e);
    }
  }
}
