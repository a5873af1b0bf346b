// What the console's browser tests share: Debian's chromium through playwright-core (never a
// downloaded browser), pages that record script errors and Content Security Policy refusals,
// and screenshots into $SHOTS.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";

export const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};

export const url = env("SLUICE_URL");
const shots = env("SHOTS");
mkdirSync(shots, { recursive: true });

export const browser = await chromium.launch({
  executablePath: env("CHROMIUM"),
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});

/** Problems the pages reported: script errors and Content Security Policy refusals. */
export const problems = [];

export async function newPage() {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 }, acceptDownloads: true });
  const page = await context.newPage();
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error" && /Content Security Policy|Refused to/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  page.on("dialog", (d) => d.accept());
  page.on("framenavigated", (f) => f === page.mainFrame() && console.log(`at ${f.url()}`));
  page.on("requestfailed", (r) => console.log(`request failed: ${r.url()} ${r.failure()?.errorText}`));
  return page;
}

export async function shot(page, name) {
  await page.screenshot({ path: `${shots}/${name}.png` });
  console.log(`screenshot ${shots}/${name}.png`);
}

/** Runs one step; when it fails, each open page's screenshot and address are kept. */
export async function step(name, f) {
  const t0 = Date.now();
  try {
    await f();
  } catch (e) {
    for (const [i, context] of browser.contexts().entries()) {
      for (const [j, page] of context.pages().entries()) {
        console.log(`failed at ${page.url()}`);
        await shot(page, `failed-${i}-${j}`).catch(() => {});
      }
    }
    throw e;
  }
  console.log(`ok ${name} (${Date.now() - t0} ms)`);
}

/** Replaces the editor's statement. */
export async function typeSql(page, sql) {
  await page.click("#editor .cm-content");
  await page.keyboard.press("Control+a");
  await page.keyboard.press("Delete");
  await page.keyboard.insertText(sql);
}

/** Replaces the statement and runs it with the keyboard shortcut, until it is in `state`. */
export async function runSql(page, sql, state = "finished") {
  await typeSql(page, sql);
  await page.keyboard.press("Control+Enter");
  await page.waitForSelector(`#query-stats[data-state="${state}"]`);
}

/** The grid's drawn rows as arrays of cell texts (row number first). */
export async function gridRows(page) {
  return page.$$eval("#grid .body .row", (rows) =>
    rows.map((r) => [...r.querySelectorAll(".cell")].map((c) => c.textContent)));
}
