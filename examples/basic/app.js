// The basic integration: import the package, call init() once, call track() on interactions.
// Here the package is imported from this repository's build; an app installed from npm
// writes `import { init, track, flush } from "@personafin/capture"`.
import { init, track, flush, sessionId, queuedEvents } from "../../js-wrapper/dist/index.js";

const params = new URLSearchParams(location.search);
const endpoint = params.get("endpoint") ?? "http://127.0.0.1:8787/v1/events";
const clientKey = params.get("clientKey") ?? "pk_demo";

const $ = (id) => document.getElementById(id);
let stored = 0;

function log(text, state) {
  const li = document.createElement("li");
  li.textContent = text;
  li.className = state;
  $("log").prepend(li);
}

function record(eventType, action, options) {
  const ok = track(eventType, action, options);
  log(`${eventType}.${action}${options?.relatedEntities ? " " + options.relatedEntities.join(", ") : ""}`, ok ? "queued" : "refused");
}

function onBatch(result) {
  stored += result.accepted;
  $("stored").textContent = String(stored);
  const text = result.retrying
    ? `ingest unreachable: ${result.retrying} events will be retried`
    : `stored ✓ ${result.accepted} new, ${result.duplicates} duplicate, ${result.rejected} rejected`;
  log(text, result.retrying || result.dropped ? "error" : "stored");
}

// The page view is recorded by the tracker itself (autocapture), as are SPA route changes.
init({ clientKey, endpoint, clientRef: "demo-user-1", flushIntervalMs: 1500, onBatch })
  .then(() => {
    $("status").textContent = `ready · sending to ${endpoint}`;
    $("session").textContent = sessionId();
  })
  .catch((err) => {
    $("status").textContent = `failed: ${err.message}`;
    log(err.message, "error");
  });

const ACTIONS = {
  view: ["instrument", "viewed", 1.0],
  watch: ["watchlist", "added", 5.0],
  order: ["trade", "order_placed", 8.0],
};

document.querySelectorAll(".card[data-ticker]").forEach((card) => {
  const ticker = card.dataset.ticker;
  card.querySelectorAll("button[data-action]").forEach((button) => {
    button.addEventListener("click", () => {
      const [eventType, action] = ACTIONS[button.dataset.action];
      record(eventType, action, { relatedEntities: [`ticker:${ticker}`], eventMeta: { page: location.pathname, surface: "instrument_card" } });
    });
  });
});

$("search").addEventListener("submit", (e) => {
  e.preventDefault();
  const query = new FormData(e.target).get("q").trim();
  if (query) record("search", "submitted", { eventMeta: { query } });
});

$("flush").addEventListener("click", () => flush());

setInterval(() => {
  $("waiting").textContent = String(queuedEvents());
}, 200);
