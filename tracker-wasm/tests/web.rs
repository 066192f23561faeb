//! The tracker in real browsers (`wasm-pack test --headless --chrome --firefox`), sending to
//! a real ingest that `cargo xtask test` starts and names in `PF_TEST_ENDPOINT`.
#![cfg(target_arch = "wasm32")]

use js_sys::{Object, Reflect};
use personafin_tracker::{flush, init, queued_events, session_id, track};
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const ENDPOINT: Option<&str> = option_env!("PF_TEST_ENDPOINT");
const CLIENT_KEY: Option<&str> = option_env!("PF_TEST_CLIENT_KEY");
/// Marks this run's events so xtask can find them in the store afterwards.
const RUN: Option<&str> = option_env!("PF_TEST_RUN");

fn obj(pairs: &[(&str, JsValue)]) -> JsValue {
    let o = Object::new();
    for (k, v) in pairs {
        Reflect::set(&o, &JsValue::from_str(k), v).unwrap();
    }
    o.into()
}

fn start(extra: &[(&str, JsValue)]) {
    let endpoint =
        ENDPOINT.expect("PF_TEST_ENDPOINT names the ingest under test; run `cargo xtask test`");
    let client_key = CLIENT_KEY.expect("PF_TEST_CLIENT_KEY is set by `cargo xtask test`");
    let mut pairs = vec![
        ("clientKey", client_key.into()),
        ("endpoint", endpoint.into()),
        ("clientRef", "wasm-test-user".into()),
        ("flushIntervalMs", 60_000.into()),
    ];
    pairs.extend_from_slice(extra);
    init(obj(&pairs)).unwrap_or_else(|e| panic!("init: {:?}", JsValue::from(e)));
}

async fn flush_counts() -> (u32, u32, u32) {
    let summary = JsFuture::from(flush()).await.unwrap();
    let get = |k: &str| Reflect::get(&summary, &k.into()).unwrap().as_f64().unwrap() as u32;
    (get("accepted"), get("duplicates"), get("rejected"))
}

fn entities(tickers: &[&str]) -> JsValue {
    let arr = js_sys::Array::new();
    for t in tickers {
        arr.push(&obj(&[("type", "ticker".into()), ("id", (*t).into())]));
    }
    arr.into()
}

fn meta() -> JsValue {
    obj(&[
        ("run", RUN.unwrap_or("").into()),
        ("page", "/stocks/AAPL".into()),
    ])
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
    let err = init(obj(config)).map_err(JsValue::from).unwrap_err();
    Reflect::get(&err, &"message".into())
        .unwrap()
        .as_string()
        .unwrap()
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
    // The second event filled the batch, so it is already on its way: poll, with a deadline,
    // until ingest has answered for it.
    let deadline = js_sys::Date::now() + 10_000.0;
    while queued_events() > 0 {
        assert!(
            js_sys::Date::now() < deadline,
            "the full batch was not delivered"
        );
        let tick = js_sys::Promise::new(&mut |resolve, _| {
            web_sys::window()
                .unwrap()
                .set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, 20)
                .unwrap();
        });
        JsFuture::from(tick).await.unwrap();
    }
}
