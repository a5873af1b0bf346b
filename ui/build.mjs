// Builds the console into dist/ (committed: the binary embeds it, so `cargo run` needs no node).
//
//   node build.mjs           write dist/
//   node build.mjs --check   build into a temporary folder and fail if dist/ differs
//
// Versions are pinned in package-lock.json; esbuild's output is the same for the same inputs.
import { build } from "esbuild";
import { mkdtempSync, readFileSync, writeFileSync, copyFileSync, rmSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const here = dirname(fileURLToPath(import.meta.url));
const check = process.argv.includes("--check");
const out = check ? mkdtempSync(join(tmpdir(), "sluice-console-")) : join(here, "dist");

await build({
  entryPoints: { console: join(here, "src/main.js") },
  bundle: true,
  format: "esm",
  target: ["es2022"],
  minify: true,
  legalComments: "eof",
  outdir: out,
  logLevel: "warning",
});
await build({
  entryPoints: { console: join(here, "src/console.css") },
  bundle: true,
  minify: true,
  outdir: out,
  logLevel: "warning",
});
copyFileSync(join(here, "src/index.html"), join(out, "index.html"));

const files = ["index.html", "console.js", "console.css"];
let total = 0;
for (const f of files) {
  const body = readFileSync(join(out, f));
  const gz = gzipSync(body, { level: 9 }).length;
  total += gz;
  console.log(`${f.padEnd(12)} ${String(body.length).padStart(8)} bytes, ${String(gz).padStart(7)} gzipped`);
}
console.log(`${"total".padEnd(12)} ${" ".repeat(15)}${String(total).padStart(7)} gzipped`);

if (check) {
  const dist = join(here, "dist");
  const differ = files.filter((f) => !readFileSync(join(out, f)).equals(readFileSync(join(dist, f))));
  const extra = readdirSync(out).filter((f) => !files.includes(f));
  rmSync(out, { recursive: true, force: true });
  if (differ.length || extra.length) {
    console.error(`ui/dist differs from a build of ui/src: ${[...differ, ...extra].join(", ")}; run node ui/build.mjs and commit ui/dist`);
    process.exit(1);
  }
  console.log("ok: ui/dist is the build of ui/src");
}
