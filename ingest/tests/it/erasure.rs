use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::{CLIENT_KEY, Harness, event};

async fn delete(h: &Harness, client_ref: &str, auth: Option<&str>) -> (StatusCode, Value) {
    let mut req = Request::delete(format!("/v1/users/{client_ref}"));
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let response = h
        .app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

fn users(h: &Harness) -> Vec<Value> {
    let tenant = h.store.tenant(CLIENT_KEY).unwrap().unwrap();
    h.store
        .recent_events(tenant.id, 100)
        .unwrap()
        .iter()
        .map(|e| e["channel_meta"]["user_id"].clone())
        .collect()
}

#[tokio::test]
async fn erasure_needs_the_secret_key_and_removes_only_that_user() {
    let h = Harness::new(&[]);
    let mut bad = event("bad-u1", "u1");
    bad["action"] = json!("Bad Action");
    h.post_json(&json!({ "events": [event("a", "u1"), event("b", "u2"), event("c", "u1"), bad] }))
        .await;
    assert_eq!(h.count("failed_events"), 1);

    let (status, answer) = delete(&h, "u1", None).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("missing_api_key"))
    );
    let (status, answer) = delete(&h, "u1", Some("Bearer sk_wrong")).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unknown_api_key"))
    );
    assert_eq!(h.count("events"), 3);

    let u2 = users(&h)[1].clone();
    let (status, answer) = delete(&h, "u1", Some(&format!("Bearer {}", h.api_key))).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer, json!({ "events": 2, "failed_events": 1 }));
    assert_eq!(users(&h), [u2]);
    assert_eq!(h.count("failed_events"), 0);
}

#[tokio::test]
async fn a_rotated_key_gives_new_pseudonyms_and_erasure_finds_both() {
    let h = Harness::new(&[]);
    h.post_json(&json!({ "events": [event("before", "u1")] }))
        .await;
    assert_eq!(h.store.rotate_key(CLIENT_KEY).unwrap(), 2);
    // A fresh app, as after a restart, so the tenant cache holds the new version.
    let h2 = Harness {
        app: ingest::app(ingest::AppState::new(
            h.store.clone(),
            std::sync::Arc::new(ingest::Keyring::from_secret(vec![7; 32])),
        )),
        ..h
    };
    h2.post_json(&json!({ "events": [event("after", "u1")] }))
        .await;
    let ids = users(&h2);
    assert_ne!(
        ids[0], ids[1],
        "pseudonyms before and after rotation cannot be linked"
    );
    let (_, answer) = delete(&h2, "u1", Some(&format!("Bearer {}", h2.api_key))).await;
    assert_eq!(answer["events"], 2);
    assert_eq!(h2.count("events"), 0);
}
