//! `GET /docs`: the API reference as a page that works with no network. It loads nothing
//! from another host: the page, its style and its script are in this one response, and it
//! reads `/openapi.json` from the same server to list every route with its parameters,
//! bodies and answers. A form lets a person run a query with their key.

use actix_web::HttpResponse;

/// The page.
const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sluice API</title>
<style>
  body { font: 15px/1.45 system-ui, sans-serif; margin: 0; color: #1d232a; background: #fafbfc; }
  header { background: #16324f; color: #fff; padding: 14px 24px; }
  header h1 { margin: 0; font-size: 20px; }
  main { max-width: 1000px; margin: 0 auto; padding: 16px 24px 48px; }
  code, pre, textarea, input { font: 13px/1.4 ui-monospace, SFMono-Regular, Menlo, monospace; }
  pre:empty { display: none; }
  pre { background: #f0f2f5; padding: 10px; overflow: auto; max-height: 420px; border-radius: 4px; }
  section.try, details { background: #fff; border: 1px solid #d8dee4; border-radius: 6px; margin: 10px 0; }
  section.try { padding: 12px 16px; }
  details > summary { cursor: pointer; padding: 10px 14px; list-style: none; }
  details > div { padding: 0 14px 12px; }
  .m { display: inline-block; min-width: 62px; font-weight: 600; text-transform: uppercase; font-size: 12px;
       padding: 2px 6px; border-radius: 3px; color: #fff; text-align: center; margin-right: 8px; }
  .get { background: #2b7a3d; } .post { background: #1f5fa8; } .delete { background: #b3261e; }
  .put, .patch { background: #8a5a00; }
  table { border-collapse: collapse; width: 100%; margin: 6px 0; }
  th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #e4e8ec; vertical-align: top; }
  textarea { width: 100%; box-sizing: border-box; height: 90px; }
  input[type=text], input[type=password], select { padding: 4px 6px; }
  button { padding: 5px 14px; }
  .muted { color: #5b6670; }
</style>
</head>
<body>
<header><h1>Sluice API</h1><div class="muted" style="color:#c9d6e2">Every route, from <a style="color:#fff" href="/openapi.json">/openapi.json</a> (OpenAPI 3.1)</div></header>
<main>
<section class="try">
  <h2 style="margin-top:4px">Try a query</h2>
  <p><label>API key <input id="key" type="password" size="70" placeholder="sluice_..."></label></p>
  <p><textarea id="sql">SELECT n_name, n_regionkey FROM nation ORDER BY 1 LIMIT 10</textarea></p>
  <p><label>Format <select id="accept">
      <option>application/json</option><option>application/x-ndjson</option><option>text/csv</option>
    </select></label>
    <label>max_rows <input id="max_rows" type="text" size="8" value="1000"></label>
    <button id="run">Run</button> <button id="explain">Explain</button></p>
  <div id="status" class="muted"></div>
  <div id="result" style="overflow:auto; max-height:420px"></div>
  <pre id="out"></pre>
</section>
<h2>Routes</h2>
<div id="routes" class="muted">Loading /openapi.json…</div>
</main>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({"&":"&amp;","<":"&lt;",">":"&gt;","\"":"&quot;","'":"&#39;"}[c]));
$("key").value = sessionStorage.getItem("sluice_key") || "";
$("key").addEventListener("change", () => sessionStorage.setItem("sluice_key", $("key").value));
async function send(path, accept) {
  const body = { sql: $("sql").value };
  const max = parseInt($("max_rows").value, 10);
  if (!Number.isNaN(max)) body.max_rows = max;
  const started = performance.now();
  $("status").textContent = "running…";
  $("out").textContent = "";
  $("result").innerHTML = "";
  try {
    const r = await fetch(path, { method: "POST", body: JSON.stringify(body),
      headers: { "Content-Type": "application/json", "Accept": accept, "Authorization": "Bearer " + $("key").value } });
    let text = await r.text();
    let table = null;
    if ((r.headers.get("content-type") || "").startsWith("application/json")) {
      try {
        const v = JSON.parse(text);
        if (Array.isArray(v.columns) && Array.isArray(v.rows)) table = v;
        text = JSON.stringify(v, null, 2);
      } catch (e) { /* shown as sent */ }
    }
    $("status").textContent = r.status + " " + r.statusText + " · query " + (r.headers.get("x-query-id") || "-") +
      " · " + Math.round(performance.now() - started) + " ms";
    $("result").innerHTML = "";
    $("out").textContent = table ? "" : text;
    if (table) {
      const head = table.columns.map((c) => `<th>${esc(c.name)}<br><span class="muted">${esc(c.type)}</span></th>`).join("");
      const body = table.rows.map((row) => "<tr>" + row.map((v) =>
        `<td>${v === null ? '<span class="muted">NULL</span>' : esc(typeof v === "object" ? JSON.stringify(v) : v)}</td>`).join("") + "</tr>").join("");
      $("result").innerHTML = `<table>${"<tr>" + head + "</tr>"}${body}</table><p class="muted">${table.rows.length} rows</p>`;
    }
  } catch (e) {
    $("status").textContent = "failed: " + e;
  }
}
$("run").onclick = () => send("/v1/query", $("accept").value);
$("explain").onclick = () => send("/v1/explain", "application/json");
function schemaText(doc, s) {
  if (!s) return "";
  if (s.$ref) { const name = s.$ref.split("/").pop(); return name; }
  if (s.type === "array") return schemaText(doc, s.items) + "[]";
  if (s.oneOf) return s.oneOf.map((x) => schemaText(doc, x)).join(" | ");
  return Array.isArray(s.type) ? s.type.join(" | ") : (s.type || "any");
}
function render(doc) {
  const out = [];
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const params = (op.parameters || []).map((p) =>
        `<tr><td><code>${esc(p.name)}</code></td><td>${esc(p.in)}</td><td>${esc(schemaText(doc, p.schema))}</td><td>${esc(p.description || "")}</td></tr>`).join("");
      const body = op.requestBody ? Object.entries(op.requestBody.content).map(([t, c]) =>
        `<tr><td><code>${esc(t)}</code></td><td>${esc(schemaText(doc, c.schema))}</td></tr>`).join("") : "";
      const answers = Object.entries(op.responses || {}).map(([code, r]) =>
        `<tr><td><b>${esc(code)}</b></td><td>${esc(r.description || "")}</td><td>${esc(Object.keys(r.content || {}).join(", "))}</td></tr>`).join("");
      const secured = (op.security || doc.security || []).length > 0;
      out.push(`<details><summary><span class="m ${esc(method)}">${esc(method)}</span><code>${esc(path)}</code>
        <span class="muted"> ${esc(op.summary || "")}${secured ? " · needs a key" : ""}</span></summary><div>
        <p>${esc(op.description || "")}</p>
        ${params ? `<h4>Parameters</h4><table><tr><th>name</th><th>in</th><th>type</th><th></th></tr>${params}</table>` : ""}
        ${body ? `<h4>Body</h4><table><tr><th>content type</th><th>schema</th></tr>${body}</table>` : ""}
        <h4>Answers</h4><table><tr><th>status</th><th>meaning</th><th>content</th></tr>${answers}</table>
      </div></details>`);
    }
  }
  const schemas = Object.entries((doc.components || {}).schemas || {}).map(([name, s]) =>
    `<details><summary><code>${esc(name)}</code></summary><div><pre>${esc(JSON.stringify(s, null, 2))}</pre></div></details>`).join("");
  $("routes").classList.remove("muted");
  $("routes").innerHTML = out.join("") + "<h2>Bodies</h2>" + schemas;
}
fetch("/openapi.json").then((r) => r.json()).then(render)
  .catch((e) => { $("routes").textContent = "could not load /openapi.json: " + e; });
</script>
</body>
</html>
"#;

/// This reference page.
#[utoipa::path(get, path = "/docs", tag = "operations",
    responses((status = 200, description = "The API reference page; it loads nothing from another host", content_type = "text/html", body = String)))]
pub async fn page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(PAGE)
}
