// `npm run build`: the package's ES modules and types (tsc), each plugin as one module (its
// dependencies bundled, so it also runs unbundled from a server and the package has no
// runtime dependency: `web-vitals` is only a dev dependency), and the script-tag files:
// `personafin.js` and `personafin.all.js` (every plugin) load `personafin.wasm` beside them,
// `personafin.inline.js` carries the wasm inlined. Each published file's Subresource Integrity
// hash goes to `dist/integrity.json` and is printed; the script-tag files fetch the wasm with
// its hash, so one `integrity` attribute on the script tag covers both.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFileSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, "dist");
const tsc = join(here, "../node_modules/typescript/bin/tsc");
const sri = (file) => "sha384-" + createHash("sha384").update(readFileSync(join(dist, file))).digest("base64");

execFileSync(process.execPath, [tsc, "-p", join(here, "tsconfig.json")], { stdio: "inherit" });
execFileSync(process.execPath, [tsc, "-p", join(here, "tsconfig.script.json")], { stdio: "inherit" });
copyFileSync(join(here, "pkg/personafin_tracker_bg.wasm"), join(dist, "personafin.wasm"));

const script = {
  bundle: true,
  minify: true,
  format: "iife",
  target: "es2020",
  loader: { ".wasm": "binary" },
  define: { WASM_INTEGRITY: JSON.stringify(sri("personafin.wasm")) },
  logLevel: "warning",
  logOverride: { "empty-import-meta": "silent", "duplicate-object-key": "silent" },
};
await build({ ...script, entryPoints: [join(here, "src/script.ts")], outfile: join(dist, "personafin.js") });
await build({ ...script, entryPoints: [join(here, "src/script-all.ts")], outfile: join(dist, "personafin.all.js") });
await build({ ...script, entryPoints: [join(here, "src/script-inline.ts")], outfile: join(dist, "personafin.inline.js") });
const plugins = ["campaigns", "clicks", "engagement", "errors", "forms", "links", "vitals"];
await build({
  entryPoints: plugins.map((p) => join(here, `src/plugins/${p}.ts`)),
  bundle: true,
  format: "esm",
  target: "es2020",
  outdir: join(dist, "plugins"),
  logLevel: "warning",
});

const published = ["personafin.js", "personafin.all.js", "personafin.inline.js", "personafin.wasm"];
const integrity = Object.fromEntries(published.map((f) => [f, sri(f)]));
writeFileSync(join(dist, "integrity.json"), JSON.stringify(integrity, null, 2) + "\n");
for (const [file, hash] of Object.entries(integrity)) console.log(`integrity of dist/${file}: ${hash}`);
