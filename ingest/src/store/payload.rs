//! The log's JSON of an event (the `payload` column), one type both ways: `anonymise` writes
//! it, and an engine rebuilt from the log reads it back (`datasets::Input::from_stored`), so
//! what is written is what is read by construction. Keys in alphabetical order, the order the
//! log has always had. Strings borrow from what they are written from or read from, where
//! they can.

use std::borrow::Cow;

use schema::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::StoredEvent;
use crate::datasets::Input;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payload<'a> {
    #[serde(borrow)]
    pub action: Cow<'a, str>,
    #[serde(borrow)]
    pub channel_meta: PayloadChannel<'a>,
    /// What the user agent is reduced to.
    #[serde(borrow, default)]
    pub context: Context<'a>,
    /// By the device's clock.
    #[serde(default)]
    pub created_at: Timestamp,
    #[serde(borrow)]
    pub event_id: Cow<'a, str>,
    pub event_meta: Cow<'a, Map<String, Value>>,
    /// `created_at` corrected for the device's clock skew.
    pub event_time: Timestamp,
    #[serde(borrow)]
    pub event_type: Cow<'a, str>,
    #[serde(default)]
    pub received_at: Timestamp,
    #[serde(borrow)]
    pub related_entities: Vec<PayloadEntity<'a>>,
    /// When the batch left the device, by its clock (with `created_at`, what `event_time`
    /// was corrected by).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<Timestamp>,
}

/// `channel_meta`, its identifiers pseudonymised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PayloadChannel<'a> {
    #[serde(borrow)]
    pub anonymous_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub session_id: Cow<'a, str>,
    /// The pseudonym of `client_ref`; none for an anonymous event.
    #[serde(borrow)]
    pub user_id: Option<Cow<'a, str>>,
}

/// The user agent's families.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Context<'a> {
    #[serde(borrow)]
    pub browser: Cow<'a, str>,
    #[serde(borrow)]
    pub device: Cow<'a, str>,
    #[serde(borrow)]
    pub os: Cow<'a, str>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PayloadEntity<'a> {
    #[serde(borrow)]
    pub id: Cow<'a, str>,
    #[serde(borrow, rename = "type")]
    pub kind: Cow<'a, str>,
}

impl Payload<'_> {
    /// The JSON the log stores.
    pub fn to_json(&self) -> String {
        // Sized for a typical event, so the buffer seldom grows while it is written.
        let mut json = Vec::with_capacity(640);
        serde_json::to_writer(&mut json, self).expect("a payload of strings, numbers and maps");
        String::from_utf8(json).expect("serde_json writes UTF-8")
    }
}

impl Payload<'_> {
    /// What the datasets read of the event.
    pub fn input(&self) -> Input {
        let cm = &self.channel_meta;
        let user_id = cm.user_id.as_deref().unwrap_or(&cm.session_id);
        let mut input = Input::new(
            &self.event_id,
            self.event_time.0,
            user_id,
            &cm.session_id,
            &self.event_type,
            &self.action,
        )
        .with_meta(&self.event_meta);
        for e in &self.related_entities {
            input = input.with_entity(&e.kind, &e.id);
        }
        input
    }
}

impl<'a> Payload<'a> {
    /// A payload as the log stores it, borrowing its strings from `json` where it can.
    pub fn parse(json: &'a str) -> Result<Payload<'a>, serde_json::Error> {
        serde_json::from_str(json)
    }

    /// The log's JSON of an event read back as the event to store (a copy of the log: a
    /// cluster's sink, a node's replica), with the payload for what else is wanted of it.
    pub fn stored(json: &'a str) -> Result<(StoredEvent, Payload<'a>), serde_json::Error> {
        let payload = Payload::parse(json)?;
        let event = StoredEvent {
            event_id: payload.event_id.to_string(),
            event_time: payload.event_time.0,
            user_id: payload.channel_meta.user_id.as_deref().map(str::to_owned),
            payload: json.to_owned(),
        };
        Ok((event, payload))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A payload as the log has stored them (written by the code before this type).
    const STORED: &str = r#"{"action":"viewed","channel_meta":{"anonymous_id":null,"session_id":"s\"1","user_id":"u1"},"context":{"browser":"Firefox","device":"desktop","os":"Linux"},"created_at":"2026-11-28T14:00:00Z","event_id":"e1","event_meta":{"impression_id":"imp-1","position":2},"event_time":"2026-11-28T14:00:01.500Z","event_type":"recommendation","received_at":"2026-11-28T14:00:02Z","related_entities":[{"id":"AAPL","type":"ticker"}]}"#;

    #[test]
    fn what_the_log_holds_reads_back_and_writes_out_the_same() {
        let payload = Payload::parse(STORED).unwrap();
        assert_eq!(payload.to_json(), STORED);
        let input = payload.input();
        assert_eq!(
            (input.user_id.as_str(), input.session_id.as_str()),
            ("u1", "s\"1")
        );
        assert_eq!(input.ts, 1_795_874_401_500);
        assert_eq!(input.impression_id.as_deref(), Some("imp-1"));
        assert_eq!(input.position, Some(2));
        assert_eq!(input.entities[0].id, "AAPL");
    }

    #[test]
    fn an_anonymous_event_counts_for_its_session_and_older_fields_may_be_missing() {
        let stored = r#"{"action":"viewed","channel_meta":{"anonymous_id":"v1","session_id":"s1","user_id":null},"event_id":"e1","event_meta":{},"event_time":"2026-11-28T14:00:00Z","event_type":"instrument","related_entities":[]}"#;
        let input = Payload::parse(stored).unwrap().input();
        assert_eq!(input.user_id, "s1");
        assert!(Payload::parse(r#"{"action":"viewed"}"#).is_err());
    }
}
