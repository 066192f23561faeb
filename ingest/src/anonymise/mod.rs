//! De-identification before anything is written: `client_ref`, `session_id` and the visitor
//! id become keyed pseudonyms under the tenant's key; URLs lose their query strings and
//! fragments; free text in `event_meta` is scrubbed of personal data; the user agent is
//! reduced to families. The IP address is never read here at all.

pub mod keyring;
pub mod pii;
pub mod pseudonym;
pub mod url;
pub mod user_agent;
pub mod vault;

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::Regex;
use schema::{Event, Timestamp};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use self::pseudonym::{Kind, Pseudonymiser, pseudonymise};
use self::user_agent::Agent;
use crate::datasets::Input;
use crate::store::{Context, Payload, PayloadChannel, PayloadEntity, StoredEvent};

/// When an event was sent (its batch's `sent_at`), received, and happened: the event time
/// the pipeline derives from the three (`pipeline::event_time`). Milliseconds since the epoch.
#[derive(Debug, Clone, Copy)]
pub struct Times {
    pub sent_at: Option<Timestamp>,
    pub received_at: i64,
    pub event_time: i64,
}

/// The log's form of a valid event, and what the datasets engine reads of it; takes the
/// event by value so its `event_meta` is cleaned in place rather than copied first.
pub fn anonymise(
    pseudonyms: &mut Pseudonymiser,
    mut event: Event,
    agent: Agent,
    times: Times,
) -> (StoredEvent, Input) {
    let Times {
        sent_at,
        received_at,
        event_time,
    } = times;
    let cm = &event.channel_meta;
    let user_id = cm
        .client_ref
        .as_deref()
        .map(|r| pseudonyms.get(Kind::ClientRef, r));
    let session_id = pseudonyms.get(Kind::Session, &cm.session_id);
    let anonymous_id = cm
        .anonymous_id
        .as_deref()
        .map(|a| pseudonyms.get(Kind::Visitor, a));
    let meta = clean_meta(&event.event_type, std::mem::take(&mut event.event_meta));
    // An entity whose id holds personal data is left out of the log, and so of every
    // dataset: scrubbed, it would trend as `[email]`. (An id is checked as ids are: for
    // emails, secrets and IBANs, never taking a long numeric id for a card.)
    event
        .related_entities
        .retain(|e| !matches!(pii::scrub_id(&e.id), Cow::Owned(s) if s != e.id));
    let mut input = Input::new(
        &event.event_id,
        event_time,
        user_id.as_deref().unwrap_or(&session_id),
        &session_id,
        &event.event_type,
        &event.action,
    )
    .with_meta(&meta);
    for e in &event.related_entities {
        input = input.with_entity(&e.kind, &e.id);
    }
    let payload = Payload {
        action: event.action.as_str().into(),
        channel_meta: PayloadChannel {
            anonymous_id: anonymous_id.as_deref().map(Cow::Borrowed),
            session_id: session_id.as_str().into(),
            user_id: user_id.as_deref().map(Cow::Borrowed),
        },
        context: Context {
            browser: agent.browser.into(),
            device: agent.device.into(),
            os: agent.os.into(),
        },
        created_at: event.created_at,
        event_id: event.event_id.as_str().into(),
        event_meta: Cow::Borrowed(&meta),
        event_time: Timestamp(event_time),
        event_type: event.event_type.as_str().into(),
        received_at: Timestamp(received_at),
        related_entities: event
            .related_entities
            .iter()
            .map(|e| PayloadEntity {
                id: e.id.as_str().into(),
                kind: e.kind.as_str().into(),
            })
            .collect(),
        sent_at,
    }
    .to_json();
    let stored = StoredEvent {
        event_id: event.event_id,
        event_time,
        user_id,
        payload,
    };
    (stored, input)
}

/// A rejected event as kept in the failed-events table, de-identified like a valid one:
/// identifiers in `channel_meta` pseudonymised, `event_meta` cleaned, and every other string
/// and key scrubbed, since a rejected event's fields passed no rule. An event that cannot be
/// read back as JSON (a number past f64's range, nesting past serde_json's limit) keeps only
/// its size: its text may hold anything. The row's error code and message say the rest.
pub fn anonymise_failed(pseudonyms: &mut Pseudonymiser, raw: &RawValue) -> String {
    let Ok(mut value) = serde_json::from_str::<Value>(raw.get()) else {
        return serde_json::json!({ "unreadable": true, "bytes": raw.get().len() }).to_string();
    };
    let Value::Object(event) = &mut value else {
        clean_value(&mut value, false);
        return value.to_string();
    };
    clean_keys(event);
    let event_type = match event.get("event_type") {
        Some(Value::String(t)) => t.clone(),
        _ => String::new(),
    };
    // An identifier is pseudonymised wherever a broken event put it (an unknown field at the
    // top is what made some fail), and anything else that may hold one is dropped.
    let mut identifiers = |field: &str, value: &mut Value| {
        let kind = match field {
            "client_ref" => Kind::ClientRef,
            "session_id" => Kind::Session,
            "anonymous_id" => Kind::Visitor,
            _ => return false,
        };
        *value = match value {
            Value::String(s) => Value::String(pseudonyms.get(kind, s)),
            _ => Value::Null,
        };
        true
    };
    for (field, value) in event.iter_mut() {
        if identifiers(field, value) {
            continue;
        }
        match (field.as_str(), value) {
            ("channel_meta", Value::Object(cm)) => {
                clean_keys(cm);
                for (field, value) in cm.iter_mut() {
                    if !identifiers(field, value) {
                        clean_value(value, false);
                    }
                }
            }
            ("channel_meta", other) => *other = Value::Null,
            ("event_meta", Value::Object(meta)) => {
                *meta = clean_meta(&event_type, std::mem::take(meta));
            }
            ("event_id", Value::String(id)) => {
                if let Cow::Owned(clean) = pii::scrub_id(id) {
                    *id = clean;
                }
            }
            (_, value) => clean_value(value, false),
        }
    }
    value.to_string()
}

/// The message of a rejected event's error, as kept: it names fields by their paths, and a
/// key of `event_meta` or an unknown field's name may itself be personal data.
pub fn failed_message(message: &str) -> String {
    pii::scrub(message).into_owned()
}

/// Every pseudonym `client_ref` has had for the tenant, one per key version, so erasure finds
/// events written before a key rotation too.
pub fn user_ids(
    keyring: &keyring::Keyring,
    tenant: &crate::store::Tenant,
    client_ref: &str,
) -> Vec<String> {
    (1..=tenant.key_version)
        .map(|v| {
            pseudonymise(
                &keyring.tenant_key_version(&tenant.client_key, v),
                Kind::ClientRef,
                client_ref,
            )
        })
        .collect()
}

/// Ids the platform mints or the UI echoes (impression ids, content ids) may be long random
/// tokens or digit runs; they are still scrubbed of emails and recognisable secrets, but not
/// mistaken for card numbers, phone numbers or secrets (see `pii::scrub_id`).
const ID_KEYS: [&str; 4] = ["impression_id", "fxcid", "request_id", "content_id"];

/// Search queries shaped like personal data (as `docs/datasets.md` §4.3 defines them) are dropped
/// whole rather than scrubbed: a half-scrubbed query still trends as a string.
static PII_QUERY: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\d{6,}|@").expect("valid pattern"));

fn clean_meta(event_type: &str, mut meta: Map<String, Value>) -> Map<String, Value> {
    if event_type == "search"
        && let Some(Value::String(q)) = meta.get("query")
        && (PII_QUERY.is_match(q) || pii::contains_pii(q))
    {
        meta.remove("query");
        meta.insert("query_dropped".into(), Value::Bool(true));
    }
    clean_keys(&mut meta);
    for (key, value) in meta.iter_mut() {
        clean_value(value, ID_KEYS.contains(&key.as_str()));
    }
    meta
}

fn clean_value(value: &mut Value, is_id: bool) {
    match value {
        Value::String(s) => {
            let stripped = url::strip(s);
            let scrubbed = if is_id {
                pii::scrub_id(&stripped)
            } else {
                pii::scrub(&stripped)
            };
            if scrubbed != s.as_str() {
                *s = scrubbed.into_owned();
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| clean_value(v, false)),
        Value::Object(obj) => {
            clean_keys(obj);
            obj.values_mut().for_each(|v| clean_value(v, false));
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// The object with its keys scrubbed: a UI may key a map by whatever it holds, an email
/// included. Rebuilt only when a key needs it, which is seldom.
fn clean_keys(object: &mut Map<String, Value>) {
    if !object.keys().any(|k| pii::contains_pii(k)) {
        return;
    }
    *object = std::mem::take(object)
        .into_iter()
        .map(|(k, v)| (pii::scrub(&k).into_owned(), v))
        .collect();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(json: &str) -> Event {
        Event::from_raw(&RawValue::from_string(json.to_owned()).unwrap()).unwrap()
    }

    #[test]
    fn the_logs_payload_gives_back_the_datasets_input() {
        let raw = r#"{"client_key":"pk","event_id":"e-1","created_at":"2026-11-28T14:00:00.123Z",
            "event_type":"recommendation","action":"clicked",
            "event_meta":{"impression_id":"imp-1","position":2,"page":"/x?utm_source=a&acct=7",
                "note":"mail jane@example.com"},
            "related_entities":[{"type":"ticker","id":"AAPL"},{"type":"ticker","id":"MSFT"}],
            "channel_meta":{"session_id":"s-1","client_ref":"u-1","anonymous_id":"v-1"}}"#;
        let agent = user_agent::reduce("Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0");
        let mut pseudonyms = Pseudonymiser::new(b"key");
        let sent_at = Some(Timestamp(1_795_874_401_000));
        let times = Times {
            sent_at,
            received_at: 1_795_874_402_000,
            event_time: 1_795_874_401_123,
        };
        let (stored, input) = anonymise(&mut pseudonyms, event(raw), agent, times);
        assert_eq!(Payload::parse(&stored.payload).unwrap().input(), input);
        let payload: Value = serde_json::from_str(&stored.payload).unwrap();
        let keys: Vec<&str> = payload
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "action",
                "channel_meta",
                "context",
                "created_at",
                "event_id",
                "event_meta",
                "event_time",
                "event_type",
                "received_at",
                "related_entities",
                "sent_at"
            ]
        );
        // The stored text keeps that order too, and holds no identifier as it was sent.
        let at = |key: &str| stored.payload.find(&format!("\"{key}\"")).unwrap();
        assert!(at("action") < at("channel_meta") && at("related_entities") < at("sent_at"));
        for original in ["u-1", "s-1", "v-1", "jane@example.com", "acct=7"] {
            assert!(
                !stored.payload.contains(original),
                "{original} in {}",
                stored.payload
            );
        }
        assert_eq!(payload["sent_at"], "2026-11-28T14:00:01Z");
        assert_eq!(payload["event_time"], "2026-11-28T14:00:01.123Z");
        assert_eq!(payload["event_meta"]["page"], "/x?utm_source=a");
        assert_eq!(
            stored.user_id.as_deref(),
            payload["channel_meta"]["user_id"].as_str()
        );
    }
}
