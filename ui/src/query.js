// The Query view: the editor, run / explain / cancel, the streamed result in a virtualized
// grid, downloads, code snippets, the explain view and this browser's query history.

import { RecordBatchReader } from "apache-arrow";
import { call, json, ApiError } from "./api.js";
import { Grid, Rows } from "./grid.js";
import { SqlEditor } from "./editor.js";
import { el, clear, bytes, number, ms, toast, copy, showError } from "./ui.js";

const ARROW = "application/vnd.apache.arrow.stream";
const HISTORY = "sluice.history";
const HISTORY_KEPT = 100;
const FORMATS = {
  csv: { accept: "text/csv", ext: "csv" },
  parquet: { accept: "application/vnd.apache.parquet", ext: "parquet" },
  arrow: { accept: ARROW, ext: "arrows" },
};

/**
 * The body's chunks as they arrive, counted into `s.bytes`. The body is read ahead of the
 * decoder: a read waits for nothing but the network, so the browser keeps taking bytes off
 * the socket (and the server keeps sending) while earlier batches are decoded and drawn.
 */
async function* chunks(body, s) {
  // A default reader: one reading into buffers of ours (BYOB) measured slower here.
  const reader = body.getReader();
  const queue = [];
  let head = 0;
  let wake = null;
  let end = null;
  const pump = (async () => {
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        s.bytes += value.byteLength;
        queue.push(value);
        wake?.();
      }
      end = { done: true };
    } catch (error) {
      end = { error };
    }
    wake?.();
  })();
  try {
    for (;;) {
      if (head < queue.length) {
        const chunk = queue[head];
        queue[head++] = null;
        if (head > 1024 && head * 2 > queue.length) {
          queue.splice(0, head);
          head = 0;
        }
        yield chunk;
        continue;
      }
      if (end) {
        if (end.error) throw end.error;
        return;
      }
      await new Promise((resolve) => { wake = resolve; });
      wake = null;
    }
  } finally {
    if (!end) await reader.cancel().catch(() => {});
    await pump;
  }
}

export function loadHistory() {
  try {
    const h = JSON.parse(localStorage.getItem(HISTORY) || "[]");
    return Array.isArray(h) ? h : [];
  } catch {
    return [];
  }
}

function remember(entry) {
  const h = loadHistory().filter((e) => e.sql !== entry.sql);
  h.unshift(entry);
  localStorage.setItem(HISTORY, JSON.stringify(h.slice(0, HISTORY_KEPT)));
}

/** `s` as a single-quoted shell word. */
function shellQuote(s) {
  return "'" + s.replace(/'/g, "'\\''") + "'";
}

export function snippets(sqlText, settings) {
  const url = location.origin;
  const body = JSON.stringify({ sql: sqlText });
  const py = JSON.stringify(sqlText);
  const flight = (settings.flight || "grpc://127.0.0.1:8815").replace("0.0.0.0", location.hostname);
  return {
    curl:
      `curl -sS ${url}/v1/query \\\n  -H "Authorization: Bearer $SLUICE_API_KEY" \\\n  -H 'Accept: text/csv' \\\n` +
      `  -H 'Content-Type: application/json' \\\n  -d ${shellQuote(body)}`,
    python:
      `import json, os, urllib.request, pyarrow.ipc\n\n` +
      `req = urllib.request.Request(\n    "${url}/v1/query",\n    data=json.dumps({"sql": ${py}}).encode(),\n` +
      `    headers={"Authorization": "Bearer " + os.environ["SLUICE_API_KEY"],\n` +
      `             "Content-Type": "application/json",\n             "Accept": "${ARROW}"})\n` +
      `table = pyarrow.ipc.open_stream(urllib.request.urlopen(req)).read_all()\nprint(table)`,
    adbc:
      `import os\nimport adbc_driver_flightsql.dbapi as flight_sql\n\n` +
      `with flight_sql.connect("${flight}",\n        db_kwargs={"username": "token", "password": os.environ["SLUICE_API_KEY"]}) as conn:\n` +
      `    cur = conn.cursor()\n    cur.execute(${py})\n    table = cur.fetch_arrow_table()\nprint(table)`,
  };
}

export class QueryView {
  constructor(root, ctx) {
    this.ctx = ctx;
    this.running = null;
    this.build(root);
  }

  build(root) {
    const tablesPanel = el("section", { class: "panel tree", "aria-label": "Tables" }, el("h2", {}, "Tables"));
    this.tree = el("div", { id: "tables-tree" }, el("div", { class: "muted" }, "Loading…"));
    tablesPanel.append(this.tree);
    this.historyList = el("ul", { id: "history" });
    const historyPanel = el(
      "section", { class: "panel history", "aria-label": "History" },
      el("h2", {}, "History ", el("small", { class: "muted" }, "(this browser)")),
      this.historyList,
    );
    const side = el("div", { class: "side" }, tablesPanel, historyPanel);

    const editorHost = el("div", { class: "editor", id: "editor" });
    this.runBtn = el("button", { class: "primary", id: "run", title: "Run (Ctrl/Cmd-Enter)", onclick: () => this.run() }, "Run");
    this.explainBtn = el("button", { id: "explain", title: "Explain (Ctrl/Cmd-Shift-Enter)", onclick: () => this.explain() }, "Explain");
    this.cancelBtn = el("button", { id: "cancel", class: "danger", disabled: true, onclick: () => this.cancel() }, "Cancel");
    this.format = el("select", { id: "download-format", "aria-label": "Download format" },
      el("option", { value: "csv" }, "CSV"), el("option", { value: "parquet" }, "Parquet"), el("option", { value: "arrow" }, "Arrow IPC"));
    this.downloadBtn = el("button", { id: "download", onclick: () => this.download() }, "Download");
    const toolbar = el("div", { class: "toolbar", role: "toolbar", "aria-label": "Statement" },
      this.runBtn, this.explainBtn, this.cancelBtn, el("span", { class: "sep" }),
      el("label", {}, "Download as", this.format), this.downloadBtn,
      el("button", { id: "snippets-btn", onclick: () => this.showSnippets() }, "Copy as code…"));
    this.stats = el("div", { class: "stats", id: "query-stats", "aria-live": "polite" });
    this.error = el("div", { id: "query-error", role: "alert" });

    this.tabs = {};
    const tabbar = el("div", { class: "tabs", role: "tablist" });
    const panels = [];
    for (const [id, label] of [["results", "Results"], ["plan", "Plan"], ["code", "Code"]]) {
      const b = el("button", { role: "tab", id: `tab-${id}`, "aria-controls": `panel-${id}`, onclick: () => this.tab(id) }, label);
      const p = el("div", { class: "tabpanel", role: "tabpanel", id: `panel-${id}`, "aria-labelledby": `tab-${id}` });
      this.tabs[id] = [b, p];
      tabbar.append(b);
      panels.push(p);
    }
    const gridHost = el("div", { id: "grid" });
    this.tabs.results[1].append(gridHost);
    this.grid = new Grid(gridHost);
    this.planPanel = this.tabs.plan[1];
    this.planPanel.append(el("div", { class: "empty" }, "Explain a statement to see its plan and the SQL each source runs."));
    this.codePanel = el("div", { class: "snippets" });
    this.tabs.code[1].append(this.codePanel);
    this.tab("results");

    const work = el("div", { class: "work" }, editorHost, toolbar, this.stats, this.error,
      el("div", { class: "result" }, tabbar, ...panels));
    root.append(side, work);

    const history = loadHistory();
    this.editor = new SqlEditor(editorHost, {
      nonce: this.ctx.nonce,
      doc: history[0]?.sql ?? "SELECT 1",
      onRun: () => this.run(),
      onExplain: () => this.explain(),
    });
    this.drawHistory();
  }

  tab(id) {
    for (const [key, [b, p]] of Object.entries(this.tabs)) {
      b.setAttribute("aria-selected", String(key === id));
      p.classList.toggle("active", key === id);
    }
  }

  /** Loads the tables the caller may read: the tree and the editor's completion. */
  async loadTables() {
    try {
      const { tables } = await json("/v1/tables?with_columns=true");
      this.editor.setTables(tables, this.ctx.settings.defaults);
      clear(this.tree);
      const bySource = new Map();
      for (const t of tables) {
        const key = `${t.source}.${t.schema}`;
        if (!bySource.has(key)) bySource.set(key, []);
        bySource.get(key).push(t);
      }
      if (!tables.length) this.tree.append(el("div", { class: "muted" }, "No tables you may read."));
      for (const [key, list] of bySource) {
        const d = el("details", { open: bySource.size < 4 }, el("summary", {}, key));
        for (const t of list) {
          const td = el("details", { class: "table", "data-table": t.name },
            el("summary", { title: "Double-click to insert", ondblclick: () => this.editor.insert(t.name) }, t.table));
          for (const f of t.fields || []) {
            td.append(el("div", { class: "col", title: `${f.type}${f.nullable ? "" : " NOT NULL"} (click to insert)`, onclick: () => this.editor.insert(f.name) }, `${f.name} `, el("span", {}, f.type)));
          }
          d.append(td);
        }
        this.tree.append(d);
      }
    } catch (e) {
      clear(this.tree);
      this.tree.append(el("div", { class: "muted" }, e.code === "permission_denied" ? "This key may not list tables." : e.message));
    }
  }

  drawHistory() {
    clear(this.historyList);
    for (const h of loadHistory()) {
      const li = el("li", { tabindex: 0, title: `${h.sql}\n${new Date(h.at).toLocaleString()}`, class: h.state === "finished" ? "" : "bad" }, h.sql.replace(/\s+/g, " "));
      const load = () => { this.editor.text = h.sql; this.editor.focus(); };
      li.addEventListener("click", load);
      li.addEventListener("keydown", (e) => { if (e.key === "Enter") load(); });
      this.historyList.append(li);
    }
  }

  setRunning(on) {
    this.runBtn.disabled = on;
    this.cancelBtn.disabled = !on;
  }

  drawStats(s) {
    clear(this.stats);
    const item = (label, value, id) => el("span", id ? { id } : {}, `${label} `, el("b", {}, value));
    this.stats.dataset.state = s.state;
    this.stats.append(
      item("state", s.state, "stat-state"),
      item("rows", number(s.rows), "stat-rows"),
      item("bytes", bytes(s.bytes)),
      item("elapsed", ms(s.elapsed)),
    );
    if (s.cache) this.stats.append(item("cache", s.cache, "stat-cache"));
    if (s.sources?.length) this.stats.append(item("sources", s.sources.join(", "), "stat-sources"));
    if (s.queryId) this.stats.append(el("span", { class: "mono muted", id: "stat-query-id" }, s.queryId));
  }

  /** Redraws the figures at the next frame (once per frame however many batches arrive). */
  scheduleStats(s) {
    if (this.statsFrame) return;
    this.statsFrame = requestAnimationFrame(() => {
      this.statsFrame = 0;
      s.elapsed = performance.now() - s.started;
      if (this.running?.s === s) this.drawStats(s);
    });
  }

  async run() {
    const sqlText = this.editor.statement();
    if (!sqlText || this.running) return;
    showError(this.error, null);
    this.tab("results");
    const ctl = new AbortController();
    const s = { state: "running", rows: 0, bytes: 0, elapsed: 0, started: performance.now(), queryId: null, cache: null, sources: [] };
    this.running = { ctl, s };
    this.setRunning(true);
    this.grid.show(null);
    this.drawStats(s);
    const tick = setInterval(() => { s.elapsed = performance.now() - s.started; this.drawStats(s); }, 250);
    try {
      const resp = await call("/v1/query", { method: "POST", body: { sql: sqlText }, headers: { Accept: ARROW }, signal: ctl.signal });
      s.queryId = resp.headers.get("x-query-id");
      s.cache = resp.headers.get("x-sluice-cache");
      // Handed to Arrow as plain chunks: from a byte stream it would read each message's
      // length, header and body in reads of their own (BYOB), an await each.
      const reader = await RecordBatchReader.from(chunks(resp.body, s));
      await reader.open();
      const rows = new Rows(reader.schema);
      this.grid.show(rows);
      for await (const batch of reader) {
        rows.push(batch);
        s.rows = rows.count;
        this.grid.grew();
        this.scheduleStats(s);
      }
      s.state = "finished";
    } catch (e) {
      const cancelled = e.name === "AbortError" || this.running?.cancelled || e.code === "query_cancelled";
      s.state = cancelled ? "cancelled" : "failed";
      if (cancelled && e.code === "query_cancelled") showError(this.error, e, "Cancelled.");
      if (!cancelled) await this.explainFailure(e, s);
    } finally {
      clearInterval(tick);
      s.elapsed = performance.now() - s.started;
      this.running = null;
      this.setRunning(false);
      await this.addServerFacts(s);
      this.drawStats(s);
      remember({ sql: sqlText, at: Date.now(), state: s.state, rows: s.rows, ms: Math.round(s.elapsed) });
      this.drawHistory();
    }
  }

  /** A failure mid-stream is a cut result: the server's record says why (and whether it was
   * cancelled, by another tab or an admin). */
  async explainFailure(e, s) {
    if (e instanceof ApiError) {
      showError(this.error, e);
      return;
    }
    let why = null;
    if (s.queryId) {
      try {
        const q = await json(`/v1/queries/${encodeURIComponent(s.queryId)}`);
        if (q.error) why = new ApiError(0, q.error.code, q.error.message, s.queryId);
        if (q.state === "cancelled") s.state = "cancelled";
      } catch {
        // The record is gone; say what we saw.
      }
    }
    showError(this.error, why || new ApiError(0, "result_cut", `the result was cut after ${number(s.rows)} rows: ${e.message}`, s.queryId), "The result is incomplete.");
  }

  async addServerFacts(s) {
    if (!s.queryId) return;
    try {
      const q = await json(`/v1/queries/${encodeURIComponent(s.queryId)}`);
      s.sources = q.sources || [];
    } catch {
      // Not fatal: the figures the browser counted stand.
    }
  }

  async cancel() {
    const r = this.running;
    if (!r) return;
    r.cancelled = true;
    if (r.s.queryId) {
      try {
        await call(`/v1/queries/${encodeURIComponent(r.s.queryId)}`, { method: "DELETE" });
      } catch {
        // Closing the connection below cancels it too.
      }
    }
    r.ctl.abort();
  }

  async explain() {
    const sqlText = this.editor.statement();
    if (!sqlText) return;
    showError(this.error, null);
    this.tab("plan");
    clear(this.planPanel);
    this.planPanel.append(el("div", { class: "empty" }, "Explaining…"));
    try {
      const plan = await json("/v1/explain", { method: "POST", body: { sql: sqlText } });
      clear(this.planPanel);
      const wrap = el("div", { id: "plan", style: "overflow:auto" });
      wrap.append(el("div", { class: "remote" }, el("b", {}, "Sources: "), plan.sources.join(", ") || "none",
        el("span", { class: "muted" }, `  ·  tables: ${plan.tables.join(", ") || "none"}`)));
      if (plan.remote.length) {
        wrap.append(el("h3", { style: "margin:10px" }, "SQL sent to each source"));
        for (const r of plan.remote) {
          const box = el("div", { class: "remote", "data-source": r.source },
            el("b", {}, r.source), el("pre", { class: "remote-sql" }, r.sql));
          if (r.kept_local) box.append(el("div", { class: "why" }, "Kept in Sluice: " + r.kept_local));
          wrap.append(box);
        }
      } else {
        wrap.append(el("div", { class: "remote muted" }, "Every operator runs in Sluice (no remote statement)."));
      }
      wrap.append(el("h3", { style: "margin:10px" }, "Physical plan"), el("pre", { class: "plan", id: "physical-plan" }, plan.physical_plan));
      wrap.append(el("h3", { style: "margin:10px" }, "Logical plan"), el("pre", { class: "plan" }, plan.logical_plan));
      this.planPanel.append(wrap);
    } catch (e) {
      clear(this.planPanel);
      showError(this.error, e);
    }
  }

  async download() {
    const sqlText = this.editor.statement();
    const f = FORMATS[this.format.value];
    if (!sqlText || !f) return;
    this.downloadBtn.disabled = true;
    try {
      const resp = await call("/v1/query", { method: "POST", body: { sql: sqlText }, headers: { Accept: f.accept } });
      const id = resp.headers.get("x-query-id") || "result";
      const blob = await resp.blob();
      const a = el("a", { href: URL.createObjectURL(blob), download: `${id}.${f.ext}` });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 60_000);
      toast(`Downloaded ${bytes(blob.size)}`);
    } catch (e) {
      showError(this.error, e);
    } finally {
      this.downloadBtn.disabled = false;
    }
  }

  showSnippets() {
    const code = snippets(this.editor.statement() || "SELECT 1", this.ctx.settings);
    clear(this.codePanel);
    for (const [id, label] of [["curl", "curl"], ["python", "Python (pyarrow)"], ["adbc", "ADBC (Flight SQL)"]]) {
      this.codePanel.append(
        el("div", { class: "toolbar" }, el("b", {}, label), el("button", { id: `copy-${id}`, onclick: () => copy(code[id]) }, "Copy")),
        el("pre", { id: `snippet-${id}` }, code[id]),
      );
    }
    this.codePanel.append(el("p", { class: "muted" }, "Each reads the key from SLUICE_API_KEY; none contains your key."));
    this.tab("code");
  }
}
