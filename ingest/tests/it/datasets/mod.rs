//! The acceptance tests of `docs/datasets.md` §6: every expected number of fixtures A and B,
//! checked through `ingest replay` and through the HTTP query API of a real store; the unit
//! cases of §6.3 that need the whole engine and its property tests (in `properties`).

mod expected;
mod properties;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use ingest::AppState;
use ingest::datasets::Params;
use ingest::replay::{Source, replay};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::{CLIENT_KEY, fixture};

pub(super) const NOW: &str = "2025-01-06T12:00:00Z";
pub(super) const NOW_MS: i64 = 1_736_164_800_000;
pub(super) const HOUR: i64 = 3_600_000;
const TOLERANCE: f64 = 1e-6;

use expected::{Check, FIXTURE_A, FIXTURE_B, check};

fn source(name: &str) -> Source {
    Source {
        name: name.into(),
        text: fixture(&format!("datasets/{name}")),
    }
}

/// Replays a fixture with `ingest replay`'s code and answers every check's query.
fn replayed(name: &str, checks: &[Check]) -> Vec<String> {
    let queries: Vec<String> = checks.iter().map(|(q, _)| q.to_string()).collect();
    let out = replay(&[source(name)], NOW_MS, &queries, Params::default(), None).unwrap();
    assert!(out.rejected.is_empty(), "{:?}", out.rejected);
    assert_eq!(out.duplicates, 1, "the last line redelivers an event");
    assert_eq!(out.failed_queries, 0, "{:?}", out.answers);
    out.answers
}

#[test]
fn replay_of_fixture_a_gives_every_expected_number() {
    let answers = replayed("fixture_a.jsonl", FIXTURE_A);
    let mut answers = answers.iter();
    check(
        &mut |_| serde_json::from_str(answers.next().unwrap()).unwrap(),
        FIXTURE_A,
    );
    // The PII query is in no response.
    let all = replayed("fixture_a.jsonl", FIXTURE_A).join("\n");
    assert!(!all.contains("12345678") && !all.contains("my account"));
}

#[test]
fn replay_of_fixture_b_gives_every_expected_number() {
    let answers = replayed("fixture_b.jsonl", FIXTURE_B);
    let mut answers = answers.iter();
    check(
        &mut |_| serde_json::from_str(answers.next().unwrap()).unwrap(),
        FIXTURE_B,
    );
}

#[test]
fn searches_below_k_anonymity_keep_their_figures() {
    // "apple" (1 user) is kept out of every list by min_users; with the threshold at 1 its
    // figures show, read through a datasets.toml like a deployment's.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("datasets.toml");
    std::fs::write(&path, "[consensus]\nmin_users_popular_searches = 1\n").unwrap();
    let params = ingest::load_datasets_params(&path).unwrap();
    let out = replay(
        &[source("fixture_a.jsonl")],
        NOW_MS,
        &["/v1/trending/searches?mode=popular".into()],
        params,
        None,
    )
    .unwrap();
    let body: Value = serde_json::from_str(&out.answers[0]).unwrap();
    let apple = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["query"] == "apple")
        .unwrap_or_else(|| panic!("no apple in {body}"));
    for (field, want) in [
        ("hot_score", 1.0),
        ("popular_score", 1.5),
        ("trend_score", 0.684842),
        ("unique_users_24h", 1.0),
        ("unique_users_7d", 1.0),
    ] {
        let got = apple[field].as_f64().unwrap();
        assert!((got - want).abs() <= TOLERANCE, "apple {field} {got}");
    }
}

#[test]
fn datasets_toml_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("datasets.toml");
    for (text, named) in [
        ("[personal]\nhalf_life_hourz = 3\n", "half_life_hourz"),
        (
            "[personal]\nhalf_life_hours = -1\n",
            "personal.half_life_hours",
        ),
        (
            "[weights]\n\"instrument.zoomed\" = 1.0\n",
            "instrument.zoomed",
        ),
        ("[consensus]\ntop_n = 0\n", "consensus.top_n"),
        ("[consensus]\ndedup_bucket_hours = 1e-9\n", "millisecond"),
    ] {
        std::fs::write(&path, text).unwrap();
        let err = ingest::load_datasets_params(&path).unwrap_err().to_string();
        assert!(err.contains(named), "{text:?} gave {err}");
    }
}

/// Posts a fixture's events to the service in event-time order, as `docs/datasets.md` §6 asks of an HTTP
/// test, then returns a function answering queries with the tenant's secret key.
async fn served(name: &str) -> (crate::Harness, Vec<Value>) {
    let h = crate::Harness::with_state(|state| state.with_datasets(Params::default(), true));
    let mut events: Vec<Value> = fixture(&format!("datasets/{name}"))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    events.sort_by_key(|e| e["created_at"].as_str().unwrap().to_owned());
    for chunk in events.chunks(10) {
        let (status, body) = h.post_json(&json!({ "events": chunk })).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    (h, events)
}

async fn query(h: &crate::Harness, path: &str) -> (StatusCode, Value) {
    let request = Request::get(path)
        .header("authorization", format!("Bearer {}", h.api_key))
        .body(Body::empty())
        .unwrap();
    let response = h.app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn answers_over_http(h: &crate::Harness, checks: &[Check]) -> Vec<Value> {
    let mut bodies = Vec::new();
    for (q, _) in checks {
        let sep = if q.contains('?') { '&' } else { '?' };
        let path = if q.contains("as_of=") {
            q.to_string()
        } else {
            format!("{q}{sep}as_of={NOW}")
        };
        let (status, body) = query(h, &path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        bodies.push(body);
    }
    bodies
}

#[tokio::test]
async fn the_query_api_serves_the_expected_numbers_of_both_fixtures() {
    for (name, checks) in [
        ("fixture_a.jsonl", FIXTURE_A),
        ("fixture_b.jsonl", FIXTURE_B),
    ] {
        let (h, _) = served(name).await;
        let mut bodies = answers_over_http(&h, checks).await.into_iter();
        check(&mut |_| bodies.next().unwrap(), checks);
        if name == "fixture_a.jsonl" {
            // The PII search never reached storage.
            let db = std::fs::read(h.dir.path().join(ingest::store::DB_FILE)).unwrap();
            let wal = std::fs::read(h.dir.path().join(format!("{}-wal", ingest::store::DB_FILE)))
                .unwrap_or_default();
            for bytes in [db, wal] {
                assert!(!bytes.windows(8).any(|w| w == b"12345678"));
            }
        }
    }
}

#[tokio::test]
async fn the_query_api_needs_the_secret_key_and_names_bad_parameters() {
    let (h, _) = served("fixture_b.jsonl").await;
    let request = Request::get("/v1/trending/entities")
        .body(Body::empty())
        .unwrap();
    let response = h.app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let (status, body) = query(&h, "/v1/trending/entities?mode=sideways").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "bad_parameter");
    assert!(
        body["detail"].as_str().unwrap().contains("`mode`"),
        "{body}"
    );
    let (status, body) = query(&h, "/v1/engagement/impressions/imp-404").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "unknown_impression");
    // An unknown user is an empty list, not an error.
    let (status, body) = query(&h, "/v1/users/nobody/preferences/entities").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["items"], json!([]));
}

#[tokio::test]
async fn another_tenant_sees_none_of_the_data() {
    let (h, _) = served("fixture_a.jsonl").await;
    let (_, other_key) = h.store.add_tenant("pk_third", &[]).unwrap();
    let request = Request::get(format!("/v1/trending/entities?mode=popular&as_of={NOW}"))
        .header("authorization", format!("Bearer {other_key}"))
        .body(Body::empty())
        .unwrap();
    let response = h.app.clone().oneshot(request).await.unwrap();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(body["items"], json!([]), "{body}");
}

#[tokio::test]
async fn lists_are_served_from_the_presentation_store_with_an_etag() {
    let h = crate::Harness::new(&[]);
    let now = schema::Timestamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64,
    );
    let events: Vec<Value> = (0..3)
        .map(|i| {
            let mut e = crate::event(&format!("live-{i}"), &format!("user-{i}"));
            e["created_at"] = json!(now);
            e
        })
        .collect();
    let (status, _) = h.post_json(&json!({ "events": events })).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = query(&h, "/v1/trending/entities?mode=popular").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["items"][0]["entity"]["id"], "AAPL", "{body}");
    assert!(crate::count_rows(h.dir.path(), "documents") > 0);
    // Served from the stored document: same ETag, and 304 when the client has it.
    let request = |etag: Option<&str>| {
        let mut r = Request::get("/v1/trending/entities?mode=popular")
            .header("authorization", format!("Bearer {}", h.api_key));
        if let Some(e) = etag {
            r = r.header("if-none-match", e);
        }
        r.body(Body::empty()).unwrap()
    };
    let first = h.app.clone().oneshot(request(None)).await.unwrap();
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    let again = h.app.clone().oneshot(request(Some(&etag))).await.unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    // A list nobody feeds is empty, and asking for it again and again rewrites no document:
    // the materialiser refreshes them in the background.
    let written = || {
        rusqlite::Connection::open(h.dir.path().join(ingest::store::DB_FILE))
            .unwrap()
            .query_row("SELECT max(as_of), count(*) FROM documents", [], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
            })
            .unwrap()
    };
    let before = written();
    for _ in 0..3 {
        let (status, body) = query(&h, "/v1/trending/entities?entity_type=nobody_sends_this").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["items"], json!([]), "{body}");
    }
    assert_eq!(written(), before, "no document rewritten");
}

#[tokio::test]
async fn recommendations_mint_impressions_that_feed_engagement_and_demote_ignored_items() {
    let (h, _) = served("fixture_a.jsonl").await;
    let path = format!("/v1/recommendations?user=u2&limit=3&surface=home&as_of={NOW}");
    let (status, first) = query(&h, &path).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let items = first["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 3, "{first}");
    assert_eq!(
        items[0]["entity"]["id"], "TSLA",
        "u2's strongest preference"
    );
    let ids: Vec<&str> = items
        .iter()
        .map(|i| i["impression_id"].as_str().unwrap())
        .collect();
    assert!(
        ids.iter()
            .all(|id| id.starts_with("imp_") && id.len() == 36)
    );
    // A one-slot widget shows the top pick three times; u2 never clicks it.
    let top = items[0]["entity"]["id"].as_str().unwrap().to_owned();
    let mut n = 0;
    for round in 0..3 {
        let (_, body) = query(&h, &path).await;
        let events: Vec<Value> = body["items"]
            .as_array()
            .unwrap()
            .iter()
            .take(1)
            .map(|item| {
                n += 1;
                json!({
                    "client_key": CLIENT_KEY, "event_id": format!("rec-{round}-{n}"),
                    "created_at": NOW, "event_type": "recommendation", "action": "viewed",
                    "event_meta": item["event_meta"], "related_entities": [item["entity"]],
                    "channel_meta": {"session_id": "u2-s", "client_ref": "u2"}
                })
            })
            .collect();
        let (status, body) = h.post_json(&json!({ "events": events })).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (_, summary) = query(
        &h,
        &format!("/v1/engagement/summary?recommender=personafin_blend&as_of={NOW}"),
    )
    .await;
    assert_eq!(summary["totals"]["impressions"], 3, "{summary}");
    let (_, after) = query(&h, &path).await;
    let position = |body: &Value| {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .position(|i| i["entity"]["id"] == top.as_str())
    };
    assert_ne!(
        position(&after),
        Some(0),
        "shown 3× unclicked, {top} is demoted: {after}"
    );
}

#[tokio::test]
async fn feedback_exports_finalised_impressions_once_with_a_cursor() {
    let (h, _) = served("fixture_b.jsonl").await;
    let (_, page) = query(
        &h,
        &format!("/v1/engagement/feedback?recommender=similar_stocks&as_of={NOW}"),
    )
    .await;
    let records = page["records"].as_array().unwrap();
    // At NOW the click window of imp-1..imp-3 (11:00) and imp-6 (09:00) has closed; imp-4
    // (11:30) and imp-5 (11:31) are still open.
    let ids: Vec<&str> = records
        .iter()
        .map(|r| r["impression_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["imp-6", "imp-1", "imp-2", "imp-3"], "{page}");
    assert_eq!(records[1]["clicked"], true);
    assert_eq!(records[1]["converted"], true);
    let cursor = page["next_cursor"].as_str().unwrap();
    let later = "2025-01-06T13:00:00Z";
    let (_, next) = query(
        &h,
        &format!(
            "/v1/engagement/feedback?recommender=similar_stocks&cursor={cursor}&as_of={later}"
        ),
    )
    .await;
    let ids: Vec<&str> = next["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["impression_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["imp-4", "imp-5"], "{next}");
}

#[tokio::test]
async fn feedback_is_exported_once_across_a_restart() {
    let (h, _) = served("fixture_b.jsonl").await;
    let path = format!("/v1/engagement/feedback?as_of={NOW}&limit=1000");
    let records = |page: Value| page["records"].as_array().unwrap().len();
    let exported = records(query(&h, &path).await.1);
    assert!(exported >= 4, "{exported}");
    // A restart: a fresh state over the same store rebuilds the engines from the log and
    // finalises the same impressions again; none of them is exported twice.
    let keyring = Arc::new(ingest::Keyring::from_secret(vec![7; 32]));
    let app =
        ingest::app(AppState::new(h.store.clone(), keyring).with_datasets(Params::default(), true));
    let h2 = crate::Harness { app, ..h };
    assert_eq!(records(query(&h2, &path).await.1), exported);
}

#[tokio::test]
async fn datasets_survive_a_restart_and_erasure_removes_the_user() {
    let (h, _) = served("fixture_a.jsonl").await;
    // A fresh state over the same store rebuilds the engines from the event log.
    let keyring = Arc::new(ingest::Keyring::from_secret(vec![7; 32]));
    let store = h.store.clone();
    let app = ingest::app(AppState::new(store, keyring).with_datasets(Params::default(), true));
    let h2 = crate::Harness { app, ..h };
    let path = format!("/v1/users/u1/preferences/entities?as_of={NOW}");
    let (_, body) = query(&h2, &path).await;
    assert_eq!(body["items"][0]["score"], 9.0, "{body}");
    let request = Request::delete("/v1/users/u1")
        .header("authorization", format!("Bearer {}", h2.api_key))
        .body(Body::empty())
        .unwrap();
    let response = h2.app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (_, body) = query(&h2, &path).await;
    assert_eq!(body["items"], json!([]), "{body}");
}
