use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::json;
use tower::ServiceExt;

use crate::{Harness, event};

fn limits() -> ingest::Limits {
    ingest::Limits::default()
}

/// A request whose body never finishes arriving, as from a stalled or malicious client.
fn stalled_post() -> Request<Body> {
    let stream = futures_util::stream::pending::<Result<Vec<u8>, std::io::Error>>();
    Request::post("/v1/events")
        .body(Body::from_stream(stream))
        .unwrap()
}

async fn get(h: &Harness, path: &str) -> (StatusCode, String) {
    let response = h
        .app
        .clone()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    (
        status,
        String::from_utf8(
            response
                .into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .to_vec(),
        )
        .unwrap(),
    )
}

#[tokio::test]
async fn over_the_rate_limit_is_429_with_retry_after() {
    let h = Harness::with_limits(
        &[],
        ingest::Limits {
            events: ingest::Rate {
                per_second: 0.5,
                burst: 3.0,
            },
            ..limits()
        },
    );
    let batch =
        |ids: &[&str]| json!({ "events": ids.iter().map(|id| event(id, "u")).collect::<Vec<_>>() });
    let (status, _) = h.post_json(&batch(&["r1", "r2", "r3"])).await;
    assert_eq!(status, StatusCode::OK);
    let request = Request::post("/v1/events")
        .body(Body::from(batch(&["r4", "r5"]).to_string()))
        .unwrap();
    let response = h.app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=4).contains(&wait), "retry after {wait} s");
    assert_eq!(h.count("events"), 3, "the limited batch was not stored");
    let (_, metrics) = get(&h, "/metrics").await;
    assert!(
        metrics.contains("ingest_rate_limited_total 1\n"),
        "{metrics}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_stalled_upload_times_out_with_408() {
    let h = Harness::with_limits(
        &[],
        ingest::Limits {
            request_timeout: Duration::from_secs(2),
            ..limits()
        },
    );
    let response = h.app.clone().oneshot(stalled_post()).await.unwrap();
    assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
    let body: serde_json::Value =
        serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["error"], "request_timeout");
}

#[tokio::test]
async fn beyond_the_concurrency_limit_is_503_at_once() {
    let h = Harness::with_limits(
        &[],
        ingest::Limits {
            max_concurrent_requests: 1,
            ..limits()
        },
    );
    let holder = tokio::spawn(h.app.clone().oneshot(stalled_post()));
    // Poll, with a deadline, until the stalled request holds the only slot.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = get(&h, "/healthz").await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            assert!(body.contains("overloaded"), "{body}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the limit never applied"
        );
        tokio::task::yield_now().await;
    }
    holder.abort();
}

#[tokio::test]
async fn a_store_that_cannot_commit_gets_503_and_not_ready() {
    let h = Harness::new(&[]);
    assert_eq!(get(&h, "/readyz").await, (StatusCode::OK, "ready\n".into()));
    h.store.close();
    let request = Request::post("/v1/events")
        .body(Body::from(
            json!({ "events": [event("x", "u")] }).to_string(),
        ))
        .unwrap();
    let response = h.app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "1");
    assert_eq!(
        get(&h, "/readyz").await,
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n".into()),
        "the cause goes to the log, not into the answer"
    );
}

#[tokio::test]
async fn metrics_count_what_happened() {
    let h = Harness::new(&[]);
    let mut bad = event("m3", "u");
    bad["event_type"] = json!("Bad");
    h.post_json(&json!({ "events": [event("m1", "u"), event("m2", "u"), event("m1", "u"), bad] }))
        .await;
    h.post(b"{".to_vec(), Some("application/json"), None).await;
    // The datasets apply commits on a thread of their own: wait until they have.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut earlier_polls = 0;
    let text = loop {
        let (status, text) = get(&h, "/metrics").await;
        earlier_polls += 1;
        assert_eq!(status, StatusCode::OK);
        if text.contains("datasets_feed_lag_commits 0\n") {
            earlier_polls -= 1;
            break text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the datasets never caught up:\n{text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    for line in [
        "ingest_events_accepted_total 2\n",
        "ingest_events_duplicate_total 1\n",
        "ingest_events_rejected_total{error=\"not_snake_case\"} 1\n",
        // The POST, and the polls of /metrics before this one.
        format!(
            "ingest_http_responses_total{{status=\"200\"}} {}\n",
            1 + earlier_polls
        )
        .as_str(),
        "ingest_http_responses_total{status=\"400\"} 1\n",
        // Only the newly stored events reach the datasets.
        "datasets_events_applied_total 2\n",
        "datasets_events_duplicate_total 0\n",
        "datasets_late_dropped_total{dataset=\"consensus\"} 0\n",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
}

#[tokio::test]
async fn the_openapi_document_describes_every_route_and_only_those() {
    let h = Harness::new(&[]);
    let (status, text) = get(&h, "/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.push(format!("{} {path}", method.to_uppercase()));
        }
    }
    documented.sort();
    let mut routed = vec![
        "DELETE /v1/users/{client_ref}",
        "DELETE /v1/users",
        "GET /v1/preferences/entities",
        "GET /dashboard",
        "GET /v1/engagement/click-positions",
        "GET /v1/engagement/daily",
        "GET /v1/engagement/feedback",
        "GET /v1/engagement/impressions/{impression_id}",
        "GET /v1/engagement/items",
        "GET /v1/engagement/summary",
        "GET /v1/recommendations",
        "GET /v1/trending/content",
        "GET /v1/trending/entities",
        "GET /v1/trending/searches",
        "GET /v1/users/{client_ref}/preferences/entities",
        "GET /healthz",
        "GET /metrics",
        "GET /openapi.json",
        "GET /readyz",
        "POST /v1/events",
    ];
    routed.sort();
    assert_eq!(documented, routed);
    // Each documented route is served (the fallback answers 404 `not_found` otherwise).
    for route in routed {
        let (method, path) = route.split_once(' ').unwrap();
        let path = path
            .replace("{client_ref}", "someone")
            .replace("{impression_id}", "imp-1");
        let request = Request::builder()
            .method(method)
            .uri(&path)
            .body(Body::empty())
            .unwrap();
        let response = h.app.clone().oneshot(request).await.unwrap();
        assert_ne!(
            response.status(),
            StatusCode::NOT_FOUND,
            "{route} is documented but not routed"
        );
        assert_ne!(response.status(), StatusCode::METHOD_NOT_ALLOWED, "{route}");
    }
    let (status, _) = get(&h, "/v1/unknown").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_key_that_names_no_tenant_is_remembered_for_a_while() {
    let batch = || {
        let mut e = event("late-1", "u1");
        e["client_key"] = json!("pk_late");
        json!({ "events": [e] })
    };
    // Remembered for an hour here, so that the test does not depend on how fast it runs.
    let h = Harness::with_state(|s| s.with_unknown_cache_for(Duration::from_secs(3600)));
    assert_eq!(h.post_json(&batch()).await.0, StatusCode::UNAUTHORIZED);
    h.store.add_tenant("pk_late", &[]).unwrap();
    let (status, answer) = h.post_json(&batch()).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unknown_client_key")),
        "answered from the cache, without asking the store"
    );
    // Not remembered: the new tenant is found at once.
    let keyring = std::sync::Arc::new(ingest::Keyring::from_secret(vec![7; 32]));
    let app = ingest::app(
        ingest::AppState::new(h.store.clone(), keyring).with_unknown_cache_for(Duration::ZERO),
    );
    let h = Harness { app, ..h };
    assert_eq!(h.post_json(&batch()).await.0, StatusCode::OK);
}
