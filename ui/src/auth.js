// OpenID Connect sign-in: the authorization code flow with PKCE (RFC 7636) for a public
// client. The verifier and state live in session storage between the redirect and the return;
// the access token goes where an API key would (session storage), and the code never stays in
// the address bar.

import { setCredential } from "./api.js";

const PENDING = "sluice.oidc.pending";

function base64url(bytes) {
  let s = "";
  for (const b of new Uint8Array(bytes)) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function random(n) {
  const bytes = new Uint8Array(n);
  crypto.getRandomValues(bytes);
  return base64url(bytes);
}

function redirectUri() {
  return location.origin + "/console/";
}

async function discover(issuer) {
  const url = issuer.replace(/\/$/, "") + "/.well-known/openid-configuration";
  const resp = await fetch(url, { cache: "no-store" });
  if (!resp.ok) throw new Error(`the provider's discovery answered ${resp.status}`);
  return resp.json();
}

/** Sends the browser to the provider to sign in. */
export async function startSignIn(oidc) {
  const meta = await discover(oidc.issuer);
  const verifier = random(32);
  const challenge = base64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  const state = random(16);
  sessionStorage.setItem(PENDING, JSON.stringify({ verifier, state }));
  const q = new URLSearchParams({
    response_type: "code",
    client_id: oidc.client_id,
    redirect_uri: redirectUri(),
    scope: oidc.scope,
    state,
    code_challenge: challenge,
    code_challenge_method: "S256",
  });
  if (oidc.resource) q.set("resource", oidc.resource);
  location.assign(meta.authorization_endpoint + "?" + q.toString());
}

/**
 * On return from the provider: exchanges the code for an access token. Resolves to true when
 * a sign-in completed, false when this page load is not a return; throws with the reason when
 * the provider refused or the answer does not match what was asked.
 */
export async function finishSignIn(oidc) {
  const params = new URLSearchParams(location.search);
  if (!params.has("code") && !params.has("error")) return false;
  history.replaceState(null, "", location.pathname);
  const pending = JSON.parse(sessionStorage.getItem(PENDING) || "null");
  sessionStorage.removeItem(PENDING);
  if (!oidc || !pending || pending.state !== params.get("state")) {
    throw new Error("this sign-in was not started here (its state does not match); sign in again");
  }
  // RFC 9207: a provider that names itself must be the one asked (no mix-up between issuers).
  if (params.has("iss") && params.get("iss") !== oidc.issuer) {
    throw new Error(`the answer came from ${params.get("iss")}, not from ${oidc.issuer}`);
  }
  if (params.has("error")) {
    throw new Error(`the provider refused: ${params.get("error")} ${params.get("error_description") || ""}`.trim());
  }
  const meta = await discover(oidc.issuer);
  const form = new URLSearchParams({
    grant_type: "authorization_code",
    code: params.get("code"),
    redirect_uri: redirectUri(),
    client_id: oidc.client_id,
    code_verifier: pending.verifier,
  });
  if (oidc.resource) form.set("resource", oidc.resource);
  const resp = await fetch(meta.token_endpoint, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: form,
  });
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok || !body.access_token) {
    throw new Error(`the provider did not give a token: ${body.error || resp.status} ${body.error_description || ""}`.trim());
  }
  setCredential(body.access_token);
  return true;
}
