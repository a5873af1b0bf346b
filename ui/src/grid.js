// A virtualized grid over Arrow record batches: only the rows in view (and a few around them)
// are in the DOM, so a million-row result scrolls like a ten-row one, and rows are shown as
// soon as their batch arrives.

import { DataType } from "apache-arrow";

const ROW = 24;
const OVERSCAN = 8;

/** The rows of a result as they arrive: batches and where each starts. */
export class Rows {
  constructor(schema) {
    this.schema = schema;
    this.batches = [];
    this.starts = [];
    this.count = 0;
  }

  push(batch) {
    if (batch.numRows === 0) return;
    this.batches.push(batch);
    this.starts.push(this.count);
    this.count += batch.numRows;
  }

  /** The batch holding row `i` and the row's index in it. */
  locate(i) {
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid] <= i) lo = mid;
      else hi = mid - 1;
    }
    return [this.batches[lo], i - this.starts[lo]];
  }
}

function pad(n, w = 2) {
  return String(n).padStart(w, "0");
}

function isoDate(ms) {
  const d = new Date(Number(ms));
  return isNaN(d) ? String(ms) : d.toISOString().slice(0, 10);
}

/** Units per second of a time unit (Arrow's SECOND, MILLISECOND, MICROSECOND, NANOSECOND). */
const PER_SECOND = [1n, 1000n, 1000000n, 1000000000n];
const DIGITS = [0, 3, 6, 9];

/** `raw` units past the epoch (or midnight) as whole seconds and a fraction with its digits. */
function split(raw, unit) {
  const per = PER_SECOND[unit] ?? 1n;
  let secs = raw / per;
  let frac = raw % per;
  if (frac < 0n) {
    frac += per;
    secs -= 1n;
  }
  const digits = frac === 0n ? "" : "." + frac.toString().padStart(DIGITS[unit], "0").replace(/0+$/, "");
  return [secs, digits];
}

/** A timestamp, exact to its unit; one with a time zone is an instant, shown in UTC with `Z`. */
function timestamp(raw, type) {
  const [secs, digits] = split(BigInt(raw), type.unit);
  const d = new Date(Number(secs) * 1000);
  if (isNaN(d)) return String(raw);
  return d.toISOString().slice(0, 19).replace("T", " ") + digits + (type.timezone ? "Z" : "");
}

function timeOfDay(raw, type) {
  const [secs, digits] = split(BigInt(raw), type.unit);
  const s = Number(secs);
  return `${pad(Math.floor(s / 3600))}:${pad(Math.floor(s / 60) % 60)}:${pad(s % 60)}${digits}`;
}

/** The stored integer of row `j` (Arrow JS hands out timestamps as float milliseconds, which
 * lose micro- and nanoseconds). */
function stored(vector, j) {
  const data = vector.data;
  if (data?.length !== 1 || !data[0].values) return null;
  const v = data[0].values[j];
  return typeof v === "bigint" || typeof v === "number" ? v : null;
}

/** The text of row `j` of `vector`. */
export function cellText(vector, j, type) {
  if (!vector || !vector.isValid(j)) return null;
  if (DataType.isTimestamp(type) || DataType.isTime(type)) {
    const raw = stored(vector, j);
    if (raw !== null) return DataType.isTimestamp(type) ? timestamp(raw, type) : timeOfDay(raw, type);
  }
  return text(vector.get(j), type);
}

/** A cell's text: what a person reading the value expects, never "[object Object]". */
export function text(value, type) {
  if (value === null || value === undefined) return null;
  if (DataType.isTimestamp(type)) return timestamp(BigInt(Math.round(Number(value))), { unit: 1, timezone: type.timezone });
  if (DataType.isDate(type)) return isoDate(value);
  if (DataType.isTime(type)) return timeOfDay(BigInt(value), type);
  if (DataType.isDecimal(type)) return decimal(value, type.scale);
  if (value instanceof Uint8Array) {
    let hex = "\\x";
    for (const b of value.subarray(0, 64)) hex += b.toString(16).padStart(2, "0");
    return value.length > 64 ? hex + "…" : hex;
  }
  if (typeof value === "bigint" || typeof value === "number" || typeof value === "boolean") return String(value);
  if (typeof value === "string") return value;
  try {
    return JSON.stringify(value.toJSON ? value.toJSON() : value, (_, v) => (typeof v === "bigint" ? v.toString() : v));
  } catch {
    return String(value);
  }
}

/** A Decimal128/256 value (Arrow JS hands out its words) as text with `scale` digits. */
function decimal(value, scale) {
  let n;
  if (typeof value === "bigint") n = value;
  else if (value && value.length !== undefined) {
    // Little-endian 32-bit words, two's complement.
    n = 0n;
    for (let i = value.length - 1; i >= 0; i--) n = (n << 32n) | BigInt(value[i] >>> 0);
    const bits = BigInt(value.length * 32);
    if (n >> (bits - 1n)) n -= 1n << bits;
  } else return String(value);
  const neg = n < 0n;
  let digits = (neg ? -n : n).toString();
  if (scale < 0 && n !== 0n) digits += "0".repeat(-scale);
  if (scale > 0) {
    digits = digits.padStart(scale + 1, "0");
    digits = digits.slice(0, -scale) + "." + digits.slice(-scale);
  }
  return (neg ? "-" : "") + digits;
}

function numeric(type) {
  return DataType.isInt(type) || DataType.isFloat(type) || DataType.isDecimal(type);
}

/** Draws `rows` into `host`, keeping only what is in view in the DOM. */
export class Grid {
  constructor(host) {
    this.host = host;
    this.rows = null;
    this.frame = 0;
    host.classList.add("grid");
    host.setAttribute("role", "grid");
    host.tabIndex = 0;
    host.addEventListener("scroll", () => this.schedule());
    new ResizeObserver(() => this.schedule()).observe(host);
  }

  show(rows) {
    this.rows = rows;
    this.host.replaceChildren();
    this.host.scrollTop = 0;
    if (!rows) return;
    const head = document.createElement("div");
    head.className = "head";
    head.setAttribute("role", "row");
    head.append(cell("#", "rn", "columnheader"));
    for (const f of rows.schema.fields) {
      const c = cell(f.name, "", "columnheader");
      const t = document.createElement("small");
      t.textContent = String(f.type);
      c.append(t);
      c.title = `${f.name}: ${f.type}`;
      head.append(c);
    }
    this.body = document.createElement("div");
    this.body.className = "body";
    this.host.append(head, this.body);
    this.numeric = rows.schema.fields.map((f) => numeric(f.type));
    this.drawn = "";
    this.schedule();
  }

  /** More rows arrived. */
  grew() {
    this.schedule();
  }

  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.draw();
    });
  }

  draw() {
    const rows = this.rows;
    if (!rows || !this.body) return;
    this.body.style.height = rows.count * ROW + "px";
    this.host.dataset.rows = String(rows.count);
    const first = Math.max(0, Math.floor(this.host.scrollTop / ROW) - OVERSCAN);
    const last = Math.min(rows.count, Math.ceil((this.host.scrollTop + this.host.clientHeight) / ROW) + OVERSCAN);
    const key = `${first}:${last}`;
    if (key === this.drawn) return;
    this.drawn = key;
    const fields = rows.schema.fields;
    const out = [];
    for (let i = first; i < last; i++) {
      const [batch, j] = rows.locate(i);
      const row = document.createElement("div");
      row.className = "row";
      row.setAttribute("role", "row");
      row.setAttribute("aria-rowindex", String(i + 1));
      row.style.top = i * ROW + "px";
      row.append(cell(String(i + 1), "rn", "rowheader"));
      for (let c = 0; c < fields.length; c++) {
        const v = cellText(batch.getChildAt(c), j, fields[c].type);
        const td = cell(v === null ? "NULL" : v, (v === null ? "null " : "") + (this.numeric[c] ? "num" : ""), "gridcell");
        if (v !== null && v.length > 20) td.title = v;
        row.append(td);
      }
      out.push(row);
    }
    this.body.replaceChildren(...out);
  }
}

function cell(content, cls, role) {
  const d = document.createElement("div");
  d.className = "cell " + cls;
  d.setAttribute("role", role);
  d.textContent = content;
  return d;
}
