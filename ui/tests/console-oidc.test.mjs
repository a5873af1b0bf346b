// The console's OpenID Connect sign-in in a real browser: the authorization code flow with
// PKCE against a real provider (npm oidc-provider, scripts/oidc-provider.mjs, its development
// login and consent pages), then a query with the access token it got. Started by the Rust
// test `console::signing_in_through_the_openid_provider`.
//
// Env: SLUICE_URL, ISSUER, SHOTS, CHROMIUM.
import assert from "node:assert/strict";
import { env, url, browser, problems, newPage, shot, step, runSql, gridRows } from "./browser.mjs";

const issuer = env("ISSUER");
const page = await newPage();

await step("sign in at the provider", async () => {
  await page.goto(url + "/console");
  await page.waitForSelector("#sign-in-oidc");
  await shot(page, "20-oidc-sign-in");
  await page.click("#sign-in-oidc");
  // The provider's login page, then its consent page.
  await page.waitForURL((u) => u.href.startsWith(issuer));
  const authorize = new URL(page.url());
  await page.fill('input[name="login"]', "ana");
  await page.fill('input[name="password"]', "any");
  await shot(page, "21-oidc-provider-login");
  await page.click('button[type="submit"]');
  await page.waitForSelector('button[type="submit"]');
  await page.click('button[type="submit"]');
  await page.waitForSelector("#editor .cm-content");
  // Back on the console: no code or state left in the address, a JWT in session storage.
  assert.equal(page.url(), url + "/console/#query");
  const token = await page.evaluate(() => sessionStorage.getItem("sluice.credential"));
  assert.match(token, /^ey[\w-]+\.[\w-]+\.[\w-]+$/);
  assert.equal(await page.evaluate(() => sessionStorage.getItem("sluice.oidc.pending")), null);
  console.log(`authorization request: ${[...authorize.searchParams.keys()].join(",")}`);
});

await step("the token's caller is a reader of its grants", async () => {
  assert.match(await page.textContent("#whoami"), /ana · reader/);
  assert.equal(await page.locator("#nav-admin").count(), 0);
  await runSql(page, "SELECT n_name FROM nation ORDER BY n_nationkey LIMIT 2");
  assert.deepEqual(await gridRows(page), [["1", "ALGERIA"], ["2", "ARGENTINA"]]);
  await runSql(page, "SELECT r_name FROM region", "failed");
  assert.match(await page.textContent("#query-error .code"), /table_not_found|permission_denied/);
  await shot(page, "22-oidc-signed-in");
});

await step("signing out forgets the token", async () => {
  await page.click("#sign-out");
  await page.waitForSelector("#api-key");
  assert.equal(await page.evaluate(() => sessionStorage.getItem("sluice.credential")), null);
});

assert.deepEqual(problems, []);
await browser.close();
console.log("console test passed");
process.exit(0);
