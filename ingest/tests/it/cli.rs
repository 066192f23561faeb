use std::process::{Command, Output};

/// Runs the `ingest` binary with `args` (logging warnings and errors only).
pub(crate) fn ingest(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ingest"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn tenant_add_prints_a_secret_key_once_and_list_shows_tenants() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let out = ingest(&[
        "tenant",
        "add",
        "--data-dir",
        d,
        "--client-key",
        "pk_live_a",
        "--origin",
        "https://App.example.com/",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let key = text(&out.stdout);
    assert!(
        key.trim().starts_with("sk_") && key.trim().len() == 51,
        "{key}"
    );

    let again = ingest(&[
        "tenant",
        "add",
        "--data-dir",
        d,
        "--client-key",
        "pk_live_a",
    ]);
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("tenant `pk_live_a` already exists"),
        "{}",
        text(&again.stderr)
    );

    let bad = ingest(&[
        "tenant",
        "add",
        "--data-dir",
        d,
        "--client-key",
        "pk_b",
        "--origin",
        "example.com",
    ]);
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("origin `example.com`"),
        "{}",
        text(&bad.stderr)
    );

    let bad = ingest(&[
        "tenant",
        "add",
        "--data-dir",
        d,
        "--client-key",
        "pk with space",
    ]);
    assert!(
        text(&bad.stderr).contains("client_key"),
        "{}",
        text(&bad.stderr)
    );

    ingest(&["tenant", "add", "--data-dir", d, "--client-key", "pk_any"]);
    let list = ingest(&["tenant", "list", "--data-dir", d]);
    assert_eq!(
        text(&list.stdout),
        "pk_any\t*\npk_live_a\thttps://app.example.com\n"
    );
    assert!(
        !text(&std::fs::read(dir.path().join(ingest::store::DB_FILE)).unwrap())
            .contains(key.trim()),
        "the secret key is stored only hashed"
    );
}

#[test]
fn events_list_names_an_unknown_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let out = ingest(&[
        "events",
        "list",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--client-key",
        "pk_x",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("unknown client_key `pk_x`"),
        "{}",
        text(&out.stderr)
    );
}

fn ingest_with_stdin(args: &[&str], stdin: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_ingest"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn pseudonymise_hashes_each_line_under_the_customer_secret() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "a customer secret of 32 bytes!!\n").unwrap();
    let out = ingest_with_stdin(
        &["pseudonymise", "--secret-file", secret.to_str().unwrap()],
        "user-1\nuser-2\r\nuser-1\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<String> = text(&out.stdout).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0], lines[2]);
    assert_ne!(lines[0], lines[1]);
    assert_eq!(
        lines[0],
        ingest::anonymise::pseudonym::customer_pseudonym(
            b"a customer secret of 32 bytes!!",
            "user-1"
        )
    );

    std::fs::write(&secret, "short").unwrap();
    let out = ingest_with_stdin(
        &["pseudonymise", "--secret-file", secret.to_str().unwrap()],
        "x\n",
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("at least 16"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn rotate_key_and_erase_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    ingest(&["tenant", "add", "--data-dir", d, "--client-key", "pk_cli"]);
    let out = ingest(&[
        "tenant",
        "rotate-key",
        "--data-dir",
        d,
        "--client-key",
        "pk_cli",
    ]);
    assert_eq!(text(&out.stdout), "2\n");
    let out = ingest(&[
        "tenant",
        "rotate-key",
        "--data-dir",
        d,
        "--client-key",
        "pk_nobody",
    ]);
    assert!(
        text(&out.stderr).contains("unknown client_key `pk_nobody`"),
        "{}",
        text(&out.stderr)
    );
    let out = ingest(&[
        "erase",
        "--data-dir",
        d,
        "--client-key",
        "pk_cli",
        "--client-ref",
        "u1",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "{\"events\":0,\"failed_events\":0}\n");
}

#[tokio::test]
async fn vault_reveal_opens_what_serve_sealed() {
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    ingest(&[
        "tenant",
        "add",
        "--data-dir",
        d,
        "--client-key",
        crate::CLIENT_KEY,
    ]);
    // The same master secret serve would use: master.key in the data directory.
    let store = Arc::new(ingest::Store::open(dir.path()).unwrap());
    let keyring = Arc::new(ingest::Keyring::open(&store, dir.path(), None).unwrap());
    let app = ingest::app(ingest::AppState::new(store.clone(), keyring).with_identity_vault(true));
    let body =
        serde_json::json!({ "events": [crate::event("vault-1", "customer-user-77")] }).to_string();
    let request = axum::http::Request::post("/v1/events")
        .body(axum::body::Body::from(body))
        .unwrap();
    use tower::ServiceExt;
    assert_eq!(app.oneshot(request).await.unwrap().status(), 200);
    let user_id = store.recent_events(1, 1).unwrap()[0]["channel_meta"]["user_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let reveal = |user: &str| {
        ingest(&[
            "vault",
            "reveal",
            "--data-dir",
            d,
            "--client-key",
            crate::CLIENT_KEY,
            "--user-id",
            user,
        ])
    };
    let out = reveal(&user_id);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "customer-user-77\n");
    let out = reveal("0000");
    assert!(
        text(&out.stderr).contains("holds no user `0000`"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn replay_prints_one_response_per_query_and_names_what_it_refused() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schema/fixtures/datasets");
    let a = fixtures.join("fixture_a.jsonl");
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "not json\n{\"event_id\":\"x\"}\n").unwrap();
    let out = ingest(&[
        "replay",
        a.to_str().unwrap(),
        bad.to_str().unwrap(),
        "--as-of",
        "2025-01-06T12:00:00Z",
        "--query",
        "/v1/trending/entities?mode=popular&limit=2",
        "--query",
        "/v1/users/u1/preferences/entities",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["items"][0]["entity"]["id"], "TSLA");
    assert_eq!(lines[0]["items"].as_array().unwrap().len(), 2);
    assert_eq!(lines[1]["items"][0]["score"], 9.0);
    assert_ne!(
        lines[1]["user_id"], "u1",
        "the client_ref is never returned"
    );
    let stderr = text(&out.stderr);
    assert!(stderr.contains("bad.jsonl:1: not JSON"), "{stderr}");
    assert!(stderr.contains("bad.jsonl:2:"), "{stderr}");
    assert!(
        stderr.contains("replayed 45 events (1 duplicates, 2 rejected)"),
        "{stderr}"
    );

    let out = ingest(&[
        "replay",
        a.to_str().unwrap(),
        "--as-of",
        "2025-01-06T12:00:00Z",
        "--query",
        "/v1/trending/entities?mode=hot",
    ]);
    assert!(!out.status.success());
    let problem: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(problem["error"], "bad_parameter");
    assert!(text(&out.stderr).contains("1 of 1 queries failed"));
}

/// Runs `ingest serve` with `args` and `envs`, which must make it refuse to start: a serve that
/// starts instead is killed after a while and the test fails.
fn refused_serve(data_dir: &str, args: &[&str], envs: &[(&str, &str)]) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ingest"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir])
        .args(args)
        .envs(envs.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("serve {args:?} {envs:?} started instead of refusing");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    text(&out.stderr)
}

#[test]
fn every_numeric_limit_is_checked_at_start_up_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    for (flag, env, bad) in [
        ("--rate-limit", "INGEST_RATE_LIMIT", "0"),
        ("--rate-limit", "INGEST_RATE_LIMIT", "-5"),
        ("--rate-limit", "INGEST_RATE_LIMIT", "NaN"),
        ("--rate-limit", "INGEST_RATE_LIMIT", "inf"),
        ("--rate-limit", "INGEST_RATE_LIMIT", "lots"),
        ("--rate-burst", "INGEST_RATE_BURST", "0"),
        ("--byte-rate-limit", "INGEST_BYTE_RATE_LIMIT", "0"),
        ("--source-rate-limit", "INGEST_SOURCE_RATE_LIMIT", "-1"),
        ("--source-rate-burst", "INGEST_SOURCE_RATE_BURST", "0"),
        (
            "--source-byte-rate-limit",
            "INGEST_SOURCE_BYTE_RATE_LIMIT",
            "inf",
        ),
        (
            "--failed-retention-days",
            "INGEST_FAILED_RETENTION_DAYS",
            "0",
        ),
        ("--request-timeout", "INGEST_REQUEST_TIMEOUT", "0"),
        ("--request-timeout", "INGEST_REQUEST_TIMEOUT", "86400000"),
        ("--header-read-timeout", "INGEST_HEADER_READ_TIMEOUT", "0"),
        ("--max-connections", "INGEST_MAX_CONNECTIONS", "0"),
        (
            "--max-concurrent-requests",
            "INGEST_MAX_CONCURRENT_REQUESTS",
            "0",
        ),
        ("--snapshot-every-secs", "INGEST_SNAPSHOT_EVERY_SECS", "0"),
    ] {
        for stderr in [
            refused_serve(d, &[&format!("{flag}={bad}")], &[]),
            refused_serve(d, &[], &[(env, bad)]),
        ] {
            assert!(
                stderr.contains(flag) && stderr.contains(env) && stderr.contains(bad),
                "{flag}={bad}: {stderr}"
            );
            assert!(!stderr.contains("panicked"), "{stderr}");
        }
    }
}

#[test]
fn commands_refuse_a_master_secret_other_than_the_stores() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let secrets = tempfile::tempdir().unwrap();
    let secret = secrets.path().join("master.key");
    std::fs::write(&secret, [5u8; 32]).unwrap();
    let other = secrets.path().join("other.key");
    std::fs::write(&other, [6u8; 32]).unwrap();
    let (secret, other) = (secret.to_str().unwrap(), other.to_str().unwrap());
    let add = ingest(&[
        "tenant",
        "add",
        "--data-dir",
        d,
        "--master-secret-file",
        secret,
        "--client-key",
        "pk_secret",
    ]);
    assert!(add.status.success(), "{}", text(&add.stderr));
    let erase = |extra: &[&str]| {
        let mut args = vec![
            "erase",
            "--data-dir",
            d,
            "--client-key",
            "pk_secret",
            "--client-ref",
            "u1",
        ];
        args.extend_from_slice(extra);
        ingest(&args)
    };
    // Forgetting the flag no longer makes a new secret in the data dir and erases nothing.
    let forgot = erase(&[]);
    assert!(!forgot.status.success());
    assert!(
        text(&forgot.stderr).contains("no master secret at"),
        "{}",
        text(&forgot.stderr)
    );
    assert!(!dir.path().join("master.key").exists(), "no secret created");
    let wrong = erase(&["--master-secret-file", other]);
    assert!(!wrong.status.success());
    assert!(
        text(&wrong.stderr).contains("is not the one this store's pseudonyms were made with"),
        "{}",
        text(&wrong.stderr)
    );
    let right = erase(&["--master-secret-file", secret]);
    assert!(right.status.success(), "{}", text(&right.stderr));
    // serve refuses the wrong one too, before it listens.
    let serve = refused_serve(d, &["--master-secret-file", other], &[]);
    assert!(serve.contains("is not the one"), "{serve}");
}
