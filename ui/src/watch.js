// The Watch view: running and recent queries (the caller's, or everyone's for an admin) with
// cancel; every source and replica with its state, circuit, score, latency and queue, live;
// and, for admins, the server's charts from `GET /v1/stats`.

import uPlot from "uplot";
import { call, json } from "./api.js";
import { el, clear, bytes, number, ms, showError, toast } from "./ui.js";

const POLL_MS = 1000;
const CHART_WINDOW_S = 300;
const COLORS = ["#1f5fa8", "#b3261e", "#1e6b34", "#8a5a00", "#6b3fa0", "#0b7285", "#c2255c", "#495057"];

function badge(kind, value) {
  return el("span", { class: `badge ${kind}-${value}` }, String(value).replace("_", " "));
}

export class WatchView {
  constructor(root, ctx) {
    this.ctx = ctx;
    this.timer = 0;
    this.generation = 0;
    this.running = false;
    this.charts = new Map();
    this.error = el("div", { id: "watch-error", role: "alert" });
    this.queries = el("tbody", { id: "queries-body" });
    this.sources = el("div", { id: "sources" });
    const admin = ctx.me.role === "admin";
    root.append(
      this.error,
      el("section", { class: "panel", "aria-label": "Sources" }, el("h2", {}, "Sources"), this.sources),
      el("section", { class: "panel", "aria-label": "Queries" },
        el("h2", {}, admin ? "Queries (everyone's)" : "Your queries"),
        el("div", { style: "max-height:45vh; overflow:auto" },
          el("table", { class: "list", id: "queries" },
            el("thead", {}, el("tr", {},
              ...["state", "query", ...(admin ? ["caller"] : []), "statement", "rows", "bytes", "elapsed", "started", "sources", ""].map((h) =>
                el("th", { class: ["rows", "bytes", "elapsed"].includes(h) ? "num" : "" }, h)))),
            this.queries))),
    );
    if (admin) {
      this.chartsHost = el("div", { class: "charts", id: "charts" });
      root.append(el("section", { class: "panel", "aria-label": "Server" }, el("h2", {}, `Server, last ${CHART_WINDOW_S / 60} minutes`), this.chartsHost));
    }
  }

  /** Polls while the view is shown and the tab visible. Each poll costs the key two or three
   * requests of its rate limit; a refusal for rate (429) waits as long as `Retry-After` says. */
  start() {
    if (this.running) return;
    this.running = true;
    const generation = ++this.generation;
    const tick = async () => {
      if (generation !== this.generation) return;
      let wait = POLL_MS;
      if (document.visibilityState === "visible") {
        const retryAfter = await this.refresh();
        if (retryAfter) wait = Math.max(POLL_MS, retryAfter * 1000);
      }
      if (generation === this.generation) this.timer = setTimeout(tick, wait);
    };
    this.timer = setTimeout(tick, 0);
  }

  stop() {
    this.running = false;
    this.generation++;
    clearTimeout(this.timer);
  }

  /** One poll; answers the seconds to wait when the server said to slow down. */
  async refresh() {
    try {
      const [q, s, stats] = await Promise.all([
        json("/v1/queries?limit=100"),
        json("/v1/sources"),
        this.chartsHost ? json(`/v1/stats?window_s=${CHART_WINDOW_S}`) : null,
      ]);
      showError(this.error, null);
      this.drawQueries(q.queries);
      this.drawSources(s.sources);
      if (stats) this.drawCharts(stats);
      return 0;
    } catch (e) {
      showError(this.error, e, "Could not refresh.");
      return e.retryAfter || 0;
    }
  }

  drawQueries(list) {
    const admin = this.ctx.me.role === "admin";
    clear(this.queries);
    if (!list.length) this.queries.append(el("tr", {}, el("td", { colspan: 10, class: "muted" }, "No recent queries.")));
    for (const q of list) {
      const cancel = q.state === "running"
        ? el("button", { class: "danger", "aria-label": `Cancel ${q.query_id}`, onclick: async (e) => {
            e.target.disabled = true;
            try {
              await call(`/v1/queries/${encodeURIComponent(q.query_id)}`, { method: "DELETE" });
              toast("Cancelled");
            } catch (err) {
              showError(this.error, err);
            }
            this.refresh();
          } }, "Cancel")
        : null;
      this.queries.append(el("tr", { "data-query-id": q.query_id, "data-state": q.state },
        el("td", {}, badge("state", q.state), q.error ? el("div", { class: "mono muted", title: q.error.message }, q.error.code) : null),
        el("td", { class: "mono" }, q.query_id.slice(0, 12) + "…", el("div", { class: "muted" }, q.door || "")),
        admin ? el("td", { class: "mono" }, q.key_id || "anonymous") : null,
        el("td", { class: "sql", title: q.sql || "" }, q.operation === "explain" ? el("span", { class: "muted" }, "EXPLAIN ") : null, q.sql || ""),
        el("td", { class: "num" }, number(q.rows)),
        el("td", { class: "num" }, bytes(q.bytes)),
        el("td", { class: "num" }, ms(q.elapsed_ms)),
        el("td", {}, new Date(q.started_at_ms).toLocaleTimeString()),
        el("td", {}, (q.sources || []).join(", "), q.cache_hit ? el("span", { class: "muted" }, " (cache)") : null),
        el("td", {}, cancel)));
    }
  }

  drawSources(list) {
    const admin = this.ctx.me.role === "admin";
    clear(this.sources);
    if (!list.length) this.sources.append(el("div", { class: "muted" }, "No sources you may see."));
    for (const s of list) {
      const head = el("div", { class: "toolbar" },
        el("b", {}, s.name), el("span", { class: "muted" }, s.kind), badge("health", s.state),
        s.health_check_latency_ms != null ? el("span", { class: "muted" }, `check ${ms(s.health_check_latency_ms)}`) : null,
        s.queue ? el("span", { class: "muted" }, `queue ${s.queue.running}/${s.queue.capacity} running, ${s.queue.queued} waiting`) : null,
        s.tables != null ? el("span", { class: "muted" }, `${s.tables} tables`) : null,
        s.fallback ? el("span", { class: "muted" }, `fallback ${s.fallback}`) : null,
        el("span", { class: "sep" }),
        admin ? el("button", { "data-refresh": s.name, onclick: (e) => this.refreshSource(s.name, e.target) }, "Refresh tables") : null);
      const rows = (s.replicas || []).map((r) => el("tr", { class: r.state === "healthy" ? "" : "down", "data-source": s.name, "data-replica": r.index, "data-state": r.state },
        el("td", {}, `#${r.index}`), el("td", { class: "mono" }, r.location || ""),
        el("td", {}, badge("health", r.state)), el("td", {}, badge("circuit", r.circuit)),
        el("td", { class: "num" }, Number(r.score).toFixed(2)), el("td", { class: "num" }, ms(r.latency_ewma_ms)),
        el("td", { class: "num" }, r.p50_ms == null ? "–" : ms(r.p50_ms)), el("td", { class: "num" }, r.p99_ms == null ? "–" : ms(r.p99_ms)),
        el("td", { class: "num" }, number(r.in_flight)), el("td", { class: "num" }, number(r.statements)),
        el("td", { class: "num" }, number(r.failures)), el("td", { class: "muted", title: r.last_error || "" }, r.last_error ? r.last_error.slice(0, 80) : "")));
      const table = el("table", { class: "list", "aria-label": `Replicas of ${s.name}` },
        el("thead", {}, el("tr", {}, ...["replica", "location", "state", "circuit", "score", "latency", "p50", "p99", "in flight", "statements", "failures", "last error"].map((h) => el("th", {}, h)))),
        el("tbody", {}, ...rows));
      this.sources.append(el("div", { class: "source", "data-source": s.name, "data-state": s.state }, head, table,
        s.last_error ? el("div", { class: "muted" }, s.last_error) : null,
        s.refresh_error ? el("div", { class: "muted" }, "refresh: " + s.refresh_error) : null));
    }
  }

  async refreshSource(name, button) {
    button.disabled = true;
    try {
      const r = await json(`/v1/sources/${encodeURIComponent(name)}/refresh`, { method: "POST" });
      toast(`${name}: ${r.tables} tables in ${ms(r.elapsed_ms)}`);
    } catch (e) {
      showError(this.error, e);
    } finally {
      button.disabled = false;
    }
  }

  /** One point per second over the window; seconds with no query are zeros (or gaps for latency). */
  drawCharts(stats) {
    const end = Math.floor(stats.now_ms / 1000);
    const start = end - stats.window_s + 1;
    const xs = [];
    for (let t = start; t <= end; t++) xs.push(t);
    const at = new Map(stats.samples.map((s) => [Math.floor(s.at_ms / 1000), s]));
    const series = (f) => xs.map((t) => (at.has(t) ? f(at.get(t)) : 0));
    const gaps = (f) => xs.map((t) => (at.has(t) ? f(at.get(t)) : null));
    const keys = (field) => [...new Set(stats.samples.flatMap((s) => Object.keys(s[field])))].sort();
    const codes = keys("errors");
    const sources = keys("bytes_pulled");
    this.chart("qps", "Queries per second", [{ label: "queries", values: series((s) => s.queries) }], xs, `running now: ${stats.running}`);
    this.chart("latency", "Latency (ms)", [
      { label: "p50", values: gaps((s) => s.p50_ms) },
      { label: "p99", values: gaps((s) => s.p99_ms) },
    ], xs);
    this.chart("errors", "Errors per second, by code", codes.length
      ? codes.map((c) => ({ label: c, values: series((s) => s.errors[c] || 0) }))
      : [{ label: "none", values: series(() => 0) }], xs);
    this.chart("cache", "Cache hit rate (%)", [{
      label: "hit rate",
      values: gaps((s) => (s.cache_hits + s.cache_misses ? (100 * s.cache_hits) / (s.cache_hits + s.cache_misses) : null)),
    }], xs);
    this.chart("pulled", "Bytes pulled per source, per second", sources.length
      ? sources.map((src) => ({ label: src, values: series((s) => s.bytes_pulled[src] || 0) }))
      : [{ label: "none", values: series(() => 0) }], xs);
  }

  chart(id, title, series, xs, note) {
    const key = id + ":" + series.map((s) => s.label).join(",");
    let entry = this.charts.get(id);
    if (!entry || entry.key !== key) {
      entry?.plot.destroy();
      let host = document.getElementById(`chart-${id}`);
      if (!host) {
        host = el("div", { class: "chart", id: `chart-${id}`, role: "img", "aria-label": title });
        this.chartsHost.append(host);
      }
      clear(host).append(el("h3", {}, title, note ? el("span", { class: "muted", id: `chart-${id}-note` }, "  " + note) : null));
      const width = Math.max(380, host.clientWidth - 16);
      const plot = new uPlot({
        width, height: 180,
        scales: { x: { time: true } },
        series: [{}, ...series.map((s, i) => ({ label: s.label, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: false, points: { size: 4 } }))],
        axes: [{}, { size: 60 }],
        legend: { live: false },
      }, [xs, ...series.map((s) => s.values)], host);
      entry = { key, plot };
      this.charts.set(id, entry);
    } else {
      entry.plot.setData([xs, ...series.map((s) => s.values)]);
      const n = document.getElementById(`chart-${id}-note`);
      if (n && note) n.textContent = "  " + note;
    }
  }
}
