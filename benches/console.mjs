// One run of the console's browser sides for benches/console.py: Debian's chromium (through
// playwright-core from ui/node_modules), signed in with a key, runs each statement
//   - in the console: Run, the Arrow stream decoded batch by batch into the virtualized grid;
//     time to the first drawn row, to the last row, the longest main-thread task meanwhile
//     (PerformanceObserver "longtask", which reports tasks over 50 ms) and the JS heap after;
//   - as a bare fetch in the same page: the bytes read to the end, nothing decoded (the
//     browser's transfer floor).
// Prints one JSON line: {"<sql>": {"console": {...}, "fetch": {...}}}.
//
//   node benches/console.mjs URL KEY SQL...
import { chromium } from "../ui/node_modules/playwright-core/index.mjs";

const [url, key, ...statements] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--enable-precise-memory-info"],
});
const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
// CONSOLE_JS: another build of the console's script, to compare variants on one server.
if (process.env.CONSOLE_JS) {
  await page.route("**/console/console.js", (r) => r.fulfill({ path: process.env.CONSOLE_JS, contentType: "text/javascript" }));
}
await page.goto(url + "/console");
await page.fill("#api-key", key);
await page.click("#sign-in");
await page.waitForSelector("#editor .cm-content");

// The long-task figure is only worth something if long tasks are seen: a 120 ms task of our
// own must be.
const seen = await page.evaluate(() => new Promise((resolve) => {
  let longest = 0;
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) longest = Math.max(longest, e.duration);
  }).observe({ type: "longtask" });
  setTimeout(() => {
    const until = performance.now() + 120;
    while (performance.now() < until);
    setTimeout(() => resolve(longest), 50);
  }, 0);
}));
if (seen < 100) throw new Error(`long tasks are not observed here (a 120 ms task showed as ${seen} ms)`);

const out = {};
for (const sql of statements) {
  await page.click("#editor .cm-content");
  await page.keyboard.press("Control+a");
  await page.keyboard.press("Delete");
  await page.keyboard.insertText(sql);
  // Start from an empty grid, with the observers in place before the run.
  await page.evaluate(() => {
    window.__bench = { longest: 0, first: null };
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) window.__bench.longest = Math.max(window.__bench.longest, e.duration);
    }).observe({ type: "longtask" });
    const grid = document.getElementById("grid");
    new MutationObserver((_, obs) => {
      if (grid.querySelector(".body .row")) {
        window.__bench.first = performance.now();
        obs.disconnect();
      }
    }).observe(grid, { childList: true, subtree: true });
  });
  const t0 = await page.evaluate(() => (window.__bench.t0 = performance.now()));
  await page.keyboard.press("Control+Enter");
  await page.waitForSelector('#query-stats[data-state="finished"], #query-stats[data-state="failed"]', { timeout: 600_000 });
  const c = await page.evaluate(() => ({
    state: document.getElementById("query-stats").dataset.state,
    end: performance.now(),
    rows: Number(document.getElementById("grid").dataset.rows),
    ...window.__bench,
    heap: performance.memory?.usedJSHeapSize ?? null,
  }));
  if (c.state !== "finished") throw new Error(`${sql}: ${await page.textContent("#query-error")}`);
  const console_ = { first_row_ms: c.first - t0, total_ms: c.end - t0, longest_task_ms: c.longest, rows: c.rows, heap_bytes: c.heap };
  const fetched = await page.evaluate(async ([sql, key]) => {
    const t0 = performance.now();
    const r = await fetch("/v1/query", {
      method: "POST",
      headers: { Authorization: "Bearer " + key, "Content-Type": "application/json", Accept: "application/vnd.apache.arrow.stream" },
      body: JSON.stringify({ sql }),
    });
    const reader = r.body.getReader();
    let first = null;
    let bytes = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (first === null) first = performance.now() - t0;
      bytes += value.byteLength;
    }
    return { first_byte_ms: first, total_ms: performance.now() - t0, bytes };
  }, [sql, key]);
  out[sql] = { console: console_, fetch: fetched };
}
console.log(JSON.stringify(out));
await browser.close();
