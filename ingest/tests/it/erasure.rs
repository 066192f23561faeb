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
    // The running service reads the tenant again once its cache entry expires (at once
    // here), so the rotation takes effect without a restart.
    let h2 = Harness::with_state(|s| s.with_tenant_cache_for(std::time::Duration::ZERO));
    h2.post_json(&json!({ "events": [event("before", "u1")] }))
        .await;
    assert_eq!(h2.store.rotate_key(CLIENT_KEY).unwrap(), 2);
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

#[tokio::test]
async fn the_identity_vault_seals_originals_and_erasure_empties_it() {
    let h = Harness::new(&[]);
    let keyring = std::sync::Arc::new(ingest::Keyring::from_secret(vec![7; 32]));
    let app = ingest::app(
        ingest::AppState::new(h.store.clone(), keyring.clone()).with_identity_vault(true),
    );
    let h = Harness { app, ..h };
    let raw = "customer-user-vaulted";
    h.post_json(
        &json!({ "events": [event("v1", raw), event("v2", raw), event("v3", "other-user")] }),
    )
    .await;
    assert_eq!(
        h.count("identity_vault"),
        2,
        "one entry per user, not per event"
    );

    let user_id = users(&h)[0].as_str().unwrap().to_owned();
    let tenant = h.store.tenant(CLIENT_KEY).unwrap().unwrap();
    let sealed = h.store.sealed(tenant.id, &user_id).unwrap().unwrap();
    let vault = ingest::anonymise::vault::Vault::new(&keyring.vault_key(CLIENT_KEY));
    assert_eq!(vault.open(&sealed).unwrap(), raw);
    let file = std::fs::read(h.dir.path().join(ingest::store::DB_FILE)).unwrap();
    assert!(
        !file.windows(raw.len()).any(|w| w == raw.as_bytes()),
        "the original is stored sealed only"
    );

    let (_, answer) = delete(&h, raw, Some(&format!("Bearer {}", h.api_key))).await;
    assert_eq!(answer["events"], 2);
    assert_eq!(h.count("identity_vault"), 1);
    assert!(h.store.sealed(tenant.id, &user_id).unwrap().is_none());
}

#[tokio::test]
async fn the_vault_is_off_by_default() {
    let h = Harness::new(&[]);
    h.post_json(&json!({ "events": [event("n1", "u1")] })).await;
    assert_eq!(h.count("identity_vault"), 0);
}

#[tokio::test]
async fn erased_events_leave_nothing_readable_in_the_files() {
    let h = Harness::new(&[]);
    let marker = "erase-marker-5e1f";
    let mut gone = event("gone-1", "u-gone");
    gone["event_meta"] = json!({ "note": marker });
    h.post_json(&json!({ "events": [gone, event("kept-1", "u-kept")] }))
        .await;
    let (status, answer) = delete(&h, "u-gone", Some(&format!("Bearer {}", h.api_key))).await;
    assert_eq!((status, &answer["events"]), (StatusCode::OK, &json!(1)));
    // Every connection closed: SQLite moves the WAL into the database file and deletes it.
    let Harness {
        dir, store, app, ..
    } = h;
    drop(app);
    store.close();
    drop(store);
    // The datasets' feed thread may still hold the store for the commit it applies: the
    // last connection closes once it lets go.
    let wal = dir.path().join(format!("{}-wal", ingest::store::DB_FILE));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while wal.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the store was never closed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    crate::assert_no_file_holds(dir.path(), &[marker]);
}

/// Log lines written while `f` runs on this thread, at every level.
///
/// One global subscriber for the whole test binary, whose filter asks on every event and
/// span whether this thread captures: a subscriber set per thread (`set_default`) loses lines when
/// other tests register call sites at the same moment, as tracing caches each call site's
/// interest once.
async fn logged<F: std::future::Future<Output = ()>>(f: impl FnOnce() -> F) -> String {
    use std::cell::RefCell;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{Layer, filter};

    thread_local! {
        static CAPTURED: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
    }
    struct Capture;
    impl std::io::Write for Capture {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            CAPTURED.with(|c| {
                if let Some(lines) = c.borrow_mut().as_mut() {
                    lines.extend_from_slice(bytes);
                }
            });
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        // Dynamic: a plain `filter_fn` is asked once per call site and its answer cached, so
        // a call site first reached on a thread that does not capture would never log again.
        let capturing = filter::dynamic_filter_fn(|_, _| CAPTURED.with(|c| c.borrow().is_some()));
        let layer = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(|| Capture)
            .with_filter(capturing);
        tracing_subscriber::registry().with(layer).init();
    });
    CAPTURED.with(|c| *c.borrow_mut() = Some(Vec::new()));
    f().await;
    let lines = CAPTURED.with(|c| c.borrow_mut().take()).unwrap_or_default();
    String::from_utf8(lines).unwrap()
}

#[tokio::test]
async fn the_log_names_routes_never_the_user_in_a_path_or_query() {
    let h = Harness::new(&[]);
    let auth = format!("Bearer {}", h.api_key);
    let log = logged(|| async {
        h.post_json(&json!({ "events": [event("l1", "jane.logged@example.com")] }))
            .await;
        delete(&h, "jane.logged@example.com", Some(&auth)).await;
        for uri in [
            "/v1/recommendations?user=jane.logged@example.com",
            "/v1/users/jane.logged@example.com/preferences/entities",
            "/v1/nothing/jane.logged@example.com",
        ] {
            let request = Request::get(uri)
                .header("authorization", &auth)
                .body(Body::empty())
                .unwrap();
            h.app.clone().oneshot(request).await.unwrap();
        }
    })
    .await;
    for route in [
        "/v1/events",
        "/v1/users/{client_ref}",
        "/v1/recommendations",
        "/v1/users/{client_ref}/preferences/entities",
        "unmatched",
    ] {
        assert!(
            log.contains(&format!("route=\"{route}\"")),
            "{route}: {log}"
        );
    }
    assert!(!log.contains("jane.logged"), "{log}");
}

#[tokio::test]
async fn the_running_service_refuses_a_revoked_api_key() {
    let h = Harness::with_state(|s| s.with_tenant_cache_for(std::time::Duration::ZERO));
    let old = format!("Bearer {}", h.api_key);
    let (status, _) = delete(&h, "u1", Some(&old)).await;
    assert_eq!(status, StatusCode::OK);
    let new = format!("Bearer {}", h.store.revoke_api_keys(CLIENT_KEY).unwrap());
    let (status, answer) = delete(&h, "u1", Some(&old)).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unknown_api_key"))
    );
    assert_eq!(delete(&h, "u1", Some(&new)).await.0, StatusCode::OK);
}

/// The events the datasets count for `client_ref`'s preferences (0 when it has none).
async fn preference_events(h: &Harness, client_ref: &str) -> u64 {
    let request = Request::get(format!("/v1/users/{client_ref}/preferences/entities"))
        .header("authorization", format!("Bearer {}", h.api_key))
        .body(Body::empty())
        .unwrap();
    let response = h.app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let answer: Value = serde_json::from_slice(&bytes).unwrap();
    answer["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["events"].as_u64().unwrap())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_datasets_follow_the_log_when_events_and_an_erasure_race() {
    // Each store twice: first before its engine exists (it is built from the log as the race
    // goes on), then with one.
    for store in 0..30 {
        let h = Harness::new(&[]);
        let auth = format!("Bearer {}", h.api_key);
        for round in 0..2 {
            let events: Vec<Value> = (0..5)
                .map(|i| event(&format!("race-{round}-{i}"), "u-race"))
                .collect();
            let body = json!({ "events": events });
            let (posted, erased) =
                tokio::join!(h.post_json(&body), delete(&h, "u-race", Some(&auth)));
            assert_eq!((posted.0, erased.0), (StatusCode::OK, StatusCode::OK));
            // Whichever committed first, the datasets hold what the log holds: the five
            // events when they came after the erasure, nothing when they came before it.
            let stored = users(&h).len() as u64;
            assert_eq!(
                preference_events(&h, "u-race").await,
                stored,
                "store {store}, round {round}: the datasets and the log disagree"
            );
        }
    }
}

/// A store in `dir` with the fixture tenant, closed again: the tenant and its API key.
fn stored_tenant(dir: &std::path::Path) -> (ingest::store::Tenant, String) {
    let store = ingest::Store::open(dir).unwrap();
    let added = store.add_tenant(CLIENT_KEY, &[]).unwrap();
    store.close();
    added
}

/// How many entities a service on `addr` lists in `user`'s preferences.
async fn served_preferences(addr: std::net::SocketAddr, api_key: &str, user: &str) -> usize {
    let auth = format!("Authorization: Bearer {api_key}\r\n");
    let path = format!("/v1/users/{user}/preferences/entities");
    let (status, _, body) = crate::serve::request(addr, "GET", &path, &auth).await;
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    answer["items"].as_array().unwrap().len()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_erasure_by_the_command_reaches_the_running_service() {
    let dir = tempfile::tempdir().unwrap();
    let (_, api_key) = stored_tenant(dir.path());
    let (addr, stop, server) = crate::serve::serving(dir.path()).await;
    let body = json!({ "events": [event("cli-1", "u-cli"), event("cli-2", "u-kept")] });
    let (status, answer) = crate::serve::http_post(addr, &body.to_string()).await;
    assert!(status.contains(" 200 "), "{status}: {answer}");
    let preferences = |user| served_preferences(addr, &api_key, user);
    assert_eq!(preferences("u-cli").await, 1);

    // A second service on the same store is refused, naming the reason.
    let second = ingest::Config::new("127.0.0.1:0".parse().unwrap(), dir.path().to_owned());
    let listener = tokio::net::TcpListener::bind(second.listen).await.unwrap();
    let refused = ingest::serve(second, listener, async {}).await.unwrap_err();
    assert!(refused.to_string().contains("serves"), "{refused}");

    let d = dir.path().to_str().unwrap().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_ingest"))
            .args([
                "erase",
                "--data-dir",
                &d,
                "--client-key",
                CLIENT_KEY,
                "--client-ref",
                "u-cli",
            ])
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("did not take"), "{stderr}");
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap(),
        json!({ "events": 1, "failed_events": 0 })
    );
    // The service took the erasure from the journal: its datasets forget the user (within
    // its next look, a second at most), the journal is empty, and the other user stays.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while preferences("u-cli").await != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the running service still shows the erased user"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(crate::count_rows(dir.path(), "erasure_journal"), 0);
    assert_eq!(preferences("u-kept").await, 1);
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_service_leaves_a_snapshot_that_the_erase_command_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let (tenant, api_key) = stored_tenant(dir.path());
    let preferences = |addr, user| served_preferences(addr, &api_key, user);
    let (addr, stop, server) = crate::serve::serving(dir.path()).await;
    let body = json!({ "events": [event("snap-1", "u-gone"), event("snap-2", "u-kept")] });
    let (status, answer) = crate::serve::http_post(addr, &body.to_string()).await;
    assert!(status.contains(" 200 "), "{status}: {answer}");
    assert_eq!(preferences(addr, "u-gone").await, 1);
    crate::serve::stop_and_wait(stop, server).await;

    let snapshots = dir.path().join(ingest::store::SNAPSHOT_DIR);
    let snapshot = snapshots.join(format!("tenant-{}.snapshot", tenant.id));
    assert!(
        snapshot.exists(),
        "the service wrote a snapshot as it stopped"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&snapshots), 0o700);
        assert_eq!(mode(&snapshot), 0o600);
    }

    let d = dir.path().to_str().unwrap();
    let out = crate::cli::ingest(&[
        "erase",
        "--data-dir",
        d,
        "--client-key",
        CLIENT_KEY,
        "--client-ref",
        "u-gone",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !snapshot.exists(),
        "the snapshot held the erased user: the command deleted it"
    );

    let (addr, stop, server) = crate::serve::serving(dir.path()).await;
    assert_eq!(preferences(addr, "u-gone").await, 0);
    assert_eq!(preferences(addr, "u-kept").await, 1);
    crate::serve::stop_and_wait(stop, server).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_service_writes_snapshots_as_it_goes() {
    let dir = tempfile::tempdir().unwrap();
    let (tenant, _) = stored_tenant(dir.path());
    let datasets_toml = dir.path().join("datasets.toml");
    std::fs::write(&datasets_toml, "[consensus]\nmaterialize_every_secs = 1\n").unwrap();
    let mut config = ingest::Config::new("127.0.0.1:0".parse().unwrap(), dir.path().to_owned());
    let params = ingest::load_datasets_params(&datasets_toml).unwrap();
    config.datasets_config = Some(datasets_toml);
    config.snapshot_every_secs = 1;
    let listener = tokio::net::TcpListener::bind(config.listen).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(ingest::serve(config, listener, async {
        let _ = stopped.await;
    }));
    let snapshot = dir
        .path()
        .join(ingest::store::SNAPSHOT_DIR)
        .join(format!("tenant-{}.snapshot", tenant.id));
    // The log position the stored snapshot covers (0 with none yet).
    let covered = || {
        std::fs::read(&snapshot).map_or(0, |bytes| {
            ingest::datasets::Engine::restore(params.clone(), &bytes)
                .unwrap()
                .1
        })
    };
    // Each batch makes the engine hold an event its snapshot lacks (the log's next
    // position): a snapshot covering it follows, with the service running, so a crash then
    // reads only what came after it.
    for position in 1..=2 {
        let id = format!("periodic-{position}");
        let body = json!({ "events": [event(&id, "u-periodic")] });
        let (status, answer) = crate::serve::http_post(addr, &body.to_string()).await;
        assert!(status.contains(" 200 "), "{status}: {answer}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while covered() < position {
            assert!(
                std::time::Instant::now() < deadline,
                "no snapshot covering position {position} within 30 s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    crate::serve::stop_and_wait(stop, server).await;
}

#[tokio::test]
async fn a_user_named_in_the_client_ref_header_stays_out_of_urls_and_logs() {
    let h = Harness::new(&[]);
    let auth = format!("Bearer {}", h.api_key);
    let user = "jane.header@example.com";
    let send = |method: &str, uri: &str, client_ref: Option<&str>| {
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", &auth);
        if let Some(c) = client_ref {
            request = request.header("client-ref", c);
        }
        let app = h.app.clone();
        let request = request.body(Body::empty()).unwrap();
        async move {
            let response = app.oneshot(request).await.unwrap();
            let status = response.status();
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            (status, serde_json::from_slice::<Value>(&bytes).unwrap())
        }
    };
    let log = logged(|| async {
        h.post_json(&json!({ "events": [event("hdr-1", user), event("hdr-2", "ünï")] }))
            .await;
        // The header gives the answers the path and the query give.
        let (status, by_header) = send("GET", "/v1/preferences/entities", Some(user)).await;
        assert_eq!(status, StatusCode::OK, "{by_header}");
        assert_eq!(by_header["items"][0]["events"], 1, "{by_header}");
        let by_path = send(
            "GET",
            &format!("/v1/users/{user}/preferences/entities"),
            None,
        )
        .await;
        let item = |answer: &Value| {
            (
                answer["items"][0]["entity"].clone(),
                answer["items"][0]["events"].clone(),
            )
        };
        assert_eq!(item(&by_path.1), item(&by_header));
        let encoded = send("GET", "/v1/preferences/entities", Some("%C3%BCn%C3%AF")).await;
        assert_eq!(encoded.1["items"][0]["events"], 1, "percent-encoded UTF-8");
        let (status, recommended) = send("GET", "/v1/recommendations", Some(user)).await;
        assert_eq!(status, StatusCode::OK, "{recommended}");
        let both = send("GET", "/v1/recommendations?user=x", Some(user)).await;
        assert_eq!(both.0, StatusCode::BAD_REQUEST, "{}", both.1);
        assert!(
            both.1["detail"].as_str().unwrap().contains("not both"),
            "{}",
            both.1
        );
        let neither = send("GET", "/v1/preferences/entities", None).await;
        assert_eq!(neither.0, StatusCode::BAD_REQUEST, "{}", neither.1);
        assert!(
            neither.1["detail"].as_str().unwrap().contains("Client-Ref"),
            "{}",
            neither.1
        );

        let missing = send("DELETE", "/v1/users", None).await;
        assert_eq!(
            (missing.0, missing.1["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("missing_client_ref"))
        );
        let (status, erased) = send("DELETE", "/v1/users", Some(user)).await;
        assert_eq!(status, StatusCode::OK, "{erased}");
        assert_eq!(erased, json!({ "events": 1, "failed_events": 0 }));
        let (_, after) = send("GET", "/v1/preferences/entities", Some(user)).await;
        assert_eq!(after["items"], json!([]));
    })
    .await;
    assert!(log.contains("route=\"/v1/preferences/entities\""), "{log}");
    assert!(log.contains("route=\"/v1/users\""), "{log}");
    assert!(!log.contains("jane.header"), "{log}");
}
