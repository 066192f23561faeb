//! Browser glue: the page's clock, crypto, storage, timers, lifecycle events and `fetch`,
//! around the pure core. Kept thin on purpose: everything that can be decided without a
//! browser lives in `core`.
//!
//! One rule runs through it: the state is borrowed only inside [`with_state`], and no page
//! callback (`onBatch`, `onError`) is called while it is, because a callback may call back
//! into the tracker.

mod autocapture;
mod bridge;
mod options;
mod storage;
mod transport;

use std::cell::RefCell;

use js_sys::{Function, Object, Reflect};
use wasm_bindgen::prelude::*;

use crate::core::{Clock, Consent, Delivery, Entropy, EventInput, TrackError, Tracker, uuid_v4};
use storage::Store;

pub(crate) use options::{read_config, read_event};

struct BrowserClock;

impl Clock for BrowserClock {
    fn now_ms(&self) -> i64 {
        js_sys::Date::now() as i64
    }
}

struct BrowserEntropy(Option<web_sys::Crypto>);

impl Entropy for BrowserEntropy {
    fn fill(&mut self, buf: &mut [u8; 16]) {
        let filled = self
            .0
            .as_ref()
            .is_some_and(|c| c.get_random_values_with_u8_array(buf).is_ok());
        if !filled {
            // Pages without Web Crypto still get distinct ids, if not unguessable ones.
            for b in buf.iter_mut() {
                *b = (js_sys::Math::random() * 256.0) as u8;
            }
        }
    }
}

/// A random UUID, for ids the core does not make (tab ids).
pub(crate) fn random_id() -> String {
    let mut bytes = [0u8; 16];
    BrowserEntropy(web_sys::window().and_then(|w| w.crypto().ok())).fill(&mut bytes);
    uuid_v4(bytes)
}

struct State {
    tracker: Tracker<BrowserClock, BrowserEntropy>,
    store: Store,
    timer: Option<i32>,
    /// Which `init()` made this state; a batch sent before a re-init settles with its own.
    generation: u32,
    on_batch: Option<Function>,
    on_error: Option<Function>,
    persist_scheduled: bool,
    /// A full batch asked for a flush that has not started yet: more full batches need none.
    send_requested: bool,
    /// Queue drops already reported to `onError`.
    drops_reported: u64,
    autocapture: autocapture::Autocapture,
    bridge: bridge::Bridge,
}

thread_local! {
    static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
    /// The latest flush; each flush starts when the one before it has finished, so one batch
    /// at a time is in flight and `await flush()` means everything queued before it was tried.
    static LAST_FLUSH: RefCell<Option<js_sys::Promise>> = const { RefCell::new(None) };
}

fn with_state<T>(f: impl FnOnce(&mut State) -> T) -> Option<T> {
    STATE.with(|s| s.borrow_mut().as_mut().map(f))
}

fn current_generation() -> Option<u32> {
    with_state(|s| s.generation)
}

/// True when the browser sends Do Not Track or Global Privacy Control.
fn do_not_track(window: &web_sys::Window) -> bool {
    let navigator = window.navigator();
    let get = |target: &JsValue, key: &str| Reflect::get(target, &key.into()).ok();
    let dnt = |v: Option<JsValue>| {
        v.and_then(|v| v.as_string())
            .is_some_and(|s| s == "1" || s == "yes")
    };
    dnt(get(&navigator, "doNotTrack"))
        || dnt(get(window, "doNotTrack"))
        || get(&navigator, "globalPrivacyControl").and_then(|v| v.as_bool()) == Some(true)
}

/// Starts (or restarts) the tracker from `init()`'s options.
pub(crate) fn init(options: options::Options) {
    let Some(window) = web_sys::window() else {
        return;
    };
    let options::Options {
        config,
        on_batch,
        on_error,
    } = options;
    let dnt = config.respect_do_not_track && do_not_track(&window);
    let store = Store::open(config.storage, &config.client_key);
    let refused = config.consent == Consent::Denied || dnt;
    let stored = if refused {
        store.remove_all();
        None
    } else {
        store.read_identity()
    };
    let crypto = window.crypto().ok();
    let client_key = config.client_key.clone();
    let switches = config.autocapture;
    let persists_queue = config.storage == crate::core::Storage::LocalStorage;
    let tracker = Tracker::new(
        config,
        BrowserClock,
        BrowserEntropy(crypto),
        stored.as_deref(),
        dnt,
    );
    let old = STATE.with(|s| {
        let generation = s
            .borrow()
            .as_ref()
            .map_or(0, |old| old.generation.wrapping_add(1));
        s.borrow_mut().replace(State {
            tracker,
            store,
            timer: None,
            generation,
            on_batch,
            on_error,
            persist_scheduled: false,
            send_requested: false,
            drops_reported: 0,
            autocapture: autocapture::Autocapture::new(switches),
            bridge: bridge::Bridge::default(),
        })
    });
    if let Some(mut old) = old {
        if let Some(handle) = old.timer.take() {
            window.clear_timeout_with_handle(handle);
        }
        old.autocapture.stop();
        // What the old tracker had not written yet is stored now, for the new one to adopt
        // (unless tracking was just refused, and storage emptied).
        if !refused {
            persist(&mut old);
        }
    }
    autocapture::install_listeners();
    if persists_queue {
        let generation = current_generation();
        let prefix_of = client_key.clone();
        storage::claim_queue(&prefix_of, move |key| {
            let claimed = with_state(|s| {
                if Some(s.generation) != generation {
                    return false;
                }
                s.store.queue_key = Some(key);
                // What this tab left before a reload (or a second `init()`).
                if let Some(record) = s.store.read_queue() {
                    s.tracker.adopt(&record);
                }
                persist(s);
                true
            });
            if claimed == Some(true) {
                adopt_orphans(&client_key);
                wake();
            }
        });
    }
    with_state(bridge::start);
    autocapture::start();
    persist_soon();
}

/// Takes over the queues of closed tabs, now or when they close (see [`storage`]).
fn adopt_orphans(client_key: &str) {
    storage::adopt_orphans(client_key, |record| {
        let adopted = with_state(|s| {
            s.tracker.adopt(record);
            persist(s);
        });
        if adopted.is_some() {
            wake();
        }
    });
}

/// Another tab wrote to storage: if it is a queue this page does not know yet, wait for it.
pub(crate) fn storage_changed(key: &str) {
    let client_key = with_state(|s| s.tracker.config().client_key.clone());
    if let Some(client_key) = client_key {
        if key.starts_with(&Store::queue_prefix(&client_key)) {
            adopt_orphans(&client_key);
        }
    }
}

pub(crate) fn is_initialised() -> bool {
    STATE.with(|s| s.borrow().is_some())
}

pub(crate) fn session_id() -> Option<String> {
    with_state(|s| s.tracker.session_id().to_owned())
}

pub(crate) fn visitor_id() -> Option<String> {
    with_state(|s| s.tracker.identity().visitor_id.clone())
}

pub(crate) fn queued() -> u32 {
    with_state(|s| s.tracker.pending() as u32).unwrap_or(0)
}

fn debug() -> bool {
    with_state(|s| s.tracker.config().debug).unwrap_or(false)
}

pub(crate) fn not_initialised() -> String {
    "the tracker is not initialised: call init() first".to_owned()
}

pub(crate) fn set_client_ref(client_ref: Option<String>) -> Result<(), String> {
    let r = with_state(|s| {
        let r = s
            .tracker
            .set_client_ref(client_ref)
            .map_err(|e| e.to_string());
        bridge::identity_changed(s);
        r
    })
    .unwrap_or_else(|| Err(not_initialised()));
    persist_soon();
    r
}

pub(crate) fn reset() -> Result<(), String> {
    with_state(|s| {
        s.tracker.reset();
        bridge::identity_changed(s);
    })
    .ok_or_else(not_initialised)?;
    persist_soon();
    Ok(())
}

pub(crate) fn set_consent(consent: Consent) -> Result<(), String> {
    let dropped = with_state(|s| {
        let dropped = s.tracker.set_consent(consent);
        if s.tracker.consent() == Consent::Denied {
            s.store.remove_all();
        }
        persist(s);
        dropped
    })
    .ok_or_else(not_initialised)?;
    if dropped > 0 && debug() {
        log(&format!(
            "consent denied: {dropped} unsent events discarded"
        ));
    }
    wake();
    Ok(())
}

/// Queues one event from `track()` and arranges for it to be sent. The error is what is wrong
/// with the call, or `None` when the visitor refused tracking.
pub(crate) fn track(
    event_type: JsValue,
    action: JsValue,
    options: JsValue,
) -> Result<(), Option<String>> {
    let event = read_event(event_type, action, options).map_err(Some)?;
    record(&event.input()).map_err(|e| match e {
        TrackError::Invalid(message) => Some(message),
        TrackError::NotRecorded => None,
    })
}

/// A `track()` call that was refused: the console says why, and so does `onError`.
pub(crate) fn invalid_call(message: &str) {
    warn(&["event not recorded: ", message].concat());
    report_error("invalid_event", message, None, 1);
}

pub(crate) fn page_view() {
    autocapture::page_view(true);
}

/// Queues one event (from the page or from autocapture): sends at once when the batch is
/// full, otherwise when the flush timer fires.
pub(crate) fn record(input: &EventInput<'_>) -> Result<(), TrackError> {
    let outcome = with_state(|s| {
        if let Some(held) = s.bridge.held.as_mut() {
            // An iframe waiting for its host's identity: recorded once it is known.
            held.push(bridge::Held::of(input));
            return (Ok(false), 0);
        }
        if s.tracker.session_expired() {
            // Another tab may have kept the session alive: look before starting a new one.
            if let Some(stored) = s.store.read_identity() {
                s.tracker.merge_identity(&stored);
            }
        }
        let result = s.tracker.track(input).map(|full| {
            let send = full && !s.send_requested;
            s.send_requested |= send;
            send
        });
        let dropped = s.tracker.queue().dropped() - s.drops_reported;
        s.drops_reported += dropped;
        (result, dropped)
    });
    let Some((result, dropped)) = outcome else {
        return Err(TrackError::Invalid(not_initialised()));
    };
    if dropped > 0 {
        report_error(
            "queue_full",
            &format!("the queue is full: {dropped} oldest events dropped"),
            None,
            dropped as u32,
        );
    }
    let send_now = result?;
    if debug() {
        log(&format!("queued {}.{}", input.event_type, input.action));
    }
    persist_soon();
    if send_now {
        wake();
    } else {
        with_state(schedule);
    }
    Ok(())
}

/// Tells the page's `onError` about a problem the page cannot see from a return value.
fn report_error(code: &str, message: &str, status: Option<u16>, events: u32) {
    if let Some(Some(callback)) = with_state(|s| s.on_error.clone()) {
        let error = Object::new();
        let _ = Reflect::set(&error, &"code".into(), &code.into());
        let _ = Reflect::set(&error, &"message".into(), &message.into());
        let _ = Reflect::set(&error, &"events".into(), &events.into());
        if let Some(status) = status {
            let _ = Reflect::set(&error, &"status".into(), &status.into());
        }
        // A throwing callback is the page's bug; it must not stop the tracker.
        let _ = callback.call1(&JsValue::NULL, &error);
    }
}

/// How long changes wait before they are written to storage, so a burst of events costs one
/// write. Leaving or hiding the page writes at once, so only a crash of the browser itself
/// can lose that much; what was sent and is written again as unsent is deduplicated by ingest.
const PERSIST_DELAY_MS: i32 = 300;

/// Writes identity and queue to storage shortly, once however many changes come meanwhile.
fn persist_soon() {
    with_state(persist_later);
}

fn persist_later(s: &mut State) {
    if std::mem::replace(&mut s.persist_scheduled, true) {
        return;
    }
    let callback = Closure::once_into_js(persist_now);
    if let Some(w) = web_sys::window() {
        let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(
            callback.unchecked_ref(),
            PERSIST_DELAY_MS,
        );
    }
}

fn persist_now() {
    with_state(persist);
}

fn persist(s: &mut State) {
    s.persist_scheduled = false;
    let (identity_allowed, queue_allowed) = s.tracker.persists();
    if identity_allowed {
        if let Some(record) = s.tracker.take_identity_record() {
            if !s.store.write_identity(&record) {
                warn("the visitor id and session could not be saved (storage full or blocked)");
            }
        }
    }
    if queue_allowed && s.store.queue_key.is_some() {
        if let Some(record) = s.tracker.take_queue_record() {
            if !s.store.write_queue(&record) {
                warn("the event queue could not be saved (storage full or blocked)");
            }
        }
    } else if s.tracker.consent() == Consent::Denied {
        let _ = s.tracker.take_queue_record();
    }
}

/// Counts of one batch, or summed over one `flush()`, as the page sees them.
#[derive(Default, Clone, Copy)]
pub(crate) struct Summary {
    batches: u32,
    accepted: u32,
    duplicates: u32,
    rejected: u32,
    retrying: u32,
    dropped: u32,
}

impl Summary {
    fn add(&mut self, other: Summary) {
        self.batches += other.batches;
        self.accepted += other.accepted;
        self.duplicates += other.duplicates;
        self.rejected += other.rejected;
        self.retrying += other.retrying;
        self.dropped += other.dropped;
    }

    pub(crate) fn to_js(self) -> JsValue {
        let obj = Object::new();
        for (k, v) in [
            ("batches", self.batches),
            ("accepted", self.accepted),
            ("duplicates", self.duplicates),
            ("rejected", self.rejected),
            ("retrying", self.retrying),
            ("dropped", self.dropped),
        ] {
            let _ = Reflect::set(&obj, &k.into(), &v.into());
        }
        obj.into()
    }
}

fn online() -> bool {
    web_sys::window().is_none_or(|w| w.navigator().on_line())
}

/// Sends soon whatever is waiting: after coming online, consent, or adopting a queue.
fn wake() {
    let _ = flush();
}

/// Starts a flush after the ones already started; resolves with its [`Summary`] as JS.
pub(crate) fn flush() -> js_sys::Promise {
    let previous = LAST_FLUSH.with(|l| l.borrow_mut().take());
    let this = wasm_bindgen_futures::future_to_promise(async move {
        if let Some(previous) = previous {
            let _ = wasm_bindgen_futures::JsFuture::from(previous).await;
        }
        Ok(send_queued().await.to_js())
    });
    LAST_FLUSH.with(|l| *l.borrow_mut() = Some(this.clone()));
    this
}

/// Sends everything queued, batch by batch. A batch that cannot be delivered now goes back to
/// the front of the queue and waits for the next timer, so one flush never loops on failure.
/// While the browser is offline nothing is sent; the `online` event starts a flush.
async fn send_queued() -> Summary {
    with_state(|s| s.send_requested = false);
    let mut total = Summary::default();
    while online() {
        let next = with_state(|s| {
            if let Some(handle) = s.timer.take() {
                if let Some(w) = web_sys::window() {
                    w.clear_timeout_with_handle(handle);
                }
            }
            let endpoint = s.tracker.config().endpoint.clone();
            let generation = s.generation;
            // Taking a batch leaves the stored queue as it was: in-flight events stay in it.
            s.tracker.next_batch().map(|b| (b, endpoint, generation))
        });
        let Some(Some((batch, endpoint, generation))) = next else {
            break;
        };
        let count = batch.count as u32;
        let answer = transport::send(&endpoint, &batch.body).await;
        if debug() {
            log(&format!(
                "sent {count} events: HTTP {} {}",
                answer.status,
                answer.body.as_deref().unwrap_or("")
            ));
        }
        let settled = with_state(|s| {
            (s.generation == generation).then(|| {
                let delivery = s
                    .tracker
                    .settle(batch.id, answer.status, answer.retry_after_ms);
                persist_later(s);
                (delivery, s.on_batch.clone())
            })
        });
        // A batch of an earlier `init()` is not reported to the later one.
        let Some(Some((delivery, on_batch))) = settled else {
            continue;
        };
        let mut summary = Summary {
            batches: 1,
            ..Summary::default()
        };
        match delivery {
            Delivery::Delivered => {
                (summary.accepted, summary.duplicates, summary.rejected) = answer.counts();
            }
            Delivery::Retry => summary.retrying = count,
            Delivery::Drop => {
                summary.dropped = count;
                let message = format!(
                    "ingest refused {count} events with HTTP {}: {}; they are dropped",
                    answer.status,
                    answer.body.as_deref().unwrap_or("")
                );
                warn(&message);
                report_error("refused", &message, Some(answer.status), count);
            }
        }
        total.add(summary);
        if let Some(callback) = on_batch {
            // A throwing callback is the page's bug; it must not stop delivery.
            let _ = callback.call1(&JsValue::NULL, &summary.to_js());
        }
        if delivery == Delivery::Retry {
            break;
        }
    }
    with_state(schedule);
    total
}

/// The page is going away or to the background: hand everything queued to `sendBeacon` in
/// chunks of at most 64 KiB, and store what the browser would not take. A beacon's answer is
/// never seen, so nothing is beaconed while offline or while ingest is failing (backing off):
/// it would be lost, whereas the stored queue goes out from the next page.
fn send_beacons() {
    let sendable = with_state(|s| {
        if !online() || s.tracker.backing_off() {
            persist(s);
            return Vec::new();
        }
        let endpoint = s.tracker.config().endpoint.clone();
        let batches = s.tracker.beacon_batches();
        let taken: Vec<(u32, bool)> = batches
            .iter()
            .map(|b| (b.id, transport::beacon(&endpoint, &b.body)))
            .collect();
        for &(id, ok) in &taken {
            s.tracker.beaconed(id, ok);
        }
        persist(s);
        taken
    });
    if debug() {
        let taken = sendable.unwrap_or_default();
        let sent = taken.iter().filter(|(_, ok)| *ok).count();
        log(&format!(
            "page hidden: {sent} of {} beacons taken",
            taken.len()
        ));
    }
}

/// Starts the flush timer if events are waiting and none is running: after the flush
/// interval, or after the backoff delay when the last send failed.
fn schedule(state: &mut State) {
    let waiting = !state.tracker.queue().is_empty() && state.tracker.consent() == Consent::Granted;
    if state.timer.is_some() || !waiting {
        return;
    }
    let Some(window) = web_sys::window() else {
        return;
    };
    let callback = Closure::once_into_js(|| {
        with_state(|s| s.timer = None);
        wake();
    });
    let delay = state.tracker.next_send_in_ms().min(i32::MAX as u64) as i32;
    state.timer = window
        .set_timeout_with_callback_and_timeout_and_arguments_0(callback.unchecked_ref(), delay)
        .ok();
}

pub(crate) fn log(message: &str) {
    web_sys::console::log_2(&"[personafin]".into(), &message.into());
}

pub(crate) fn warn(message: &str) {
    web_sys::console::warn_2(&"[personafin]".into(), &message.into());
}
