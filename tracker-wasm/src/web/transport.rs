use js_sys::{JSON, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{RequestInit, Response};

use crate::core::{BEACON_BYTES, parse_retry_after};

/// Ingest's answer; status 0 when there was none (offline, DNS, CORS, reset).
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: Option<String>,
    /// `Retry-After`, in ms, when the server sent one (ingest exposes it to CORS callers).
    pub(crate) retry_after_ms: Option<u64>,
}

impl Answer {
    /// `(accepted, duplicates, rejected)` from a 2xx body, parsed by the browser's JSON.
    pub(crate) fn counts(&self) -> (u32, u32, u32) {
        let Some(parsed) = self.body.as_deref().and_then(|b| JSON::parse(b).ok()) else {
            return (0, 0, 0);
        };
        let num = |k: &str| {
            Reflect::get(&parsed, &JsValue::from_str(k))
                .ok()
                .and_then(|v| v.as_f64())
        };
        let rejected = Reflect::get(&parsed, &"rejected".into())
            .ok()
            .map(|v| js_sys::Array::from(&v).length())
            .unwrap_or(0);
        (
            num("accepted").unwrap_or(0.0) as u32,
            num("duplicates").unwrap_or(0.0) as u32,
            rejected,
        )
    }
}

/// POSTs a batch as `text/plain`, which browsers send without a CORS preflight, so each
/// batch costs one round trip; ingest reads it as JSON all the same. Small batches go with
/// `keepalive`, so a navigation in the middle does not cancel them.
pub(crate) async fn send(endpoint: &str, body: &str) -> Answer {
    let failed = Answer {
        status: 0,
        body: None,
        retry_after_ms: None,
    };
    let Some(window) = web_sys::window() else {
        return failed;
    };
    let init = RequestInit::new();
    init.set_method("POST");
    init.set_body(&JsValue::from_str(body));
    keepalive(&init, body.len() < BEACON_BYTES);
    if let Some(signal) = timeout_signal() {
        let _ = Reflect::set(&init, &"signal".into(), &signal);
    }
    let Ok(response) = JsFuture::from(window.fetch_with_str_and_init(endpoint, &init)).await else {
        return failed;
    };
    let Ok(response) = response.dyn_into::<Response>() else {
        return failed;
    };
    let retry_after_ms = response
        .headers()
        .get("retry-after")
        .ok()
        .flatten()
        .as_deref()
        .and_then(parse_retry_after);
    let text = match response.text() {
        Ok(p) => JsFuture::from(p).await.ok().and_then(|t| t.as_string()),
        Err(_) => None,
    };
    Answer {
        status: response.status(),
        body: text,
        retry_after_ms,
    }
}

/// How long a send may take before it counts as failed (and is retried), so a hung
/// connection never stalls delivery.
const SEND_TIMEOUT_MS: u32 = 30_000;

/// `AbortSignal.timeout(SEND_TIMEOUT_MS)`, where the browser has it.
fn timeout_signal() -> Option<JsValue> {
    let class = Reflect::get(&js_sys::global(), &"AbortSignal".into()).ok()?;
    let timeout = Reflect::get(&class, &"timeout".into()).ok()?;
    let timeout = timeout.dyn_ref::<js_sys::Function>()?;
    timeout.call1(&class, &SEND_TIMEOUT_MS.into()).ok()
}

/// `RequestInit.keepalive`, which web-sys does not expose.
fn keepalive(init: &RequestInit, on: bool) {
    let _ = Reflect::set(init, &"keepalive".into(), &on.into());
}

/// Hands a batch to the browser to deliver after the page has gone: `sendBeacon`, or where it
/// is missing a keepalive `fetch`. True when the browser took it.
pub(crate) fn beacon(endpoint: &str, body: &str) -> bool {
    let Some(window) = web_sys::window() else {
        return false;
    };
    let navigator = window.navigator();
    let has_beacon = Reflect::has(&navigator, &"sendBeacon".into()).unwrap_or(false);
    if has_beacon {
        return navigator
            .send_beacon_with_opt_str(endpoint, Some(body))
            .unwrap_or(false);
    }
    let init = RequestInit::new();
    init.set_method("POST");
    init.set_body(&JsValue::from_str(body));
    keepalive(&init, true);
    // The promise is dropped: nobody is left to read the answer.
    let _ = window.fetch_with_str_and_init(endpoint, &init);
    true
}
