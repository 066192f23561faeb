//! Browser glue: the page's clock, crypto, timers and `fetch`, around the pure core. Kept
//! thin on purpose: everything that can be decided without a browser lives in `core`.

mod options;
mod transport;

use std::cell::RefCell;

use js_sys::{Object, Reflect};
use wasm_bindgen::prelude::*;

use crate::core::{Clock, Config, Delivery, Entropy, Tracker};

pub(crate) use options::read_event;

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

struct State {
    tracker: Tracker<BrowserClock, BrowserEntropy>,
    timer: Option<i32>,
    /// Which `init()` made this state; a batch sent before a re-init settles with its own.
    generation: u32,
    on_batch: Option<js_sys::Function>,
}

thread_local! {
    static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
}

fn with_state<T>(f: impl FnOnce(&mut State) -> T) -> Option<T> {
    STATE.with(|s| s.borrow_mut().as_mut().map(f))
}

/// Starts the tracker; `on_batch` is called with each batch's [`Summary`] once ingest answered.
pub(crate) fn init(config: Config, on_batch: Option<js_sys::Function>) {
    let crypto = web_sys::window().and_then(|w| w.crypto().ok());
    let tracker = Tracker::new(config, BrowserClock, BrowserEntropy(crypto));
    let old = STATE.with(|s| {
        let generation = s
            .borrow()
            .as_ref()
            .map_or(0, |old| old.generation.wrapping_add(1));
        s.borrow_mut().replace(State {
            tracker,
            timer: None,
            generation,
            on_batch,
        })
    });
    if let Some(State {
        timer: Some(handle),
        ..
    }) = old
    {
        if let Some(w) = web_sys::window() {
            w.clear_timeout_with_handle(handle);
        }
    }
}

pub(crate) fn is_initialised() -> bool {
    STATE.with(|s| s.borrow().is_some())
}

pub(crate) fn session_id() -> Option<String> {
    with_state(|s| s.tracker.session_id().to_owned())
}

pub(crate) fn queued() -> u32 {
    with_state(|s| s.tracker.pending() as u32).unwrap_or(0)
}

pub(crate) fn debug() -> bool {
    with_state(|s| s.tracker.config().debug).unwrap_or(false)
}

pub(crate) fn set_client_ref(client_ref: Option<String>) -> Result<(), String> {
    with_state(|s| s.tracker.set_client_ref(client_ref).map_err(|e| e.0))
        .unwrap_or_else(|| Err(not_initialised()))
}

pub(crate) fn not_initialised() -> String {
    "the tracker is not initialised: call init() first".to_owned()
}

/// Queues one event and arranges for it to be sent: now when the batch is full, otherwise
/// when the flush timer fires.
pub(crate) fn track(event_type: JsValue, action: JsValue, options: JsValue) -> Result<(), String> {
    let event = read_event(event_type, action, options)?;
    let full = with_state(|s| s.tracker.track(&event.input()).map_err(|e| e.0))
        .unwrap_or_else(|| Err(not_initialised()))?;
    if debug() {
        log(&format!("queued {}.{}", event.event_type, event.action));
    }
    if full {
        wasm_bindgen_futures::spawn_local(async {
            flush().await;
        });
    } else {
        with_state(schedule);
    }
    Ok(())
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

/// Sends everything queued, batch by batch. A batch that cannot be delivered now goes back to
/// the front of the queue and waits for the next timer, so one flush never loops on failure.
pub(crate) async fn flush() -> Summary {
    let mut total = Summary::default();
    loop {
        let next = with_state(|s| {
            if let Some(handle) = s.timer.take() {
                if let Some(w) = web_sys::window() {
                    w.clear_timeout_with_handle(handle);
                }
            }
            let endpoint = s.tracker.config().endpoint.clone();
            let generation = s.generation;
            s.tracker.next_batch().map(|b| (b, endpoint, generation))
        });
        let Some(Some((batch, endpoint, generation))) = next else {
            break;
        };
        let count = batch.events.len() as u32;
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
                (
                    s.tracker
                        .settle(batch, answer.status, answer.retry_after_ms),
                    s.on_batch.clone(),
                )
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
                warn(&format!(
                    "ingest refused {count} events with HTTP {}; they are dropped",
                    answer.status
                ));
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

/// Starts the flush timer if events are waiting and none is running: after the flush
/// interval, or after the backoff delay when the last send failed.
fn schedule(state: &mut State) {
    if state.timer.is_some() || state.tracker.queue().is_empty() {
        return;
    }
    let Some(window) = web_sys::window() else {
        return;
    };
    let callback = Closure::once_into_js(|| {
        with_state(|s| s.timer = None);
        wasm_bindgen_futures::spawn_local(async {
            flush().await;
        });
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
