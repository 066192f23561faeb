// The tracker's page lifecycle in each engine a trading app's users have — Chromium, Firefox
// and WebKit (Safari's engine, as WebKitGTK) — against a real ingest: delivery in order, a
// queue that survives a reload while ingest is down, a beacon when the page is left, and
// impressions viewed and clicked. (The plugins and strict pages run in all three too, in
// plugins.test.mjs and strict.test.mjs; Chromium has more in lifecycle.test.mjs.)
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startDown, startIngest } from "../support/ingest.mjs";
import { startStatic } from "../support/static.mjs";
import { waitUntil } from "../support/wait.mjs";
import { engines } from "../support/drivers.mjs";

let ingest, down, site;
const scenarios = ["delivery", "reload", "beacon", "impressions"];

before(async () => {
  site = await startStatic();
  down = await startDown();
  const tenants = [];
  for (const engine of Object.keys(engines)) for (const s of scenarios) tenants.push({ clientKey: `pk_${engine}_${s}`, origins: [site.url] });
  ingest = await startIngest({ tenants });
});
after(async () => {
  await ingest?.stop();
  await down?.stop();
  await site?.stop();
});

const page = (file, clientKey, endpoint = ingest.endpoint) =>
  `${site.url}/tests/e2e/fixtures/${file}?clientKey=${clientKey}&endpoint=${encodeURIComponent(endpoint)}`;

/** Loads a fixture and waits for its tracker. */
async function open(browser, url) {
  await browser.goto(url);
  await waitUntil(() => browser.run(() => window.pfReady.then(() => true)), "the tracker to start");
}

const track = (browser, n, label) =>
  browser.run(([n, label]) => {
    for (let i = 0; i < n; i++) window.pf.track("instrument", "viewed", { eventMeta: { label: `${label}-${i}` } });
    return window.pf.queuedEvents();
  }, [n, label]);

async function storedLabels(clientKey, count) {
  const events = await ingest.waitForEvents(clientKey, count);
  assert.equal(new Set(events.map((e) => e.event_id)).size, events.length, "no event stored twice");
  return events.map((e) => e.event_meta.label);
}

for (const [engine, launch] of Object.entries(engines)) {
  const key = (scenario) => `pk_${engine}_${scenario}`;

  test(`${engine}: events are delivered in order, acknowledged once stored`, async () => {
    const browser = await launch();
    try {
      await open(browser, page("tracker.html", key("delivery")));
      assert.equal(await track(browser, 3, "sent"), 3);
      const result = await browser.run(() => window.pf.flush());
      assert.equal(result.accepted, 3);
      assert.deepEqual(await storedLabels(key("delivery"), 3), ["sent-0", "sent-1", "sent-2"]);
    } finally {
      await browser.close();
    }
  });

  test(`${engine}: a queue kept while ingest is down survives a reload and is sent once`, async () => {
    const browser = await launch();
    try {
      await open(browser, page("tracker.html", key("reload"), down.endpoint));
      await track(browser, 3, "kept");
      assert.equal((await browser.run(() => window.pf.flush())).retrying, 3);
      // The same page again (the same tab), now with ingest up: it finds its stored queue.
      await open(browser, page("tracker.html", key("reload")));
      await waitUntil(() => browser.run(() => window.pf.queuedEvents() === 0 && window.pfBatches.length > 0), "the stored queue to be sent");
      assert.deepEqual((await storedLabels(key("reload"), 3)).sort(), ["kept-0", "kept-1", "kept-2"]);
      assert.equal(ingest.events(key("reload")).length, 3);
    } finally {
      await browser.close();
    }
  });

  test(`${engine}: leaving a page sends what is queued by beacon`, async () => {
    const browser = await launch();
    try {
      await open(browser, page("tracker.html", key("beacon")));
      assert.equal(await track(browser, 2, "beaconed"), 2);
      await browser.goto("about:blank");
      assert.deepEqual((await storedLabels(key("beacon"), 2)).sort(), ["beaconed-0", "beaconed-1"]);
    } finally {
      await browser.close();
    }
  });

  test(`${engine}: an impression on screen for a second is viewed once; its click is attributed`, async () => {
    const browser = await launch();
    try {
      await open(browser, page("impressions.html", key("impressions")));
      const viewed = (e) => e.event_type === "recommendation" && e.action === "viewed";
      const [view] = await ingest.waitForEvents(key("impressions"), 1, viewed);
      assert.equal(view?.event_meta.impression_id, "imp-1");
      assert.equal(view.event_meta.position, 1);
      assert.deepEqual(view.related_entities, [{ type: "ticker", id: "NVDA" }]);
      await browser.click("#first");
      const events = await ingest.waitForEvents(key("impressions"), 2);
      assert.deepEqual(events.map((e) => `${e.event_type}.${e.action}:${e.event_meta.impression_id}`), [
        "recommendation.viewed:imp-1",
        "recommendation.clicked:imp-1",
      ]);
    } finally {
      await browser.close();
    }
  });
}
