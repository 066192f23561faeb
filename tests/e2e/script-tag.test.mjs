// The script-tag install path in Chromium: the README's async snippet (read from the README
// itself, so the documented snippet is the tested one) and examples/script-tag/. Calls made
// before the file loads must reach ingest in order, with the time they were made.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { startIngest } from "../support/ingest.mjs";
import { startStatic } from "../support/static.mjs";
import { launch, openPage } from "../support/browser.mjs";

const root = fileURLToPath(new URL("../../", import.meta.url));
let ingest, site, browser;

before(async () => {
  site = await startStatic();
  ingest = await startIngest({
    tenants: [
      { clientKey: "pk_snippet", origins: [site.url] },
      { clientKey: "pk_script_example", origins: [site.url] },
      { clientKey: "pk_inline", origins: [site.url] },
      { clientKey: "pk_all", origins: [site.url] },
    ],
  });
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await ingest?.stop();
  await site?.stop();
});

/** The ```html block of the README's "Script tag" section. */
function readmeSnippet() {
  const readme = readFileSync(`${root}/README.md`, "utf8");
  const section = readme.slice(readme.indexOf("### Script tag"));
  const block = /```html\n([\s\S]*?)```/.exec(section);
  assert.ok(block, "the README's Script tag section has an html block");
  return block[1];
}

/** A page with the README's snippet, for the file the build made with `integrity`. */
function snippetPage(name, integrity) {
  const snippet = readmeSnippet()
    .replace("https://cdn.northwind.example/personafin.js", `${site.url}/js-wrapper/dist/personafin.js`)
    .replace("sha384-…", integrity)
    .replace("pk_live_northwind", "pk_snippet")
    .replace("https://ingest.northwind.example/v1/events", ingest.endpoint);
  assert.ok(snippet.includes("pk_snippet") && snippet.includes(ingest.endpoint) && snippet.includes(integrity), "placeholders replaced");
  const html = `<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,">
    ${snippet}
    <script>
      personafin.track("instrument", "viewed", { relatedEntities: ["ticker:AAPL"] });
      personafin.track("watchlist", "added", { relatedEntities: ["ticker:AAPL"] });
      window.queuedBeforeLoad = personafin.q.length;
    </script></head><body><p>README snippet</p></body></html>`;
  // Served from the site like any page (a page Playwright fulfils itself has no address, and
  // Chromium would then refuse its requests to loopback).
  mkdirSync(`${root}/target/e2e-pages`, { recursive: true });
  writeFileSync(`${root}/target/e2e-pages/${name}.html`, html);
  return `${site.url}/target/e2e-pages/${name}.html`;
}

const published = () => JSON.parse(readFileSync(`${root}/js-wrapper/dist/integrity.json`, "utf8"));

test("the README snippet queues calls made before the file loads and replays them in order", async () => {
  const page = await openPage(browser);
  await page.goto(snippetPage("readme-snippet", published()["personafin.js"]));
  assert.equal(await page.evaluate(() => window.queuedBeforeLoad), 2, "the stub queued both calls");
  await page.waitForFunction(() => typeof window.personafin.sessionId === "function" && window.personafin.sessionId());
  await page.evaluate(() => window.personafin.flush());
  const events = await ingest.waitForEvents("pk_snippet", 3);
  const names = events.map((e) => `${e.event_type}.${e.action}`);
  assert.deepEqual(names, ["page.viewed", "instrument.viewed", "watchlist.added"]);
  const [pageView, first, second] = events.map((e) => Date.parse(e.created_at));
  assert.ok(first <= second, "replayed in order");
  assert.ok(second <= pageView, "each with the time it was made, before the tracker existed");
  assert.deepEqual(page.errors, []);
  await page.close();
});

test("a file that is not the one published is refused, and the page is not broken", async () => {
  const page = await openPage(browser);
  const wrong = "sha384-" + Buffer.alloc(48, 7).toString("base64");
  const refused = page.waitForEvent("console", { predicate: (m) => /integrity/i.test(m.text()), timeout: 15_000 });
  await page.goto(snippetPage("readme-snippet-tampered", wrong));
  assert.match((await refused).text(), /personafin\.js/);
  // The stub keeps queueing; nothing is sent.
  assert.equal(await page.evaluate(() => typeof window.personafin.sessionId), "undefined");
  assert.equal(await page.evaluate(() => window.personafin.q.length), 2);
  await page.close();
});

test("the script-tag example identifies the reader before load and records its clicks", async () => {
  const page = await openPage(browser);
  await page.goto(
    `${site.url}/examples/script-tag/?clientKey=pk_script_example&endpoint=${encodeURIComponent(ingest.endpoint)}`,
  );
  await page.waitForFunction(() => typeof window.personafin.sessionId === "function" && window.personafin.sessionId());
  await page.locator("[data-pf-event]").click();
  await page.evaluate(() => window.personafin.flush());
  const events = await ingest.waitForEvents("pk_script_example", 3);
  assert.deepEqual(
    events.map((e) => `${e.event_type}.${e.action}`),
    ["page.viewed", "content.viewed", "content.shared"],
  );
  const [, viewed, shared] = events;
  assert.equal(viewed.event_meta.content_id, "nvda-q3-preview");
  assert.match(viewed.channel_meta.user_id, /^[0-9a-f]{32}$/);
  assert.equal(viewed.channel_meta.user_id, shared.channel_meta.user_id, "identify() before load applied to both");
  assert.deepEqual(page.errors, []);
  await page.close();
});

test("the one-file build and the build with every plugin, from plain script tags", async () => {
  const hashes = published();
  for (const [file, clientKey] of [["personafin.inline.js", "pk_inline"], ["personafin.all.js", "pk_all"]]) {
    const html = `<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,">
      <script async src="${site.url}/js-wrapper/dist/${file}" integrity="${hashes[file]}" crossorigin="anonymous"
        data-client-key="${clientKey}" data-endpoint="${ingest.endpoint}"></script></head>
      <body><a id="out" href="https://broker.example/markets?x=1">Broker</a></body></html>`;
    mkdirSync(`${root}/target/e2e-pages`, { recursive: true });
    writeFileSync(`${root}/target/e2e-pages/${clientKey}.html`, html);
    const page = await openPage(browser);
    await page.goto(`${site.url}/target/e2e-pages/${clientKey}.html`);
    await page.waitForFunction(() => typeof window.personafin?.sessionId === "function" && window.personafin.sessionId());
    // Stays on the page: the link's default is prevented after the plugins saw the click.
    await page.evaluate(() => document.addEventListener("click", (e) => e.preventDefault()));
    await page.locator("#out").click();
    await page.evaluate(() => window.personafin.flush());
    const expected = file === "personafin.all.js" ? ["page.viewed", "link.clicked"] : ["page.viewed"];
    const events = await ingest.waitForEvents(clientKey, expected.length);
    assert.deepEqual(events.map((e) => `${e.event_type}.${e.action}`), expected, file);
    assert.equal(await page.evaluate(() => typeof window.personafin.plugins?.clicks), file === "personafin.all.js" ? "function" : "undefined");
    assert.deepEqual(page.errors, []);
    await page.close();
  }
});
