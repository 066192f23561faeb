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
    /// `init()`'s argument as `key\x1fvalue\x1d…`; `None` when it is not an object.
    pub(crate) fn options(config: &JsValue) -> Option<String>;
    /// A `track()` call as `type\x1faction\x1fmeta\x1fts\x1fentities`, or `!` and the error.
    #[wasm_bindgen(js_name = readEvent)]
    pub(crate) fn read_event(event_type: &JsValue, action: &JsValue, options: &JsValue) -> String;
    /// Starts the configuration `options` read last: sends to `endpoint`, tells its
    /// callbacks, uses `kind`'s storage (0 `localStorage`, 1 cookie, 2 memory) under
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

/// What `dispatch` is told (the numbers match `host.js`).
pub(crate) mod kind {
    pub(crate) const TIMER: u32 = 0;
    pub(crate) const NEXT: u32 = 1;
    pub(crate) const ANSWER: u32 = 2;
    pub(crate) const SCHEDULE: u32 = 3;
    pub(crate) const HIDE: u32 = 4;
    pub(crate) const ONLINE: u32 = 5;
    pub(crate) const ROUTE: u32 = 6;
    pub(crate) const ELEMENT: u32 = 7;
    pub(crate) const HELLO: u32 = 8;
    pub(crate) const HOST: u32 = 9;
    pub(crate) const CLAIMED: u32 = 10;
    pub(crate) const ADOPT: u32 = 11;
}

/// Field, record and group separators of the strings `host.js` sends.
pub(crate) const FIELD: u8 = 0x1f;
pub(crate) const RECORD: u8 = 0x1e;
pub(crate) const GROUP: u8 = 0x1d;
pub(crate) const ITEM: u8 = 0x1c;

/// The first `N` fields of a line `host.js` sent; missing ones are empty.
pub(crate) fn fields<const N: usize>(line: &str) -> [&str; N] {
    crate::core::fields(line, FIELD)
}
