//! The page, through `js/host.js`: a few small JS functions that read and write the browser,
//! and one callback, [`install`]'s `dispatch`, through which they report what happened.
//! Everything crosses as numbers and strings, so the wasm carries no per-API glue.

use wasm_bindgen::prelude::*;

#[wasm_bindgen(module = "/js/host.js")]
extern "C" {
    /// Installs the page-wide listeners once, reporting through `dispatch`.
    pub(crate) fn install(dispatch: &Closure<dyn Fn(u32, f64, Option<String>) -> Option<String>>);
    pub(crate) fn now() -> f64;
    pub(crate) fn random(bytes: &mut [u8]);
    /// `init()`'s argument as `key FIELD value GROUP …`; `None` when it is not an object.
    pub(crate) fn options(config: &JsValue) -> Option<String>;
    /// A `track()` call as `type, action, meta, ts, entities` in fields, or
    /// [`INVALID`](crate::protocol::INVALID) and the error.
    #[wasm_bindgen(js_name = readEvent)]
    pub(crate) fn read_event(event_type: &JsValue, action: &JsValue, options: &JsValue) -> String;
    /// Starts the configuration `options` read last: sends to `endpoint`, tells its
    /// callbacks, uses `kind`'s storage (one of [`storage`]'s, never `SESSION_STORAGE`) under
    /// `client_key`'s names; empties it when tracking is `refused`.
    pub(crate) fn open(kind: u32, client_key: &str, endpoint: &str, refused: bool, debug: bool);
    /// The identity line in storage now (another tab may have written it).
    pub(crate) fn stored() -> Option<String>;
    /// Writes what changed: the identity line, this tab's queue ("" removes it).
    pub(crate) fn write(identity: Option<String>, queue: Option<String>);
    /// Forgets everything stored on the device (consent denied).
    pub(crate) fn forget();
    /// Makes this tab the owner of a queue key (`fresh` is its id when it needs a new one).
    pub(crate) fn claim(fresh: &str);
    /// Waits for the locks of the other tabs' queues, to adopt them once those tabs are gone.
    pub(crate) fn adopt();
    pub(crate) fn timer(tag: u32, ms: f64) -> f64;
    pub(crate) fn clear(handle: f64);
    pub(crate) fn beacon(body: &str) -> bool;
    pub(crate) fn online() -> bool;
    pub(crate) fn dnt() -> bool;
    /// The `page.viewed` line of the page now, "" when it is the page last viewed (unless
    /// `forced`).
    #[wasm_bindgen(js_name = pageView)]
    pub(crate) fn page_view(forced: bool) -> String;
    pub(crate) fn restart(impressions: bool);
    pub(crate) fn greet() -> bool;
    pub(crate) fn tell(identity: &str);
    /// Starts a flush after those already started; resolves with the counts of its batches.
    pub(crate) fn flush() -> JsValue;
    /// Queues a flush of the tracker's own, unless one is waiting already.
    pub(crate) fn wake();
    pub(crate) fn report(text: &str);
    pub(crate) fn log(warn: bool, message: &str);
}

pub(crate) use crate::protocol::{FIELD, GROUP, ITEM, RECORD, outcome, report, storage};

/// The first `N` fields of a line `host.js` sent; missing ones are empty.
pub(crate) fn fields<const N: usize>(line: &str) -> [&str; N] {
    crate::core::fields(line, FIELD)
}
