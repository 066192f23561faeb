use std::process::{Command, Output};

fn ingest(args: &[&str]) -> Output {
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
