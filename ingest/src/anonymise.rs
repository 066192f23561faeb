//! De-identification before anything is written: `client_ref`, `session_id` and the visitor
//! id become keyed pseudonyms under the tenant's key, so the raw values never reach the log.

use schema::{Event, Timestamp};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::pseudonym::{Kind, pseudonymise};
use crate::routes::event_time;
use crate::store::{StoredEvent, Tenant};

/// The log's form of a valid event.
pub(crate) fn anonymise(
    tenant: &Tenant,
    event: &Event,
    sent_at: Option<Timestamp>,
    received_at: i64,
) -> StoredEvent {
    let key = &tenant.pseudonym_key;
    let cm = &event.channel_meta;
    let user_id = cm
        .client_ref
        .as_deref()
        .map(|r| pseudonymise(key, Kind::ClientRef, r));
    let session_id = pseudonymise(key, Kind::Session, &cm.session_id);
    let anonymous_id = cm
        .anonymous_id
        .as_deref()
        .map(|a| pseudonymise(key, Kind::Visitor, a));
    let event_time = event_time(event.created_at, sent_at, received_at);
    let payload = json!({
        "event_id": event.event_id,
        "event_time": Timestamp(event_time),
        "created_at": event.created_at,
        "received_at": Timestamp(received_at),
        "event_type": event.event_type,
        "action": event.action,
        "event_meta": event.event_meta,
        "related_entities": event.related_entities,
        "channel_meta": { "session_id": session_id, "user_id": user_id, "anonymous_id": anonymous_id },
    });
    StoredEvent {
        event_id: event.event_id.clone(),
        event_type: event.event_type.clone(),
        action: event.action.clone(),
        event_time,
        created_at: event.created_at.0,
        sent_at: sent_at.map(|t| t.0),
        user_id,
        session_id,
        payload: payload.to_string(),
    }
}

/// A rejected event as kept in the failed-events table: as sent, except that identifiers in
/// `channel_meta` that are strings are pseudonymised like those of valid events.
pub(crate) fn anonymise_failed(tenant: &Tenant, raw: &RawValue) -> String {
    let Ok(mut value) = serde_json::from_str::<Value>(raw.get()) else {
        return raw.get().to_owned();
    };
    if let Some(Value::Object(cm)) = value.get_mut("channel_meta") {
        for (field, kind) in [
            ("client_ref", Kind::ClientRef),
            ("session_id", Kind::Session),
            ("anonymous_id", Kind::Visitor),
        ] {
            if let Some(Value::String(s)) = cm.get_mut(field) {
                *s = pseudonymise(&tenant.pseudonym_key, kind, s);
            } else if cm.contains_key(field) {
                cm.insert(field.to_owned(), Value::Null);
            }
        }
    }
    value.to_string()
}
