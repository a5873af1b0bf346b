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

/** A screenshot of the page; a page of the console's is also checked by [`accessible`]. */
export async function shot(page, name) {
  await page.screenshot({ path: `${shots}/${name}.png` });
  console.log(`screenshot ${shots}/${name}.png`);
  if (page.url().startsWith(url + "/console") && !name.startsWith("failed")) {
    for (const p of await accessible(page)) problems.push(`${name}: ${p}`);
  }
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

/**
 * Accessibility basics on what the page shows now: every control has a name (a label, an
 * aria-label or its text), and all visible text meets WCAG AA contrast (4.5:1) against the
 * background it is drawn on. Disabled controls and placeholders are exempt, as WCAG has them.
 */
export async function accessible(page) {
  return page.evaluate(() => {
    const problems = [];
    const rgb = (c) => (c.match(/[\d.]+/g) || []).map(Number);
    const lum = ([r, g, b]) => {
      const f = (v) => {
        v /= 255;
        return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
      };
      return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
    };
    const background = (el) => {
      for (let e = el; e; e = e.parentElement) {
        const c = rgb(getComputedStyle(e).backgroundColor);
        if (c.length === 3 || (c.length === 4 && c[3] === 1)) return c.slice(0, 3);
      }
      return [255, 255, 255];
    };
    const visible = (el) => {
      const r = el.getBoundingClientRect();
      return r.width > 0 && r.height > 0 && getComputedStyle(el).visibility !== "hidden";
    };
    for (const el of document.querySelectorAll("input:not([type=hidden]), select, textarea, button, [role=tab]")) {
      if (!visible(el)) continue;
      const named = el.labels?.length || el.getAttribute("aria-label") || el.getAttribute("aria-labelledby") || el.textContent.trim();
      if (!named) problems.push(`no name: ${el.outerHTML.slice(0, 80)}`);
    }
    const seen = new Set();
    for (const el of document.querySelectorAll("body *")) {
      const text = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
      if (!text || !visible(el) || el.closest("[disabled], .cm-placeholder, .cm-tooltip")) continue;
      const style = getComputedStyle(el);
      let opacity = 1;
      for (let e = el; e; e = e.parentElement) opacity *= Number(getComputedStyle(e).opacity);
      if (opacity < 1) continue;
      const [a, b] = [lum(rgb(style.color).slice(0, 3)), lum(background(el))];
      const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
      const key = `${style.color} on ${background(el)}`;
      if (ratio < 4.5 && !seen.has(key)) {
        seen.add(key);
        problems.push(`contrast ${ratio.toFixed(2)}: ${key}: "${el.textContent.trim().slice(0, 30)}"`);
      }
    }
    return problems;
  });
}
