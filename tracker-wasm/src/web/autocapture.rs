//! What the tracker records by itself: page views (load and SPA route changes), clicks on
//! `data-pf-event` elements, and impressions (`data-pf-impression-id` / `data-pf-fxcid`:
//! `viewed` after a second at half visible, `clicked` on click). `host.js` listens and
//! observes, and sends elements as their `data-pf-*` attributes; the events are built by
//! `core::autocapture`.

use super::host::{FIELD, GROUP, RECORD, fields};
use super::{record, report_error, with_state};
use crate::core::autocapture::{
    Captured, Exposure, PageViews, declared_event, impression_event, impression_key,
};
use crate::core::{self, Meta, cut, pieces, push_int};

/// Autocapture's part of the tracker state.
pub(crate) struct Autocapture {
    switches: core::Autocapture,
    pages: PageViews,
    /// What each impression has shown so far, by its key (a page shows tens of them, so a
    /// list is as quick as a map, and smaller in wasm).
    exposures: Vec<(String, Exposure)>,
}

impl Autocapture {
    pub(crate) fn new(switches: core::Autocapture) -> Autocapture {
        Autocapture {
            switches,
            pages: PageViews::default(),
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

/// `name\x1fvalue\x1e…` as `host.js` sends an element.
fn attributes(text: &str) -> Vec<(&str, &str)> {
    pieces(text, RECORD).filter_map(|a| cut(a, FIELD)).collect()
}

/// Records `page.viewed` when the URL changed since the last one (or always, when `forced`
/// by the page's own `page()` call, or when page views are not captured automatically).
/// `location` is `href\x1fpath\x1ftitle\x1freferrer`.
pub(crate) fn page_view(forced: bool, location: &str) {
    let [href, path, title, referrer] = fields(location);
    let change = with_state(|s| {
        if !forced && !s.autocapture.switches.page_views {
            return None;
        }
        match s.autocapture.pages.changed(href) {
            Some(previous) => Some(previous),
            None if forced => Some(None),
            None => None,
        }
    })
    .flatten();
    let Some(previous) = change else {
        return;
    };
    let referrer = previous.as_deref().unwrap_or(referrer);
    let mut meta = Meta::default();
    meta.str("url", href);
    meta.str("path", path);
    if !title.is_empty() {
        meta.str("title", title);
    }
    if !referrer.is_empty() {
        meta.str("referrer", referrer);
    }
    emit(Ok(Captured {
        event_type: "page".into(),
        action: "viewed".into(),
        meta_json: meta.finish(),
        entities: Vec::new(),
    }));
}

fn emit(captured: Result<Captured, String>) {
    let result = captured.and_then(|c| match record(&c.input()) {
        Err(core::TrackError::Invalid(message)) => Err(message),
        _ => Ok(()),
    });
    if let Err(message) = result {
        super::warn(&message);
        report_error("invalid_attribute", &message, None, 1);
    }
}

/// A click: the closest `data-pf-event` element and the closest impression element around
/// its target, each as attributes ("" when there is none), separated by \x1d.
pub(crate) fn clicked(text: &str) {
    let Some(switches) = with_state(|s| s.autocapture.switches) else {
        return;
    };
    let (declared, impression) = cut(text, GROUP).unwrap_or((text, ""));
    let (declared, impression) = (attributes(declared), attributes(impression));
    if switches.data_attributes && !declared.is_empty() {
        emit(declared_event(&declared, &impression));
    }
    if switches.impressions && !impression.is_empty() {
        emit(impression_event(&impression, "clicked"));
    }
}

/// An impression's visible ratio changed: how long to wait (in ms, as text) before asking
/// [`due`], when it just became visible enough.
pub(crate) fn intersected(ratio: f64, text: &str) -> Option<String> {
    let attrs = attributes(text);
    let key = impression_key(&attrs)?;
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
pub(crate) fn due(text: &str) -> bool {
    let attrs = attributes(text);
    let Some(key) = impression_key(&attrs) else {
        return false;
    };
    let now = super::host::now() as i64;
    let due = with_state(|s| s.autocapture.exposure(key).is_some_and(|e| e.due(now)));
    if due == Some(true) {
        emit(impression_event(&attrs, "viewed"));
    }
    due == Some(true)
}

/// Whether this impression was already viewed (the page need not watch it any more).
pub(crate) fn seen(text: &str) -> bool {
    let attrs = attributes(text);
    let Some(key) = impression_key(&attrs) else {
        return true;
    };
    with_state(|s| s.autocapture.exposure(key).is_some_and(|e| e.viewed())) == Some(true)
}
