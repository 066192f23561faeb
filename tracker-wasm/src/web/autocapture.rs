//! What the tracker records by itself: page views (load and SPA route changes), clicks on
//! `data-pf-event` elements, and impressions (`data-pf-impression-id` / `data-pf-fxcid`:
//! `viewed` after a second at half visible, `clicked` on click). Also the page lifecycle
//! listeners delivery needs: `pagehide`, `visibilitychange`, `online`.
//!
//! Listeners are installed once per page and look up the current state each time, so a
//! second `init()` never doubles them.

use std::cell::Cell;
use std::collections::BTreeMap;

use js_sys::{Array, Function, Reflect};
use wasm_bindgen::prelude::*;
use web_sys::{
    Element, IntersectionObserver, IntersectionObserverEntry, IntersectionObserverInit,
    MutationObserver, MutationObserverInit, MutationRecord,
};

use super::{State, record, report_error, wake, with_state};
use crate::core::autocapture::{
    Exposure, IMPRESSION_ATTRIBUTES, PageViews, impression_type, meta_key, parse_entities,
    split_event_name,
};
use crate::core::{self, EntityRef, EventInput, Meta};

const IMPRESSION_SELECTOR: &str = "[data-pf-impression-id],[data-pf-fxcid]";

/// Autocapture's part of the tracker state.
pub(crate) struct Autocapture {
    switches: core::Autocapture,
    pages: PageViews,
    impressions: Option<Impressions>,
}

/// The observers behind impression tracking, and what each impression has shown so far.
struct Impressions {
    intersection: IntersectionObserver,
    mutations: MutationObserver,
    exposures: BTreeMap<String, Exposure>,
    _callbacks: (
        ObserverCallback<IntersectionObserver>,
        ObserverCallback<MutationObserver>,
    ),
}

/// What an observer calls with its entries (or records) and itself; kept alive with it.
type ObserverCallback<O> = Closure<dyn FnMut(Array, O)>;

impl Autocapture {
    pub(crate) fn new(switches: core::Autocapture) -> Autocapture {
        Autocapture {
            switches,
            pages: PageViews::default(),
            impressions: None,
        }
    }

    /// Disconnects the observers (a new `init()` replaces this one).
    pub(crate) fn stop(&mut self) {
        if let Some(i) = self.impressions.take() {
            i.intersection.disconnect();
            i.mutations.disconnect();
        }
    }
}

thread_local! {
    static INSTALLED: Cell<bool> = const { Cell::new(false) };
}

fn window() -> Option<web_sys::Window> {
    web_sys::window()
}

fn document() -> Option<web_sys::Document> {
    window()?.document()
}

fn listen(
    target: &web_sys::EventTarget,
    event: &str,
    capture: bool,
    f: impl FnMut(web_sys::Event) + 'static,
) {
    let closure = Closure::<dyn FnMut(web_sys::Event)>::new(f);
    let _ = target.add_event_listener_with_callback_and_bool(
        event,
        closure.as_ref().unchecked_ref(),
        capture,
    );
    // Lives as long as the page: the listeners are installed once.
    closure.forget();
}

/// Installs the page-wide listeners, once.
pub(crate) fn install_listeners() {
    if INSTALLED.with(|i| i.replace(true)) {
        return;
    }
    let (Some(window), Some(doc)) = (window(), document()) else {
        return;
    };
    listen(&window, "pagehide", false, |_| super::send_beacons());
    listen(&doc, "visibilitychange", false, |_| {
        let hidden = document().is_some_and(|d| d.hidden());
        if hidden {
            super::send_beacons();
        }
        with_state(|s| visibility_changed(s, hidden));
    });
    listen(&window, "online", false, |_| wake());
    listen(&window, "message", false, |event| {
        if let Ok(event) = event.dyn_into::<web_sys::MessageEvent>() {
            super::bridge::received(&event);
        }
    });
    listen(&window, "storage", false, |event| {
        let key = js_sys::Reflect::get(&event, &"key".into()).ok();
        if let Some(key) = key.and_then(|k| k.as_string()) {
            super::storage_changed(&key);
        }
    });
    listen(&window, "popstate", false, |_| page_view(false));
    listen(&window, "hashchange", false, |_| page_view(false));
    listen(&doc, "click", true, |event| {
        if let Some(target) = event.target().and_then(|t| t.dyn_into::<Element>().ok()) {
            clicked(&target);
        }
    });
    hook_history(&window);
}

/// Wraps `history.pushState` and `replaceState` so SPA route changes are page views.
fn hook_history(window: &web_sys::Window) {
    let Ok(history) = window.history() else {
        return;
    };
    let history: JsValue = history.into();
    for name in ["pushState", "replaceState"] {
        let Ok(original) =
            Reflect::get(&history, &name.into()).and_then(|f| f.dyn_into::<Function>())
        else {
            continue;
        };
        let this = history.clone();
        let wrapper =
            Closure::<dyn FnMut(JsValue, JsValue, JsValue) -> Result<JsValue, JsValue>>::new(
                move |state, unused, url| {
                    let result = original.call3(&this, &state, &unused, &url);
                    page_view(false);
                    result
                },
            );
        let _ = Reflect::set(&history, &name.into(), wrapper.as_ref());
        wrapper.forget();
    }
}

/// After `init()`: the first page view, and the impression observers.
pub(crate) fn start() {
    page_view(false);
    let enabled = with_state(|s| s.autocapture.switches.impressions).unwrap_or(false);
    if enabled {
        if let Some(impressions) = observe_impressions() {
            with_state(|s| s.autocapture.impressions = Some(impressions));
        }
    }
}

/// Records `page.viewed` when the URL changed since the last one (or always, when `forced`
/// by the page's own `page()` call, or when page views are not captured automatically).
pub(crate) fn page_view(forced: bool) {
    let Some(location) = window().map(|w| w.location()) else {
        return;
    };
    let Ok(href) = location.href() else {
        return;
    };
    let change = with_state(|s| {
        if !forced && !s.autocapture.switches.page_views {
            return None;
        }
        match s.autocapture.pages.changed(&href) {
            Some(previous) => Some(previous),
            None if forced => Some(None),
            None => None,
        }
    })
    .flatten();
    let Some(previous) = change else {
        return;
    };
    let document = document();
    let referrer = previous.or_else(|| document.as_ref().map(|d| d.referrer()));
    let mut meta = Meta::default();
    meta.str("url", &href);
    if let Ok(path) = location.pathname() {
        meta.str("path", &path);
    }
    if let Some(title) = document.map(|d| d.title()).filter(|t| !t.is_empty()) {
        meta.str("title", &title);
    }
    if let Some(referrer) = referrer.filter(|r| !r.is_empty()) {
        meta.str("referrer", &referrer);
    }
    emit("page", "viewed", &meta, &[]);
}

fn emit(event_type: &str, action: &str, meta: &Meta, entities: &[EntityRef]) {
    let meta_json = meta.finish();
    let input = EventInput {
        event_type,
        action,
        meta_json: Some(&meta_json),
        entities,
        timestamp: None,
    };
    if let Err(core::TrackError::Invalid(message)) = record(&input) {
        attribute_error(&message);
    }
}

fn attribute_error(message: &str) {
    super::warn(message);
    report_error("invalid_attribute", message, None, 1);
}

/// A click somewhere on the page: a `data-pf-event` element records its event, and an
/// impression element its `clicked`.
fn clicked(target: &Element) {
    let Some(switches) = with_state(|s| s.autocapture.switches) else {
        return;
    };
    let impression = target.closest(IMPRESSION_SELECTOR).ok().flatten();
    if switches.data_attributes {
        if let Some(el) = target.closest("[data-pf-event]").ok().flatten() {
            declared_event(&el, impression.as_ref());
        }
    }
    if switches.impressions {
        if let Some(el) = impression {
            impression_event(&el, "clicked");
        }
    }
}

/// `data-pf-event="type.action"` with `data-pf-entities` and `data-pf-meta-*`; inside an
/// impression element it carries that impression's id, so a conversion is attributed.
fn declared_event(el: &Element, impression: Option<&Element>) {
    let name = el.get_attribute("data-pf-event").unwrap_or_default();
    let (event_type, action) = match split_event_name(&name) {
        Ok(pair) => pair,
        Err(message) => return attribute_error(&message),
    };
    let entities = match entities_of(el) {
        Ok(e) => e,
        Err(message) => return attribute_error(&message),
    };
    let mut meta = Meta::default();
    if let Some(imp) = impression {
        for (attribute, key) in &IMPRESSION_ATTRIBUTES[..2] {
            if let Some(v) = imp.get_attribute(attribute) {
                meta.str(key, &v);
            }
        }
    }
    declared_meta(el, &mut meta);
    emit(event_type, action, &meta, &entities);
}

fn entities_of(el: &Element) -> Result<Vec<EntityRef>, String> {
    el.get_attribute("data-pf-entities")
        .map_or(Ok(Vec::new()), |list| parse_entities(&list))
}

/// Adds `data-pf-meta-*` attributes, as strings, under keys not already set.
fn declared_meta(el: &Element, meta: &mut Meta) {
    for name in el.get_attribute_names().iter() {
        let Some(name) = name.as_string() else {
            continue;
        };
        if let Some(key) = meta_key(&name) {
            if !meta.has(&key) {
                meta.str(&key, &el.get_attribute(&name).unwrap_or_default());
            }
        }
    }
}

/// `recommendation.viewed` / `clicked` (or `content.*` for an `fxcid`, or `data-pf-type`).
fn impression_event(el: &Element, action: &str) {
    let entities = match entities_of(el) {
        Ok(e) => e,
        Err(message) => return attribute_error(&message),
    };
    let mut meta = Meta::default();
    for (attribute, key) in IMPRESSION_ATTRIBUTES {
        if let Some(v) = el.get_attribute(attribute) {
            meta.str(key, &v);
        }
    }
    if let Some(position) = el.get_attribute("data-pf-position") {
        match position.trim().parse::<i64>() {
            Ok(p) => {
                meta.int("position", p);
            }
            Err(_) => {
                return attribute_error(
                    &[
                        "data-pf-position=\"",
                        &position,
                        "\" must be a whole number",
                    ]
                    .concat(),
                );
            }
        }
    }
    declared_meta(el, &mut meta);
    let explicit = el.get_attribute("data-pf-type");
    let event_type = impression_type(explicit.as_deref(), el.has_attribute("data-pf-fxcid"));
    emit(event_type, action, &meta, &entities);
}

fn impression_key(el: &Element) -> Option<String> {
    el.get_attribute("data-pf-impression-id")
        .or_else(|| el.get_attribute("data-pf-fxcid"))
}

/// Watches every impression element on the page, and those added (or given an impression id)
/// later.
fn observe_impressions() -> Option<Impressions> {
    let document = document()?;
    let on_intersection =
        Closure::<dyn FnMut(Array, IntersectionObserver)>::new(|entries: Array, _| {
            for entry in entries.iter() {
                if let Ok(entry) = entry.dyn_into::<IntersectionObserverEntry>() {
                    intersection_changed(&entry.target(), entry.intersection_ratio());
                }
            }
        });
    let options = IntersectionObserverInit::new();
    let thresholds = Array::of2(&0.0.into(), &crate::core::autocapture::VIEW_RATIO.into());
    options.set_threshold(&thresholds);
    let intersection =
        IntersectionObserver::new_with_options(on_intersection.as_ref().unchecked_ref(), &options)
            .ok()?;
    let observer = intersection.clone();
    let on_mutation =
        Closure::<dyn FnMut(Array, MutationObserver)>::new(move |records: Array, _| {
            for r in records.iter() {
                let Ok(r) = r.dyn_into::<MutationRecord>() else {
                    continue;
                };
                if r.type_() == "attributes" {
                    if let Some(el) = r.target().and_then(|t| t.dyn_into::<Element>().ok()) {
                        // A reused element with a new impression id is a new impression.
                        observer.unobserve(&el);
                        observe_within(&observer, &el);
                    }
                    continue;
                }
                let added = r.added_nodes();
                for i in 0..added.length() {
                    if let Some(el) = added.item(i).and_then(|n| n.dyn_into::<Element>().ok()) {
                        observe_within(&observer, &el);
                    }
                }
            }
        });
    let mutations = MutationObserver::new(on_mutation.as_ref().unchecked_ref()).ok()?;
    let init = MutationObserverInit::new();
    init.set_child_list(true);
    init.set_subtree(true);
    init.set_attribute_filter(&Array::of2(
        &"data-pf-impression-id".into(),
        &"data-pf-fxcid".into(),
    ));
    let _ = mutations.observe_with_options(&document, &init);
    observe_all(&intersection);
    Some(Impressions {
        intersection,
        mutations,
        exposures: BTreeMap::new(),
        _callbacks: (on_intersection, on_mutation),
    })
}

fn observe_all(observer: &IntersectionObserver) {
    if let Some(root) = document().and_then(|d| d.document_element()) {
        observe_within(observer, &root);
    }
}

/// Observes `el` if it is an impression, and the impressions inside it.
fn observe_within(observer: &IntersectionObserver, el: &Element) {
    if el.matches(IMPRESSION_SELECTOR).unwrap_or(false) {
        observer.observe(el);
    }
    if let Ok(found) = el.query_selector_all(IMPRESSION_SELECTOR) {
        for i in 0..found.length() {
            if let Some(child) = found.item(i).and_then(|n| n.dyn_into::<Element>().ok()) {
                observer.observe(&child);
            }
        }
    }
}

fn intersection_changed(el: &Element, ratio: f64) {
    let Some(key) = impression_key(el) else {
        return;
    };
    let now = js_sys::Date::now() as i64;
    let hidden = document().is_some_and(|d| d.hidden());
    let wait = with_state(|s| {
        let impressions = s.autocapture.impressions.as_mut()?;
        let exposure = impressions.exposures.entry(key.clone()).or_default();
        if hidden {
            return None;
        }
        exposure.update(ratio, now)
    })
    .flatten();
    let (Some(wait), Some(window)) = (wait, window()) else {
        return;
    };
    let el = el.clone();
    let generation = super::current_generation();
    let check = Closure::once_into_js(move || {
        if super::current_generation() != generation {
            return;
        }
        let now = js_sys::Date::now() as i64;
        let due = with_state(|s| {
            let impressions = s.autocapture.impressions.as_mut()?;
            let due = impressions.exposures.get_mut(&key)?.due(now);
            if due {
                impressions.intersection.unobserve(&el);
            }
            Some(due)
        })
        .flatten();
        if due == Some(true) {
            impression_event(&el, "viewed");
        }
    });
    let _ = window
        .set_timeout_with_callback_and_timeout_and_arguments_0(check.unchecked_ref(), wait as i32);
}

/// Hidden pages show nothing: visible time restarts when the page comes back, and the
/// observers are asked afresh what is on screen.
fn visibility_changed(s: &mut State, hidden: bool) {
    let Some(impressions) = s.autocapture.impressions.as_mut() else {
        return;
    };
    if hidden {
        impressions
            .exposures
            .values_mut()
            .for_each(Exposure::hidden);
        return;
    }
    let observer = impressions.intersection.clone();
    let viewed: Vec<String> = impressions
        .exposures
        .iter()
        .filter(|(_, e)| e.viewed())
        .map(|(k, _)| k.clone())
        .collect();
    let Some(found) = document().and_then(|d| d.query_selector_all(IMPRESSION_SELECTOR).ok())
    else {
        return;
    };
    for i in 0..found.length() {
        let Some(el) = found.item(i).and_then(|n| n.dyn_into::<Element>().ok()) else {
            continue;
        };
        if impression_key(&el).is_some_and(|k| !viewed.contains(&k)) {
            observer.unobserve(&el);
            observer.observe(&el);
        }
    }
}
