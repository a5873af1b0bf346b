// The API as the console uses it: every call carries the signed-in credential, and every
// failure becomes an ApiError with the server's code and message.

const CREDENTIAL = "sluice.credential";

/** The credential of this tab (an API key or an access token), kept in session storage only. */
export function credential() {
  return sessionStorage.getItem(CREDENTIAL);
}

export function setCredential(secret) {
  if (secret) sessionStorage.setItem(CREDENTIAL, secret);
  else sessionStorage.removeItem(CREDENTIAL);
}

export class ApiError extends Error {
  constructor(status, code, message, queryId) {
    super(message);
    this.status = status;
    this.code = code;
    this.queryId = queryId;
  }
}

/** Reads an error answer (`{"error": {code, message, query_id}}`) into an ApiError. */
export async function errorOf(resp) {
  let code = "http_" + resp.status;
  let message = resp.statusText || "request failed";
  let queryId = resp.headers.get("x-query-id");
  const retryAfter = Number(resp.headers.get("retry-after")) || 0;
  try {
    const body = await resp.json();
    if (body && body.error) {
      code = body.error.code || code;
      message = body.error.message || message;
      queryId = body.error.query_id || queryId;
    }
  } catch {
    // Not JSON: keep the status line.
  }
  const e = new ApiError(resp.status, code, message, queryId);
  e.retryAfter = retryAfter;
  return e;
}

/** A fetch with the credential; resolves to the Response when it is 2xx, else throws ApiError. */
export async function call(path, { method = "GET", body, headers = {}, signal } = {}) {
  const h = { ...headers };
  const secret = credential();
  if (secret) h.Authorization = "Bearer " + secret;
  let payload = body;
  if (body !== undefined && typeof body !== "string" && !(body instanceof Blob)) {
    payload = JSON.stringify(body);
    h["Content-Type"] = "application/json";
  }
  let resp;
  try {
    resp = await fetch(path, { method, headers: h, body: payload, signal, cache: "no-store" });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, "network", "the server could not be reached: " + e.message);
  }
  if (!resp.ok) {
    const e = await errorOf(resp);
    // The credential stopped working (expired, revoked, rotated away): back to sign-in.
    if (e.status === 401 && secret) window.dispatchEvent(new CustomEvent("sluice:signed-out", { detail: e }));
    throw e;
  }
  return resp;
}

export async function json(path, options) {
  const resp = await call(path, options);
  return resp.json();
}
