//! Integration tests of the ingest service: one binary, a module per feature.

mod cli;
mod datasets;
mod erasure;
mod events;
mod protect;
mod serve;

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use ingest::{AppState, Store};
use serde_json::Value;
use tempfile::TempDir;
use tower::ServiceExt;

/// A store in a temp dir with one tenant, and the app over it.
pub(crate) struct Harness {
    pub(crate) dir: TempDir,
    pub(crate) store: Arc<Store>,
    pub(crate) app: Router,
    /// The secret API key of [`CLIENT_KEY`].
    pub(crate) api_key: String,
}

pub(crate) const CLIENT_KEY: &str = "pk_fixture";

impl Harness {
    pub(crate) fn new(origins: &[&str]) -> Harness {
        Harness::with_limits(origins, ingest::Limits::default())
    }

    pub(crate) fn with_limits(origins: &[&str], limits: ingest::Limits) -> Harness {
        Harness::build(origins, |store, keyring| {
            AppState::with_limits(store, keyring, limits)
        })
    }

    /// The default state, adjusted by `f` (e.g. datasets in test mode).
    pub(crate) fn with_state(f: impl FnOnce(AppState) -> AppState) -> Harness {
        Harness::build(&[], |store, keyring| f(AppState::new(store, keyring)))
    }

    fn build(
        origins: &[&str],
        state: impl FnOnce(Arc<Store>, Arc<ingest::Keyring>) -> AppState,
    ) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let origins: Vec<String> = origins.iter().map(|s| s.to_string()).collect();
        let (_, api_key) = store.add_tenant(CLIENT_KEY, &origins).unwrap();
        store.add_tenant("pk_other", &[]).unwrap();
        let keyring = Arc::new(ingest::Keyring::from_secret(vec![7; 32]));
        let app = ingest::app(state(store.clone(), keyring));
        Harness {
            dir,
            store,
            app,
            api_key,
        }
    }

    pub(crate) async fn post(
        &self,
        body: impl Into<Body>,
        content_type: Option<&str>,
        origin: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut req = Request::post("/v1/events");
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        let response = self
            .app
            .clone()
            .oneshot(req.body(body.into()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let json = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, json)
    }

    pub(crate) async fn post_json(&self, body: &Value) -> (StatusCode, Value) {
        self.post(body.to_string(), Some("application/json"), None)
            .await
    }

    /// Counts rows straight from the SQLite file, through a connection of the test's own.
    pub(crate) fn count(&self, table: &str) -> i64 {
        count_rows(self.dir.path(), table)
    }
}

pub(crate) fn count_rows(data_dir: &Path, table: &str) -> i64 {
    let conn = rusqlite::Connection::open(data_dir.join(ingest::store::DB_FILE)).unwrap();
    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

/// Fails naming the file and the text when any file in `data_dir`, or in a folder within
/// it (the engines' snapshots), holds one of `needles`.
pub(crate) fn assert_no_file_holds(data_dir: &Path, needles: &[&str]) {
    for entry in std::fs::read_dir(data_dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            assert_no_file_holds(&path, needles);
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        for needle in needles {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{} holds {needle}",
                path.display()
            );
        }
    }
}

pub(crate) fn fixture(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../schema/fixtures")
        .join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

pub(crate) fn event(id: &str, client_ref: &str) -> Value {
    serde_json::json!({
        "client_key": CLIENT_KEY, "event_id": id, "created_at": "2026-11-28T14:00:00.000Z",
        "event_type": "instrument", "action": "viewed",
        "related_entities": [{"type": "ticker", "id": "AAPL"}],
        "channel_meta": {"session_id": "sess-1", "client_ref": client_ref}
    })
}
