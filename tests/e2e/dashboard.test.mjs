// The datasets dashboard in real Chromium: fixtures A and B are posted to a real ingest (in
// test mode, so the dashboard can ask for the fixtures' `as_of`), and the charts must hold
// the replayed data.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { startIngest } from "../support/ingest.mjs";
import { launch, openPage } from "../support/browser.mjs";

const CLIENT_KEY = "pk_fixture";
const NOW = "2025-01-06T12:00:00Z";
let ingest, browser;

const fixture = (name) =>
  readFileSync(new URL(`../../schema/fixtures/datasets/${name}`, import.meta.url), "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l));

before(async () => {
  ingest = await startIngest({ tenants: [{ clientKey: CLIENT_KEY }], serveArgs: ["--test-mode"] });
  browser = await launch();
  // In event-time order, as the datasets spec asks of an HTTP test.
  const events = [...fixture("fixture_a.jsonl"), ...fixture("fixture_b.jsonl")].sort((a, b) =>
    a.created_at < b.created_at ? -1 : a.created_at > b.created_at ? 1 : 0,
  );
  for (let i = 0; i < events.length; i += 20) {
    const res = await fetch(ingest.endpoint, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ events: events.slice(i, i + 20) }),
    });
    assert.equal(res.status, 200, await res.text());
  }
});
after(async () => {
  await browser?.close();
  await ingest?.stop();
});

const bars = (page, chart) =>
  page.locator(`svg[data-chart="${chart}"] rect`).evaluateAll((rects) =>
    rects.map((r) => [r.dataset.label, Number(r.dataset.value)]),
  );

test("the dashboard charts trending entities, searches and CTR per recommender", async () => {
  const page = await openPage(browser);
  const key = ingest.apiKeys[CLIENT_KEY];
  await page.goto(`${ingest.url}/dashboard?as_of=${NOW}#key=${key}`);
  await page.locator('svg[data-chart="ctr"]').waitFor({ timeout: 15_000 });
  assert.equal(new URL(page.url()).hash, "", "the key leaves the address bar");
  assert.match(await page.locator("#status").textContent(), /as of 2025-01-06T12:00:00Z/);

  // Fixture A's TSLA and AAPL keep their figures; fixture B's clicks and watchlist add
  // make MSFT trend too (three users within 24 h).
  const trending = new Map(await bars(page, "trending-entities"));
  assert.deepEqual([...trending.keys()].sort(), ["AAPL", "MSFT", "TSLA"]);
  assert.ok(Math.abs(trending.get("TSLA") - 11.290835) < 1e-6, String(trending.get("TSLA")));
  assert.ok(Math.abs(trending.get("AAPL") - 3.382174) < 1e-6, String(trending.get("AAPL")));
  assert.equal([...trending.keys()][0], "TSLA");

  const searches = await bars(page, "trending-searches");
  assert.deepEqual(searches.map(([label]) => label), ["tesla", "nvidia"]);
  const popular = await bars(page, "popular-searches");
  assert.deepEqual(popular, [["nvidia", 5], ["tesla", 3]]);

  const points = await page.locator('svg[data-chart="ctr"] circle').evaluateAll((cs) =>
    cs.map((c) => [c.dataset.series, c.dataset.date, Number(c.dataset.value), Number(c.dataset.impressions)]),
  );
  const day = points.filter(([, date]) => date === "2025-01-06");
  assert.deepEqual(
    day.sort(),
    [
      ["news_feed", "2025-01-06", 0.5, 4],
      ["similar_stocks", "2025-01-06", 0.5, 6],
    ],
  );
  assert.deepEqual(page.errors, []);
  await page.close();
});

test("a wrong key is reported on the page, not thrown", async () => {
  const page = await openPage(browser);
  await page.goto(`${ingest.url}/dashboard#key=sk_wrong`);
  await page.locator("#status.error").waitFor({ timeout: 15_000 });
  assert.match(await page.locator("#status").textContent(), /unknown API key/);
  // The 401 itself is logged by Chromium as a failed resource load; nothing else may fail.
  assert.deepEqual(page.errors.filter((e) => !/status of 401/.test(e)), []);
  await page.close();
});
