// What `host.js` hands the Rust side for `init()`, `track()` and elements with `data-pf-*`
// attributes: the flat encodings `web/options.rs` and `core/config.rs` read (their native
// tests read the same strings), and the messages of calls refused before they reach Rust. The
// rest of `host.js` needs a browser: the wasm-pack tests in Chrome and Firefox and the
// end-to-end tests cover it.
import { mock, test } from "node:test";
import assert from "node:assert/strict";
import { declaredEvent, exposed, impressionEvent, impressionKey, open, options, pageView, readEvent, restart } from "../host.js";

const F = "\x1f", R = "\x1e", G = "\x1d", L = "\x1c";

test("a track() call is flattened, impression ids joining the meta", () => {
  const line = readEvent("instrument", "viewed", {
    eventMeta: { position: 2 },
    relatedEntities: [{ type: "ticker", id: "AAPL" }, "sector:tech"],
    impressionId: "imp-1",
    timestamp: 1795874400123.7,
  });
  assert.equal(
    line,
    ["instrument", "viewed", '{"position":2,"impression_id":"imp-1"}', "1795874400123",
      "ticker" + L + "AAPL" + R + "sector" + L + "tech"].join(F),
  );
  assert.equal(readEvent("page", "viewed"), ["page", "viewed", "", "", ""].join(F));
});

test("separators in what the page gives cannot forge fields", () => {
  const line = readEvent("a" + F + "b", "viewed", { relatedEntities: ["ticker:A" + R + "B"] });
  assert.equal(line.split(F).length, 5);
  assert.ok(line.startsWith("a\ufffdb" + F));
  assert.ok(!line.split(F)[4].includes(R));
});

test("a wrong track() call is refused with what is wrong", () => {
  const cyclic = {};
  cyclic.self = cyclic;
  const cases = [
    [[1, "viewed"], "`eventType` must be a string"],
    [["page", null], "`action` must be a string"],
    [["page", "viewed", 5], "the options of `track()` must be an object"],
    [["page", "viewed", { meta: {} }], "unknown option `meta`; expected one of eventMeta, relatedEntities, timestamp, impressionId, fxcid"],
    [["page", "viewed", { eventMeta: [] }], "`eventMeta` must be a plain object"],
    [["page", "viewed", { fxcid: "" }], "`fxcid` must be a non-empty string"],
    [["page", "viewed", { eventMeta: cyclic }], "`eventMeta` cannot be serialised to JSON (is it cyclic?)"],
    [["page", "viewed", { relatedEntities: "AAPL" }], "`relatedEntities` must be an array"],
    [["page", "viewed", { relatedEntities: ["AAPL"] }], "entity `AAPL` must be written `type:id`, e.g. `ticker:AAPL`"],
    [["page", "viewed", { relatedEntities: [{ type: "ticker" }] }], 'each of `relatedEntities` must be `{ type, id }` with string values, or `"type:id"`'],
    [["page", "viewed", { timestamp: -1 }], "`timestamp` must be milliseconds since the epoch"],
    [["page", "viewed", { timestamp: Infinity }], "`timestamp` must be milliseconds since the epoch"],
  ];
  for (const [args, message] of cases) {
    assert.equal(readEvent(...args), "!" + message, message);
  }
});

test("init()'s options are flattened with their types", () => {
  const flat = options({
    clientKey: "pk_1",
    maxEvents: 20,
    maxBytes: 1.5,
    debug: true,
    clientRef: null,
    iframeOrigins: ["https://a.example", 3],
    autocapture: { pageViews: false },
    onError: () => {},
    storage: {},
  });
  assert.deepEqual(flat.split(G), [
    "clientKey" + F + "spk_1",
    "maxEvents" + F + "n20",
    "maxBytes" + F + "n0.5",
    "debug" + F + "b1",
    "clientRef" + F + "a",
    "iframeOrigins" + F + "lshttps://a.example" + L + "n3",
    "autocapture.pageViews" + F + "b0",
    "onError" + F + "f",
    "storage" + F + "o",
  ]);
  assert.equal(options(null), undefined);
  assert.equal(options("pk_1"), undefined);
  assert.equal(options({}), "");
});

// Elements' attributes as `host.js` reads them: names without the `data-pf-` prefix.
const declared = { event: " watchlist.added ", entities: "ticker:AAPL, ticker:MSFT  sector:tech", "meta-page-section": "hero" };
const impression = { "impression-id": "imp-1", position: " 2 ", recommender: "similar", "meta-slot": "top", "meta-": "x" };

test("a data-pf-event click is its event, carrying the impression around it", () => {
  const [type, action, meta, ts, entities] = declaredEvent(declared, impression).split(F);
  assert.deepEqual([type, action, ts], ["watchlist", "added", ""]);
  assert.deepEqual(JSON.parse(meta), { impression_id: "imp-1", page_section: "hero" });
  assert.equal(entities, ["ticker" + L + "AAPL", "ticker" + L + "MSFT", "sector" + L + "tech"].join(R));
  assert.equal(declaredEvent({ event: "search.submitted" }, {}), ["search", "submitted", "{}", "", ""].join(F));
});

test("an impression is a recommendation or content event with its ids and position", () => {
  const [type, action, meta] = impressionEvent(impression, "viewed").split(F);
  assert.deepEqual([type, action], ["recommendation", "viewed"]);
  // Attributes never override the tracker's keys; the meta keys keep the documented order.
  assert.equal(meta, '{"impression_id":"imp-1","recommender":"similar","position":2,"slot":"top"}');
  assert.equal(impressionEvent({ fxcid: "fx-9" }, "clicked").split(F)[0], "content");
  assert.equal(impressionEvent({ fxcid: "fx-9", type: "news" }, "clicked").split(F)[0], "news");
  assert.equal(impressionEvent({ "impression-id": "i", "meta-impression-id": "forged" }, "clicked").split(F)[2], '{"impression_id":"i"}');
  assert.equal(impressionKey(impression), "imp-1");
  assert.equal(impressionKey({ fxcid: "fx-9" }), "fx-9");
  assert.equal(impressionKey({ fxcid: "fx" + G + "9" }), "fx\ufffd9");
});

test("malformed attributes are refused with what is wrong", () => {
  const cases = [
    [declaredEvent({ event: "watchlist" }, {}), 'data-pf-event="watchlist" must be written `event_type.action`, e.g. `watchlist.added`'],
    [declaredEvent({ event: ".added" }, {}), 'data-pf-event=".added" must be written `event_type.action`, e.g. `watchlist.added`'],
    [declaredEvent({ event: "a.b", entities: "AAPL" }, {}), "entity `AAPL` must be written `type:id`, e.g. `ticker:AAPL`"],
    [impressionEvent({ fxcid: "f", entities: "ticker:" }, "viewed"), "entity `ticker:` must be written `type:id`, e.g. `ticker:AAPL`"],
    [impressionEvent({ fxcid: "f", position: "first" }, "viewed"), 'data-pf-position="first" must be a whole number'],
  ];
  for (const [line, message] of cases) assert.equal(line, "!" + message);
});

test("a URL is one page view however often it is reported, with the page before as referrer", () => {
  globalThis.document = { title: "Markets", referrer: "https://search.example/" };
  const go = (href) => (globalThis.location = { href, pathname: new URL(href).pathname });
  const meta = (line) => JSON.parse(line.split(F)[2]);
  restart(false);
  go("https://x.example/a");
  const first = pageView(false);
  assert.deepEqual(first.split(F).slice(0, 2), ["page", "viewed"]);
  assert.deepEqual(meta(first), { url: "https://x.example/a", path: "/a", title: "Markets", referrer: "https://search.example/" });
  assert.equal(pageView(false), "", "replaceState to the same URL");
  go("https://x.example/b#news");
  assert.equal(meta(pageView(false)).referrer, "https://x.example/a");
  assert.equal(pageView(false), "", "popstate then hashchange");
  assert.equal(meta(pageView(true)).referrer, "https://search.example/", "page() records the same URL again");
  restart(false);
  assert.ok(pageView(false), "a new init() records the page it starts on");
});

test("an impression is viewed once, after a second at least half visible without a break", () => {
  mock.timers.enable({ apis: ["setTimeout"] });
  try {
    globalThis.document = { hidden: false, title: "", referrer: "" };
    restart(false);
    const element = (id) => ({ attributes: [{ name: "data-pf-impression-id", value: id }] });
    const views = [];
    const view = (el) => views.push(el.attributes[0].value);
    const a = element("imp-1");
    exposed(a, 0.2, view);
    exposed(a, 0.6, view);
    mock.timers.tick(600);
    exposed(a, 0.9, view); // still the same exposure
    mock.timers.tick(399);
    assert.deepEqual(views, []);
    mock.timers.tick(1);
    assert.deepEqual(views, ["imp-1"]);
    // Once per impression, whichever element shows it.
    const twin = element("imp-1");
    exposed(twin, 1, view);
    mock.timers.tick(2000);
    assert.deepEqual(views, ["imp-1"]);
    // Scrolled away before the second was up: the second starts again.
    const b = element("imp-2");
    exposed(b, 0.5, view);
    mock.timers.tick(900);
    exposed(b, 0.49, view);
    mock.timers.tick(500);
    assert.deepEqual(views, ["imp-1"]);
    exposed(b, 0.7, view);
    mock.timers.tick(1000);
    assert.deepEqual(views, ["imp-1", "imp-2"]);
    // Nothing counts while the page is hidden.
    document.hidden = true;
    exposed(element("imp-3"), 1, view);
    mock.timers.tick(5000);
    assert.deepEqual(views, ["imp-1", "imp-2"]);
    // A new init() starts counting afresh.
    document.hidden = false;
    restart(false);
    exposed(a, 1, view);
    mock.timers.tick(1000);
    assert.deepEqual(views, ["imp-1", "imp-2", "imp-1"]);
  } finally {
    mock.timers.reset();
  }
});

test("beforeSend sees each valid event, and what it returns is read again, marked as its", () => {
  const seen = [];
  const beforeSend = (event) => {
    seen.push(structuredClone(event));
    if (event.eventType === "search") return null;
    if (event.eventType === "boom") throw new Error("no");
    if (event.eventType === "text") return "nope";
    if (event.eventType === "bad") return { ...event, relatedEntities: "AAPL" };
    return { ...event, eventMeta: { ...event.eventMeta, query: "[redacted]" } };
  };
  options({ clientKey: "pk", endpoint: "http://127.0.0.1/v1/events", beforeSend });
  open(2, "pk", "http://127.0.0.1/v1/events", false, false);
  try {
    const line = readEvent("instrument", "viewed", {
      eventMeta: { query: "secret" },
      relatedEntities: ["ticker:AAPL"],
      impressionId: "imp-1",
      timestamp: 1795874400123,
    });
    assert.deepEqual(seen[0], {
      eventType: "instrument",
      action: "viewed",
      eventMeta: { query: "secret", impression_id: "imp-1" },
      relatedEntities: [{ type: "ticker", id: "AAPL" }],
      timestamp: 1795874400123,
    });
    assert.equal(
      line,
      "~" + ["instrument", "viewed", '{"query":"[redacted]","impression_id":"imp-1"}', "1795874400123", "ticker" + L + "AAPL"].join(F),
    );
    // The time of the call when it gave none.
    const before = Date.now();
    readEvent("page", "viewed");
    assert.ok(seen[1].timestamp >= before && seen[1].timestamp <= Date.now());
    assert.equal(readEvent("search", "submitted"), "-");
    assert.equal(readEvent("boom", "x"), "-`beforeSend` threw: no");
    assert.equal(readEvent("text", "x"), "-`beforeSend` must return the event or null, not string");
    assert.equal(readEvent("bad", "x"), "-`beforeSend` returned an invalid event: `relatedEntities` must be an array");
    // An invalid call never reaches it.
    const calls = seen.length;
    assert.equal(readEvent(1, "x"), "!`eventType` must be a string");
    assert.equal(seen.length, calls);
  } finally {
    options({ clientKey: "pk", endpoint: "http://127.0.0.1/v1/events" });
    open(2, "pk", "http://127.0.0.1/v1/events", false, false);
  }
  assert.equal(readEvent("search", "submitted"), ["search", "submitted", "", "", ""].join(F));
});
