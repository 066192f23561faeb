// The plugins' logic that needs no page: what a link, a campaign URL, a stack or a run of
// activity comes to. The browser tests (tests/e2e/plugins.test.mjs) run every plugin in
// Chromium and Firefox against a real ingest.
import { test } from "node:test";
import assert from "node:assert/strict";
import { campaignOf, referrerHost } from "../dist/plugins/campaigns.js";
import { EngagedTime } from "../dist/plugins/engagement.js";
import { frames, topFrame } from "../dist/plugins/errors.js";
import { DOWNLOADS, linkEvent } from "../dist/plugins/links.js";

test("links: other hosts are outbound, files are downloads, queries never kept", () => {
  const page = "app.example.com";
  assert.deepEqual(linkEvent("https://broker.example/eu/markets?session=1#x", page, false, DOWNLOADS), [
    "link.clicked",
    { outbound: true, host: "broker.example", path: "/eu/markets" },
  ]);
  assert.equal(linkEvent("https://app.example.com/markets", page, false, DOWNLOADS), undefined);
  assert.deepEqual(linkEvent("https://app.example.com/r/Q3.PDF?t=1", page, false, DOWNLOADS), [
    "file.downloaded",
    { host: page, path: "/r/Q3.PDF", extension: "pdf", outbound: false },
  ]);
  assert.deepEqual(linkEvent("https://cdn.example/export", page, true, DOWNLOADS), [
    "file.downloaded",
    { host: "cdn.example", path: "/export", extension: "", outbound: true },
  ]);
  // A dot in a folder is not an extension; other extensions only when configured.
  assert.equal(linkEvent("https://app.example.com/v1.2/notes", page, false, DOWNLOADS), undefined);
  assert.equal(linkEvent("https://app.example.com/a.ofx2", page, false, DOWNLOADS), undefined);
  assert.equal(linkEvent("https://app.example.com/a.ofx2", page, false, ["ofx2"])[0], "file.downloaded");
  for (const href of ["mailto:ir@example.com", "javascript:void(0)", "tel:+4420", "not a url"]) {
    assert.equal(linkEvent(href, page, false, DOWNLOADS), undefined, href);
  }
});

test("campaigns: utm parameters and click ids, nothing else; another site's host as referrer", () => {
  assert.deepEqual(campaignOf("?utm_source=newsletter&utm_medium=email&gclid=abc&q=tesla&utm_term="), {
    utm_source: "newsletter",
    utm_medium: "email",
    gclid: "abc",
  });
  assert.deepEqual(campaignOf(""), {});
  assert.equal(campaignOf("?fbclid=" + "x".repeat(1000)).fbclid.length, 256);
  assert.equal(referrerHost("https://www.google.com/", "app.example.com"), "www.google.com");
  assert.equal(referrerHost("https://app.example.com/markets", "app.example.com"), undefined);
  assert.equal(referrerHost("", "app.example.com"), undefined);
});

test("errors: the top frames of Chromium and Firefox stacks, origins and queries stripped", () => {
  const chromium = [
    "Error: price feed failed",
    "    at refresh (https://app.example.com/assets/app.js?v=3:10:5)",
    "    at https://app.example.com/assets/app.js:20:1",
    "    at tick (https://cdn.example/lib.js:1:100)",
  ].join("\n");
  assert.deepEqual(frames(chromium, 2), ["at refresh (/assets/app.js:10:5)", "at /assets/app.js:20:1"]);
  assert.deepEqual(topFrame(chromium), ["https://app.example.com/assets/app.js?v=3", 10, 5]);
  const firefox = "refresh@https://app.example.com/assets/app.js:10:5\n@https://app.example.com/assets/app.js#x:20:1\n";
  assert.deepEqual(frames(firefox, 5), ["refresh@/assets/app.js:10:5", "@/assets/app.js:20:1"]);
  assert.deepEqual(frames("", 5), []);
  assert.deepEqual(topFrame("no frames here"), ["", 0, 0]);
});

test("engagement: activity keeps the visitor engaged for the idle time; overlaps count once", () => {
  const time = new EngagedTime(5000);
  time.active(0);
  time.active(2000); // engaged until 7000
  time.active(20000); // a new span
  assert.equal(time.take(21000), 7000 + 1000);
  // Taking starts counting afresh; the span goes on.
  assert.equal(time.take(23000), 2000);
  // Hidden at 24000: nothing counts after it, however long it is taken later.
  time.stop(24000);
  assert.equal(time.take(60000), 1000);
  assert.equal(time.take(70000), 0);
  time.active(80000);
  assert.equal(time.take(100000), 5000);
});
