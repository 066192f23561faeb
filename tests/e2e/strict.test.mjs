// Strict pages in real Chromium and Firefox: a Content-Security-Policy of `script-src 'self'
// 'wasm-unsafe-eval'` (no `unsafe-eval`, no inline script) runs the tracker and every plugin;
// where WebAssembly cannot run — the same policy without `'wasm-unsafe-eval'`, or a browser
// without WebAssembly — the page is not broken: `init()` resolves, `onError` hears
// `unsupported`, calls do nothing, and the page's own code runs.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { startIngest } from "../support/ingest.mjs";
import { startStatic } from "../support/static.mjs";
import { waitUntil } from "../support/wait.mjs";
import { engines } from "../support/drivers.mjs";

const DIR = "tests/e2e/fixtures/strict/";
const STRICT = "script-src 'self' 'wasm-unsafe-eval'";
const NO_WASM_POLICY = "script-src 'self'";
const html = readFileSync(new URL("fixtures/strict/index.html", import.meta.url), "utf8");
const pages = {
  strict: { path: DIR + "index.html", policy: STRICT },
  "no-wasm-policy": { path: DIR + "no-wasm-policy.html", html, policy: NO_WASM_POLICY },
  "no-webassembly": {
    path: DIR + "no-webassembly.html",
    html: html.replace('<script src="record.js"></script>', '<script src="record.js"></script>\n  <script src="no-wasm.js"></script>'),
    policy: STRICT,
  },
};
const browsers = engines;
let ingest, site;

before(async () => {
  const files = {};
  const headers = {};
  for (const { path, html, policy } of Object.values(pages)) {
    if (html) files[path] = html;
    headers[path] = { "content-security-policy": policy };
  }
  site = await startStatic({ files, headers });
  const tenants = [];
  for (const b of Object.keys(browsers)) for (const p of Object.keys(pages)) tenants.push({ clientKey: key(b, p), origins: [site.url] });
  ingest = await startIngest({ tenants });
});
after(async () => {
  await ingest?.stop();
  await site?.stop();
});

const key = (browser, page) => `pk_${browser}_${page}`.replaceAll("-", "_");
const url = (browser, page) =>
  `${site.url}/${pages[page].path}?clientKey=${key(browser, page)}&endpoint=${encodeURIComponent(ingest.endpoint)}`;

for (const [name, open] of Object.entries(browsers)) {
  test(`${name}: a strict policy with 'wasm-unsafe-eval' runs the tracker and every plugin`, async () => {
    const browser = await open();
    try {
      await browser.goto(url(name, "strict"));
      assert.equal(await settled(browser), "resolved");
      await browser.click("#place");
      const events = await ingest.waitForEvents(key(name, "strict"), 3, (e) => e.event_type !== "element");
      assert.deepEqual(events.map((e) => `${e.event_type}.${e.action}`), ["page.viewed", "instrument.viewed", "form.submitted"]);
      assert.deepEqual(await browser.run(() => [window.pageErrors, window.violations, window.pfErrors]), [[], [], []]);
    } finally {
      await browser.close();
    }
  });

  for (const page of ["no-wasm-policy", "no-webassembly"]) {
    test(`${name}: where WebAssembly cannot run (${page}), the page goes on and the tracker is off`, async () => {
      const browser = await open();
      try {
        await browser.goto(url(name, page));
        assert.equal(await settled(browser), "resolved");
        const [errors, app, tracked, pageErrors] = await browser.run(() => [
          window.pfErrors,
          document.body.dataset.app,
          window.pf.track("instrument", "viewed"),
          window.pageErrors,
        ]);
        assert.equal(errors.length, 1, JSON.stringify(errors));
        assert.equal(errors[0].code, "unsupported");
        assert.match(errors[0].message, page === "no-webassembly" ? /no WebAssembly/ : /WebAssembly cannot run on this page/);
        assert.equal(app, "running");
        assert.equal(tracked, false);
        assert.deepEqual(pageErrors, []);
        assert.deepEqual(await browser.run(() => window.pf.flush()), { batches: 0, accepted: 0, duplicates: 0, rejected: 0, retrying: 0, dropped: 0 });
        assert.equal(await browser.run(() => window.pf.queuedEvents()), 0);
        // A second init() is told too, and resolves.
        assert.equal(await browser.run(() => {
          const told = [];
          return window.pf.init({ clientKey: "pk_x", endpoint: "http://127.0.0.1:9/v1/events", onError: (e) => told.push(e.code) }).then(() => told.join());
        }), "unsupported");
        assert.equal(ingest.events(key(name, page)).length, 0);
      } finally {
        await browser.close();
      }
    });
  }
}

/** What `init()` came to, once it has. */
async function settled(browser) {
  let outcome = null;
  await waitUntil(async () => (outcome = await browser.run(() => window.pfSettled ?? null)) !== null, "init() to settle");
  return outcome;
}
