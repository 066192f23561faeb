//! The tracker in real browsers (`wasm-pack test --headless --chrome --firefox`), sending to
//! a real ingest that `cargo xtask test` starts and names in `PF_TEST_ENDPOINT`: delivery,
//! persistence, tabs, beacons, offline, 429, consent. `autocapture.rs` covers what the
//! tracker records by itself.
#![cfg(target_arch = "wasm32")]

mod support;

use js_sys::Reflect;
use personafin_tracker::{init, queued_events, session_id, set_consent, track, visitor_id};
use support::*;
use wasm_bindgen::JsValue;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn entities(tickers: &[&str]) -> JsValue {
    let arr = js_sys::Array::new();
    for t in tickers {
        arr.push(&obj(&[("type", "ticker".into()), ("id", (*t).into())]));
    }
    arr.into()
}

#[wasm_bindgen_test]
async fn a_batch_reaches_ingest_and_is_stored() {
    start(&[]);
    let sid = session_id().unwrap();
    assert_eq!(sid.len(), 36);
    assert!(track(
        "instrument".into(),
        "viewed".into(),
        obj(&[
            ("eventMeta", meta()),
            ("relatedEntities", entities(&["AAPL"]))
        ])
    ));
    assert!(track(
        "watchlist".into(),
        "added".into(),
        obj(&[
            ("eventMeta", meta()),
            ("relatedEntities", entities(&["AAPL", "TSLA"]))
        ])
    ));
    let shorthand = js_sys::Array::of1(&"ticker:NVDA".into());
    assert!(track(
        "chart".into(),
        "interacted".into(),
        obj(&[("eventMeta", meta()), ("relatedEntities", shorthand.into())])
    ));
    assert_eq!(queued_events(), 3);
    // Ingest answers only after its commit is on disk, so `accepted` means stored.
    assert_eq!(flush_counts().await, (3, 0, 0));
    assert_eq!(queued_events(), 0);
    assert_eq!(session_id().unwrap(), sid);
}

#[wasm_bindgen_test]
async fn invalid_calls_are_refused_without_throwing() {
    start(&[]);
    assert!(!track(
        "Instrument View".into(),
        "viewed".into(),
        JsValue::UNDEFINED
    ));
    assert!(!track(
        JsValue::from(7),
        "viewed".into(),
        JsValue::UNDEFINED
    ));
    assert!(!track(
        "instrument".into(),
        "viewed".into(),
        obj(&[("eventMeta", "text".into())])
    ));
    assert!(!track(
        "instrument".into(),
        "viewed".into(),
        obj(&[("relatedEntitys", entities(&["A"]))])
    ));
    assert!(!track(
        "instrument".into(),
        "viewed".into(),
        obj(&[("relatedEntities", js_sys::Array::of1(&"AAPL".into()).into())])
    ));
    assert_eq!(queued_events(), 0);
    assert_eq!(flush_counts().await, (0, 0, 0));
}

/// The message `init()` throws for `config`.
fn init_error(config: &[(&str, JsValue)]) -> String {
    init(obj(config)).expect("init() refuses this config")
}

#[wasm_bindgen_test]
fn a_bad_config_throws_naming_the_key() {
    let message = init_error(&[
        ("clientKey", "pk".into()),
        ("endpoint", "http://x/v1/events".into()),
        ("flushIntervalMS", 5.into()),
    ]);
    assert!(message.contains("flushIntervalMS"), "{message}");
    let message = init_error(&[("clientKey", "pk".into()), ("endpoint", "/relative".into())]);
    assert!(message.contains("endpoint"), "{message}");
    let message = init_error(&[
        ("clientKey", "pk".into()),
        ("endpoint", "http://x/v1/events".into()),
        ("storage", "indexedDB".into()),
    ]);
    assert!(message.contains("storage"), "{message}");
    let message = init_error(&[
        ("clientKey", "pk".into()),
        ("endpoint", "http://x/v1/events".into()),
        ("onError", "log".into()),
    ]);
    assert!(message.contains("onError"), "{message}");
}

#[wasm_bindgen_test]
async fn a_full_batch_is_sent_without_waiting_for_the_timer() {
    start(&[("maxEvents", 2.into())]);
    track(
        "instrument".into(),
        "viewed".into(),
        obj(&[("eventMeta", meta())]),
    );
    track(
        "instrument".into(),
        "clicked".into(),
        obj(&[("eventMeta", meta())]),
    );
    // The second event filled the batch, so it is already on its way.
    drained("the full batch to be delivered").await;
}

fn track_marked(event_type: &str, action: &str) -> bool {
    track(event_type.into(), action.into(), marked())
}

/// `onBatch` summaries collected in `window[name]`, as `(accepted, retrying)` pairs.
fn batches(name: &str) -> Vec<(u32, u32)> {
    let list = js_sys::Array::from(&js(&format!("window.{name}")));
    list.iter()
        .map(|b| {
            let n = |k: &str| get(&b, k).as_f64().unwrap() as u32;
            (n("accepted"), n("retrying"))
        })
        .collect()
}

fn accepted(name: &str) -> u32 {
    batches(name).iter().map(|(a, _)| a).sum()
}

fn queued_in_storage() -> usize {
    stored_queues().iter().map(|(_, n)| n).sum()
}

#[wasm_bindgen_test]
async fn queued_events_survive_a_reload() {
    local_storage().clear().unwrap();
    start(&[
        ("storage", "localStorage".into()),
        ("endpoint", DEAD_ENDPOINT.into()),
    ]);
    let visitor = visitor_id().unwrap();
    let session = session_id().unwrap();
    assert!(track_marked("instrument", "viewed"));
    assert!(track_marked("instrument", "clicked"));
    let summary = flush_summary().await;
    assert_eq!(
        get(&summary, "retrying").as_f64(),
        Some(2.0),
        "ingest unreachable"
    );
    wait_until("the queue to be stored", 5_000.0, || {
        queued_in_storage() == 2
    })
    .await;

    // What a reload does: a fresh tracker reading the same storage.
    let on_batch = recorder("reloadBatches");
    start(&[("storage", "localStorage".into()), ("onBatch", on_batch)]);
    assert_eq!(visitor_id().unwrap(), visitor, "same visitor");
    assert_eq!(session_id().unwrap(), session, "same live session");
    drained("the stored events to be sent").await;
    assert_eq!(accepted("reloadBatches"), 2);
    wait_until("the stored queue to empty", 5_000.0, || {
        queued_in_storage() == 0
    })
    .await;
}

#[wasm_bindgen_test]
async fn cookie_storage_keeps_the_visitor_in_a_cookie_and_nothing_in_local_storage() {
    local_storage().clear().unwrap();
    let name = format!("pf_{}", client_key());
    let forget = format!("document.cookie = '{name}=; max-age=0; path=/'");
    js(&forget);
    let on_batch = recorder("cookieBatches");
    start(&[
        ("storage", "cookie".into()),
        ("onBatch", on_batch),
        ("clientRef", "cookie-user-7".into()),
    ]);
    let visitor = visitor_id().unwrap();
    assert!(track_marked("instrument", "viewed"));
    wait_until("the identity cookie", 5_000.0, || {
        js("document.cookie")
            .as_string()
            .unwrap()
            .contains(&format!("{name}="))
    })
    .await;
    let cookie = js("document.cookie").as_string().unwrap();
    assert!(
        cookie.contains(&visitor) && !cookie.contains("cookie-user-7"),
        "the visitor in the cookie, never the user: {cookie}"
    );
    assert_eq!(
        local_storage().length().unwrap(),
        0,
        "nothing in localStorage"
    );
    flush_summary().await;
    drained("the event to be sent").await;
    assert_eq!(accepted("cookieBatches"), 1);
    start(&[("storage", "cookie".into())]);
    assert_eq!(
        visitor_id().unwrap(),
        visitor,
        "the next page is the same visitor"
    );
    js(&forget);
}

#[wasm_bindgen_test]
async fn a_closed_tabs_queue_is_adopted_once_and_a_live_tabs_is_left_alone() {
    local_storage().clear().unwrap();
    start(&[
        ("storage", "localStorage".into()),
        ("endpoint", DEAD_ENDPOINT.into()),
    ]);
    assert!(track_marked("watchlist", "added"));
    assert!(track_marked("watchlist", "removed"));
    flush_summary().await;
    wait_until("the queue to be stored", 5_000.0, || {
        queued_in_storage() == 2
    })
    .await;
    let (own, _) = stored_queues().remove(0);
    let record = local_storage().get_item(&own).unwrap().unwrap();
    local_storage().remove_item(&own).unwrap();
    // A tab that closed left these two behind; its lock is free.
    let prefix = format!("pf_{}_q_", client_key());
    let closed = format!("{prefix}closed-tab");
    local_storage().set_item(&closed, &record).unwrap();
    // A tab that is still open holds its lock: its queue is its own business.
    let live = format!("{prefix}live-tab");
    let first_line = record.lines().next().unwrap().to_owned();
    local_storage().set_item(&live, &first_line).unwrap();
    js(&format!(
        "new Promise((granted) => navigator.locks.request('{live}', () => \
           new Promise((release) => {{ window.releaseLiveTab = release; granted(); }})))"
    ));
    wait_until("the live tab's lock", 5_000.0, || {
        !js("window.releaseLiveTab").is_undefined()
    })
    .await;

    let on_batch = recorder("tabBatches");
    start(&[("storage", "localStorage".into()), ("onBatch", on_batch)]);
    wait_until("the closed tab's queue to be adopted", 5_000.0, || {
        local_storage().get_item(&closed).unwrap().is_none()
    })
    .await;
    drained("the adopted events to be sent").await;
    let (accepted, duplicates, _) = flush_counts().await;
    assert_eq!((accepted, duplicates), (0, 0), "nothing left to send");
    assert_eq!(
        self::accepted("tabBatches"),
        2,
        "each adopted event sent once"
    );
    assert_eq!(
        local_storage().get_item(&live).unwrap().as_deref(),
        Some(first_line.as_str()),
        "the live tab's queue is untouched"
    );
    // Its queue gone first, so that when it "closes" this page (waiting for its lock) finds
    // nothing to adopt.
    local_storage().remove_item(&live).unwrap();
    js("window.releaseLiveTab()");
}

#[wasm_bindgen_test]
async fn offline_pauses_delivery_and_online_resumes_it() {
    js("Object.defineProperty(navigator, 'onLine', { configurable: true, get: () => false })");
    js("window.dispatchEvent(new Event('offline'))");
    let on_batch = recorder("offlineBatches");
    start(&[("onBatch", on_batch)]);
    assert!(track_marked("alert", "created"));
    assert!(track_marked("trade", "ticket_opened"));
    let summary = flush_summary().await;
    assert_eq!(
        get(&summary, "batches").as_f64(),
        Some(0.0),
        "nothing sent offline"
    );
    assert_eq!(queued_events(), 2);
    js("delete navigator.onLine");
    js("window.dispatchEvent(new Event('online'))");
    drained("delivery after coming online").await;
    assert_eq!(accepted("offlineBatches"), 2);
}

#[wasm_bindgen_test]
async fn a_429_is_retried_no_sooner_than_retry_after() {
    let Some(limited) = LIMITED_ENDPOINT else {
        panic!("PF_TEST_LIMITED_ENDPOINT is set by `cargo xtask test`");
    };
    let on_batch = recorder("limitedBatches");
    start(&[
        ("endpoint", limited.into()),
        ("maxEvents", 2.into()),
        ("onBatch", on_batch),
    ]);
    // The limited ingest allows a burst of two events, then one a second.
    assert!(track_marked("instrument", "viewed"));
    assert!(track_marked("instrument", "viewed"));
    drained("the first batch").await;
    assert!(track_marked("instrument", "viewed"));
    assert!(track_marked("instrument", "viewed"));
    wait_until("a 429", 5_000.0, || batches("limitedBatches").len() == 2).await;
    let refused_at = js_sys::Date::now();
    assert_eq!(
        batches("limitedBatches")[1],
        (0, 2),
        "rate-limited, kept for a retry"
    );
    drained("the retried batch").await;
    let waited = js_sys::Date::now() - refused_at;
    // Without Retry-After the first retry would come within a second (full jitter).
    assert!(waited >= 1_000.0, "retried after {waited} ms");
    assert_eq!(batches("limitedBatches"), [(2, 0), (0, 2), (2, 0)]);
}

#[wasm_bindgen_test]
async fn leaving_the_page_hands_the_queue_to_beacons_once() {
    start(&[]);
    assert!(track_marked("content", "read"));
    assert!(track_marked("content", "shared"));
    js("window.dispatchEvent(new Event('pagehide'))");
    assert_eq!(queued_events(), 0, "beaconed at once");
    let summary = flush_summary().await;
    assert_eq!(
        get(&summary, "batches").as_f64(),
        Some(0.0),
        "not sent again"
    );

    assert!(track_marked("content", "viewed"));
    js(
        "Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' })",
    );
    js("Object.defineProperty(document, 'hidden', { configurable: true, get: () => true })");
    js("document.dispatchEvent(new Event('visibilitychange'))");
    js("delete document.visibilityState; delete document.hidden");
    assert_eq!(
        queued_events(),
        0,
        "beaconed when the tab went to the background"
    );
}

#[wasm_bindgen_test]
async fn pending_consent_sends_on_grant_and_denial_forgets() {
    local_storage().clear().unwrap();
    let on_batch = recorder("consentBatches");
    start(&[
        ("storage", "localStorage".into()),
        ("consent", "pending".into()),
        ("onBatch", on_batch),
    ]);
    assert!(track_marked("search", "submitted"));
    sleep(50).await;
    let summary = flush_summary().await;
    assert_eq!(
        get(&summary, "batches").as_f64(),
        Some(0.0),
        "nothing sent while pending"
    );
    assert_eq!(queued_events(), 1, "held while pending");
    assert_eq!(
        local_storage().length().unwrap(),
        0,
        "nothing written to the device"
    );
    assert_eq!(set_consent("granted"), None);
    drained("delivery on grant").await;
    assert_eq!(accepted("consentBatches"), 1);
    let identity_key = format!("pf_{}", client_key());
    assert!(local_storage().get_item(&identity_key).unwrap().is_some());

    assert_eq!(set_consent("denied"), None);
    assert!(!track_marked("search", "submitted"), "nothing recorded");
    assert_eq!(
        local_storage().get_item(&identity_key).unwrap(),
        None,
        "identity forgotten"
    );
    assert!(set_consent("maybe").is_some_and(|e| e.contains("'maybe'")));
}

#[wasm_bindgen_test]
async fn global_privacy_control_is_respected_when_asked() {
    js(
        "Object.defineProperty(navigator, 'globalPrivacyControl', { configurable: true, get: () => true })",
    );
    start(&[("respectDoNotTrack", true.into())]);
    assert!(!track_marked("instrument", "viewed"));
    assert_eq!(set_consent("granted"), None);
    assert!(
        !track_marked("instrument", "viewed"),
        "the browser's signal wins"
    );
    assert_eq!(flush_counts().await, (0, 0, 0), "and nothing is sent");
    start(&[]);
    assert!(track_marked("instrument", "viewed"), "off unless asked");
    js("delete navigator.globalPrivacyControl");
    assert_eq!(flush_counts().await, (1, 0, 0));
}

#[wasm_bindgen_test]
fn errors_reach_on_error() {
    let on_error = recorder("errors");
    start(&[
        ("onError", on_error),
        ("maxQueuedEvents", 20.into()),
        ("maxEvents", 20.into()),
    ]);
    assert!(!track(
        "Bad Name".into(),
        "viewed".into(),
        JsValue::UNDEFINED
    ));
    for _ in 0..21 {
        track("page".into(), "viewed".into(), JsValue::UNDEFINED);
    }
    let errors = js_sys::Array::from(&js("window.errors"));
    let codes: Vec<String> = errors
        .iter()
        .map(|e| get(&e, "code").as_string().unwrap())
        .collect();
    assert_eq!(codes, ["invalid_event", "queue_full"]);
    assert!(
        Reflect::get(&errors.get(0), &"message".into())
            .unwrap()
            .as_string()
            .unwrap()
            .contains("eventType")
    );
    // A fresh tracker with nothing queued, so the next test starts clean.
    start(&[]);
}
