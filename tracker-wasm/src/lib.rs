//! Personafin Capture's browser tracker, compiled to WebAssembly.
//!
//! ```js
//! import init, { init as start, track, flush } from "./personafin_tracker.js";
//! await init();
//! start({ clientKey: "pk_live_…", endpoint: "https://ingest.example.com/v1/events" });
//! track("instrument", "viewed", { relatedEntities: [{ type: "ticker", id: "AAPL" }] });
//! await flush();
//! ```
//!
//! Layout: `core` is the tracker's logic in plain Rust (config, validation, encoding, queue,
//! batching, retries, sessions, consent) with the clock and randomness injected, tested
//! natively; `web` holds the state on the page and acts on what `js/host.js` reports (storage,
//! tabs, timers, lifecycle, observers, `fetch` and beacons all live in that one small JS
//! module, which also writes what autocapture sees as `track()` calls); `protocol` is the string
//! protocol between the two, which `host.js`'s constants are generated from; this file is only
//! the `#[wasm_bindgen]` surface.

pub mod core;
pub mod protocol;
mod web;

use wasm_bindgen::prelude::*;

#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: lol_alloc::LockedAllocator<lol_alloc::FreeListAllocator> =
    lol_alloc::LockedAllocator::new(lol_alloc::FreeListAllocator::new());

/// Starts (or restarts) the tracker. A bad configuration is refused: the answer is what is
/// wrong, naming the key (the wrapper throws it). Refused calls answer this way throughout,
/// with `undefined` for success, so the wasm carries no JS error objects.
#[wasm_bindgen]
pub fn init(config: JsValue) -> Option<String> {
    match web::read_config(&config) {
        Ok(config) => {
            web::init(config);
            None
        }
        Err(e) => Some(e.0),
    }
}

/// Records one interaction. Never throws and never blocks: returns false when the event is
/// not recorded — logged to the console and told to `onError` when the call is wrong, silent
/// when the visitor refused tracking.
#[wasm_bindgen]
pub fn track(event_type: JsValue, action: JsValue, options: JsValue) -> bool {
    match web::track(event_type, action, options) {
        Ok(()) => true,
        Err(None) => false,
        Err(Some(message)) => {
            web::invalid_call(&message);
            false
        }
    }
}

/// Sends everything queued now, once flushes already under way are done. Resolves, never
/// rejects, with the counts of the batches this flush sent (automatic flushes report theirs
/// to `onBatch`): `{ batches, accepted, duplicates, rejected, retrying, dropped }`.
#[wasm_bindgen(unchecked_return_type = "Promise<any>")]
pub fn flush() -> JsValue {
    if !web::is_initialised() {
        web::warn(&web::not_initialised());
    }
    web::flush()
}

/// The page's other calls, by number, so that the wasm and its glue carry one export for them
/// all rather than one each (the wrapper names them): 0 [`page`], 1 [`identify`] (`arg`),
/// 2 [`reset`], 3 [`set_consent`] (`arg`), 4 [`session_id`], 5 [`visitor_id`],
/// 6 [`queued_events`], 7 whether the tracker keeps things in `localStorage` now ("1", or
/// nothing). Answers what the call returns: an id or a count, or why a call was refused;
/// nothing otherwise.
#[wasm_bindgen]
pub fn call(what: u32, arg: Option<String>) -> Option<String> {
    match what {
        0 => page(),
        1 => return identify(arg),
        2 => return reset(),
        3 => return set_consent(arg.as_deref().unwrap_or("")),
        4 => return session_id(),
        5 => return visitor_id(),
        6 => return Some(web::counted("", queued_events(), "")),
        7 => return web::stores_locally().then(|| "1".to_owned()),
        _ => {}
    }
    None
}

/// Records a page view now (route changes are recorded by themselves unless
/// `autocapture.pageViews` is off).
pub fn page() {
    web::page_view();
}

/// Sets the customer's user id for later events; `null` clears it. Answers why not, if not.
pub fn identify(client_ref: Option<String>) -> Option<String> {
    web::set_client_ref(client_ref).err()
}

/// Forgets who is browsing (for a logout): new visitor id, new session, no user id. Answers
/// why not (before `init()`).
pub fn reset() -> Option<String> {
    web::reset().err()
}

/// `'granted'`, `'pending'` or `'denied'`. Granting sends what was held while pending;
/// denying discards what is unsent and what the tracker stored on the device. Answers why
/// not, if not.
pub fn set_consent(consent: &str) -> Option<String> {
    match core::Consent::parse(consent) {
        Ok(consent) => web::set_consent(consent).err(),
        Err(e) => Some(e.0),
    }
}

/// The current session id, or `undefined` before `init()`.
pub fn session_id() -> Option<String> {
    web::session_id()
}

/// The anonymous visitor id, or `undefined` before `init()`.
pub fn visitor_id() -> Option<String> {
    web::visitor_id()
}

/// How many events are not delivered yet: queued, or sent and awaiting ingest's answer.
pub fn queued_events() -> u32 {
    web::queued()
}
