//! The shared payload fixtures under `schema/fixtures/`, which the JS tests post to a real
//! ingest as well.

use std::path::{Path, PathBuf};

use schema::{Event, EventError, parse_batch};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn valid_batches_are_accepted_whole() {
    let mut seen = 0;
    for entry in std::fs::read_dir(fixtures().join("valid")).unwrap() {
        let path = entry.unwrap().path();
        let body = read(&path);
        let batch =
            parse_batch(body.as_bytes()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(batch.client_key().unwrap(), "pk_fixture");
        for raw in &batch.events {
            Event::from_raw(raw).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
        seen += 1;
    }
    assert!(seen >= 3, "only {seen} valid fixtures found");
}

#[test]
fn invalid_events_are_rejected_naming_the_rule_and_field() {
    let cases: Vec<Value> =
        serde_json::from_str(&read(&fixtures().join("invalid/events.json"))).unwrap();
    assert!(cases.len() > 20);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let raw = serde_json::value::to_raw_value(&case["event"]).unwrap();
        let err: EventError = match Event::from_raw(&raw) {
            Ok(_) => panic!("{name}: accepted"),
            Err(e) => e,
        };
        assert_eq!(err.code(), case["error"].as_str().unwrap(), "{name}: {err}");
        if let Some(field) = case["field"].as_str() {
            assert!(
                err.to_string().contains(&format!("`{field}`")),
                "{name}: {err} does not name `{field}`"
            );
        }
    }
}

#[test]
fn invalid_batches_are_refused_whole() {
    let cases: Vec<Value> =
        serde_json::from_str(&read(&fixtures().join("invalid/batches.json"))).unwrap();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let body = case["body"].as_str().unwrap();
        let expected = case["error"].as_str().unwrap();
        let code = match parse_batch(body.as_bytes()) {
            Err(e) => e.code(),
            Ok(batch) => match batch.client_key() {
                Err(e) => e.code(),
                Ok(_) => panic!("{name}: accepted"),
            },
        };
        assert_eq!(code, expected, "{name}");
    }
}

#[test]
fn invalid_utf8_and_oversize_bodies_are_refused() {
    let err = parse_batch(b"{\"events\":[\"\xff\"]}").unwrap_err();
    assert_eq!(err.code(), "malformed_body");
    let huge = vec![b' '; schema::limits::MAX_BODY_BYTES + 1];
    let err = parse_batch(&huge).unwrap_err();
    assert_eq!(err.code(), "body_too_large");
    assert!(
        err.to_string()
            .contains(&schema::limits::MAX_BODY_BYTES.to_string())
    );
}

#[test]
fn dataset_fixtures_are_valid_wire_events() {
    for name in ["fixture_a.jsonl", "fixture_b.jsonl"] {
        let text = read(&fixtures().join("datasets").join(name));
        for (i, line) in text.lines().enumerate() {
            let raw: Box<serde_json::value::RawValue> = serde_json::from_str(line).unwrap();
            Event::from_raw(&raw).unwrap_or_else(|e| panic!("{name}:{}: {e}", i + 1));
        }
    }
}

#[test]
fn a_valid_event_survives_a_round_trip() {
    let body = read(&fixtures().join("valid/design-example.json"));
    let batch = parse_batch(body.as_bytes()).unwrap();
    let event = Event::from_raw(batch.events[0]).unwrap();
    let again = Event::from_value(serde_json::to_value(&event).unwrap()).unwrap();
    assert_eq!(event, again);
    assert_eq!(event.created_at.to_rfc3339(), "2026-11-28T14:00:00.123Z");
    assert_eq!(batch.sent_at.unwrap().0 - event.created_at.0, 877);
}

#[test]
fn generated_typescript_is_fresh() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../js-wrapper/src/wire.ts");
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == schema::typescript::declarations(),
        "{} is stale: run `cargo xtask gen-types`",
        path.display()
    );
}
