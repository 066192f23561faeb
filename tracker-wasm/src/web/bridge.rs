//! The iframe bridge: a component page embedded in a host page (on another origin) sends its
//! events with the host's session and user id, learnt through a `postMessage` handshake.
//!
//! The iframe (configured with `hostOrigins`) posts `{ personafin: "hello" }` to its parent and
//! holds its events; the host (configured with `iframeOrigins`) answers an iframe of a listed
//! origin, and only it, with `{ personafin: "identity", visitorId, sessionId, clientRef }`
//! addressed to that origin, and again whenever `identify()` or `reset()` changes them. The
//! iframe takes an identity only from its own parent and a listed origin, then sends what it
//! held; without an answer within [`HANDSHAKE_MS`] it sends them under its own identity.

use js_sys::{Object, Reflect};
use wasm_bindgen::prelude::*;
use web_sys::MessageEvent;

use super::{State, record, with_state};
use crate::core::{EntityRef, EventInput};

/// How long an iframe holds its events waiting for the host's answer.
const HANDSHAKE_MS: i32 = 1_500;

const KIND: &str = "personafin";

/// An event recorded while waiting for the host, kept to be recorded once the identity is
/// known (with the time it was tracked).
pub(crate) struct Held {
    event_type: String,
    action: String,
    meta_json: Option<String>,
    entities: Vec<EntityRef>,
    timestamp: i64,
}

impl Held {
    pub(crate) fn of(input: &EventInput<'_>) -> Held {
        Held {
            event_type: input.event_type.to_owned(),
            action: input.action.to_owned(),
            meta_json: input.meta_json.map(str::to_owned),
            entities: input.entities.to_vec(),
            timestamp: input
                .timestamp
                .unwrap_or_else(|| js_sys::Date::now() as i64),
        }
    }
}

/// The bridge's part of the tracker state.
#[derive(Default)]
pub(crate) struct Bridge {
    /// Set in an iframe until the host answered or the handshake timed out.
    pub(crate) held: Option<Vec<Held>>,
    /// On a host: the iframes that asked, with their origins, to tell of identity changes.
    frames: Vec<(JsValue, String)>,
}

/// After `init()`: an iframe with `hostOrigins` greets its parent and starts holding events.
pub(crate) fn start(s: &mut State) {
    if s.tracker.config().host_origins.is_empty() {
        return;
    }
    let Some(window) = web_sys::window() else {
        return;
    };
    let Ok(Some(parent)) = window.parent() else {
        return;
    };
    if Object::is(&parent, &window) {
        return;
    }
    s.bridge.held = Some(Vec::new());
    let hello = message("hello");
    // The greeting carries nothing; the answer is checked against `hostOrigins`.
    let _ = parent.post_message(&hello, "*");
    let generation = s.generation;
    let give_up = Closure::once_into_js(move || {
        if super::current_generation() == Some(generation) {
            release();
        }
    });
    let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(
        give_up.unchecked_ref(),
        HANDSHAKE_MS,
    );
}

fn message(kind: &str) -> JsValue {
    let m = Object::new();
    let _ = Reflect::set(&m, &KIND.into(), &kind.into());
    m.into()
}

/// Records what was held, under whatever identity the tracker has now.
fn release() {
    let Some(Some(held)) = with_state(|s| s.bridge.held.take()) else {
        return;
    };
    for h in held {
        let input = EventInput {
            event_type: &h.event_type,
            action: &h.action,
            meta_json: h.meta_json.as_deref(),
            entities: &h.entities,
            timestamp: Some(h.timestamp),
        };
        if let Err(crate::core::TrackError::Invalid(message)) = record(&input) {
            super::invalid_call(&message);
        }
    }
}

/// A `message` event: a greeting from an iframe (on a host) or an identity (in an iframe).
pub(crate) fn received(event: &MessageEvent) {
    let data = event.data();
    let kind = Reflect::get(&data, &KIND.into())
        .ok()
        .and_then(|k| k.as_string());
    match kind.as_deref() {
        Some("hello") => greeted(event),
        Some("identity") => identity(event, &data),
        _ => {}
    }
}

fn greeted(event: &MessageEvent) {
    let origin = event.origin();
    let Some(source) = event.source() else {
        return;
    };
    let source: JsValue = source.into();
    let reply = with_state(|s| {
        if !s.tracker.config().iframe_origins.contains(&origin) {
            return None;
        }
        if !s.bridge.frames.iter().any(|(f, _)| Object::is(f, &source)) {
            s.bridge.frames.push((source.clone(), origin.clone()));
        }
        Some(identity_message(s))
    })
    .flatten();
    if let Some(reply) = reply {
        post(&source, &reply, &origin);
    }
}

fn identity_message(s: &State) -> JsValue {
    let m = message("identity");
    let id = s.tracker.identity();
    let _ = Reflect::set(&m, &"visitorId".into(), &id.visitor_id.as_str().into());
    let _ = Reflect::set(&m, &"sessionId".into(), &id.session.id.as_str().into());
    let client_ref = id
        .client_ref
        .as_deref()
        .map_or(JsValue::NULL, JsValue::from_str);
    let _ = Reflect::set(&m, &"clientRef".into(), &client_ref);
    m
}

/// `target.postMessage(message, origin)` on a window known only as a JS value.
fn post(target: &JsValue, message: &JsValue, origin: &str) {
    if let Ok(post) = Reflect::get(target, &"postMessage".into()) {
        if let Some(post) = post.dyn_ref::<js_sys::Function>() {
            let _ = post.call2(target, message, &origin.into());
        }
    }
}

/// Tells the iframes that asked about the host's new identity (after `identify`/`reset`).
pub(crate) fn identity_changed(s: &State) {
    if s.bridge.frames.is_empty() {
        return;
    }
    let update = identity_message(s);
    for (frame, origin) in &s.bridge.frames {
        post(frame, &update, origin);
    }
}

fn identity(event: &MessageEvent, data: &JsValue) {
    let from_parent = web_sys::window()
        .and_then(|w| w.parent().ok().flatten())
        .zip(event.source())
        .is_some_and(|(parent, source)| Object::is(&parent, &source));
    if !from_parent {
        return;
    }
    let origin = event.origin();
    let field = |k: &str| {
        Reflect::get(data, &k.into())
            .ok()
            .and_then(|v| v.as_string())
    };
    let (Some(visitor), Some(session)) = (field("visitorId"), field("sessionId")) else {
        return;
    };
    let client_ref = field("clientRef");
    let adopted = with_state(|s| {
        if !s.tracker.config().host_origins.contains(&origin) {
            return false;
        }
        let ok = s
            .tracker
            .adopt_host(&visitor, &session, client_ref.as_deref())
            .is_ok();
        if ok {
            super::persist_later(s);
        }
        ok
    });
    if adopted == Some(true) {
        release();
    }
}
