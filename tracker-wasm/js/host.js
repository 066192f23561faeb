// The browser side of the tracker: everything that touches the page (storage, cookies, Web
// Locks, timers, fetch and beacons, lifecycle events, the DOM, observers, postMessage), as
// small functions the Rust code in `src/web/` imports. The decisions stay in Rust; this file
// reads and writes the browser and reports what happened through one callback, `dispatch`.
//
// Values cross as strings, in fields, records, groups and list items (`clean` keeps the
// separators out of what the page gives); what `dispatch(kind, number, text)` is told, the
// storage kinds and a batch's outcome are numbered alike on both sides, by this block:

// The protocol with `src/web/`, generated from src/protocol.rs by `cargo xtask gen-types`.
const TIMER = 0;
const NEXT = 1;
const ANSWER = 2;
const SCHEDULE = 3;
const HIDE = 4;
const ONLINE = 5;
const ROUTE = 6;
const ELEMENT = 7;
const HELLO = 8;
const HOST = 9;
const CLAIMED = 10;
const ADOPT = 11;
const FIELD = "\x1f";
const RECORD = "\x1e";
const GROUP = "\x1d";
const ITEM = "\x1c";
const SEPARATORS = /[\x1c-\x1f]/g;
const LOCAL_STORAGE = 0;
const COOKIE = 1;
const MEMORY = 2;
const SESSION_STORAGE = 3;
const DELIVERED = "0";
const RETRY = "1";
const DROP = "2";
const INVALID = "!";
const DROPPED = "-";
const SCREENED = "~";
// End of the generated protocol.

const IMPRESSIONS = "[data-pf-impression-id],[data-pf-fxcid]";
const SEND_TIMEOUT_MS = 30000;

let dispatch;
/** The page's `onBatch`, `onError` and `beforeSend`: of the configuration in force, and of the one read last. */
let callbacks = {};
let pending = {};
/** The last flush started: each starts when the one before it is done. */
let flushes = Promise.resolve();
/** A flush of the tracker's own is waiting to start. */
let waking = false;
/**
 * Where this configuration keeps its state: `kind` (`LOCAL_STORAGE`, `COOKIE` or `MEMORY`),
 * the identity key, the prefix of the per-tab queue keys, the `sessionStorage` slot of this
 * tab's id, and `queue`, this tab's own queue key once it holds that key's lock.
 */
let store;
/** `debug`: log each batch sent. */
let verbose = false;
/** The Web Lock this tab holds for its queue: `{ key, release }`. */
let held;
/** Other tabs' queue keys whose lock this page waits for. */
const waiting = new Set();
/** Iframe components that asked for the identity, with their origins. */
let frames = new Map();
let observers;
/** Impressions viewed so far, by key; one-second timers running, by element. */
let viewed = new Set();
const timers = new Map();

const clean = (s) => s.replace(SEPARATORS, "\ufffd");
const attempt = (f, fallback) => {
  try {
    return f();
  } catch {
    return fallback;
  }
};
const local = () => attempt(() => localStorage, null);
const session = () => attempt(() => sessionStorage, null);

/** Installs the page-wide listeners, once, and the callback they report through. */
export function install(d) {
  if (dispatch) return;
  dispatch = d;
  const on = (target, type, f, capture) => target.addEventListener(type, f, capture);
  on(window, "pagehide", () => dispatch(HIDE, 0));
  on(document, "visibilitychange", () => {
    if (document.hidden) {
      // Hidden pages show nothing: visible time starts again when the page comes back.
      timers.forEach(clearTimeout);
      timers.clear();
      return dispatch(HIDE, 0);
    }
    // Asked afresh what is on screen.
    if (observers) {
      for (const el of document.querySelectorAll(IMPRESSIONS)) {
        if (!viewed.has(impressionKey(pf(el)))) {
          observers[0].unobserve(el);
          observers[0].observe(el);
        }
      }
    }
  });
  on(window, "online", () => dispatch(ONLINE, 0));
  // Another tab stored a queue: wait for its lock too.
  on(window, "storage", (e) => queueOf(e.key) && adopt());
  // Inside the page's own `pushState` call: whatever happens here must not throw into it.
  const route = () => attempt(() => dispatch(ROUTE, 0));
  on(window, "popstate", route);
  on(window, "hashchange", route);
  for (const name of ["pushState", "replaceState"]) {
    const original = history[name];
    history[name] = function (...args) {
      const result = original.apply(this, args);
      route();
      return result;
    };
  }
  on(document, "click", (e) => {
    const target = e.target;
    if (!(target instanceof Element)) return;
    const declared = target.closest("[data-pf-event]");
    const impression = target.closest(IMPRESSIONS);
    if (declared || impression) {
      const around = pf(impression);
      const line = declared ? declaredEvent(pf(declared), around) : "";
      dispatch(ELEMENT, 0, line + GROUP + (impression ? impressionEvent(around, "clicked") : ""));
    }
  }, true);
  on(window, "message", (e) => {
    const data = e.data;
    const kind = data && typeof data === "object" ? data.personafin : undefined;
    if (kind === "hello" && e.source) {
      const identity = dispatch(HELLO, 0, e.origin);
      if (identity !== undefined) {
        frames.set(e.source, e.origin);
        postIdentity(e.source, identity, e.origin);
      }
    } else if (kind === "identity" && e.source === parent && parent !== window) {
      const { visitorId, sessionId, clientRef } = data;
      if (typeof visitorId === "string" && typeof sessionId === "string") {
        const ref = typeof clientRef === "string" ? clientRef : "";
        dispatch(HOST, 0, [e.origin, visitorId, sessionId, ref].map(clean).join(FIELD));
      }
    }
  });
}

// Declarative capture. An element's `data-pf-*` attributes become a `track()` call, written
// as `readEvent` writes the page's own (so Rust validates and records both alike), or INVALID and
// what is wrong with the attributes.

/** The `data-pf-*` attributes of an element, keyed without the prefix; {} for none. */
function pf(el) {
  const a = {};
  if (el) for (const { name, value } of el.attributes) if (name.startsWith("data-pf-")) a[name.slice(8)] = value;
  return a;
}

/** What an impression is known by: its impression id, else its `fxcid`. */
export const impressionKey = (a) => clean(a["impression-id"] ?? a.fxcid ?? "");

/** The attributes of an impression element that become `event_meta`, as strings. */
const IMPRESSION_META = ["impression-id", "fxcid", "request-id", "recommender", "surface", "content-id"];

/**
 * A click on a `data-pf-event="type.action"` element (attributes `a`), with
 * `data-pf-entities="ticker:AAPL ticker:MSFT"` and `data-pf-meta-*`; inside an impression
 * element (attributes `around`) it carries that impression's ids, so the conversion is
 * attributed.
 */
export function declaredEvent(a, around) {
  const name = (a.event ?? "").trim();
  const dot = name.indexOf(".");
  if (dot < 1 || dot === name.length - 1) {
    return INVALID + 'data-pf-event="' + clean(a.event ?? "") + '" must be written `event_type.action`, e.g. `watchlist.added`';
  }
  const meta = {};
  for (const k of IMPRESSION_META.slice(0, 2)) if (around[k] !== undefined) meta[k.replace("-", "_")] = around[k];
  return elementEvent(a, name.slice(0, dot), name.slice(dot + 1), meta);
}

/**
 * An impression element's `viewed` or `clicked`: `recommendation.*` for an impression id,
 * `content.*` for an `fxcid`, or the type `data-pf-type` gives; with its ids, its 1-based
 * `data-pf-position` as a number, and `data-pf-meta-*`.
 */
export function impressionEvent(a, action) {
  const meta = {};
  for (const k of IMPRESSION_META) if (a[k] !== undefined) meta[k.replace("-", "_")] = a[k];
  if (a.position !== undefined) {
    const p = a.position.trim();
    if (!/^-?\d{1,15}$/.test(p)) return INVALID + 'data-pf-position="' + clean(a.position) + '" must be a whole number';
    meta.position = +p;
  }
  return elementEvent(a, a.type || (a.fxcid !== undefined ? "content" : "recommendation"), action, meta);
}

/** Adds `data-pf-meta-*` (`data-pf-meta-page-section` → `page_section`) under keys not set yet. */
function elementEvent(a, type, action, meta) {
  for (const k in a) {
    const key = k.startsWith("meta-") ? k.slice(5).replaceAll("-", "_") : "";
    if (key && !(key in meta)) meta[key] = a[k];
  }
  // Entities are separated by spaces or commas.
  const entities = (a.entities ?? "").split(/[\s,]+/).filter(Boolean);
  for (const e of entities) {
    const colon = e.indexOf(":");
    if (colon < 1 || colon === e.length - 1) return INVALID + "entity `" + clean(e) + "` must be written `type:id`, e.g. `ticker:AAPL`";
  }
  return readEvent(type, action, { eventMeta: meta, relatedEntities: entities });
}

export const now = () => Date.now();

/** Random bytes drawn a few kilobytes at a time: one Web Crypto call serves 256 event ids. */
let pool = new Uint8Array(0);
let drawn = 0;

export function random(bytes) {
  if (drawn + bytes.length > pool.length) {
    pool = new Uint8Array(4096);
    drawn = 0;
    if (!attempt(() => (crypto.getRandomValues(pool), true), false)) {
      // Pages without Web Crypto still get distinct ids, if not unguessable ones.
      for (let i = 0; i < pool.length; i++) pool[i] = Math.random() * 256;
    }
  }
  bytes.set(pool.subarray(drawn, (drawn += bytes.length)));
}

function value(v) {
  if (v == null) return "a";
  switch (typeof v) {
    case "string":
      return "s" + clean(v);
    case "number":
      // Only whole numbers are valid anywhere; anything else reads as 0.5, which is not.
      return "n" + (Number.isSafeInteger(v) ? v : 0.5);
    case "boolean":
      return v ? "b1" : "b0";
    case "function":
      return "f";
  }
  return Array.isArray(v) ? "l" + v.map(value).join(ITEM) : "o";
}

/**
 * `init()`'s argument as `key\x1fvalue\x1d…` (`autocapture: {…}` as `autocapture.key`). Its
 * callbacks are kept for `open`, which the Rust side calls if it accepts the rest.
 */
export function options(config) {
  if (config === null || typeof config !== "object") return undefined;
  pending = { onBatch: config.onBatch, onError: config.onError, beforeSend: config.beforeSend };
  const out = [];
  for (const [k, v] of Object.entries(config)) {
    if (k === "autocapture" && v !== null && typeof v === "object" && !Array.isArray(v)) {
      for (const [s, w] of Object.entries(v)) out.push(clean("autocapture." + s) + FIELD + value(w));
    } else {
      out.push(clean(k) + FIELD + value(v));
    }
  }
  return out.join(GROUP);
}

const TRACK_OPTIONS = ["eventMeta", "relatedEntities", "timestamp", "impressionId", "fxcid"];

/**
 * Reads `track(eventType, action, options)` into `type\x1faction\x1fmeta\x1fts\x1fentities`
 * (entities as `type ITEM id RECORD …`), or INVALID and what is wrong, naming the argument or option.
 * `impressionId` and `fxcid` go into the meta as `impression_id` and `fxcid`. With the page's
 * `beforeSend`, a valid call is then shown to it: see `screen`.
 */
export function readEvent(type, action, o) {
  const line = flatten(type, action, o);
  const hook = callbacks.beforeSend;
  return typeof hook === "function" && line[0] !== INVALID ? screen(hook, line) : line;
}

/**
 * The page's `beforeSend` sees the event a call makes, `{ eventType, action, eventMeta,
 * relatedEntities: [{ type, id }], timestamp }`, and returns it (changed or not), or `null` to
 * drop it. What it returns is read like a call again and marked SCREENED, so the Rust side's
 * validation failures are its failures too; DROPPED alone is a drop, DROPPED and a message a
 * failure (it threw, or returned something that is not an event).
 */
function screen(hook, line) {
  const [eventType, action, meta, ts, entities] = line.split(FIELD);
  const event = {
    eventType,
    action,
    eventMeta: meta ? JSON.parse(meta) : {},
    relatedEntities: entities ? entities.split(RECORD).map((e) => ({ type: e.split(ITEM)[0], id: e.split(ITEM)[1] })) : [],
    timestamp: ts ? +ts : Date.now(),
  };
  let out;
  try {
    out = hook(event);
  } catch (e) {
    return DROPPED + "`beforeSend` threw: " + clean(attempt(() => String(e?.message ?? e), "an exception"));
  }
  if (out === null) return DROPPED;
  if (typeof out !== "object") return DROPPED + "`beforeSend` must return the event or null, not " + typeof out;
  // What the page made may throw as it is read (a getter): that is an invalid event too.
  const again = attempt(
    () => flatten(out.eventType, out.action, { eventMeta: out.eventMeta, relatedEntities: out.relatedEntities, timestamp: out.timestamp }),
    INVALID + "it could not be read",
  );
  return again[0] === INVALID ? DROPPED + "`beforeSend` returned an invalid event: " + again.slice(1) : SCREENED + again;
}

function flatten(type, action, o) {
  if (typeof type !== "string") return INVALID + "`eventType` must be a string";
  if (typeof action !== "string") return INVALID + "`action` must be a string";
  let meta = "", ts = "";
  const entities = [];
  if (o != null) {
    if (typeof o !== "object") return INVALID + "the options of `track()` must be an object";
    for (const k of Object.keys(o)) {
      if (!TRACK_OPTIONS.includes(k)) {
        return INVALID + "unknown option `" + k + "`; expected one of " + TRACK_OPTIONS.join(", ");
      }
    }
    let m = o.eventMeta;
    if (m != null && (typeof m !== "object" || Array.isArray(m))) {
      return INVALID + "`eventMeta` must be a plain object";
    }
    for (const [option, key] of [["impressionId", "impression_id"], ["fxcid", "fxcid"]]) {
      const id = o[option];
      if (id == null) continue;
      if (typeof id !== "string" || !id) return INVALID + "`" + option + "` must be a non-empty string";
      m = { ...m, [key]: id };
    }
    if (m != null) {
      meta = attempt(() => JSON.stringify(m), null);
      if (meta === null) return INVALID + "`eventMeta` cannot be serialised to JSON (is it cyclic?)";
    }
    const list = o.relatedEntities;
    if (list != null) {
      if (!Array.isArray(list)) return INVALID + "`relatedEntities` must be an array";
      for (const e of list) {
        if (typeof e === "string") {
          const colon = e.indexOf(":");
          if (colon < 0) return INVALID + "entity `" + clean(e) + "` must be written `type:id`, e.g. `ticker:AAPL`";
          entities.push(clean(e.slice(0, colon)) + ITEM + clean(e.slice(colon + 1)));
        } else if (e && typeof e.type === "string" && typeof e.id === "string") {
          entities.push(clean(e.type) + ITEM + clean(e.id));
        } else {
          return INVALID + 'each of `relatedEntities` must be `{ type, id }` with string values, or `"type:id"`';
        }
      }
    }
    const t = o.timestamp;
    if (t != null) {
      if (typeof t !== "number" || !(t >= 0 && t <= 8.64e15)) {
        return INVALID + "`timestamp` must be milliseconds since the epoch";
      }
      ts = "" + Math.floor(t);
    }
  }
  return [clean(type), clean(action), meta, ts, entities.join(RECORD)].join(FIELD);
}

// Storage: localStorage, a first-party cookie, or sessionStorage (the tab's id).

function get(kind, key) {
  if (kind === COOKIE) {
    for (const c of attempt(() => document.cookie, "").split("; ")) {
      const eq = c.indexOf("=");
      if (c.slice(0, eq) === key) return attempt(() => decodeURIComponent(c.slice(eq + 1)), undefined);
    }
    return undefined;
  }
  const storage = () => (kind === SESSION_STORAGE ? session() : local());
  return attempt(() => storage().getItem(key), null) ?? undefined;
}

/** Writes `value` under `key` ("" removes it); false when the browser refused. */
function set(kind, key, value) {
  if (kind === COOKIE) {
    // 13 months, the longest most privacy regulators accept for analytics.
    const age = value ? 33696000 : 0;
    const secure = location.protocol === "https:" ? "; Secure" : "";
    return attempt(() => {
      document.cookie = key + "=" + encodeURIComponent(value) + "; path=/; max-age=" + age + "; SameSite=Lax" + secure;
      return true;
    }, false);
  }
  return attempt(() => {
    const s = kind === SESSION_STORAGE ? session() : local();
    if (value) s.setItem(key, value);
    else s.removeItem(key);
    return true;
  }, false);
}

const warn = (message) => log(true, message);

/**
 * Starts a configuration (the one `options` read last, which the Rust side accepted): sends to
 * `endpoint`, tells its callbacks, and uses `kind`'s storage under `clientKey`'s names
 * (`pf_<clientKey>`, and per-tab queues `pf_<clientKey>_q_<tab>`); empties it when tracking is
 * `refused`.
 */
export function open(kind, clientKey, endpoint, refused, debug) {
  const name = "pf_" + clientKey;
  store = { kind, endpoint, identity: name, prefix: name + "_q_", slot: "pf_tab_" + clientKey };
  callbacks = pending;
  verbose = debug;
  if (refused) forget();
}

/**
 * Whether `key` is a queue of this configuration's client key: its prefix, then a tab id
 * (which has no `_`, so client key `pk` does not take `pk_q`'s queues, `pf_pk_q_q_…`).
 */
const queueOf = (key) =>
  store !== undefined && key?.startsWith(store.prefix) && !key.slice(store.prefix.length).includes("_");

export const stored = () => (store.kind !== MEMORY ? get(store.kind, store.identity) : undefined);

/** Writes what changed: the identity line, and this tab's queue ("" removes it). */
export function write(identity, queue) {
  if (identity !== undefined && store.kind !== MEMORY && !set(store.kind, store.identity, identity)) {
    warn("the visitor id and session could not be saved (storage full or blocked)");
  }
  if (queue !== undefined && store.queue && !set(LOCAL_STORAGE, store.queue, queue)) {
    warn("the event queue could not be saved (storage full or blocked)");
  }
}

/** Forgets everything this tracker stored on the device (consent denied). */
export function forget() {
  if (store.kind !== MEMORY) set(store.kind, store.identity, "");
  if (store.queue) set(LOCAL_STORAGE, store.queue, "");
}

// Tabs. Queues are per tab, written only by the tab holding the Web Lock of the queue's key.
// A tab keeps its id in `sessionStorage`, so a reload finds its own queue again. Every tab
// waits for the locks of the other tabs' queues it sees; a tab that closes releases its lock,
// one waiting tab is granted it, adopts the queue left behind and deletes it under that lock,
// so no two tabs ever send the same stored event. Without Web Locks (an insecure context),
// each tab keeps to its own queue.

/**
 * Makes this tab the owner of a queue key: at once when this page already holds it or the
 * browser has no Web Locks, else once the lock is granted; then reports `CLAIMED` with what
 * this tab stored there before. A duplicated tab (same `sessionStorage`, lock taken) gets
 * the id `fresh`.
 */
export function claim(fresh) {
  const { prefix, slot } = store;
  const owned = (key) => {
    // A configuration for another client key has come meanwhile: not this one's.
    if (store.prefix !== prefix) return;
    store.queue = key;
    dispatch(CLAIMED, 0, get(LOCAL_STORAGE, key) ?? "");
  };
  if (held) {
    if (queueOf(held.key)) return owned(held.key);
    held.release();
    held = undefined;
  }
  const remembered = get(SESSION_STORAGE, slot);
  const locks = navigator.locks;
  if (!locks) {
    const tab = remembered ?? fresh;
    set(SESSION_STORAGE, slot, tab);
    return owned(prefix + tab);
  }
  const request = (tab, retry) => {
    const key = prefix + tab;
    locks.request(key, { ifAvailable: true }, (lock) => {
      if (!lock) return retry && request(fresh, false);
      set(SESSION_STORAGE, slot, tab);
      return new Promise((release) => {
        held = { key, release };
        owned(key);
      });
    });
  };
  request(remembered ?? fresh, remembered !== undefined);
}

/**
 * For every other tab's queue, waits for that tab's lock: granted at once if the tab has
 * closed, or when it closes. Under the lock, `ADOPT` takes the events (and stores them) and
 * the key is deleted.
 */
export function adopt() {
  const locks = navigator.locks;
  const storage = local();
  if (!locks || !storage || !held || !store) return;
  const keys = [];
  for (let i = 0; i < storage.length; i++) keys.push(storage.key(i));
  for (const key of keys) {
    if (!queueOf(key) || key === held.key || waiting.has(key)) continue;
    waiting.add(key);
    locks.request(key, () => {
      waiting.delete(key);
      const record = get(LOCAL_STORAGE, key);
      if (record !== undefined) dispatch(ADOPT, 0, record);
      set(LOCAL_STORAGE, key, "");
    });
  }
}

export const timer = (tag, ms) => setTimeout(() => dispatch(TIMER, tag), ms);
export const clear = (handle) => clearTimeout(handle);

/**
 * Sends everything queued, batch by batch (one in flight at a time), once the flushes started
 * before it are done; resolves, never rejects, with the counts of the batches it sent. A
 * batch that cannot be delivered now stays queued for the retry timer, so a flush never loops
 * on failure; nothing is sent offline (the `online` event flushes).
 */
export function flush() {
  const run = flushes.then(sendAll);
  // A flush that failed (it cannot, short of a bug) must not stop the ones after it.
  flushes = run.catch(() => {});
  return run.catch(() => summary([0, 0, 0, 0, 0, 0]));
}

/** A flush of the tracker's own: after the page's current task, and one waiting is enough. */
export function wake() {
  if (waking) return;
  waking = true;
  flushes = flushes
    .then(() => {
      waking = false;
      return sendAll();
    })
    .catch(() => {});
}

async function sendAll() {
  const total = [0, 0, 0, 0, 0, 0];
  if (!dispatch) return summary(total);
  for (let first = 1; ; first = 0) {
    const next = dispatch(NEXT, first);
    if (next === undefined) break;
    const [generation, id, count, keepalive, body] = next.split(FIELD);
    const [status, retryAfter, text, ...ingested] = await post(store.endpoint, body, keepalive === "1");
    if (verbose) log(false, "sent " + count + " events: HTTP " + status + " " + text);
    // Delivered: what ingest counted; to be retried or dropped: the batch.
    const outcome = dispatch(ANSWER, +id, [generation, status, retryAfter, clean(text)].join(FIELD));
    if (outcome === undefined) continue;
    const counts = outcome === DELIVERED ? [1, ...ingested, 0, 0] : [1, 0, 0, 0, 0, 0];
    if (outcome !== DELIVERED) counts[outcome === RETRY ? 4 : 5] = +count;
    counts.forEach((n, i) => (total[i] += n));
    const onBatch = callbacks.onBatch;
    if (typeof onBatch === "function") attempt(() => onBatch(summary(counts)));
    if (total[4]) break;
  }
  dispatch(SCHEDULE, 0);
  return summary(total);
}

/**
 * POSTs a batch as `text/plain` (no CORS preflight); resolves with `[status, retry-after, body,
 * accepted, duplicates, rejected]`, status 0 when there was no answer. Small batches go with
 * `keepalive`, so a navigation does not cancel them; a hung send fails after 30 s.
 */
function post(url, body, keepalive) {
  const init = { method: "POST", body, keepalive };
  if (AbortSignal.timeout) init.signal = AbortSignal.timeout(SEND_TIMEOUT_MS);
  return new Promise((sent) => sent(fetch(url, init)))
    .then(
      (r) => r.text().catch(() => "").then((text) => [r.status, r.headers.get("retry-after"), text]),
      () => [0, null, ""],
    )
    .then(([status, retryAfter, text]) => {
      const parsed = status >= 200 && status < 300 ? attempt(() => JSON.parse(text), null) : null;
      const n = (v) => (typeof v === "number" ? v : 0);
      const counts = parsed ? [n(parsed.accepted), n(parsed.duplicates), parsed.rejected?.length ?? 0] : [0, 0, 0];
      return [status, retryAfter ?? "", text, ...counts];
    });
}

/** Hands a batch over for after the page has gone: `sendBeacon`, else a keepalive fetch. */
export function beacon(body) {
  const url = store.endpoint;
  return attempt(() => {
    if (navigator.sendBeacon) return navigator.sendBeacon(url, body);
    fetch(url, { method: "POST", body, keepalive: true }).catch(() => {});
    return true;
  }, false);
}

export const online = () => navigator.onLine !== false;

/** Do Not Track or Global Privacy Control. */
export function dnt() {
  const yes = (v) => v === "1" || v === "yes";
  return yes(navigator.doNotTrack) || yes(window.doNotTrack) || navigator.globalPrivacyControl === true;
}

/** The URL of the last page view (an SPA's referrer for the next one). */
let lastPage;

/**
 * The `page.viewed` call of the page now, as `readEvent` writes it, or "" when this URL was
 * the last page viewed: one navigation that `pushState`, `replaceState`, `popstate` and
 * `hashchange` all report is one page view. `forced` (the page's own `page()`) records it
 * regardless. In an SPA the referrer is the page before.
 */
export function pageView(forced) {
  const href = location.href;
  const changed = href !== lastPage;
  if (!changed && !forced) return "";
  const referrer = changed && lastPage !== undefined ? lastPage : document.referrer;
  lastPage = href;
  const meta = { url: href, path: location.pathname };
  if (document.title) meta.title = document.title;
  if (referrer) meta.referrer = referrer;
  return readEvent("page", "viewed", { eventMeta: meta });
}

/**
 * An impression element's visible ratio is now `ratio`. Half of it visible for a second without
 * a break (the IAB/MRC display standard) is a view: `onView(el)` is told, once per impression
 * (by its key), however many elements show it and however often.
 */
export function exposed(el, ratio, onView) {
  const key = impressionKey(pf(el));
  if (ratio < 0.5 || document.hidden || !key || viewed.has(key)) {
    clearTimeout(timers.get(el));
    timers.delete(el);
  } else if (!timers.has(el)) {
    const timer = setTimeout(() => {
      timers.delete(el);
      if (viewed.has(key)) return;
      viewed.add(key);
      onView(el);
    }, 1000);
    timers.set(el, timer);
  }
}

/**
 * After `init()`: forgets the iframes, the last page view and the impressions viewed under the
 * last configuration (a new configuration records the page it starts on) and (re)starts the
 * impression observers when `impressions` is on; each view is recorded as the element's
 * `viewed` event.
 */
export function restart(impressions) {
  frames = new Map();
  lastPage = undefined;
  viewed = new Set();
  timers.forEach(clearTimeout);
  timers.clear();
  if (observers) observers.forEach((o) => o.disconnect());
  observers = undefined;
  if (!impressions || typeof IntersectionObserver === "undefined") return;
  const view = (el) => {
    intersection.unobserve(el);
    dispatch(ELEMENT, 0, GROUP + impressionEvent(pf(el), "viewed"));
  };
  const intersection = new IntersectionObserver(
    (entries) => entries.forEach((entry) => exposed(entry.target, entry.intersectionRatio, view)),
    { threshold: [0, 0.5] },
  );
  const within = (el) => {
    if (el.matches(IMPRESSIONS)) intersection.observe(el);
    for (const child of el.querySelectorAll(IMPRESSIONS)) intersection.observe(child);
  };
  const mutations = new MutationObserver((records) => {
    for (const r of records) {
      if (r.type === "attributes") {
        // A reused element with a new impression id is a new impression.
        exposed(r.target, 0, view);
        intersection.unobserve(r.target);
        within(r.target);
      } else {
        for (const node of r.addedNodes) if (node instanceof Element) within(node);
      }
    }
  });
  mutations.observe(document, {
    childList: true,
    subtree: true,
    attributeFilter: ["data-pf-impression-id", "data-pf-fxcid"],
  });
  within(document.documentElement);
  observers = [intersection, mutations];
}

function postIdentity(target, identity, origin) {
  const [visitorId, sessionId, clientRef] = identity.split(FIELD);
  const message = { personafin: "identity", visitorId, sessionId, clientRef: clientRef || null };
  attempt(() => target.postMessage(message, origin));
}

/** In an iframe: greets the parent (the host answers with its identity); false on a top page. */
export function greet() {
  if (parent === window) return false;
  // The greeting carries nothing; the answer is checked against `hostOrigins`.
  attempt(() => parent.postMessage({ personafin: "hello" }, "*"));
  return true;
}

/** On a host: tells the iframes that asked about a new identity (`identify`, `reset`). */
export function tell(identity) {
  for (const [frame, origin] of frames) postIdentity(frame, identity, origin);
}

const COUNTS = ["batches", "accepted", "duplicates", "rejected", "retrying", "dropped"];
const summary = (counts) => Object.fromEntries(COUNTS.map((k, i) => [k, counts[i]]));

/**
 * Tells the page's `onError` about `code\x1fmessage\x1fevents\x1fstatus` (as it tells
 * `onBatch` about each batch, in `sendAll`). A throwing callback is the page's bug and must not
 * stop the tracker.
 */
export function report(text) {
  const [code, message, events, status] = text.split(FIELD);
  const error = { code, message, events: +events };
  if (status) error.status = +status;
  const onError = callbacks.onError;
  if (typeof onError === "function") attempt(() => onError(error));
}

export function log(warn, message) {
  console[warn ? "warn" : "log"]("[personafin]", message);
}
