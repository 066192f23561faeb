//! Helpers for the browser tests: the ingest under test (named by `cargo xtask test` in
//! `PF_TEST_*` variables), JS objects, and waiting for a condition with a deadline.
#![allow(dead_code)]

use js_sys::{Object, Reflect};
use personafin_tracker::{flush, init, queued_events};
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::JsFuture;

pub(crate) const ENDPOINT: Option<&str> = option_env!("PF_TEST_ENDPOINT");
pub(crate) const CLIENT_KEY: Option<&str> = option_env!("PF_TEST_CLIENT_KEY");
/// An ingest started with a rate limit of one event per second, burst two.
pub(crate) const LIMITED_ENDPOINT: Option<&str> = option_env!("PF_TEST_LIMITED_ENDPOINT");
/// Marks this run's events so xtask can find them in the store afterwards.
pub(crate) const RUN: Option<&str> = option_env!("PF_TEST_RUN");
/// Nothing listens here: sends fail as they do offline.
pub(crate) const DEAD_ENDPOINT: &str = "http://127.0.0.1:9/v1/events";

pub(crate) fn endpoint() -> &'static str {
    ENDPOINT.expect("PF_TEST_ENDPOINT names the ingest under test; run `cargo xtask test`")
}

pub(crate) fn client_key() -> &'static str {
    CLIENT_KEY.expect("PF_TEST_CLIENT_KEY is set by `cargo xtask test`")
}

pub(crate) fn run() -> &'static str {
    RUN.unwrap_or("")
}

pub(crate) fn obj(pairs: &[(&str, JsValue)]) -> JsValue {
    let o = Object::new();
    for (k, v) in pairs {
        Reflect::set(&o, &JsValue::from_str(k), v).unwrap();
    }
    o.into()
}

pub(crate) fn get(target: &JsValue, key: &str) -> JsValue {
    Reflect::get(target, &key.into()).unwrap()
}

/// Starts the tracker on the ingest under test. Unless `extra` says otherwise it keeps
/// nothing on the device, records nothing by itself and flushes only when asked.
pub(crate) fn start(extra: &[(&str, JsValue)]) {
    let mut pairs = vec![
        ("clientKey", client_key().into()),
        ("endpoint", endpoint().into()),
        ("clientRef", "wasm-test-user".into()),
        ("flushIntervalMs", 60_000.into()),
        ("storage", "memory".into()),
        ("autocapture", false.into()),
    ];
    for (k, v) in extra {
        pairs.retain(|(key, _)| key != k);
        pairs.push((k, v.clone()));
    }
    if let Some(e) = init(obj(&pairs)) {
        panic!("init: {e}");
    }
}

pub(crate) async fn flush_summary() -> JsValue {
    JsFuture::from(js_sys::Promise::from(flush()))
        .await
        .unwrap()
}

/// `(accepted, duplicates, rejected)` of one `flush()`.
pub(crate) async fn flush_counts() -> (u32, u32, u32) {
    let summary = flush_summary().await;
    let n = |k: &str| get(&summary, k).as_f64().unwrap() as u32;
    (n("accepted"), n("duplicates"), n("rejected"))
}

/// The marker every test event carries in `event_meta.run`.
pub(crate) fn meta() -> JsValue {
    obj(&[("run", run().into()), ("page", "/stocks/AAPL".into())])
}

pub(crate) fn marked() -> JsValue {
    obj(&[("eventMeta", meta())])
}

/// Evaluates JS in the test page, for DOM set-up that would take a page of web-sys calls.
pub(crate) fn js(code: &str) -> JsValue {
    js_sys::eval(code).unwrap_or_else(|e| panic!("{code}: {e:?}"))
}

pub(crate) async fn sleep(ms: i32) {
    let tick = js_sys::Promise::new(&mut |resolve, _| {
        web_sys::window()
            .unwrap()
            .set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms)
            .unwrap();
    });
    JsFuture::from(tick).await.unwrap();
}

/// Waits for a promise the test made with `js(…)`.
pub(crate) async fn settled(promise: JsValue) -> JsValue {
    JsFuture::from(js_sys::Promise::from(promise))
        .await
        .unwrap_or_else(|e| panic!("rejected: {e:?}"))
}

/// Polls `condition` every 20 ms until it holds; fails naming `what` after `limit_ms`.
pub(crate) async fn wait_until(what: &str, limit_ms: f64, condition: impl Fn() -> bool) {
    let deadline = js_sys::Date::now() + limit_ms;
    while !condition() {
        assert!(
            js_sys::Date::now() < deadline,
            "timed out waiting for {what}"
        );
        sleep(20).await;
    }
}

/// Waits until the tracker has nothing undelivered.
pub(crate) async fn drained(what: &str) {
    wait_until(what, 15_000.0, || queued_events() == 0).await;
}

pub(crate) fn local_storage() -> web_sys::Storage {
    web_sys::window().unwrap().local_storage().unwrap().unwrap()
}

/// The stored queues of this client key: `(key, events)`.
pub(crate) fn stored_queues() -> Vec<(String, usize)> {
    let store = local_storage();
    let prefix = format!("pf_{}_q_", client_key());
    (0..store.length().unwrap())
        .filter_map(|i| store.key(i).unwrap())
        .filter(|k| k.starts_with(&prefix))
        .map(|k| {
            let n = store
                .get_item(&k)
                .unwrap()
                .map_or(0, |v| v.lines().filter(|l| !l.is_empty()).count());
            (k, n)
        })
        .collect()
}

/// Collects what the tracker tells `onBatch` and `onError`.
pub(crate) fn recorder(name: &str) -> JsValue {
    js(&format!("window.{name} = []; (x) => window.{name}.push(x)"))
}
