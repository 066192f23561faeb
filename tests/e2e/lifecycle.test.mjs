// The tracker's page lifecycle in real Chromium, with the optimised package, against a real
// ingest: a reload while ingest is unreachable, a tab that closes with events unsent while
// another stays open, leaving a page (beacons), and going offline and back. Each test reads
// what ingest stored: every event exactly once, none lost.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startDown, startIngest } from "../support/ingest.mjs";
import { startStatic } from "../support/static.mjs";
import { launch } from "../support/browser.mjs";

let ingest, down, site, browser;
const keys = ["pk_reload", "pk_tabs", "pk_beacon", "pk_offline"];

before(async () => {
  site = await startStatic();
  ingest = await startIngest({ tenants: keys.map((clientKey) => ({ clientKey, origins: [site.url] })) });
  down = await startDown();
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await ingest?.stop();
  await down?.stop();
  await site?.stop();
});

const fixture = (clientKey, endpoint = ingest.endpoint) =>
  `${site.url}/tests/e2e/fixtures/tracker.html?clientKey=${clientKey}&endpoint=${encodeURIComponent(endpoint)}`;

async function open(context, clientKey, endpoint) {
  const page = await context.newPage();
  page.errors = [];
  page.on("pageerror", (e) => page.errors.push(e.message));
  await page.goto(fixture(clientKey, endpoint));
  await page.evaluate(() => window.pfReady);
  return page;
}

const track = (page, n, label) =>
  page.evaluate(
    ([n, label]) => {
      for (let i = 0; i < n; i++) window.pf.track("instrument", "viewed", { eventMeta: { label: `${label}-${i}` } });
    },
    [n, label],
  );
const flush = (page) => page.evaluate(() => window.pf.flush());
/** Makes ingest unreachable for this page: its sends fail as on a dead network. */
const cutOff = (page) => page.route(`${ingest.url}/**`, (route) => route.abort());

async function storedLabels(clientKey, count) {
  const events = await ingest.waitForEvents(clientKey, count);
  assert.equal(new Set(events.map((e) => e.event_id)).size, events.length, "no event stored twice");
  return events.map((e) => e.event_meta.label).sort();
}

test("events queued while ingest is unreachable survive a reload and are sent once", async () => {
  const context = await browser.newContext();
  const page = await open(context, "pk_reload");
  await cutOff(page);
  await track(page, 3, "before-reload");
  assert.equal((await flush(page)).retrying, 3);
  await page.unroute(`${ingest.url}/**`);
  await page.reload();
  await page.evaluate(() => window.pfReady);
  // The reloaded page finds its stored queue and sends it without being asked.
  await page.waitForFunction(() => window.pf.queuedEvents() === 0 && window.pfBatches.length > 0);
  assert.deepEqual(await storedLabels("pk_reload", 3), ["before-reload-0", "before-reload-1", "before-reload-2"]);
  assert.deepEqual(page.errors, []);
  await context.close();
});

test("a closed tab's unsent events are sent by the tab still open, once", async () => {
  const context = await browser.newContext();
  // The closing tab sends to an ingest that is down; the staying tab to the real one.
  const closing = await open(context, "pk_tabs", down.endpoint);
  const staying = await open(context, "pk_tabs");
  await track(closing, 2, "closed-tab");
  assert.equal((await flush(closing)).retrying, 2);
  await track(staying, 1, "open-tab");
  const first = await flush(staying);
  assert.equal(first.accepted, 1, "only its own event: the other tab is alive");
  await closing.close({ runBeforeUnload: true });
  // The open tab has been waiting for the other tab's lock since that tab stored its queue;
  // the browser grants it on close, and the open tab sends what was left.
  const labels = await storedLabels("pk_tabs", 3);
  assert.deepEqual(labels, ["closed-tab-0", "closed-tab-1", "open-tab-0"]);
  await staying.waitForFunction(() => window.pf.queuedEvents() === 0);
  const duplicates = await staying.evaluate(() => window.pfBatches.reduce((n, b) => n + b.duplicates, 0));
  assert.equal(duplicates, 0, "nothing was sent twice");
  await context.close();
});

test("leaving a page sends what is queued by beacon, and the next page does not send it again", async () => {
  const context = await browser.newContext();
  const page = await open(context, "pk_beacon");
  await track(page, 2, "beaconed");
  assert.equal(await page.evaluate(() => window.pf.queuedEvents()), 2);
  await page.goto("about:blank");
  assert.deepEqual(await storedLabels("pk_beacon", 2), ["beaconed-0", "beaconed-1"]);
  await page.goto(fixture("pk_beacon"));
  await page.evaluate(() => window.pfReady);
  assert.equal((await flush(page)).batches, 0, "nothing left to send");
  assert.equal(ingest.events("pk_beacon").length, 2);
  await context.close();
});

test("offline, events wait; back online, they are sent without being asked", async () => {
  const context = await browser.newContext();
  const page = await open(context, "pk_offline");
  await context.setOffline(true);
  await track(page, 2, "offline");
  assert.equal((await flush(page)).batches, 0, "no attempt while offline");
  await context.setOffline(false);
  await page.waitForFunction(() => window.pf.queuedEvents() === 0);
  assert.deepEqual(await storedLabels("pk_offline", 2), ["offline-0", "offline-1"]);
  assert.deepEqual(page.errors, []);
  await context.close();
});
