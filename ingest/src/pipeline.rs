//! One batch's way from the wire to the log, whoever delivers it: each event validated
//! against wire format v1 and its batch's client key, then anonymised (see `anonymise`) into
//! its stored form and what the datasets read of it, or kept de-identified as a failed event
//! with the reason it was refused. The HTTP handler (`routes::events`), `ingest replay` and
//! the fuzz target all go through here; what comes out is handed to a [`Sink`].
//!
//! ```text
//! raw events ──validate──► Event ──anonymise──► StoredEvent + datasets Input (+ vault entry)
//!      └──────────────────► Rejected + FailedEvent (de-identified)
//! Processed { write, rejected } ──► Sink::write ──► WriteOutcome (stored or duplicate, per event)
//! ```

use std::future::Future;
use std::pin::Pin;

use schema::{Event, EventError, Timestamp, peek_str};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::anonymise::pseudonym::Pseudonymiser;
use crate::anonymise::user_agent::Agent;
use crate::anonymise::vault::Vault;
use crate::anonymise::{Times, anonymise, anonymise_failed, failed_message};
use crate::datasets::Input;
use crate::store::{FailedEvent, Sealed, Store, StoredEvent, Write, WriteOutcome};

/// An event of a batch that was refused, as the answer to the batch reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rejected {
    /// Its position in the batch.
    pub index: usize,
    pub event_id: Option<String>,
    /// A stable code, as [`EventError::code`].
    pub error: &'static str,
    pub message: String,
}

/// A batch once through the pipeline: what the sink is to store, and the events refused.
#[derive(Debug)]
pub struct Processed {
    pub write: Write,
    pub rejected: Vec<Rejected>,
}

/// A valid event in its anonymised forms.
#[derive(Debug)]
pub struct Anonymised {
    pub stored: StoredEvent,
    pub input: Input,
    /// The user's `client_ref` sealed under the vault's key, when the vault is on.
    pub sealed: Option<Sealed>,
}

/// The anonymisation state of one tenant's batch: its pseudonymisation key (with a cache of
/// the pseudonyms made), its identity vault if on, the sender's reduced user agent, and the
/// time the batch was received.
pub struct Pipeline {
    pseudonyms: Pseudonymiser,
    vault: Option<Vault>,
    /// The users sealed into the vault so far: one entry per user and batch.
    sealed: Vec<String>,
    agent: Agent,
    received_at: i64,
}

impl Pipeline {
    pub fn new(tenant_key: &[u8; 32], agent: Agent, received_at: i64) -> Pipeline {
        Pipeline {
            pseudonyms: Pseudonymiser::new(tenant_key),
            vault: None,
            sealed: Vec::new(),
            agent,
            received_at,
        }
    }

    /// Seals each user's `client_ref` into the identity vault as well.
    pub fn with_vault(mut self, vault: Option<Vault>) -> Pipeline {
        self.vault = vault;
        self
    }

    /// An event as the wire format reads it, refused unless it is of `client_key`.
    pub fn validate(raw: &RawValue, client_key: &str) -> Result<Event, EventError> {
        let event = Event::from_raw(raw)?;
        if event.client_key != client_key {
            return Err(EventError::ClientKeyMismatch);
        }
        Ok(event)
    }

    /// A valid event's stored form, its datasets input and its vault entry (none for a user
    /// this pipeline has sealed already); `sent_at` is the batch's, which corrects the device's
    /// clock (see [`event_time`]).
    pub fn anonymise(&mut self, event: Event, sent_at: Option<Timestamp>) -> Anonymised {
        let client_ref = self
            .vault
            .as_ref()
            .and_then(|_| event.channel_meta.client_ref.clone());
        let times = Times {
            sent_at,
            received_at: self.received_at,
            event_time: event_time(event.created_at, sent_at, self.received_at),
        };
        let (stored, input) = anonymise(&mut self.pseudonyms, event, self.agent, times);
        let sealed = match (&self.vault, &stored.user_id, &client_ref) {
            (Some(vault), Some(user_id), Some(client_ref)) if !self.sealed.contains(user_id) => {
                self.sealed.push(user_id.clone());
                Some(vault.seal(user_id, client_ref))
            }
            _ => None,
        };
        Anonymised {
            stored,
            input,
            sealed,
        }
    }

    /// A refused event as the failed-events table keeps it: de-identified, with its reason.
    pub fn failed(&mut self, raw: &RawValue, error: &EventError) -> FailedEvent {
        FailedEvent {
            error: error.code().to_owned(),
            message: failed_message(&error.to_string()),
            payload: anonymise_failed(&mut self.pseudonyms, raw),
        }
    }

    /// Every event of one batch of `client_key`, which is tenant `tenant_id`'s.
    pub fn batch(
        &mut self,
        tenant_id: i64,
        client_key: &str,
        sent_at: Option<Timestamp>,
        events: &[&RawValue],
    ) -> Processed {
        let mut write = Write {
            tenant_id,
            received_at: self.received_at,
            events: Vec::with_capacity(events.len()),
            failed: Vec::new(),
            vault: Vec::new(),
            inputs: Vec::with_capacity(events.len()),
        };
        let mut rejected = Vec::new();
        for (index, raw) in events.iter().enumerate() {
            match Pipeline::validate(raw, client_key) {
                Ok(event) => {
                    let a = self.anonymise(event, sent_at);
                    write.vault.extend(a.sealed);
                    write.events.push(a.stored);
                    write.inputs.push(a.input);
                }
                Err(e) => {
                    write.failed.push(self.failed(raw, &e));
                    rejected.push(Rejected {
                        index,
                        event_id: peek_str(raw, "event_id"),
                        error: e.code(),
                        message: e.to_string(),
                    });
                }
            }
        }
        Processed { write, rejected }
    }
}

/// The event time, corrected for the device's clock skew as Snowplow derives it:
/// `received_at − (sent_at − created_at)`. Without `sent_at`, the device's own time. A
/// device whose clock is absurd still gets a time RFC 3339 can write.
pub fn event_time(created_at: Timestamp, sent_at: Option<Timestamp>, received_at: i64) -> i64 {
    match sent_at {
        Some(sent) => {
            let skew = sent.0.saturating_sub(created_at.0);
            Timestamp::saturating(received_at.saturating_sub(skew)).0
        }
        None => created_at.0,
    }
}

/// Why a sink could not take a write; the batch is answered 503 and the tracker retries it.
pub type SinkError = Box<dyn std::error::Error + Send + Sync>;

/// What a sink's write resolves to.
pub type SinkFuture<'a> =
    Pin<Box<dyn Future<Output = Result<WriteOutcome, SinkError>> + Send + 'a>>;

/// Where processed batches go, durably, before the batch is answered: the embedded SQLite log
/// (the [`Store`]) on one machine. A sink answers per event whether it was stored or a
/// duplicate of one stored before (by `(tenant, event_id)`), and makes each newly stored
/// event's datasets input reach the datasets, in the order it stored them.
pub trait Sink: Send + Sync {
    fn write(&self, write: Write) -> SinkFuture<'_>;
}

impl Sink for Store {
    fn write(&self, write: Write) -> SinkFuture<'_> {
        Box::pin(async move { Store::write(self, write).await.map_err(SinkError::from) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(json: &str) -> Box<RawValue> {
        RawValue::from_string(json.to_owned()).unwrap()
    }

    fn event(id: &str, client_key: &str, client_ref: &str) -> Box<RawValue> {
        raw(&format!(
            r#"{{"client_key":"{client_key}","event_id":"{id}","event_type":"page","action":"view",
               "created_at":"2025-01-06T12:00:00Z","event_meta":{{}},"related_entities":[],
               "channel_meta":{{"session_id":"s1","client_ref":"{client_ref}"}}}}"#
        ))
    }

    #[test]
    fn a_batch_splits_into_stored_and_refused_events_in_order() {
        let events = [
            event("e1", "pk_a", "alice@example.com"),
            raw(r#"{"client_key":"pk_a","event_id":"e2"}"#),
            event("e3", "pk_b", "bob"),
            event("e4", "pk_a", "alice@example.com"),
        ];
        let events: Vec<&RawValue> = events.iter().map(|e| &**e).collect();
        let mut pipeline = Pipeline::new(
            &[7; 32],
            crate::anonymise::user_agent::reduce(""),
            1_736_165_000_000,
        )
        .with_vault(Some(Vault::new(&[9; 32])));
        let Processed { write, rejected } = pipeline.batch(3, "pk_a", None, &events);
        assert_eq!(write.tenant_id, 3);
        let ids: Vec<&str> = write.events.iter().map(|e| e.event_id.as_str()).collect();
        assert_eq!(ids, ["e1", "e4"]);
        assert_eq!(write.inputs.len(), 2);
        assert_eq!(write.inputs[1].event_id, "e4");
        // Pseudonymised, never the client_ref itself; one vault entry for the one user.
        let user = write.events[0].user_id.as_deref().unwrap();
        assert!(!write.events[0].payload.contains("alice"));
        assert_eq!(write.events[1].user_id.as_deref(), Some(user));
        assert_eq!(write.vault.len(), 1);
        assert_eq!(write.vault[0].user_id, user);
        let refused: Vec<(usize, Option<&str>, &str)> = rejected
            .iter()
            .map(|r| (r.index, r.event_id.as_deref(), r.error))
            .collect();
        assert_eq!(
            refused,
            [
                (1, Some("e2"), "missing_field"),
                (2, Some("e3"), "client_key_mismatch")
            ]
        );
        assert_eq!(write.failed.len(), 2);
        assert!(write.failed.iter().all(|f| !f.payload.contains("bob")));
    }

    #[test]
    fn event_time_corrects_the_devices_clock_by_the_batchs_sent_at() {
        let t = |ms| Timestamp(ms);
        assert_eq!(event_time(t(1_000), Some(t(1_500)), 10_000), 9_500);
        assert_eq!(event_time(t(1_000), None, 10_000), 1_000);
        assert_eq!(
            event_time(t(i64::MIN), Some(t(i64::MAX)), 0),
            Timestamp::MIN.0
        );
    }

    /// A sink that keeps what it is given, or refuses everything.
    #[derive(Default)]
    struct Kept {
        writes: std::sync::Mutex<Vec<Write>>,
        refuse: bool,
    }

    impl Sink for Kept {
        fn write(&self, write: Write) -> SinkFuture<'_> {
            Box::pin(async move {
                if self.refuse {
                    return Err("the bus is down".into());
                }
                let inserted = vec![true; write.events.len()];
                crate::lock(&self.writes).push(write);
                Ok(WriteOutcome {
                    inserted,
                    last_seq: None,
                })
            })
        }
    }

    /// Posts a batch of one valid and one invalid event through the app with `sink`: the
    /// status, the body, and how many events and failed events reached the store itself.
    async fn post_to(sink: std::sync::Arc<Kept>) -> (u16, serde_json::Value, usize) {
        use tower::ServiceExt;
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(Store::open(dir.path()).unwrap());
        let (tenant, _) = store.add_tenant("pk_sink", &[]).unwrap();
        let keyring = std::sync::Arc::new(crate::Keyring::from_secret(vec![7; 32]));
        let state = crate::AppState::new(store.clone(), keyring).with_sink(sink);
        let body = format!(
            r#"{{"events":[{},{{"client_key":"pk_sink"}}]}}"#,
            event("e1", "pk_sink", "u1").get()
        );
        let request = axum::http::Request::post("/v1/events")
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body))
            .unwrap();
        let answer = crate::app(state).oneshot(request).await.unwrap();
        let status = answer.status().as_u16();
        let body = http_body_util::BodyExt::collect(answer.into_body())
            .await
            .unwrap();
        let body = serde_json::from_slice(&body.to_bytes()).unwrap();
        let stored = store.recent_events(tenant.id, 10).unwrap().len()
            + store.recent_failed(tenant.id, 10).unwrap().len();
        (status, body, stored)
    }

    #[tokio::test]
    async fn the_handler_hands_its_batch_to_the_sink_it_is_given_and_answers_what_it_stored() {
        let sink = std::sync::Arc::new(Kept::default());
        let (status, body, in_store) = post_to(sink.clone()).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["accepted"], 1);
        assert_eq!(body["rejected"][0]["index"], 1);
        let writes = crate::lock(&sink.writes);
        assert_eq!(writes.len(), 1);
        assert_eq!(writes[0].events[0].event_id, "e1");
        assert_eq!(writes[0].failed.len(), 1);
        // Nothing went around the sink into the store.
        assert_eq!(in_store, 0);
    }

    #[tokio::test]
    async fn a_sink_that_cannot_take_the_batch_gets_it_retried_not_lost() {
        let sink = std::sync::Arc::new(Kept {
            refuse: true,
            ..Kept::default()
        });
        let (status, body, _) = post_to(sink).await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["error"], "store_unavailable");
    }
}
