//! The iframe bridge: a component page embedded in a host page (on another origin) sends its
//! events with the host's session and user id, learnt through a `postMessage` handshake.
//!
//! The iframe (configured with `hostOrigins`) posts `{ personafin: "hello" }` to its parent and
//! holds its events; the host (configured with `iframeOrigins`) answers an iframe of a listed
//! origin, and only it, with `{ personafin: "identity", visitorId, sessionId, clientRef }`
//! addressed to that origin, and again whenever `identify()` or `reset()` changes them. The
//! iframe takes an identity only from its own parent and a listed origin, then sends what it
//! held; without an answer within [`HANDSHAKE_MS`] it sends them under its own identity.
//! `host.js` posts and receives the messages; this decides who is answered and believed.

use super::host::{self, fields};
use super::{HANDSHAKE_TIMER, State, TrackCall, record, set_timer, with_state};

/// How long an iframe holds its events waiting for the host's answer.
const HANDSHAKE_MS: f64 = 1_500.0;

/// The bridge's part of the tracker state.
#[derive(Default)]
pub(crate) struct Bridge {
    /// Set in an iframe until the host answered or the handshake timed out: the events
    /// recorded meanwhile, each with the time it was tracked.
    pub(crate) held: Option<Vec<TrackCall>>,
}

/// After `init()`: an iframe with `hostOrigins` greets its parent and starts holding events.
pub(crate) fn start(s: &mut State) {
    if s.tracker.config().host_origins.is_empty() || !host::greet() {
        return;
    }
    s.bridge.held = Some(Vec::new());
    set_timer(HANDSHAKE_TIMER, s.generation, HANDSHAKE_MS);
}

/// Records what was held, under whatever identity the tracker has now.
pub(crate) fn release() {
    let Some(Some(held)) = with_state(|s| s.bridge.held.take()) else {
        return;
    };
    for call in held {
        if let Err(crate::core::TrackError::Invalid(message)) = record(call) {
            super::invalid_call(&message);
        }
    }
}

/// On a host: an iframe of `origin` greeted; the identity to answer with, if it is listed.
pub(crate) fn greeted(origin: &str) -> Option<String> {
    with_state(|s| {
        s.tracker
            .config()
            .iframe_origins
            .iter()
            .any(|o| o == origin)
            .then(|| identity_line(s))
    })
    .flatten()
}

/// `visitor\x1fsession\x1fclientRef` (empty without a user id).
fn identity_line(s: &State) -> String {
    let id = s.tracker.identity();
    [
        id.visitor_id.as_str(),
        "\x1f",
        &id.session.id,
        "\x1f",
        id.client_ref.as_deref().unwrap_or(""),
    ]
    .concat()
}

/// Tells the iframes that asked about the host's new identity (after `identify`/`reset`).
pub(crate) fn identity_changed(s: &State) {
    if !s.tracker.config().iframe_origins.is_empty() {
        host::tell(&identity_line(s));
    }
}

/// In an iframe: its parent sent `origin\x1fvisitor\x1fsession\x1fclientRef`.
pub(crate) fn host_identity(text: &str) {
    let [origin, visitor, session, client_ref] = fields(text);
    let client_ref = (!client_ref.is_empty()).then_some(client_ref);
    let adopted = with_state(|s| {
        if !s.tracker.config().host_origins.iter().any(|o| o == origin) {
            return false;
        }
        let ok = s.tracker.adopt_host(visitor, session, client_ref).is_ok();
        if ok {
            super::persist_later(s);
        }
        ok
    });
    if adopted == Some(true) {
        release();
    }
}
