// The npm install path, as a customer takes it: `npm pack` the package, install the tarball
// into a copy of examples/npm-vite, build with Vite 7 — and with webpack 5 — and no
// configuration, then load each built app in Chromium and read what ingest stored.
//
// Nothing here asks the registry. In the repository the example is an npm workspace, so the
// bundlers it names come from the root's lockfile install (`cargo xtask test` runs `npm ci`),
// and the package it depends on is the js-wrapper workspace. The copy, under the repository's
// target/, installs the packed tarball instead (a package with no dependencies installs
// offline) and builds with those same bundlers, which Node finds in the node_modules above it.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { cpSync, readFileSync, rmSync, writeFileSync, mkdirSync, readdirSync, lstatSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { startIngest } from "../support/ingest.mjs";
import { startStatic } from "../support/static.mjs";
import { launch, openPage } from "../support/browser.mjs";

const root = fileURLToPath(new URL("../../", import.meta.url));
const CLIENT_KEY = "pk_vite";
let ingest, site, webpackSite, readmeSite, browser, app;
/** A bundler's command, from the root's install. */
const bin = (name) => join(root, "node_modules/.bin", name);

/** The README's first ```js block (the npm usage), pointed at the ingest under test. */
function readmeApp(endpoint) {
  const readme = readFileSync(join(root, "README.md"), "utf8");
  const block = /```js\n([\s\S]*?)```/.exec(readme.slice(readme.indexOf("## Add the tracker to a page")));
  assert.ok(block, "the README shows the npm usage");
  const code = block[1].replace("pk_live_northwind", "pk_readme").replace("https://ingest.northwind.example/v1/events", endpoint);
  assert.ok(code.includes("pk_readme") && code.includes(endpoint), "placeholders replaced");
  return code;
}

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
  // The copy depends on the tarball; its bundlers are the workspace's, at the versions it names.
  const manifest = JSON.parse(readFileSync(join(app, "package.json"), "utf8"));
  for (const [name, version] of Object.entries(manifest.devDependencies)) {
    const installed = JSON.parse(readFileSync(join(root, "node_modules", name, "package.json"), "utf8")).version;
    assert.equal(installed, version, `the root install has the ${name} the example names`);
  }
  delete manifest.devDependencies;
  manifest.dependencies["@personafin/capture"] = `file:${join(packed, tarball)}`;
  writeFileSync(join(app, "package.json"), JSON.stringify(manifest, null, 2));
  const quiet = { cwd: app, stdio: ["ignore", "ignore", "inherit"] };
  execFileSync("npm", ["install", "--offline", "--no-audit", "--no-fund", "--no-package-lock"], quiet);
  const installed = join(app, "node_modules/@personafin/capture");
  assert.ok(!lstatSync(installed).isSymbolicLink(), "the tarball is installed, not the workspace linked");
  execFileSync(bin("vite"), ["build", "--logLevel", "warn"], quiet);
  execFileSync(bin("webpack"), ["--mode", "production", "--entry", "./main.js", "-o", "dist-webpack"], quiet);
  // webpack emits a classic script; the page is the example's, pointing at it.
  const html = readFileSync(join(app, "index.html"), "utf8").replace('<script type="module" src="/main.js">', '<script src="main.js">');
  writeFileSync(join(app, "dist-webpack/index.html"), html);

  site = await startStatic({ dir: join(app, "dist") });
  webpackSite = await startStatic({ dir: join(app, "dist-webpack") });
  readmeSite = await startStatic({ dir: join(app, "dist-readme") });
  ingest = await startIngest({
    tenants: [
      { clientKey: CLIENT_KEY, origins: [site.url] },
      { clientKey: "pk_webpack", origins: [webpackSite.url] },
      { clientKey: "pk_readme", origins: [readmeSite.url] },
    ],
  });
  // The README's snippet, as the whole of an app's code, built the same way.
  writeFileSync(join(app, "main.js"), readmeApp(ingest.endpoint));
  execFileSync(bin("vite"), ["build", "--logLevel", "warn", "--outDir", "dist-readme"], quiet);
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await ingest?.stop();
  await site?.stop();
  await webpackSite?.stop();
  await readmeSite?.stop();
});

test("the README's npm snippet works as written", async () => {
  const page = await openPage(browser);
  await page.goto(`${readmeSite.url}/`);
  const events = (await ingest.waitForEvents("pk_readme", 4)).map((e) => `${e.event_type}.${e.action}`);
  assert.deepEqual(events, ["page.viewed", "instrument.viewed", "watchlist.added", "search.submitted"]);
  assert.deepEqual(page.errors, []);
  await page.close();
});

test("Vite and webpack emit the wasm as an asset by themselves", () => {
  const assets = readdirSync(join(app, "dist/assets"));
  assert.ok(assets.some((f) => f.endsWith(".wasm")), `no wasm among ${assets}`);
  const packed = readdirSync(join(app, "dist-webpack"));
  assert.ok(packed.some((f) => f.endsWith(".wasm")), `no wasm among ${packed}`);
});

for (const [bundler, clientKey, url] of [
  ["Vite", CLIENT_KEY, () => site.url],
  ["webpack", "pk_webpack", () => webpackSite.url],
]) {
  test(`the ${bundler} build records a page view and clicks into ingest`, async () => {
    const page = await openPage(browser);
    await page.goto(`${url()}/?clientKey=${clientKey}&endpoint=${encodeURIComponent(ingest.endpoint)}`);
    await page.locator("#status").getByText("ready").waitFor();
    await page.locator("[data-pf-event]").click();
    await page.locator("#view-msft").click();
    await page.locator("#stored").getByText("3", { exact: true }).waitFor({ timeout: 15_000 });
    const events = ingest.events(clientKey).map((e) => [
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
}
