// The npm install path, as a customer takes it: `npm pack` the package, install the tarball
// into a copy of examples/npm-vite (offline: nothing comes from the registry that the root
// install did not already cache), build with Vite 7 and no configuration, then load the built
// app in Chromium and read what ingest stored.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { cpSync, readFileSync, rmSync, writeFileSync, mkdirSync, readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { startIngest } from "../support/ingest.mjs";
import { startStatic } from "../support/static.mjs";
import { launch, openPage } from "../support/browser.mjs";

const root = fileURLToPath(new URL("../../", import.meta.url));
const CLIENT_KEY = "pk_vite";
let ingest, site, browser, app;

before(async () => {
  const packed = join(root, "target/npm");
  mkdirSync(packed, { recursive: true });
  const tarball = execFileSync("npm", ["pack", "--workspace", "js-wrapper", "--pack-destination", packed], {
    cwd: root,
    encoding: "utf8",
  })
    .trim()
    .split("\n")
    .pop();
  app = join(root, "target/e2e-npm-vite");
  rmSync(app, { recursive: true, force: true });
  cpSync(join(root, "examples/npm-vite"), app, { recursive: true });
  // The example names the tarball relative to its own folder; the copy names it absolutely.
  const manifest = JSON.parse(readFileSync(join(app, "package.json"), "utf8"));
  manifest.dependencies["@personafin/capture"] = `file:${join(packed, tarball)}`;
  writeFileSync(join(app, "package.json"), JSON.stringify(manifest, null, 2));
  const quiet = { cwd: app, stdio: ["ignore", "ignore", "inherit"] };
  execFileSync("npm", ["install", "--offline", "--no-audit", "--no-fund", "--no-package-lock"], quiet);
  execFileSync("npx", ["--no-install", "vite", "build", "--logLevel", "warn"], quiet);

  site = await startStatic({ dir: join(app, "dist") });
  ingest = await startIngest({ tenants: [{ clientKey: CLIENT_KEY, origins: [site.url] }] });
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await ingest?.stop();
  await site?.stop();
});

test("Vite emits the wasm as an asset by itself", () => {
  const assets = readdirSync(join(app, "dist/assets"));
  assert.ok(assets.some((f) => f.endsWith(".wasm")), `no wasm among ${assets}`);
});

test("the built app records a page view and clicks into ingest", async () => {
  const page = await openPage(browser);
  await page.goto(`${site.url}/?clientKey=${CLIENT_KEY}&endpoint=${encodeURIComponent(ingest.endpoint)}`);
  await page.locator("#status").getByText("ready").waitFor();
  await page.locator("[data-pf-event]").click();
  await page.locator("#view-msft").click();
  await page.locator("#stored").getByText("3", { exact: true }).waitFor({ timeout: 15_000 });
  const events = ingest.events(CLIENT_KEY).map((e) => [
    `${e.event_type}.${e.action}`,
    e.related_entities.map((r) => r.id).join(),
  ]);
  assert.deepEqual(events, [
    ["page.viewed", ""],
    ["watchlist.added", "AAPL"],
    ["instrument.viewed", "MSFT"],
  ]);
  assert.deepEqual(page.errors, []);
  await page.close();
});
