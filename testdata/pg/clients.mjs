// The PostgreSQL door's differential harness, Node side: node-postgres (`pg`, the driver of
// most Node BI back ends; text results, extended protocol with parameters) and `postgres`
// (porsager's: prepared statements, and on connect its array-type lookup in pg_type) run the
// same steps against a target and print what they saw as JSON.
//
//   node clients.mjs <pg|postgres> '<json target>'   (run with NODE_PATH at their node_modules)
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const [client, targetJson] = process.argv.slice(2);
const t = JSON.parse(targetJson);

const norm = (v) => {
  if (v === null || v === undefined) return null;
  if (v instanceof Date) return "date:" + v.toISOString();
  if (Buffer.isBuffer(v)) return "bytes:" + v.toString("hex");
  return typeof v + ":" + String(v);
};

const steps = [
  ["rows", "SELECT i4, i8, f8, n, t, b, d, ts, tz, by FROM items ORDER BY i4", []],
  ["param", "SELECT t, n FROM items WHERE i4 = $1", [2]],
  ["count", "SELECT count(*) FROM items", []],
  ["missing_table", "SELECT * FROM no_such_table", []],
  ["write", "DELETE FROM items", []],
];

const out = {};
if (client === "pg") {
  const { Client } = require("pg");
  const c = new Client({
    host: t.host, port: t.port, user: t.user, password: t.password, database: t.database,
    options: `-c search_path=${t.search_path} -c default_transaction_read_only=on`,
  });
  await c.connect();
  for (const [name, sql, params] of steps) {
    try {
      const r = await c.query({ text: sql, values: params });
      out[name] = { columns: r.fields.map((f) => f.name), rows: r.rows.map((row) => Object.values(row).map(norm)) };
    } catch (e) {
      out[name] = { error: e.code };
    }
  }
  // A named prepared statement reused.
  for (let k = 0; k < 2; k++) {
    const r = await c.query({ name: "by_id", text: "SELECT t FROM items WHERE i4 = $1", values: [1] });
    out["named" + k] = { rows: r.rows.map((row) => Object.values(row).map(norm)) };
  }
  await c.end();
} else {
  const m = require("postgres");
  const postgres = m.default || m;
  const sql = postgres({
    host: t.host, port: t.port, user: t.user, pass: t.password, database: t.database,
    connection: { search_path: t.search_path, default_transaction_read_only: "on" },
    max: 1, ssl: false,
  });
  for (const [name, text, params] of steps) {
    try {
      const r = await sql.unsafe(text, params, { prepare: true });
      out[name] = { columns: r.columns.map((c) => c.name), rows: r.map((row) => Object.values(row).map(norm)) };
    } catch (e) {
      out[name] = { error: e.code };
    }
  }
  await sql.end();
}
console.log(JSON.stringify(out));
