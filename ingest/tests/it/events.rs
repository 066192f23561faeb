use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::{CLIENT_KEY, Harness, event, fixture};

#[tokio::test]
async fn valid_fixture_batches_are_stored_whole() {
    let h = Harness::new(&[]);
    let mut expected = 0;
    for name in ["design-example.json", "minimal.json", "many-kinds.json"] {
        let body = fixture(&format!("valid/{name}"));
        let n = serde_json::from_str::<Value>(&body).unwrap()["events"]
            .as_array()
            .unwrap()
            .len();
        let (status, answer) = h.post(body, Some("text/plain;charset=UTF-8"), None).await;
        assert_eq!(status, StatusCode::OK, "{name}: {answer}");
        assert_eq!(
            answer,
            json!({"accepted": n, "duplicates": 0, "rejected": []}),
            "{name}"
        );
        expected += n as i64;
    }
    assert_eq!(h.count("events"), expected);
    assert_eq!(h.count("failed_events"), 0);
}

#[tokio::test]
async fn invalid_events_are_rejected_one_by_one_and_the_valid_ones_kept() {
    let h = Harness::new(&[]);
    let cases: Vec<Value> = serde_json::from_str(&fixture("invalid/events.json")).unwrap();
    let mut events = vec![event("good-1", "u1")];
    events.extend(cases.iter().map(|c| c["event"].clone()));
    events.push(event("good-2", "u2"));
    let mut mismatched = event("other-tenant", "u3");
    mismatched["client_key"] = json!("pk_other");
    events.push(mismatched);
    let (status, answer) = h.post_json(&json!({ "events": events })).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["accepted"], 2);
    let rejected = answer["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), cases.len() + 1);
    for (case, r) in cases.iter().zip(rejected) {
        assert_eq!(r["error"], case["error"], "{}: {r}", case["name"]);
        if let Some(field) = case["field"].as_str() {
            assert!(
                r["message"].as_str().unwrap().contains(field),
                "{}: {r}",
                case["name"]
            );
        }
    }
    assert_eq!(rejected.last().unwrap()["error"], "client_key_mismatch");
    assert_eq!(rejected.last().unwrap()["event_id"], "other-tenant");
    assert_eq!(rejected[0]["index"], 1);
    assert_eq!(h.count("events"), 2);
    assert_eq!(h.count("failed_events"), rejected.len() as i64);
}

#[tokio::test]
async fn invalid_batches_get_400_naming_the_problem() {
    let h = Harness::new(&[]);
    let cases: Vec<Value> = serde_json::from_str(&fixture("invalid/batches.json")).unwrap();
    for case in cases {
        let (status, answer) = h
            .post(
                case["body"].as_str().unwrap().to_owned(),
                Some("application/json"),
                None,
            )
            .await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{}: {answer}",
            case["name"]
        );
        assert_eq!(answer["error"], case["error"], "{}", case["name"]);
        assert!(!answer["message"].as_str().unwrap().is_empty());
    }
    let (status, answer) = h
        .post(
            b"{\"events\":[\"\xff\"]}".to_vec(),
            Some("application/json"),
            None,
        )
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("malformed_body"))
    );
    assert_eq!(h.count("events"), 0);
}

#[tokio::test]
async fn keys_origins_types_and_sizes_get_their_status() {
    let h = Harness::new(&["https://app.example.com"]);
    let batch = json!({ "events": [event("e1", "u1")] }).to_string();
    let mut unknown = event("e2", "u1");
    unknown["client_key"] = json!("pk_nobody");
    let cases = [
        (
            json!({"events": [unknown]}).to_string(),
            Some("application/json"),
            None,
            StatusCode::UNAUTHORIZED,
            "unknown_client_key",
            "pk_nobody",
        ),
        (
            batch.clone(),
            Some("text/plain"),
            Some("https://evil.example.com"),
            StatusCode::FORBIDDEN,
            "origin_not_allowed",
            "https://evil.example.com",
        ),
        (
            batch.clone(),
            Some("application/x-www-form-urlencoded"),
            None,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "x-www-form-urlencoded",
        ),
        (
            " ".repeat(schema::limits::MAX_BODY_BYTES + 1),
            Some("application/json"),
            None,
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "1048576",
        ),
    ];
    for (body, ct, origin, status, code, named) in cases {
        let (got, answer) = h.post(body, ct, origin).await;
        assert_eq!(got, status, "{code}: {answer}");
        assert_eq!(answer["error"], code);
        assert!(
            answer["message"].as_str().unwrap().contains(named),
            "{answer} does not name {named}"
        );
    }
    assert_eq!(h.count("events"), 0);
    let mut long_key = event("e3", "u1");
    long_key["client_key"] = json!("k".repeat(100_000));
    let (status, answer) = h.post_json(&json!({ "events": [long_key] })).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        answer["message"].as_str().unwrap().len() < 300,
        "the echoed key is clipped"
    );
    let (status, _) = h
        .post(batch, Some("text/plain"), Some("https://app.example.com"))
        .await;
    assert_eq!(status, StatusCode::OK, "an allowed origin may send");
}

#[tokio::test]
async fn duplicates_are_stored_once_and_reported() {
    let h = Harness::new(&[]);
    let batch = json!({ "events": [event("d1", "u1"), event("d2", "u1"), event("d1", "u1")] });
    let (_, answer) = h.post_json(&batch).await;
    assert_eq!(
        (answer["accepted"].as_i64(), answer["duplicates"].as_i64()),
        (Some(2), Some(1))
    );
    let (_, answer) = h.post_json(&batch).await;
    assert_eq!(
        (answer["accepted"].as_i64(), answer["duplicates"].as_i64()),
        (Some(0), Some(3))
    );
    assert_eq!(h.count("events"), 2);
}

#[tokio::test]
async fn concurrent_requests_all_commit() {
    let h = Harness::new(&[]);
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let app = h.app.clone();
            let body = json!({ "events": (0..25).map(|j| event(&format!("c{i}-{j}"), "u")).collect::<Vec<_>>() });
            tokio::spawn(async move {
                use tower::ServiceExt;
                let req = axum::http::Request::post("/v1/events").body(axum::body::Body::from(body.to_string())).unwrap();
                app.oneshot(req).await.unwrap().status()
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(h.count("events"), 1000);
}

#[tokio::test]
async fn identifiers_are_pseudonymised_before_storage() {
    let h = Harness::new(&[]);
    let raw_ref = "customer-user-4242";
    let mut bad = event("bad", raw_ref);
    bad["action"] = json!("Not Snake");
    let mut chatty = event("p2", raw_ref);
    chatty["event_meta"] = json!({
        "note": "reach me at jane.doe@example.com or +44 20 7946 0958",
        "payment": {"card": "4111 1111 1111 1111", "iban": "GB82 WEST 1234 5698 7654 32"},
        "page": "https://app.example.com/account?email=jane.doe%40example.com&utm_source=mail#tok",
        "client": "logged from 203.0.113.7"
    });
    let mut search = event("p3", raw_ref);
    search["event_type"] = json!("search");
    search["action"] = json!("submitted");
    search["event_meta"] = json!({ "query": "account 12345678" });
    let body = json!({ "events": [event("p1", raw_ref), chatty, search, bad] });
    let (status, answer) = h.post_json(&body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["accepted"], 3);
    let stored = h
        .store
        .recent_events(h.store.tenant(CLIENT_KEY).unwrap().unwrap().id, 10)
        .unwrap();
    let user = stored[0]["channel_meta"]["user_id"].as_str().unwrap();
    assert_eq!(user.len(), 32);
    assert_eq!(
        stored[1]["channel_meta"]["user_id"], user,
        "one user, one pseudonym"
    );
    assert_ne!(stored[0]["channel_meta"]["session_id"], "sess-1");
    assert_eq!(
        stored[1]["event_meta"],
        json!({
            "note": "reach me at [email] or [phone]",
            "payment": {"card": "[card]", "iban": "[iban]"},
            "page": "https://app.example.com/account?utm_source=mail",
            "client": "logged from [ip]"
        })
    );
    assert_eq!(stored[2]["event_meta"], json!({ "query_dropped": true }));
    h.store.close();
    crate::assert_no_file_holds(
        h.dir.path(),
        &[
            raw_ref,
            "sess-1",
            "jane.doe",
            "4111 1111",
            "WEST 1234",
            "203.0.113.7",
            "12345678",
        ],
    );
}

#[tokio::test]
async fn clock_skew_is_corrected_with_sent_at() {
    let h = Harness::new(&[]);
    // The device clock runs 1 h fast: it stamped the event 2 s before it sent the batch.
    let mut e = event("skew", "u1");
    e["created_at"] = json!("2030-01-01T13:00:00.000Z");
    let (status, _) = h
        .post_json(&json!({ "sent_at": "2030-01-01T13:00:02.000Z", "events": [e] }))
        .await;
    assert_eq!(status, StatusCode::OK);
    let stored = &h.store.recent_events(1, 1).unwrap()[0];
    let event_time = schema::Timestamp::parse(stored["event_time"].as_str().unwrap()).unwrap();
    let received_at = schema::Timestamp::parse(stored["received_at"].as_str().unwrap()).unwrap();
    assert_eq!(received_at.0 - event_time.0, 2000);
    assert_eq!(stored["created_at"], "2030-01-01T13:00:00Z");
}

#[tokio::test]
async fn an_absurd_device_clock_still_stores_a_writable_time() {
    // Found by the fuzz target: a skew correction that left the years 0000 to 9999 panicked
    // while formatting the stored event time.
    let h = Harness::new(&[]);
    let mut e = event("far-future", "u1");
    e["created_at"] = json!("0000-01-01T00:00:00Z");
    let (status, answer) = h
        .post_json(&json!({ "sent_at": "9999-12-31T23:59:59Z", "events": [e] }))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let stored = &h.store.recent_events(1, 1).unwrap()[0];
    assert_eq!(stored["event_time"], "0000-01-01T00:00:00Z");
}

#[tokio::test]
async fn cors_preflight_and_unknown_routes() {
    let h = Harness::new(&[]);
    use tower::ServiceExt;
    let req = axum::http::Request::options("/v1/events")
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = h.app.clone().oneshot(req).await.unwrap();
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let req = axum::http::Request::get("/v1/nothing")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = h.app.clone().oneshot(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(response.headers().contains_key("x-request-id"));
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

async fn post_encoded(h: &Harness, body: Vec<u8>, encoding: &str) -> (StatusCode, Value) {
    use tower::ServiceExt;
    let req = axum::http::Request::post("/v1/events")
        .header("content-type", "text/plain")
        .header("content-encoding", encoding)
        .body(axum::body::Body::from(body))
        .unwrap();
    let response = h.app.clone().oneshot(req).await.unwrap();
    let status = response.status();
    let bytes = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn gzip_bodies_are_read_and_bombs_refused() {
    let h = Harness::new(&[]);
    let batch = json!({ "events": [event("gz1", "u1"), event("gz2", "u1")] }).to_string();
    let (status, answer) = post_encoded(&h, gzip(batch.as_bytes()), "gzip").await;
    assert_eq!(
        (status, answer["accepted"].as_i64()),
        (StatusCode::OK, Some(2)),
        "{answer}"
    );

    // 64 MiB of spaces compress to about 64 KiB: under the body limit, far over it unpacked.
    let bomb = gzip(&vec![b' '; 64 * 1024 * 1024]);
    assert!(bomb.len() < schema::limits::MAX_BODY_BYTES);
    let (status, answer) = post_encoded(&h, bomb, "gzip").await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer["error"], "body_too_large");
    assert!(answer["message"].as_str().unwrap().contains("decompressed"));

    let (status, answer) = post_encoded(&h, b"not gzip at all".to_vec(), "gzip").await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("malformed_body"))
    );
    let (status, answer) = post_encoded(&h, batch.into_bytes(), "br").await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Some("unsupported_encoding")
        )
    );
    assert_eq!(h.count("events"), 2);
}

#[tokio::test]
async fn rejected_and_odd_events_keep_no_personal_data_either() {
    let h = Harness::new(&[]);
    let raw_ref = "customer-user-9191";
    let pii = json!({
        "note": "write to jane.roe@example.com or +44 20 7946 0958",
        "payment": {"card": "4111 1111 1111 1111", "iban": "GB82 WEST 1234 5698 7654 32"},
        "jane.roe@example.com": "a key that is an email",
        "page": "/users/jane.roe%40example.com/profile"
    });
    let with = |id: &str, f: &dyn Fn(&mut Value)| {
        let mut e = event(id, raw_ref);
        e["event_meta"] = pii.clone();
        f(&mut e);
        e.to_string()
    };
    let events = [
        // Valid, with personal data in an entity id, a meta key and a percent-encoded path.
        with("ok-1", &|e| {
            e["related_entities"] = json!([{"type": "ticker", "id": "AAPL"}, {"type": "ticker", "id": "jane.roe@example.com"}]);
        }),
        // Rejected for one rule each.
        with("empty-action", &|e| e["action"] = json!("")),
        with("long-type", &|e| e["event_type"] = json!("x".repeat(200))),
        with("unknown-field", &|e| e["jane.roe@example.com"] = json!(1)),
        with("misplaced-ids", &|e| {
            e["client_ref"] = json!(raw_ref);
            e["channel_meta"] = json!(format!("{raw_ref} sess-1"));
        }),
        with("bad-entity", &|e| {
            e["related_entities"] =
                json!([{"type": "Ticker Symbol", "id": "jane.roe@example.com"}]);
        }),
        // Numbers past f64 and nesting past serde_json's depth: not readable back as JSON.
        with("huge", &|e| e["event_meta"]["n"] = json!("HUGE")).replace("\"HUGE\"", "1e400"),
        with("deep", &|e| e["event_meta"]["deep"] = json!("DEEP")).replace(
            "\"DEEP\"",
            &format!("{}{}", "[".repeat(200), "]".repeat(200)),
        ),
    ];
    let body = format!(r#"{{"events":[{}]}}"#, events.join(","));
    let (status, answer) = h.post(body, Some("application/json"), None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["accepted"], 1, "{answer}");
    assert_eq!(answer["rejected"].as_array().unwrap().len(), 7, "{answer}");

    let tenant = h.store.tenant(CLIENT_KEY).unwrap().unwrap();
    let stored = h.store.recent_events(tenant.id, 10).unwrap();
    assert_eq!(
        stored[0]["related_entities"],
        json!([{"type": "ticker", "id": "AAPL"}]),
        "an entity whose id is personal data is left out, so no dataset counts it"
    );
    assert_eq!(stored[0]["event_meta"]["[email]"], "a key that is an email");
    assert_eq!(stored[0]["event_meta"]["page"], "/users/[email]/profile");
    let failed = h.store.recent_failed(tenant.id, 10).unwrap();
    let unreadable: Vec<&Value> = failed
        .iter()
        .filter(|f| f["payload"].get("unreadable").is_some())
        .collect();
    assert_eq!(unreadable.len(), 2, "{failed:?}");
    for f in unreadable {
        assert_eq!(f["payload"].as_object().unwrap().len(), 2, "{f}");
        assert!(f["payload"]["bytes"].as_u64().unwrap() > 100, "{f}");
    }
    h.store.close();
    crate::assert_no_file_holds(
        h.dir.path(),
        &[
            raw_ref,
            "sess-1",
            "jane.roe",
            "4111 1111",
            "WEST 1234",
            "7946 0958",
        ],
    );
}
