// The console in a real browser (Debian's chromium, driven by playwright-core), against a real
// Sluice with a local Parquet source and a PostgreSQL source of two replicas. Started by the
// Rust test `console::the_console_in_a_browser`, which prepares the server and the keys and,
// when this script prints `STEP stop-replica`, stops the PostgreSQL spare and answers `ok` on
// stdin. Screenshots of every view go to $SHOTS.
//
// Env: SLUICE_URL, ADMIN_KEY, READER_KEY, PG_SCHEMA, SHOTS, CHROMIUM.
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import assert from "node:assert/strict";
import { env, url, browser, problems, newPage, shot, step, typeSql, runSql, gridRows } from "./browser.mjs";

const schema = env("PG_SCHEMA");

const stdin = createInterface({ input: process.stdin });
const lines = stdin[Symbol.asyncIterator]();
async function ask(what) {
  console.log(`STEP ${what}`);
  const { value } = await lines.next();
  assert.equal(value, "ok", `the test answered ${value} to ${what}`);
}

async function signIn(page, key) {
  await page.goto(url + "/console");
  await page.fill("#api-key", key);
  await page.click("#sign-in");
  await page.waitForSelector("#editor .cm-content");
}

const admin = await newPage();

await step("sign in with a key", async () => {
  await admin.goto(url + "/console");
  await shot(admin, "01-sign-in");
  // A wrong key is refused with the server's code.
  await admin.fill("#api-key", "sluice_key_000000000000_nope");
  await admin.click("#sign-in");
  await admin.waitForSelector("#signin-error .code");
  assert.equal(await admin.textContent("#signin-error .code"), "unauthenticated");
  await signIn(admin, env("ADMIN_KEY"));
  assert.match(await admin.textContent("#whoami"), /admin/);
  // The key is in session storage, never in the address or a cookie.
  assert.ok(!admin.url().includes("sluice_key"), admin.url());
  assert.deepEqual(await admin.context().cookies(), []);
  assert.equal(await admin.evaluate(() => sessionStorage.getItem("sluice.credential")), env("ADMIN_KEY"));
});

await step("run a query and read the grid's cells", async () => {
  await runSql(admin, "SELECT n_nationkey, n_name FROM nation WHERE n_nationkey < 3 ORDER BY n_nationkey");
  const rows = await gridRows(admin);
  assert.deepEqual(rows, [["1", "0", "ALGERIA"], ["2", "1", "ARGENTINA"], ["3", "2", "BRAZIL"]]);
  assert.equal(await admin.textContent("#stat-rows b"), "3");
  assert.equal(await admin.textContent("#stat-sources b"), "local");
  await shot(admin, "02-query");
});

await step("a million rows: the first ones show before the last batch arrives", async () => {
  // The network is slowed to 4 MB/s so the 8 MB result takes seconds to arrive; the page
  // records what its own counters said when the first row appeared.
  const cdp = await admin.context().newCDPSession(admin);
  await cdp.send("Network.enable");
  await cdp.send("Network.emulateNetworkConditions", { offline: false, latency: 0, downloadThroughput: 4_000_000, uploadThroughput: -1 });
  await typeSql(admin, "SELECT value AS n FROM generate_series(0, 999999)");
  await admin.evaluate(() => {
    window.__firstRow = null;
    const grid = document.getElementById("grid");
    new MutationObserver((_, obs) => {
      if (grid.querySelector(".body .row") && !window.__firstRow) {
        window.__firstRow = {
          state: document.getElementById("query-stats").dataset.state,
          // What the grid holds when it first draws: the rows received so far.
          rows: Number(grid.dataset.rows),
          at: performance.now(),
        };
        obs.disconnect();
      }
    }).observe(grid, { childList: true, subtree: true });
  });
  const t0 = await admin.evaluate(() => performance.now());
  await admin.keyboard.press("Control+Enter");
  await admin.waitForSelector("#grid .body .row");
  // Responsive while it streams: the page answers, and the grid scrolls.
  await admin.evaluate(() => { document.getElementById("grid").scrollTop = 2400; });
  await shot(admin, "03-million-streaming");
  await admin.waitForSelector('#query-stats[data-state="finished"]');
  const first = await admin.evaluate(() => window.__firstRow);
  const end = await admin.evaluate(() => performance.now());
  await cdp.send("Network.emulateNetworkConditions", { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
  assert.equal(first.state, "running", JSON.stringify(first));
  assert.ok(first.rows < 1_000_000, JSON.stringify(first));
  assert.equal(await admin.textContent("#stat-rows b"), "1,000,000");
  // The last row is there.
  await admin.evaluate(() => { const g = document.getElementById("grid"); g.scrollTop = g.scrollHeight; });
  await admin.waitForSelector('#grid .row[aria-rowindex="1000000"]');
  const last = await admin.$eval('#grid .row[aria-rowindex="1000000"]', (r) => [...r.querySelectorAll(".cell")].map((c) => c.textContent));
  assert.deepEqual(last, ["1000000", "999999"]);
  console.log(`first rows shown after ${Math.round(first.at - t0)} ms with ${first.rows} of 1,000,000 received; all after ${Math.round(end - t0)} ms`);
  await shot(admin, "04-million-done");
});

const SLOW = "SELECT max(value % 7) AS slow FROM generate_series(1, 100000000000)";

await step("cancel a slow query from the editor; the list shows it cancelled", async () => {
  await typeSql(admin, SLOW);
  await admin.keyboard.press("Control+Enter");
  await admin.waitForSelector("#cancel:not([disabled])");
  // It is running on the server before it is cancelled.
  await admin.waitForFunction(async () => {
    const r = await fetch("/v1/queries?state=running", { headers: { Authorization: "Bearer " + sessionStorage.getItem("sluice.credential") } });
    return (await r.json()).queries.some((q) => (q.sql || "").includes("100000000000"));
  });
  await admin.click("#cancel");
  await admin.waitForSelector('#query-stats[data-state="cancelled"]');
  await admin.click("#nav-watch");
  await admin.waitForSelector('#queries-body tr[data-state="cancelled"]');
  const row = await admin.$eval('#queries-body tr[data-state="cancelled"]', (r) => r.textContent);
  assert.match(row, /100000000000/);
  await shot(admin, "05-watch-cancelled");
});

await step("cancel a running query from the query list", async () => {
  await admin.click("#nav-query");
  await typeSql(admin, SLOW.replace("slow", "slow_too"));
  await admin.keyboard.press("Control+Enter");
  await admin.click("#nav-watch");
  const running = '#queries-body tr[data-state="running"] button';
  await admin.waitForSelector(running);
  await admin.click(running);
  await admin.waitForFunction(() => [...document.querySelectorAll('#queries-body tr[data-state="cancelled"]')].some((r) => r.textContent.includes("slow_too")));
  await admin.click("#nav-query");
  await admin.waitForSelector('#query-stats[data-state="cancelled"]');
});

await step("explain shows the SQL PostgreSQL runs", async () => {
  await typeSql(admin, `SELECT x FROM pg.${schema}.t WHERE x > 40 ORDER BY x`);
  await admin.keyboard.press("Control+Shift+Enter");
  await admin.waitForSelector('#plan .remote[data-source="pg"] .remote-sql');
  const remote = await admin.textContent('#plan .remote[data-source="pg"] .remote-sql');
  assert.match(remote, /SELECT/);
  assert.match(remote, new RegExp(`"?${schema}"?\\."?t"?`));
  assert.match(remote, /> 40/);
  await shot(admin, "06-explain");
  // An operator PostgreSQL would compute differently stays in Sluice, and the view says why.
  await typeSql(admin, `SELECT upper(name) AS u FROM pg.${schema}.t WHERE x < 3 ORDER BY x`);
  await admin.keyboard.press("Control+Shift+Enter");
  await admin.waitForSelector('#plan .remote[data-source="pg"] .why');
  assert.match(await admin.textContent('#plan .remote[data-source="pg"] .why'), /Kept in Sluice: .*upper/);
  await shot(admin, "06-explain-kept-local");
});

await step("a bad statement shows the error's code and message", async () => {
  await runSql(admin, "SELECT nope FROM nation", "failed");
  assert.equal(await admin.textContent("#query-error .code"), "sql_invalid");
  assert.match(await admin.textContent("#query-error"), /nope/);
  await shot(admin, "07-error");
});

await step("download as CSV and copy as code", async () => {
  await typeSql(admin, "SELECT r_regionkey, r_name FROM region ORDER BY 1");
  const [download] = await Promise.all([admin.waitForEvent("download"), admin.click("#download")]);
  const csv = readFileSync(await download.path(), "utf8");
  assert.match(csv, /^r_regionkey,r_name\n0,AFRICA\n/);
  await admin.click("#snippets-btn");
  assert.match(await admin.textContent("#snippet-curl"), /\/v1\/query/);
  assert.match(await admin.textContent("#snippet-python"), /pyarrow\.ipc\.open_stream/);
  assert.match(await admin.textContent("#snippet-adbc"), /grpc:\/\//);
  assert.ok(!(await admin.textContent("#panel-code")).includes(env("ADMIN_KEY")), "no snippet holds the key");
  await shot(admin, "08-code");
});

await step("history keeps this browser's statements", async () => {
  const items = await admin.$$eval("#history li", (l) => l.map((e) => e.textContent));
  assert.ok(items.some((t) => t.includes("n_nationkey < 3")), items.join("\n"));
  assert.equal(items[0], "SELECT nope FROM nation", "newest first");
  assert.ok(items.some((t) => t.includes("nope")), items.join("\n"));
});

await step("an admin creates a key, sees its secret once, and revokes it", async () => {
  await admin.click("#nav-admin");
  await admin.fill('#create-key input[name="name"]', "made-in-console");
  await admin.fill('#create-key input[name="grants"]', "local.public.region");
  await admin.fill('#create-key input[name="per_second"]', "50");
  await admin.click("#create-key-submit");
  await admin.waitForSelector("#new-secret");
  const secret = await admin.textContent("#new-secret");
  assert.match(secret, /^sluice_key_/);
  await admin.waitForSelector('#keys-body tr[data-name="made-in-console"][data-state="active"]');
  await shot(admin, "09-admin-created");
  const me = await fetch(url + "/v1/me", { headers: { Authorization: "Bearer " + secret } });
  assert.equal(me.status, 200);
  // Rotated: a new secret, shown once, that works.
  await admin.click('#keys-body tr[data-name="made-in-console"] button[data-rotate]');
  await admin.waitForFunction((old) => {
    const s = document.getElementById("new-secret");
    return s && s.textContent !== old;
  }, secret);
  const rotated = await admin.textContent("#new-secret");
  assert.match(rotated, /^sluice_key_/);
  assert.equal((await fetch(url + "/v1/me", { headers: { Authorization: "Bearer " + rotated } })).status, 200);
  await admin.click('#keys-body tr[data-name="made-in-console"] button[data-revoke]');
  await admin.waitForSelector('#keys-body tr[data-name="made-in-console"][data-state="revoked"]');
  const after = await fetch(url + "/v1/me", { headers: { Authorization: "Bearer " + rotated } });
  assert.equal(after.status, 401);
  await admin.click('#keys-body tr[data-name="made-in-console"] button');
  await admin.waitForSelector("#usage-table, #usage .muted");
  await shot(admin, "10-admin-revoked");
});

await step("the source view turns a stopped PostgreSQL replica red", async () => {
  await admin.click("#nav-watch");
  await admin.waitForSelector('#sources tr[data-source="pg"][data-replica="1"][data-state="healthy"]');
  await admin.waitForSelector("#charts canvas");
  await shot(admin, "11-watch-sources");
  await admin.locator("#charts").scrollIntoViewIfNeeded();
  await shot(admin, "11-watch-charts");
  // An admin refreshes a source's tables.
  await admin.click('button[data-refresh="local"]');
  await admin.waitForSelector('.toast >> text=/local: 8 tables/');
  await ask("stop-replica");
  const t0 = Date.now();
  await admin.waitForSelector('#sources tr.down[data-source="pg"][data-replica="1"][data-state="unavailable"]');
  const red = await admin.$eval('#sources tr[data-source="pg"][data-replica="1"] .badge', (b) => getComputedStyle(b).backgroundColor);
  assert.equal(red, "rgb(179, 38, 30)");
  console.log(`replica shown red ${Date.now() - t0} ms after it stopped`);
  await shot(admin, "12-watch-replica-down");
});

await step("a reader sees no admin panel and no ungranted table in completion", async () => {
  const reader = await newPage();
  await signIn(reader, env("READER_KEY"));
  assert.equal(await reader.locator("#nav-admin").count(), 0);
  await reader.waitForSelector('#tables-tree details.table[data-table="local.public.nation"]');
  const tables = await reader.$$eval("#tables-tree details.table", (d) => d.map((e) => e.dataset.table));
  assert.deepEqual(tables, ["local.public.nation"]);
  await typeSql(reader, "SELECT * FROM ");
  await reader.keyboard.press("Control+Space");
  await reader.waitForSelector(".cm-tooltip-autocomplete li");
  const offered = await reader.$$eval(".cm-tooltip-autocomplete .cm-completionLabel", (l) => l.map((e) => e.textContent));
  assert.ok(offered.includes("nation"), offered.join(","));
  for (const hidden of ["lineitem", "region", "pg", "orders"]) assert.ok(!offered.includes(hidden), `${hidden} in ${offered.join(",")}`);
  await shot(reader, "13-reader-completion");
  // Columns of the granted table complete after its name.
  await typeSql(reader, "SELECT nation.");
  await reader.keyboard.press("Control+Space");
  await reader.waitForSelector(".cm-tooltip-autocomplete li");
  const cols = await reader.$$eval(".cm-tooltip-autocomplete .cm-completionLabel", (l) => l.map((e) => e.textContent));
  assert.ok(cols.includes("n_name"), cols.join(","));
  await reader.keyboard.press("Escape");
  await reader.click("#nav-watch");
  await reader.waitForSelector("#sources");
  assert.equal(await reader.locator("#charts").count(), 0);
  assert.equal(await reader.locator('#sources .source[data-source="pg"]').count(), 0);
  await shot(reader, "14-reader-watch");
  await reader.context().close();
});

assert.deepEqual(problems, []);
await browser.close();
console.log("console test passed");
process.exit(0);
