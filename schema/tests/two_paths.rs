//! `Event::from_raw` reads a well-formed event straight into its fields and any other through
//! `Event::from_value`; both must give the same answer for every event, valid or not. This
//! compares them over the fixtures and over every event that changes one or two fields of a
//! valid one to something else (so that where two rules fail, both paths name the same one).

use schema::Event;
use schema::limits::MAX_ENTITIES;
use serde_json::{Value, json};

fn base() -> Value {
    json!({
        "client_key": "pk_fixture",
        "event_id": "e-1",
        "created_at": "2026-11-28T14:00:00.123Z",
        "event_type": "instrument",
        "action": "viewed",
        "event_meta": { "page": "/stocks/AAPL", "nested": { "list": [1, "two", null] } },
        "related_entities": [{ "type": "ticker", "id": "AAPL" }],
        "channel_meta": { "session_id": "s-1", "client_ref": "user-1", "anonymous_id": "v-1" }
    })
}

/// Values a field may be changed to: right and wrong ones of every kind.
fn replacements() -> Vec<Option<Value>> {
    let entities: Vec<Value> = (0..=MAX_ENTITIES)
        .map(|i| json!({ "type": "ticker", "id": format!("T{i}") }))
        .collect();
    let mut deep = json!("leaf");
    for _ in 0..12 {
        deep = json!({ "d": deep });
    }
    [
        None,
        Some(Value::Null),
        Some(json!("")),
        Some(json!("ok")),
        Some(json!("has space")),
        Some(json!("Not_Snake")),
        Some(json!("x".repeat(300))),
        Some(json!(7)),
        Some(json!(true)),
        Some(json!([])),
        Some(json!({})),
        Some(json!("2026-13-40T00:00:00Z")),
        Some(json!({ "k": "v", "": 1 })),
        Some(json!({ "k": deep })),
        Some(json!([{ "type": "ticker" }])),
        Some(json!([{ "type": "Ticker", "id": "A" }])),
        Some(json!([{ "type": "ticker", "id": "A", "extra": 1 }])),
        Some(json!(["ticker"])),
        Some(json!([["ticker", "AAPL"]])),
        Some(json!(["s-1", "user-1"])),
        Some(Value::Array(entities)),
        Some(json!({ "session_id": "s" })),
        Some(json!({ "session_id": "s", "client_ref": "" })),
        Some(json!({ "session_id": "s", "anonymous_id": 5 })),
        Some(json!({ "session_id": "s", "other": 1 })),
    ]
    .into()
}

/// Asserts that `from_raw` and `from_value` (after `from_raw`'s size check, which
/// `from_value` leaves to its caller) answer alike; returns whether the event is valid.
fn agree(event: &Value) -> bool {
    let raw = serde_json::value::to_raw_value(event).unwrap();
    let fast = Event::from_raw(&raw);
    let slow = match Event::from_raw(&raw) {
        Err(e @ schema::EventError::TooLarge { .. }) => Err(e),
        _ => Event::from_value(event.clone()),
    };
    let show = |r: &Result<Event, schema::EventError>| match r {
        Ok(e) => format!("ok {e:?}"),
        Err(e) => format!("{}: {e}", e.code()),
    };
    let (a, b) = (show(&fast), show(&slow));
    if a != b {
        let event = event.to_string();
        panic!(
            "from_raw: {:.300}\nfrom_value: {:.300}\nevent: {:.300}",
            a, b, event
        );
    }
    fast.is_ok()
}

#[test]
fn both_paths_agree_on_every_changed_event() {
    let fields: Vec<String> = base()
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .chain(["unknown".to_owned(), "channel_meta.session_id".to_owned()])
        .collect();
    // False where the field's object is gone (`channel_meta.session_id` of an event whose
    // `channel_meta` was changed to something else).
    let set = |event: &mut Value, field: &str, value: &Option<Value>| {
        let (obj, key) = match field.split_once('.') {
            Some((outer, inner)) => (&mut event[outer], inner),
            None => (&mut *event, field),
        };
        let Some(obj) = obj.as_object_mut() else {
            return false;
        };
        match value {
            Some(v) => obj.insert(key.to_owned(), v.clone()),
            None => obj.remove(key),
        };
        true
    };
    let values = replacements();
    let (mut compared, mut valid) = (0, 0);
    for (i, a) in fields.iter().enumerate() {
        for va in &values {
            for b in &fields[i..] {
                for vb in values.iter().step_by(if a == b { usize::MAX } else { 3 }) {
                    let mut event = base();
                    if !set(&mut event, a, va) || (a != b && !set(&mut event, b, vb)) {
                        continue;
                    }
                    valid += usize::from(agree(&event));
                    compared += 1;
                }
            }
        }
    }
    assert!(
        compared > 1000 && valid > 20,
        "{compared} compared, {valid} valid"
    );
}

#[test]
fn both_paths_agree_on_the_fixtures() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let invalid: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("invalid/events.json")).unwrap())
            .unwrap();
    let mut events: Vec<Value> = invalid.iter().map(|c| c["event"].clone()).collect();
    for entry in std::fs::read_dir(dir.join("valid")).unwrap() {
        let body: Value =
            serde_json::from_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap()).unwrap();
        events.extend(body["events"].as_array().unwrap().iter().cloned());
    }
    // Whole events that are not objects, among them one that is a valid event's values in
    // its fields' order.
    let values: Vec<Value> = base().as_object().unwrap().values().cloned().collect();
    events.extend([Value::Array(values), json!("event"), json!(7), Value::Null]);
    for event in &events {
        agree(event);
    }
    assert!(events.len() > 25);
}
