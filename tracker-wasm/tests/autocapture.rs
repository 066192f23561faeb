//! What the tracker records by itself, in real browsers against a real ingest: page views on
//! SPA route changes, `data-pf-*` clicks, and impressions seen by scrolling. The page's
//! `fetch` is wrapped to read exactly what was sent.
#![cfg(target_arch = "wasm32")]

mod support;

use personafin_tracker::{page, queued_events};
use serde_json::Value;
use support::*;
use wasm_bindgen::JsValue;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// Wraps `window.fetch` (once) so `sent_events()` can read every batch body.
fn capture_sends() {
    js(
        "if (!window.pfSent) { window.pfSent = []; const f = window.fetch; \
        window.fetch = (url, init) => { window.pfSent.push(init.body); return f(url, init); }; }",
    );
    js("window.pfSent.length = 0");
}

/// Every event sent since `capture_sends()`, parsed.
fn sent_events() -> Vec<Value> {
    let bodies = js_sys::Array::from(&js("window.pfSent"));
    bodies
        .iter()
        .flat_map(|b| {
            let batch: Value = serde_json::from_str(&b.as_string().unwrap()).unwrap();
            batch["events"].as_array().unwrap().clone()
        })
        .collect()
}

fn name(e: &Value) -> String {
    format!(
        "{}.{}",
        e["event_type"].as_str().unwrap(),
        e["action"].as_str().unwrap()
    )
}

fn switches(page_views: bool, data_attributes: bool, impressions: bool) -> JsValue {
    obj(&[
        ("pageViews", page_views.into()),
        ("dataAttributes", data_attributes.into()),
        ("impressions", impressions.into()),
    ])
}

#[wasm_bindgen_test]
async fn spa_route_changes_are_one_page_view_each() {
    capture_sends();
    let original = js("location.pathname + location.search")
        .as_string()
        .unwrap();
    start(&[("autocapture", switches(true, false, false))]);
    assert_eq!(queued_events(), 1, "the page load");
    let base = format!("/spa-{}", run());
    js(&format!("history.pushState({{}}, '', '{base}/a')"));
    assert_eq!(queued_events(), 2, "pushState");
    js(&format!("history.replaceState({{}}, '', '{base}/a')"));
    assert_eq!(
        queued_events(),
        2,
        "replaceState to the same URL is no new page"
    );
    js(&format!("history.pushState({{}}, '', '{base}/a#news')"));
    assert_eq!(queued_events(), 3);
    js("history.back()");
    wait_until("popstate", 5_000.0, || queued_events() == 4).await;
    // One hash change fires popstate, then hashchange. A listener of the test's own, added
    // after the tracker's, hears hashchange after the tracker has heard both.
    let both_heard =
        js("new Promise((heard) => addEventListener('hashchange', heard, { once: true }))");
    js("location.hash = 'chart'");
    settled(both_heard).await;
    assert_eq!(
        queued_events(),
        5,
        "popstate and hashchange of one change count once"
    );
    page();
    assert_eq!(queued_events(), 6, "page() records even the same URL");
    assert_eq!(flush_counts().await, (6, 0, 0));
    let events = sent_events();
    let paths: Vec<&str> = events
        .iter()
        .map(|e| e["event_meta"]["path"].as_str().unwrap())
        .collect();
    let a = format!("{base}/a");
    assert_eq!(paths[1..], [a.as_str(), &a, &a, &a, &a]);
    let urls: Vec<&str> = events
        .iter()
        .map(|e| e["event_meta"]["url"].as_str().unwrap())
        .collect();
    assert!(
        urls[2].ends_with("/a#news") && urls[4].ends_with("/a#chart"),
        "{urls:?}"
    );
    assert_eq!(
        events[2]["event_meta"]["referrer"].as_str(),
        Some(urls[1]),
        "the SPA's referrer"
    );
    assert!(events.iter().all(|e| name(e) == "page.viewed"));
    start(&[]);
    js(&format!("history.replaceState({{}}, '', '{original}')"));
}

#[wasm_bindgen_test]
async fn data_attributes_record_clicks_and_carry_the_impression_into_a_conversion() {
    capture_sends();
    let run = run();
    js(&format!(
        "document.body.insertAdjacentHTML('beforeend', `
          <div id='pf-card' data-pf-impression-id='imp-{run}-1' data-pf-position='2'
               data-pf-recommender='similar_stocks' data-pf-request-id='req-{run}'
               data-pf-entities='ticker:MSFT' data-pf-meta-run='{run}'>
            <button id='pf-add' data-pf-event='watchlist.added' data-pf-entities='ticker:MSFT'
                    data-pf-meta-run='{run}' data-pf-meta-list-name='main'>Add</button>
          </div>
          <button id='pf-bad' data-pf-event='nodot'>Bad</button>`)"
    ));
    let on_error = recorder("attributeErrors");
    start(&[
        ("autocapture", switches(false, true, true)),
        ("onError", on_error),
    ]);
    js("document.getElementById('pf-add').click()");
    js("document.getElementById('pf-bad').click()");
    assert_eq!(queued_events(), 2);
    let codes = js("window.attributeErrors.map((e) => e.code).join()")
        .as_string()
        .unwrap();
    assert_eq!(codes, "invalid_attribute");
    assert_eq!(flush_counts().await, (2, 0, 0));
    let events = sent_events();
    assert_eq!(name(&events[0]), "watchlist.added");
    let imp = format!("imp-{run}-1");
    assert_eq!(
        events[0]["event_meta"]["impression_id"].as_str(),
        Some(imp.as_str()),
        "conversion carries the impression"
    );
    assert_eq!(events[0]["event_meta"]["list_name"], "main");
    assert_eq!(events[0]["related_entities"][0]["id"], "MSFT");
    assert_eq!(name(&events[1]), "recommendation.clicked");
    let meta = &events[1]["event_meta"];
    assert_eq!(meta["position"], 2, "a number");
    assert_eq!(meta["recommender"], "similar_stocks");
    assert_eq!(meta["run"].as_str(), Some(run));
    start(&[]);
    js("document.getElementById('pf-card').remove(); document.getElementById('pf-bad').remove()");
}

#[wasm_bindgen_test]
async fn impressions_are_viewed_once_after_a_second_in_view_even_when_added_later() {
    capture_sends();
    let run = run();
    js("window.scrollTo(0, 0)");
    js(&format!(
        "document.body.insertAdjacentHTML('beforeend', `
          <div id='pf-spacer' style='height: 4000px'></div>
          <div id='pf-below' style='height: 120px' data-pf-impression-id='imp-{run}-below'
               data-pf-position='3' data-pf-meta-run='{run}'>Below the fold</div>
          <div style='height: 4000px'></div>`)"
    ));
    start(&[("autocapture", switches(false, false, true))]);
    sleep(1_300).await;
    assert_eq!(queued_events(), 0, "out of view: not an impression");
    js("document.getElementById('pf-below').scrollIntoView()");
    let scrolled = js_sys::Date::now();
    wait_until("the impression", 5_000.0, || queued_events() == 1).await;
    let waited = js_sys::Date::now() - scrolled;
    assert!(waited >= 1_000.0, "viewed after {waited} ms in view");
    js("window.scrollTo(0, 0)");
    sleep(100).await;
    js("document.getElementById('pf-below').scrollIntoView()");
    sleep(1_300).await;
    assert_eq!(queued_events(), 1, "viewed once only");

    js(&format!(
        "const el = document.createElement('div'); el.id = 'pf-late'; el.textContent = 'News';
         el.dataset.pfFxcid = 'fx-{run}'; el.dataset.pfContentId = 'c-{run}'; el.dataset.pfMetaRun = '{run}';
         document.getElementById('pf-below').after(el)"
    ));
    wait_until("the impression of an element added later", 5_000.0, || {
        queued_events() == 2
    })
    .await;
    assert_eq!(flush_counts().await, (2, 0, 0));
    let events = sent_events();
    assert_eq!(name(&events[0]), "recommendation.viewed");
    assert_eq!(events[0]["event_meta"]["position"], 3);
    assert_eq!(name(&events[1]), "content.viewed");
    let fx = format!("fx-{run}");
    assert_eq!(events[1]["event_meta"]["fxcid"].as_str(), Some(fx.as_str()));
    start(&[]);
    js(
        "['pf-spacer', 'pf-below', 'pf-late'].forEach((id) => document.getElementById(id).remove())",
    );
    js("window.scrollTo(0, 0)");
}
