// The iframe component path: examples/iframe-widget's host page embeds the widget from another
// origin; the widget's events must carry the host's session and user (a postMessage handshake
// limited to configured origins), and messages from unlisted origins must change nothing.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startIngest } from "../support/ingest.mjs";
import { startStatic } from "../support/static.mjs";
import { launch, openPage } from "../support/browser.mjs";

const CLIENT_KEY = "pk_iframe";
let ingest, host, widget, other, browser;

before(async () => {
  [host, widget, other] = await Promise.all([startStatic(), startStatic(), startStatic()]);
  ingest = await startIngest({ tenants: [{ clientKey: CLIENT_KEY, origins: [host.url, widget.url, other.url] }] });
  // Each origin's deployment configures the example as a real one would: the host names the
  // widget's origin, the widget its host's.
  const config = { clientKey: CLIENT_KEY, endpoint: ingest.endpoint };
  const configured = (site, settings) =>
    (site.files["examples/iframe-widget/config.json"] = JSON.stringify({ ...config, widgetOrigin: null, hostOrigins: [], ...settings }));
  configured(host, { widgetOrigin: widget.url });
  configured(widget, { hostOrigins: [host.url] });
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await ingest?.stop();
  await Promise.all([host, widget, other].map((s) => s?.stop()));
});

const query = (extra = {}) => new URLSearchParams({ clientKey: CLIENT_KEY, endpoint: ingest.endpoint, ...extra }).toString();

test("the widget's events join the host page's session and user", async () => {
  const spy = `${other.url}/tests/e2e/fixtures/spy.html`;
  const page = await openPage(browser);
  await page.goto(`${host.url}/examples/iframe-widget/host.html?${new URLSearchParams({ spy })}`);
  await page.evaluate(() => window.ready);
  const frame = page.frameLocator("#widget");
  await frame.locator("li").first().waitFor();
  // Seen for a second (the three views have reached ingest), then clicked, then the watchlist
  // button of the second item.
  const isView = (e) => e.event_type === "recommendation" && e.action === "viewed";
  assert.equal((await ingest.waitForEvents(CLIENT_KEY, 3, isView)).length, 3, "three items viewed");
  await frame.locator("li").first().click();
  await frame.locator("li").nth(1).locator("button").click();

  const fromWidget = await ingest.waitForEvents(CLIENT_KEY, 6, (e) => e.event_type === "recommendation" || e.event_type === "watchlist");
  assert.deepEqual(fromWidget.map((e) => `${e.event_type}.${e.action}`).sort(), [
    "recommendation.clicked",
    "recommendation.clicked",
    "recommendation.viewed",
    "recommendation.viewed",
    "recommendation.viewed",
    "watchlist.added",
  ]);
  const hostEvents = await ingest.waitForEvents(CLIENT_KEY, 1, (e) => e.event_type === "instrument");
  const [hostView] = hostEvents;
  for (const e of fromWidget) {
    assert.equal(e.channel_meta.session_id, hostView.channel_meta.session_id, `${e.event_type}.${e.action} is in the host's session`);
    assert.equal(e.channel_meta.user_id, hostView.channel_meta.user_id, "and the host's user");
  }
  const added = fromWidget.find((e) => e.event_type === "watchlist");
  assert.match(added.event_meta.impression_id, /^req-[0-9a-z]+-2$/, "the conversion carries its impression");

  const spied = await page.frames().find((f) => f.url().startsWith(other.url)).evaluate(() => window.received);
  assert.deepEqual(spied, [], "the host answers no unlisted origin");
  assert.deepEqual(page.errors, []);
  await page.close();
});

test("a page on an unlisted origin cannot hand the widget its identity", async () => {
  const isClick = (e) => e.event_type === "recommendation" && e.action === "clicked";
  const clicksBefore = ingest.events(CLIENT_KEY).filter(isClick).length;
  const page = await openPage(browser);
  const rogueQuery = query({ widgetOrigin: widget.url });
  await page.goto(`${other.url}/tests/e2e/fixtures/rogue-host.html?${rogueQuery}`);
  await page.evaluate(() => window.ready);
  const frame = page.frameLocator("#widget");
  await frame.locator("li").first().waitFor();
  await frame.locator("li").first().click();
  const rogueUser = (await ingest.waitForEvents(CLIENT_KEY, 1, (e) => e.event_type === "page" && e.event_meta.url?.includes("rogue-host")))[0];
  assert.ok(rogueUser, "the rogue page's own page view");
  const clicks = await ingest.waitForEvents(CLIENT_KEY, clicksBefore + 1, isClick);
  const widgetClick = clicks.at(-1);
  assert.notEqual(widgetClick.channel_meta.session_id, rogueUser.channel_meta.session_id, "not the rogue page's session");
  assert.notEqual(widgetClick.channel_meta.user_id, rogueUser.channel_meta.user_id, "nor its user");
  assert.deepEqual(page.errors, []);
  await page.close();
});
