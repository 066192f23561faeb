// The demo trading UI (examples/demo/) in Chromium, with its own server (the one
// `cargo xtask demo` runs) in front of a real ingest: a session of browsing, watching,
// searching and trading reaches ingest, and the recommendations panel, filled from ingest's
// recommendations API through the server, closes the loop with impression ids.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startIngest } from "../support/ingest.mjs";
import { launch, openPage } from "../support/browser.mjs";
import { startDemo } from "../../examples/demo/server.mjs";

const CLIENT_KEY = "pk_demo";
let ingest, demo, browser;

before(async () => {
  ingest = await startIngest({ tenants: [{ clientKey: CLIENT_KEY }] });
  demo = await startDemo({ ingest: ingest.url, clientKey: CLIENT_KEY, apiKey: ingest.apiKeys[CLIENT_KEY] });
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await demo?.stop();
  await ingest?.stop();
});

const named = (name) => (e) => `${e.event_type}.${e.action}` === name;

test("a trading session reaches ingest, and recommendations close the loop", async () => {
  const page = await openPage(browser);
  await page.goto(`${demo.url}/`);
  await page.locator("#session").filter({ hasNotText: "…" }).waitFor();
  assert.equal(await page.title(), "Markets · Northwind");

  // Browse to AMD from the markets table, change the chart, watch it, set an alert.
  await page.locator('tr[data-ticker="AMD"]').click();
  await page.waitForURL("**/instrument/AMD");
  await page.locator('[data-range="1Y"]').click();
  await page.locator(".actions [data-watch]").click();
  await page.locator('[data-pf-event="alert.created"]').click();
  // Search for Tesla, open it from the suggestions, buy some.
  await page.locator("#search input").fill("tes");
  await page.locator("#search input").press("Enter");
  await page.waitForURL("**/instrument/TSLA");
  await page.locator("#buy").click();
  await page.locator("#ticket input[name=quantity]").fill("25");
  await page.locator("#place-order").click();
  await page.locator("#toast").getByText("Bought 25 TSLA").waitFor();

  const expected = [
    "page.viewed", "instrument.clicked", "page.viewed", "instrument.viewed", "chart.interacted",
    "watchlist.added", "alert.created", "search.submitted", "search.result_clicked", "page.viewed",
    "instrument.viewed", "trade.ticket_opened", "trade.order_placed",
  ];
  const session = await ingest.waitForEvents(CLIENT_KEY, expected.length);
  assert.deepEqual(session.map((e) => `${e.event_type}.${e.action}`), expected);
  assert.equal(session.find(named("trade.order_placed")).event_meta.quantity, 25);
  assert.equal(session.find(named("search.submitted")).event_meta.query, "tes");
  assert.equal(new Set(session.map((e) => e.channel_meta.user_id)).size, 1, "one signed-in user");
  assert.equal(session.find(named("page.viewed")).event_meta.path, "/");

  // Preferences follow at once, so the panel now has recommendations with impression ids.
  await page.locator(".brand").click();
  const first = page.locator("#recommendations li[data-pf-impression-id]").first();
  await first.waitFor({ timeout: 15_000 });
  const impression = await first.getAttribute("data-pf-impression-id");
  const ticker = await first.getAttribute("data-ticker");
  // Clicked once its view has counted (half on screen for a second) and reached ingest: the
  // click leaves the page, and a view not yet counted would never be.
  const viewed = (e) => named("recommendation.viewed")(e) && e.event_meta.impression_id === impression;
  assert.equal((await ingest.waitForEvents(CLIENT_KEY, 1, viewed)).length, 1, "the recommendation was viewed");
  await first.click();
  await page.waitForURL(`**/instrument/${ticker}`);
  await page.locator("#buy").click();
  await page.locator("#place-order").click();

  const loop = await ingest.waitForEvents(CLIENT_KEY, 3, (e) => e.event_meta.impression_id === impression);
  assert.deepEqual(loop.map((e) => `${e.event_type}.${e.action}`), [
    "recommendation.viewed",
    "recommendation.clicked",
    "trade.order_placed",
  ]);
  assert.equal(loop[1].event_meta.recommender, "personafin_blend", "the recommender's name came along");
  assert.deepEqual(page.errors, []);
  await page.close();
});

test("the secret API key stays on the server", async () => {
  const config = await (await fetch(`${demo.url}/api/config`)).json();
  assert.equal(config.clientKey, CLIENT_KEY);
  assert.ok(!JSON.stringify(config).includes(ingest.apiKeys[CLIENT_KEY]));
  const page = await openPage(browser);
  const requests = [];
  page.on("request", (r) => requests.push(`${r.url()} ${JSON.stringify(r.headers())}`));
  await page.goto(`${demo.url}/`);
  await page.locator("#session").filter({ hasNotText: "…" }).waitFor();
  assert.ok(requests.length > 0);
  assert.ok(requests.every((r) => !r.includes(ingest.apiKeys[CLIENT_KEY])), "no request from the page carries it");
  await page.close();
});

test("where storage is blocked or WebAssembly cannot run, the demo works and says so once", async () => {
  const blockStorage = () => {
    Object.defineProperty(window, "localStorage", {
      get() {
        throw new DOMException("The operation is insecure.", "SecurityError");
      },
    });
  };
  const noWebAssembly = () => delete globalThis.WebAssembly;
  for (const [setup, recorded] of [[blockStorage, true], [noWebAssembly, false]]) {
    const page = await openPage(browser);
    const warnings = [];
    page.on("console", (m) => m.type() === "warning" && warnings.push(m.text()));
    await page.addInitScript(setup);
    const before = ingest.events(CLIENT_KEY).length;
    await page.goto(`${demo.url}/`);
    await page.locator("#session").filter({ hasNotText: "…" }).waitFor();
    await page.locator('tr[data-ticker="AMD"]').click();
    await page.waitForURL("**/instrument/AMD");
    await page.locator(".actions [data-watch]").click();
    await page.locator("#watchlist").getByText("AMD").waitFor();
    if (recorded) {
      // Page view, the click, page view, instrument view, watchlist: the tracker kept them in memory.
      const events = await ingest.waitForEvents(CLIENT_KEY, before + 5);
      assert.ok(events.slice(before).some(named("watchlist.added")));
      assert.equal(warnings.filter((w) => w.includes("[northwind] the watchlist is not saved")).length, 1, warnings.join("\n"));
    } else {
      assert.equal(await page.locator("#session").textContent(), "off");
      assert.equal(warnings.filter((w) => w.includes("the tracker is off")).length, 1, warnings.join("\n"));
      assert.equal(ingest.events(CLIENT_KEY).length, before);
    }
    assert.deepEqual(page.errors, []);
    await page.close();
  }
});
