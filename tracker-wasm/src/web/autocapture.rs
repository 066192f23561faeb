//! What the tracker records by itself: page views (load and SPA route changes), clicks on
//! `data-pf-event` elements, and impressions (`data-pf-impression-id` / `data-pf-fxcid`:
//! `viewed` after a second at half visible, `clicked` on click). `host.js` listens, observes
//! and times the views, and sends each event as the `track()` call the page or the element's
//! `data-pf-*` attributes make; this decides which are recorded (the `autocapture` switches)
//! and records them like the page's own calls.

use super::host::{self, GROUP};
use super::{record_line, report_error, with_state};
use crate::core::{self, cut};

/// Records `page.viewed` for the page now: on `init()` and route changes when page views are
/// captured automatically (`host.js` skips a URL that was the last page viewed), and always
/// when `forced` by the page's own `page()` call.
pub(crate) fn page_view(forced: bool) {
    let Some(automatic) = with_state(|s| s.autocapture.page_views) else {
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
    if let Err(core::TrackError::Invalid(message)) = record_line(line) {
        super::warn(&message);
        report_error("invalid_attribute", &message, None, 1);
    }
}

/// Elements' events, separated by \x1d: a click's on the closest `data-pf-event` element, and
/// the impression's (`clicked`, or `viewed` when it has been seen), "" for none.
pub(crate) fn element(text: &str) {
    let Some(switches) = with_state(|s| s.autocapture) else {
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
