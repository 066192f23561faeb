//! What the tracker records by itself: page views (load and SPA route changes), clicks on
//! `data-pf-event` elements, and impressions (`data-pf-impression-id` / `data-pf-fxcid`:
//! `viewed` after a second at half visible, `clicked` on click). `host.js` listens and
//! observes, and sends an element's event as the `track()` call its `data-pf-*` attributes
//! make; this decides which are recorded, and when an impression counts as seen
//! (`core::autocapture`).

use super::host::{self, GROUP};
use super::{read_event, record, report_error, with_state};
use crate::core::autocapture::Exposure;
use crate::core::{self, cut, push_int};

/// Autocapture's part of the tracker state.
pub(crate) struct Autocapture {
    switches: core::Autocapture,
    /// What each impression has shown so far, by its key (a page shows tens of them, so a
    /// list is as quick as a map, and smaller in wasm).
    exposures: Vec<(String, Exposure)>,
}

impl Autocapture {
    pub(crate) fn new(switches: core::Autocapture) -> Autocapture {
        Autocapture {
            switches,
            exposures: Vec::new(),
        }
    }

    /// Hidden pages show nothing: visible time restarts when the page comes back (and
    /// `host.js` asks the observer afresh what is on screen).
    pub(crate) fn hidden(&mut self) {
        self.exposures.iter_mut().for_each(|(_, e)| e.hidden());
    }

    fn exposure(&mut self, key: &str) -> Option<&mut Exposure> {
        self.exposures
            .iter_mut()
            .find(|(k, _)| k == key)
            .map(|(_, e)| e)
    }
}

/// Records `page.viewed` for the page now: on `init()` and route changes when page views are
/// captured automatically (`host.js` skips a URL that was the last page viewed), and always
/// when `forced` by the page's own `page()` call.
pub(crate) fn page_view(forced: bool) {
    let Some(automatic) = with_state(|s| s.autocapture.switches.page_views) else {
        return;
    };
    if forced || automatic {
        let line = host::page_view(forced);
        if !line.is_empty() {
            emit(&line);
        }
    }
}

/// Records an element's event, a `track()` line as `host.js` writes it. A malformed attribute
/// is reported (console and `onError`), not thrown: no call of the page's made the event.
fn emit(line: &str) {
    let result = read_event(line).and_then(|call| match record(call) {
        Err(core::TrackError::Invalid(message)) => Err(message),
        _ => Ok(()),
    });
    if let Err(message) = result {
        refused(&message);
    }
}

fn refused(message: &str) {
    super::warn(message);
    report_error("invalid_attribute", message, None, 1);
}

/// A click: the event of the closest `data-pf-event` element and the `clicked` of the
/// closest impression element around its target ("" when there is none), separated by \x1d.
pub(crate) fn clicked(text: &str) {
    let Some(switches) = with_state(|s| s.autocapture.switches) else {
        return;
    };
    let (declared, impression) = cut(text, GROUP).unwrap_or((text, ""));
    if switches.data_attributes && !declared.is_empty() {
        emit(declared);
    }
    if switches.impressions && !impression.is_empty() {
        emit(impression);
    }
}

/// The impression `key`'s visible ratio changed: how long to wait (in ms, as text) before
/// asking [`due`], when it just became visible enough.
pub(crate) fn intersected(ratio: f64, key: &str) -> Option<String> {
    if key.is_empty() {
        return None;
    }
    let now = super::host::now() as i64;
    let wait = with_state(|s| {
        if s.autocapture.exposure(key).is_none() {
            s.autocapture
                .exposures
                .push((key.to_owned(), Exposure::default()));
        }
        s.autocapture.exposure(key)?.update(ratio, now)
    })
    .flatten()?;
    let mut out = String::new();
    push_int(&mut out, wait);
    Some(out)
}

/// True, once, when the impression has been in view long enough: its `viewed` is recorded.
/// `text` is the impression's key and its `viewed` line, separated by \x1d.
pub(crate) fn due(text: &str) -> bool {
    let (key, viewed) = cut(text, GROUP).unwrap_or((text, ""));
    let now = super::host::now() as i64;
    let due = with_state(|s| s.autocapture.exposure(key).is_some_and(|e| e.due(now)));
    if due == Some(true) {
        emit(viewed);
    }
    due == Some(true)
}

/// Whether the impression `key` was already viewed (the page need not watch it any more).
pub(crate) fn seen(key: &str) -> bool {
    key.is_empty()
        || with_state(|s| s.autocapture.exposure(key).is_some_and(|e| e.viewed())) == Some(true)
}
