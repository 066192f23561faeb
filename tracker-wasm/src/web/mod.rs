//! Browser glue: the tracker's state on the page, driven by what `js/host.js` reports
//! (timers, answers from ingest, lifecycle events, clicks, observers, messages, tab locks).
//! Kept thin on purpose: everything that can be decided without a browser lives in `core`,
//! and everything that touches the browser lives in `host.js`.
//!
//! One rule runs through it: the state is borrowed only inside [`with_state`], and no page
//! callback (`onBatch`, `onError`) is called while it is, because a callback may call back
//! into the tracker.

mod autocapture;
mod bridge;
mod host;
mod options;

use std::cell::RefCell;

use wasm_bindgen::prelude::*;

use crate::core::{
    BEACON_BYTES, Clock, Consent, Delivery, Entropy, TrackError, Tracker, parse_int,
    parse_retry_after, push_int, uuid_v4,
};
use host::{FIELD, outcome, report};

pub(crate) use options::{TrackCall, read_config, read_event};

struct BrowserClock;

impl Clock for BrowserClock {
    fn now_ms(&self) -> i64 {
        host::now() as i64
    }
}

struct BrowserEntropy;

impl Entropy for BrowserEntropy {
    fn fill(&mut self, buf: &mut [u8; 16]) {
        host::random(buf);
    }
}

/// A random UUID, for ids the core does not make (tab ids).
pub(crate) fn random_id() -> String {
    let mut bytes = [0u8; 16];
    BrowserEntropy.fill(&mut bytes);
    uuid_v4(bytes)
}

struct State {
    tracker: Tracker<BrowserClock, BrowserEntropy>,
    /// This tab owns its queue key in `localStorage` (see `host.js`, `claim`): the queue is
    /// written there from now on.
    claimed: bool,
    /// The flush timer's handle.
    timer: Option<f64>,
    /// Which `init()` made this state; a batch sent before a re-init settles with its own.
    generation: u32,
    persist_scheduled: bool,
    /// A full batch asked for a flush that has not started yet: more full batches need none.
    send_requested: bool,
    /// Queue drops already reported to `onError`.
    drops_reported: u64,
    /// What is recorded without code.
    autocapture: crate::core::Autocapture,
    bridge: bridge::Bridge,
}

thread_local! {
    static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
    /// The generation the next `init()` gets.
    static GENERATION: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    /// What `host.js` reports through; made once, lives as long as the page.
    static DISPATCH: Closure<dyn Fn(u32, f64, Option<String>) -> Option<String>> =
        Closure::new(dispatch);
}

fn with_state<T>(f: impl FnOnce(&mut State) -> T) -> Option<T> {
    STATE.with(|s| s.borrow_mut().as_mut().map(f))
}

fn current_generation() -> Option<u32> {
    with_state(|s| s.generation)
}

/// Timers, by tag: the low two bits say which, the rest is the generation that set it.
const FLUSH_TIMER: u32 = 0;
const PERSIST_TIMER: u32 = 1;
const HANDSHAKE_TIMER: u32 = 2;

fn set_timer(which: u32, generation: u32, ms: f64) -> f64 {
    host::timer(which | (generation << 2), ms)
}

/// Everything `host.js` reports. Answers a few questions along the way (how long an
/// impression must stay in view, the identity an iframe asks for).
fn dispatch(what: u32, number: f64, text: Option<String>) -> Option<String> {
    let text = text.unwrap_or_default();
    match what {
        report::TIMER => timer_fired(number as u32),
        report::NEXT => return next_batch(number != 0.0),
        report::ANSWER => return answered(number as u32, &text),
        report::SCHEDULE => {
            with_state(schedule);
        }
        report::HIDE => send_beacons(),
        report::ONLINE => wake(),
        report::ROUTE => autocapture::page_view(false),
        report::ELEMENT => autocapture::element(&text),
        report::HELLO => return bridge::greeted(&text),
        report::HOST => bridge::host_identity(&text),
        report::CLAIMED => claimed(&text),
        report::ADOPT => adopted(&text),
        _ => {}
    }
    None
}

fn timer_fired(tag: u32) {
    let (which, generation) = (tag & 3, tag >> 2);
    match which {
        FLUSH_TIMER => {
            let mine = with_state(|s| {
                let mine = s.generation == generation;
                if mine {
                    s.timer = None;
                }
                mine
            });
            if mine == Some(true) {
                wake();
            }
        }
        PERSIST_TIMER => {
            with_state(persist);
        }
        _ => {
            if current_generation() == Some(generation) {
                bridge::release();
            }
        }
    }
}

/// Starts (or restarts) the tracker from `init()`'s options.
pub(crate) fn init(config: crate::core::Config) {
    DISPATCH.with(host::install);
    let dnt = config.respect_do_not_track && host::dnt();
    let refused = config.consent == Consent::Denied || dnt;
    if let Some(mut old) = STATE.with(|s| s.borrow_mut().take()) {
        if let Some(handle) = old.timer.take() {
            host::clear(handle);
        }
        // What the old tracker had not written yet is stored now, for the new one to adopt
        // (unless tracking was just refused, and storage is emptied next).
        if !refused {
            persist(&mut old);
        }
        GENERATION.with(|g| g.set(old.generation.wrapping_add(1) & 0x3fff_ffff));
    }
    let kind = match config.storage {
        crate::core::Storage::LocalStorage => host::storage::LOCAL_STORAGE,
        crate::core::Storage::Cookie => host::storage::COOKIE,
        crate::core::Storage::Memory => host::storage::MEMORY,
    };
    host::open(
        kind,
        &config.client_key,
        &config.endpoint,
        refused,
        config.debug,
    );
    let stored = if refused { None } else { host::stored() };
    let switches = config.autocapture;
    let tracker = Tracker::new(config, BrowserClock, BrowserEntropy, stored.as_deref(), dnt);
    STATE.with(|s| {
        *s.borrow_mut() = Some(State {
            tracker,
            claimed: false,
            timer: None,
            generation: GENERATION.with(|g| g.get()),
            persist_scheduled: false,
            send_requested: false,
            drops_reported: 0,
            autocapture: switches,
            bridge: bridge::Bridge::default(),
        })
    });
    host::restart(switches.impressions);
    if kind == host::storage::LOCAL_STORAGE {
        // At once when this page already holds its lock or there are no Web Locks, else
        // when the lock is granted: `CLAIMED`, with what this tab stored before.
        host::claim(&random_id());
    }
    with_state(bridge::start);
    autocapture::page_view(false);
    persist_soon();
}

/// This tab owns its queue key now: take what it left before a reload (or a second
/// `init()`), then wait for the other tabs' queues (`host.js` hands them over as `ADOPT`).
fn claimed(record: &str) {
    if with_state(|s| {
        s.claimed = true;
        s.tracker.adopt(record);
        persist(s);
    })
    .is_some()
    {
        host::adopt();
        wake();
    }
}

/// Events a closed tab left behind, handed over under its lock: stored before returning,
/// because the key is deleted next.
fn adopted(record: &str) {
    if with_state(|s| {
        s.tracker.adopt(record);
        persist(s);
    })
    .is_some()
    {
        wake();
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

/// Whether the tracker keeps things in `localStorage` now: consent granted (and no Do Not
/// Track refusal) and `storage: 'localStorage'`. Plugins keep what they remember there only then.
pub(crate) fn stores_locally() -> bool {
    with_state(|s| s.tracker.persists().1).unwrap_or(false)
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
            .map_err(TrackError::message);
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
            host::forget();
        }
        persist(s);
        dropped
    })
    .ok_or_else(not_initialised)?;
    if dropped > 0 && debug() {
        log(&counted(
            "consent denied: ",
            dropped as u32,
            " unsent events discarded",
        ));
    }
    wake();
    Ok(())
}

/// `prefix`, a number, `suffix`: messages with a count, without `core::fmt`.
pub(crate) fn counted(prefix: &str, n: u32, suffix: &str) -> String {
    let mut out = String::from(prefix);
    push_int(&mut out, i64::from(n));
    out.push_str(suffix);
    out
}

/// Queues one event from `track()` and arranges for it to be sent. The error is what is wrong
/// with the call, or `None` when the event is not recorded for another reason (the visitor
/// refused tracking, `beforeSend` dropped it).
pub(crate) fn track(
    event_type: JsValue,
    action: JsValue,
    options: JsValue,
) -> Result<(), Option<String>> {
    let line = host::read_event(&event_type, &action, &options);
    record_line(&line).map_err(|e| match e {
        TrackError::Invalid(message) => Some(message),
        TrackError::NotRecorded => None,
    })
}

/// Records a line `host.js` wrote (a `track()` call or an element's event); a line
/// `beforeSend` dropped is not recorded, and its failure, if it failed, is reported.
pub(crate) fn record_line(line: &str) -> Result<(), TrackError> {
    if let Some(failure) = line.strip_prefix(crate::protocol::DROPPED) {
        if !failure.is_empty() {
            before_send_failed(failure);
        }
        return Err(TrackError::NotRecorded);
    }
    record(read_event(line).map_err(TrackError::Invalid)?)
}

/// The page's `beforeSend` threw or made an invalid event: the console and `onError` are told,
/// and the event is not recorded.
fn before_send_failed(message: &str) {
    warn(&["event dropped: ", message].concat());
    report_error("before_send_failed", message, None, 1);
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
/// full, otherwise when the flush timer fires. When `beforeSend` made the event, what is
/// wrong with it is reported as its failure, and the event is not recorded.
pub(crate) fn record(call: TrackCall) -> Result<(), TrackError> {
    let screened = call.screened;
    match queue(call) {
        Err(TrackError::Invalid(message)) if screened => {
            before_send_failed(&["`beforeSend` returned an invalid event: ", &message].concat());
            Err(TrackError::NotRecorded)
        }
        result => result,
    }
}

fn queue(mut call: TrackCall) -> Result<(), TrackError> {
    if with_state(|s| s.bridge.held.is_some()) == Some(true) {
        // An iframe waiting for its host's identity: recorded once it is known, with the time
        // it was tracked.
        call.timestamp.get_or_insert_with(|| host::now() as i64);
        with_state(|s| s.bridge.held.as_mut().map(|held| held.push(call)));
        return Ok(());
    }
    let input = &call.input();
    let outcome = with_state(|s| {
        if s.tracker.session_expired() {
            // Another tab may have kept the session alive: look before starting a new one.
            if let Some(stored) = host::stored() {
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
            &counted(
                "the queue is full: ",
                dropped as u32,
                " oldest events dropped",
            ),
            None,
            dropped as u32,
        );
    }
    let send_now = result?;
    if debug() {
        log(&["queued ", input.event_type, ".", input.action].concat());
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
    let mut text = [code, "\x1f", message, "\x1f"].concat();
    push_int(&mut text, i64::from(events));
    if let Some(status) = status {
        text.push(char::from(FIELD));
        push_int(&mut text, i64::from(status));
    }
    host::report(&text);
}

/// How long changes wait before they are written to storage, so a burst of events costs one
/// write. Leaving or hiding the page writes at once, so only a crash of the browser itself
/// can lose that much; what was sent and is written again as unsent is deduplicated by ingest.
const PERSIST_DELAY_MS: f64 = 300.0;

/// Writes identity and queue to storage shortly, once however many changes come meanwhile.
fn persist_soon() {
    with_state(persist_later);
}

fn persist_later(s: &mut State) {
    if !std::mem::replace(&mut s.persist_scheduled, true) {
        set_timer(PERSIST_TIMER, s.generation, PERSIST_DELAY_MS);
    }
}

fn persist(s: &mut State) {
    s.persist_scheduled = false;
    let (identity_allowed, queue_allowed) = s.tracker.persists();
    let identity = identity_allowed
        .then(|| s.tracker.take_identity_record())
        .flatten();
    let queue = if queue_allowed && s.claimed {
        s.tracker.take_queue_record()
    } else {
        if s.tracker.consent() == Consent::Denied {
            let _ = s.tracker.take_queue_record();
        }
        None
    };
    if identity.is_some() || queue.is_some() {
        host::write(identity, queue);
    }
}

/// Sends soon whatever is waiting: after coming online, consent, a full batch, a timer, or
/// adopting a queue. `host.js` runs it after the flushes already started, and after the
/// page's current task, so a burst of `track()` calls costs no `fetch` in between.
fn wake() {
    host::wake();
}

/// `flush()`: `host.js` sends batch after batch, asking [`next_batch`] for each and telling
/// [`answered`] what ingest said, and resolves with the counts of the batches it sent.
pub(crate) fn flush() -> JsValue {
    host::flush()
}

/// The next batch for `host.js` to send (to the endpoint `host::open` gave it), as
/// `generation\x1fid\x1fcount\x1fkeepalive\x1fbody`; nothing while offline, or when nothing may be sent. Taking a batch leaves the
/// stored queue as it was: in-flight events stay in it until ingest has answered.
fn next_batch(first: bool) -> Option<String> {
    with_state(|s| {
        if first {
            s.send_requested = false;
        }
        if let Some(handle) = s.timer.take() {
            host::clear(handle);
        }
        if !host::online() {
            return None;
        }
        let batch = s.tracker.next_batch()?;
        let mut line = String::new();
        for n in [s.generation, batch.id, batch.count as u32] {
            push_int(&mut line, i64::from(n));
            line.push(char::from(FIELD));
        }
        line.push(if batch.body.len() < BEACON_BYTES {
            '1'
        } else {
            '0'
        });
        line.push(char::from(FIELD));
        line.push_str(&batch.body);
        Some(line)
    })
    .flatten()
}

/// Ingest's answer to batch `id`, as `generation, status, retry-after, body` in fields:
/// settles the batch and says how it went, for the flush's counts and `onBatch`, as one of
/// [`outcome`]'s. Nothing for a batch of an earlier `init()`, which is not reported to
/// the later one.
fn answered(id: u32, text: &str) -> Option<String> {
    let [generation, status, retry_after, body] = host::fields(text);
    let number = |s: &str| {
        parse_int(s)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0)
    };
    let (generation, status) = (number(generation), number(status) as u16);
    let retry_after = parse_retry_after(retry_after);
    let (delivery, count) = with_state(|s| {
        if s.generation != generation {
            return None;
        }
        let count = s.tracker.in_flight_count(id)?;
        let delivery = s.tracker.settle(id, status, retry_after);
        persist_later(s);
        Some((delivery, count as u32))
    })
    .flatten()?;
    let said = match delivery {
        Delivery::Delivered => outcome::DELIVERED,
        Delivery::Retry => outcome::RETRY,
        Delivery::Drop => {
            let mut message = counted("ingest refused ", count, " events with HTTP ");
            push_int(&mut message, i64::from(status));
            let message = [&message, ": ", body, "; they are dropped"].concat();
            warn(&message);
            report_error("refused", &message, Some(status), count);
            outcome::DROP
        }
    };
    Some(said.to_owned())
}

/// The page is going away or to the background: hand everything queued to `sendBeacon` in
/// chunks of at most 64 KiB, and store what the browser would not take. A beacon's answer is
/// never seen, so nothing is beaconed while offline or while ingest is failing (backing off):
/// it would be lost, whereas the stored queue goes out from the next page.
fn send_beacons() {
    let sendable = with_state(|s| {
        if !host::online() || s.tracker.backing_off() {
            persist(s);
            return (0, 0);
        }
        let batches = s.tracker.beacon_batches();
        let mut taken = 0;
        for b in &batches {
            let ok = host::beacon(&b.body);
            taken += u32::from(ok);
            s.tracker.beaconed(b.id, ok);
        }
        persist(s);
        (taken, batches.len() as u32)
    });
    if let Some((taken, all)) = sendable.filter(|_| debug()) {
        let line = counted("page hidden: ", taken, " of ");
        log(&counted(&line, all, " beacons taken"));
    }
}

/// Starts the flush timer if events are waiting and none is running: after the flush
/// interval, or after the backoff delay when the last send failed.
fn schedule(state: &mut State) {
    let waiting = !state.tracker.queue().is_empty() && state.tracker.consent() == Consent::Granted;
    if state.timer.is_some() || !waiting {
        return;
    }
    let delay = state.tracker.next_send_in_ms().min(i32::MAX as u64) as f64;
    state.timer = Some(set_timer(FLUSH_TIMER, state.generation, delay));
}

pub(crate) fn log(message: &str) {
    host::log(false, message);
}

pub(crate) fn warn(message: &str) {
    host::log(true, message);
}
