use gloo_net::http::Request;
use js_sys::{JSON, Reflect};
use wasm_bindgen::JsValue;

use crate::core::parse_retry_after;

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
/// batch costs one round trip; ingest reads it as JSON all the same.
pub(crate) async fn send(endpoint: &str, body: &str) -> Answer {
    let request = Request::post(endpoint)
        .header("Content-Type", "text/plain;charset=UTF-8")
        .body(body);
    let failed = Answer {
        status: 0,
        body: None,
        retry_after_ms: None,
    };
    let Ok(request) = request else { return failed };
    match request.send().await {
        Ok(response) => Answer {
            status: response.status(),
            retry_after_ms: response
                .headers()
                .get("retry-after")
                .as_deref()
                .and_then(parse_retry_after),
            body: response.text().await.ok(),
        },
        Err(_) => failed,
    }
}
