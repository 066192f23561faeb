// The basic example page in real Chromium, loading the optimised wasm package, posting to a
// real ingest on another origin; the events are then read back from ingest's store.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startIngest } from "../support/ingest.mjs";
import { startStatic } from "../support/static.mjs";
import { launch, openPage } from "../support/browser.mjs";

let ingest, site, browser;
const CLIENT_KEY = "pk_e2e";

before(async () => {
  site = await startStatic();
  ingest = await startIngest({ tenants: [{ clientKey: CLIENT_KEY, origins: [site.url] }, { clientKey: "pk_elsewhere", origins: ["https://elsewhere.example"] }] });
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await ingest?.stop();
  await site?.stop();
});

const pageUrl = (clientKey) => `${site.url}/examples/basic/?endpoint=${encodeURIComponent(ingest.endpoint)}&clientKey=${clientKey}`;

test("clicks become stored, pseudonymised events", async () => {
  const page = await openPage(browser);
  await page.goto(pageUrl(CLIENT_KEY));
  await page.locator("#status").getByText("ready").waitFor();
  const session = await page.locator("#session").textContent();
  assert.match(session, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);

  await page.locator('[data-ticker="AAPL"] button[data-action="view"]').click();
  await page.locator('[data-ticker="TSLA"] button[data-action="watch"]').click();
  await page.locator('[data-ticker="NVDA"] button[data-action="order"]').click();
  await page.locator("#search input").fill("tesla earnings");
  await page.locator("#search button").click();
  // The page counts what ingest acknowledged; acknowledgement comes after the commit.
  await page.locator("#stored").getByText("5", { exact: true }).waitFor({ timeout: 15_000 });

  const events = ingest.events(CLIENT_KEY);
  const summary = events.map((e) => [e.event_type, e.action, e.related_entities.map((r) => `${r.type}:${r.id}`).join(",")]);
  assert.deepEqual(summary, [
    ["page", "viewed", ""],
    ["instrument", "viewed", "ticker:AAPL"],
    ["watchlist", "added", "ticker:TSLA"],
    ["trade", "order_placed", "ticker:NVDA"],
    ["search", "submitted", ""],
  ]);
  assert.equal(events[4].event_meta.query, "tesla earnings");
  const users = new Set(events.map((e) => e.channel_meta.user_id));
  assert.equal(users.size, 1);
  assert.ok(!users.has("demo-user-1"), "client_ref is stored only as a pseudonym");
  assert.match([...users][0], /^[0-9a-f]{32}$/);
  assert.equal(new Set(events.map((e) => e.channel_meta.session_id)).size, 1);
  // The page view was recorded by autocapture, with the page's path.
  assert.equal(events[0].event_meta.path, "/examples/basic/");
  assert.ok(Date.parse(events[0].created_at) <= Date.parse(events[1].created_at));
  assert.deepEqual(page.errors, []);
  await page.close();
});

test("a tenant that does not list the page's origin gets nothing", async () => {
  const page = await openPage(browser);
  await page.goto(pageUrl("pk_elsewhere"));
  await page.locator("#status").getByText("ready").waitFor();
  await page.locator('[data-ticker="AAPL"] button[data-action="view"]').click();
  await page.locator("#flush").click();
  await page.locator("#log li.error").first().waitFor({ timeout: 15_000 });
  assert.equal(ingest.events("pk_elsewhere").length, 0);
  await page.close();
});
