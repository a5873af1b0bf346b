// Small DOM helpers shared by the views. Text always goes in as text (never as HTML), so
// nothing a server or a user wrote can become markup.

/** An element with attributes (`on…` functions become listeners) and children. */
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith("on") && typeof v === "function") e.addEventListener(k.slice(2), v);
    else if (k === "style") e.style.cssText = v;
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

export function clear(e) {
  e.replaceChildren();
  return e;
}

export function number(n) {
  return Number(n ?? 0).toLocaleString("en-US");
}

export function bytes(n) {
  n = Number(n ?? 0);
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

export function ms(n) {
  n = Number(n ?? 0);
  return n < 1000 ? `${Math.round(n)} ms` : `${(n / 1000).toFixed(2)} s`;
}

export function toast(message) {
  const t = el("div", { class: "toast", role: "status" }, message);
  document.body.append(t);
  setTimeout(() => t.remove(), 2500);
}

export async function copy(text) {
  try {
    await navigator.clipboard.writeText(text);
    toast("Copied");
  } catch {
    toast("Copy failed: select the text and copy it");
  }
}

/** Shows `error` (an ApiError: its code and message) in `box`, or clears it. */
export function showError(box, error, lead) {
  clear(box);
  box.className = "";
  if (!error) return;
  box.className = "error";
  if (lead) box.append(el("div", {}, el("b", {}, lead)));
  box.append(el("span", { class: "code" }, error.code || "error"), ": ", error.message || String(error));
  if (error.queryId) box.append(el("div", { class: "muted mono" }, error.queryId));
}
