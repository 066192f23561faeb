// Every plugin and `beforeSend` in real Chromium and Firefox pages, against a real ingest: the
// page is reached from another site with campaign parameters, clicks links, submits a form,
// raises errors, scrolls, changes route and is left; what ingest stored is then checked,
// event by event.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startIngest } from "../support/ingest.mjs";
import { startStatic } from "../support/static.mjs";
import { waitUntil } from "../support/wait.mjs";
import { engines } from "../support/drivers.mjs";

let ingest, site;
const browsers = engines;

before(async () => {
  site = await startStatic();
  const origins = [site.url];
  ingest = await startIngest({ tenants: Object.keys(browsers).map((b) => ({ clientKey: `pk_plugins_${b}`, origins })) });
});
after(async () => {
  await ingest?.stop();
  await site?.stop();
});

for (const [name, open] of Object.entries(browsers)) {
  test(`plugins and beforeSend in ${name}`, async () => {
    const browser = await open();
    try {
      await scenario(browser, `pk_plugins_${name}`);
    } finally {
      await browser.close();
    }
  });
}

test("without consent, the plugins keep nothing on the device and record nothing", async () => {
  const browser = await engines.chromium();
  try {
    await browser.goto(`${site.url}/tests/e2e/fixtures/plugins.html?clientKey=pk_plugins_chromium_denied&endpoint=${encodeURIComponent(ingest.endpoint)}&consent=denied&utm_source=x`);
    await waitUntil(() => browser.run(() => window.pfReady.then(() => true)), "the tracker to start");
    await browser.click("#out");
    const [kept, returned] = await browser.run(() => [Object.keys(localStorage), window.pf.track("instrument", "viewed")]);
    assert.deepEqual(kept, []);
    assert.equal(returned, false);
  } finally {
    await browser.close();
  }
});

async function scenario(browser, clientKey) {
  const fixture = `${site.url}/tests/e2e/fixtures/plugins.html?clientKey=${clientKey}&endpoint=${encodeURIComponent(ingest.endpoint)}&utm_source=newsletter&utm_medium=email&utm_campaign=q3&gclid=abc123&other=kept-out`;
  // Another origin (same server, another host name) links to the page.
  const elsewhere = site.url.replace("127.0.0.1", "localhost");
  await browser.goto(`${elsewhere}/tests/e2e/fixtures/launch.html#${encodeURIComponent(fixture)}`);
  await browser.click("#go");
  await waitUntil(() => browser.run(() => window.pfReady !== undefined && window.pfReady.then(() => true)));

  const returned = await browser.run(() => [
    window.pf.track("instrument", "viewed", { eventMeta: { account: "ACC-9912", surface: "list" } }),
    window.pf.track("search", "submitted", { eventMeta: { query: "tesla" } }),
    window.pf.track("broken", "call"),
    window.pf.track("bad", "call"),
  ]);
  assert.deepEqual(returned, [true, false, false, false], "filtered and failed events are not recorded");
  // The campaign plugin remembers the session it tagged where the tracker stores its own state.
  const [tagged, session] = await browser.run(() => [localStorage.getItem("pf_campaign_session"), window.pf.sessionId()]);
  assert.equal(tagged, session);
  const failures = await browser.run(() => window.pfErrors);
  assert.deepEqual(failures.map((e) => e.code), ["before_send_failed", "before_send_failed"]);
  assert.match(failures[0].message, /`beforeSend` threw: boom/);
  assert.match(failures[1].message, /`beforeSend` returned an invalid event: field `eventType`/);

  for (const id of ["#out", "#pdf", "#internal", "#submit", "#buy", "#plain", "#declared", "#raise", "#raise"]) {
    await browser.click(id);
  }
  await browser.click("#reject");
  await browser.run(() => window.scrollTo(0, document.body.scrollHeight));
  const stored = (action) => ingest.events(clientKey).filter((e) => `${e.event_type}.${e.action}` === action);
  // Both raises have happened once the first is stored (the second was counted meanwhile).
  await waitUntil(() => stored("error.raised").length === 2 && stored("element.clicked").length >= 9).catch((e) => {
    console.log(JSON.stringify(ingest.events(clientKey).map((e) => [e.event_type, e.action, e.event_meta])));
    throw e;
  });
  await browser.run(() => history.pushState({}, "", location.pathname + "?view=2"));
  await browser.goto("about:blank");
  await waitUntil(() => stored("page.engaged").length >= 2);

  const events = ingest.events(clientKey);
  const one = (action, where = () => true) => {
    const found = events.filter((e) => `${e.event_type}.${e.action}` === action && where(e));
    assert.equal(found.length, 1, `one ${action} expected, ${found.length} stored`);
    return found[0].event_meta;
  };
  const fixturePath = "/tests/e2e/fixtures/plugins.html";

  // beforeSend
  assert.equal(one("instrument.viewed").account, "[redacted]");
  assert.equal(stored("search.submitted").length, 0);
  assert.equal(events.filter((e) => e.event_type === "broken" || e.event_type === "bad").length, 0);

  // campaigns: the first page view only
  const views = stored("page.viewed").map((e) => e.event_meta);
  assert.equal(views.length, 2);
  assert.deepEqual(views[0].campaign, { utm_source: "newsletter", utm_medium: "email", utm_campaign: "q3", gclid: "abc123" });
  assert.equal(views[0].referrer_host, new URL(elsewhere).host);
  assert.equal(views[1].campaign, undefined);

  // links and downloads: no query, no fragment
  assert.deepEqual(one("link.clicked"), { outbound: true, host: "broker.example", path: "/markets/eu" });
  // Ingest scrubs IP addresses from what it stores.
  const siteHost = `[ip]:${new URL(site.url).port}`;
  assert.deepEqual(one("file.downloaded"), { host: siteHost, path: "/reports/q3-results.pdf", extension: "pdf", outbound: false });

  // forms: never a value
  assert.deepEqual(one("form.submitted"), { form_id: "order-form", form_name: "order", fields: 3 });

  // generic clicks: text only where marked; declared elements left to the tracker
  assert.deepEqual(one("element.clicked", (e) => e.event_meta.id === "buy"), {
    tag: "button", id: "buy", aria_label: "Buy AAPL", data: { section: "ticket" }, text: "Buy now",
  });
  assert.deepEqual(one("element.clicked", (e) => e.event_meta.id === "plain"), { tag: "button", id: "plain" });
  assert.equal(stored("element.clicked").filter((e) => e.event_meta.id === "declared").length, 0);
  one("watchlist.added");

  // errors: raised once, the repeat counted
  const raised = one("error.raised", (e) => e.event_meta.kind === "error");
  assert.match(raised.message, /price feed failed/);
  assert.equal(raised.source, fixturePath);
  assert.ok(raised.line > 0 && raised.column > 0, JSON.stringify(raised));
  assert.ok(Array.isArray(raised.stack));
  assert.ok(raised.stack.every((frame) => !frame.includes("127.0.0.1")), "origins are stripped from stacks");
  const repeated = one("error.repeated");
  assert.equal(repeated.count, 1);
  assert.equal(repeated.message, raised.message);
  const rejection = one("error.raised", (e) => e.event_meta.kind === "unhandledrejection");
  assert.match(rejection.message, /quote rejected/);

  // engagement: the first view scrolled to the bottom and was engaged; the second was left
  const engaged = stored("page.engaged").map((e) => e.event_meta);
  assert.equal(engaged.length, 2);
  assert.equal(engaged[0].path, fixturePath);
  assert.equal(engaged[0].max_scroll_pct, 100);
  assert.ok(engaged[0].engaged_ms > 0);
  assert.equal(engaged[1].resumed, undefined);

  // vitals: one for the loaded page, with what this browser measures
  const vitals = one("page.vitals", (e) => !e.event_meta.soft_navigation);
  assert.equal(vitals.path, fixturePath);
  for (const key of ["ttfb", "fcp"]) {
    assert.ok(Number.isInteger(vitals[`${key}_ms`]), `${key}_ms in ${JSON.stringify(vitals)}`);
    assert.ok(["good", "needs-improvement", "poor"].includes(vitals[`${key}_rating`]));
  }
  if (browser.name === "chromium") {
    assert.ok(Number.isInteger(vitals.lcp_ms), JSON.stringify(vitals));
    assert.equal(typeof vitals.cls, "number");
  }
}
