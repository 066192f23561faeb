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
//! Layout: `core` is the tracker's logic in plain Rust (config, encoding, queue, batching,
//! sessions) with the clock and randomness injected, tested natively; `web` is the browser
//! glue (timers, crypto, `fetch`); this file is only the `#[wasm_bindgen]` surface.

pub mod core;
mod web;

use wasm_bindgen::prelude::*;

/// The config key of the callback told about each delivered batch; a function, so it is
/// read from the JS object itself rather than through serde.
const ON_BATCH: &str = "onBatch";

/// Starts (or restarts) the tracker. Throws on a bad configuration, naming the key.
#[wasm_bindgen]
pub fn init(config: JsValue) -> Result<(), JsError> {
    let invalid = |e: &dyn std::fmt::Display| JsError::new(&format!("invalid tracker config: {e}"));
    if !config.is_object() {
        return Err(invalid(&"expected an object"));
    }
    let keys = js_sys::Object::keys(config.unchecked_ref::<js_sys::Object>());
    let keys: Vec<String> = keys.iter().filter_map(|k| k.as_string()).collect();
    core::check_keys(keys.iter().map(String::as_str).filter(|&k| k != ON_BATCH))
        .map_err(|e| invalid(&e))?;
    let on_batch = match js_sys::Reflect::get(&config, &ON_BATCH.into()) {
        Ok(f) if f.is_function() => Some(f.unchecked_into::<js_sys::Function>()),
        Ok(v) if v.is_undefined() || v.is_null() => None,
        _ => return Err(invalid(&"`onBatch` must be a function")),
    };
    let config: core::Config = serde_wasm_bindgen::from_value(config).map_err(|e| invalid(&e))?;
    let config = config.validate().map_err(|e| invalid(&e))?;
    web::init(config, on_batch);
    Ok(())
}

/// Records one interaction. Never throws and never blocks: returns false, and logs why to the
/// console, when the event cannot be recorded.
#[wasm_bindgen]
pub fn track(event_type: JsValue, action: JsValue, options: JsValue) -> bool {
    match web::track(event_type, action, options) {
        Ok(()) => true,
        Err(e) => {
            web::warn(&format!("event not recorded: {e}"));
            false
        }
    }
}

/// Sends everything queued now. Resolves, never rejects, with counts:
/// `{ batches, accepted, duplicates, rejected, retrying, dropped }`.
#[wasm_bindgen]
pub fn flush() -> js_sys::Promise {
    wasm_bindgen_futures::future_to_promise(async {
        if !web::is_initialised() {
            web::warn(&web::not_initialised());
        }
        Ok(web::flush().await.to_js())
    })
}

/// Sets the customer's user id for later events; `null` clears it.
#[wasm_bindgen]
pub fn identify(client_ref: Option<String>) -> Result<(), JsError> {
    web::set_client_ref(client_ref).map_err(|e| JsError::new(&e))
}

/// The current session id, or `undefined` before `init()`.
#[wasm_bindgen(js_name = sessionId)]
pub fn session_id() -> Option<String> {
    web::session_id()
}

/// How many events are not delivered yet: queued, or sent and awaiting ingest's answer.
#[wasm_bindgen(js_name = queuedEvents)]
pub fn queued_events() -> u32 {
    web::queued()
}
