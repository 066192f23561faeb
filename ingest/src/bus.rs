//! The edge's sink in a cluster: every accepted batch published to a NATS JetStream stream,
//! the batch answered once the stream has acknowledged each of its messages (its PubAck,
//! replicated when the stream is). Events go to `pfc.events.<tenant id>`, failed events to
//! `pfc.failed.<tenant id>`, identity-vault entries to `pfc.vault.<tenant id>`; each event's
//! `Nats-Msg-Id` is its tenant and `event_id`, so the stream's duplicate window drops a
//! redelivered event, and its PubAck says so: the batch reports it as a duplicate, as the
//! SQLite log does. The publishes of a batch are pipelined: all are sent, then every
//! acknowledgement awaited. A stream that cannot be reached, or does not answer in time, fails
//! the write (503, retried by the tracker); what it did take stays, and comes back as
//! duplicates on the retry.

use std::borrow::Cow;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, consumer, context::PublishAckFuture, stream};
use serde::{Deserialize, Serialize};

use crate::bytes::{hex, unhex};
use crate::pipeline::{Sink, SinkError, SinkFuture};
use crate::store::{Sealed, Write, WriteOutcome};

/// How long connecting waits for JetStream to take requests (a cluster electing leaders).
const STARTUP_WAIT: Duration = Duration::from_secs(30);

/// Where and how the stream is kept.
#[derive(Debug, Clone)]
pub struct BusConfig {
    /// NATS servers, `nats://host:port` each; the client reconnects among them.
    pub servers: Vec<String>,
    /// The stream's name.
    pub stream: String,
    /// Copies of each message the stream keeps (3 in production, at most the servers).
    pub replicas: usize,
    /// How long the stream remembers message ids to drop redeliveries.
    pub duplicate_window: Duration,
    /// How long a publish may wait for its acknowledgement.
    pub ack_timeout: Duration,
}

impl BusConfig {
    pub fn new(servers: Vec<String>) -> BusConfig {
        BusConfig {
            servers,
            stream: "PFC".into(),
            replicas: 1,
            duplicate_window: Duration::from_secs(24 * 3600),
            ack_timeout: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BusError {
    #[error("cannot connect to NATS at {servers}: {source}")]
    Connect {
        servers: String,
        source: async_nats::ConnectError,
    },
    #[error("cannot create or read the JetStream stream `{stream}`: {message}")]
    Stream { stream: String, message: String },
}

/// What a message on the stream is, by the second part of its subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An anonymised event, the log's JSON of it (`store::Payload`).
    Event,
    /// A failed event, as [`FailedMessage`].
    Failed,
    /// An identity-vault entry, as [`VaultMessage`].
    Vault,
    /// A user's erasure, as [`ErasureMessage`]: every copy forgets the user's events that
    /// came before it on the stream.
    Erasure,
}

impl Kind {
    const ALL: [Kind; 4] = [Kind::Event, Kind::Failed, Kind::Vault, Kind::Erasure];

    fn word(self) -> &'static str {
        match self {
            Kind::Event => "events",
            Kind::Failed => "failed",
            Kind::Vault => "vault",
            Kind::Erasure => "erasure",
        }
    }

    /// The subject this kind of message of a tenant goes to.
    pub fn subject(self, tenant_id: i64) -> String {
        format!("pfc.{}.{tenant_id}", self.word())
    }

    /// The kind and tenant a subject names; `None` for any other subject (a later version's
    /// kind, or someone else's message).
    pub fn of(subject: &str) -> Option<(Kind, i64)> {
        let mut parts = subject.split('.');
        let (Some("pfc"), Some(word), Some(tenant), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let kind = Kind::ALL.into_iter().find(|k| k.word() == word)?;
        Some((kind, tenant.parse().ok()?))
    }
}

/// A failed event on the stream: why it was refused, and what was sent (de-identified).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailedMessage<'a> {
    #[serde(borrow)]
    pub error: Cow<'a, str>,
    #[serde(borrow)]
    pub message: Cow<'a, str>,
    #[serde(borrow)]
    pub payload: Cow<'a, str>,
    pub received_at: i64,
}

/// An identity-vault entry on the stream: the sealed client_ref, in hex.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VaultMessage<'a> {
    #[serde(borrow)]
    pub user_id: Cow<'a, str>,
    #[serde(borrow)]
    pub nonce: Cow<'a, str>,
    #[serde(borrow)]
    pub ciphertext: Cow<'a, str>,
}

impl VaultMessage<'_> {
    fn from_sealed(sealed: &Sealed) -> VaultMessage<'_> {
        VaultMessage {
            user_id: Cow::Borrowed(&sealed.user_id),
            nonce: Cow::Owned(hex(&sealed.nonce)),
            ciphertext: Cow::Owned(hex(&sealed.ciphertext)),
        }
    }

    /// The entry; `None` when its hex is not (a nonce is 12 bytes).
    pub fn sealed(&self) -> Option<Sealed> {
        Some(Sealed {
            user_id: self.user_id.clone().into_owned(),
            nonce: unhex(&self.nonce)?.try_into().ok()?,
            ciphertext: unhex(&self.ciphertext)?,
        })
    }
}

/// A user's erasure on the stream: the pseudonyms the user had under every key version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErasureMessage<'a> {
    #[serde(borrow)]
    pub user_ids: Vec<Cow<'a, str>>,
}

/// How far a consumer is behind the stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lag {
    /// Messages not yet acknowledged, delivered or not.
    pub messages: u64,
    /// The age of the oldest of them.
    pub seconds: f64,
}

impl Lag {
    /// The consumer's lag in Prometheus' text format.
    pub fn render(&self, consumer: &str) -> String {
        format!(
            "# HELP consumer_lag_messages Messages the consumer has not acknowledged.\n\
             # TYPE consumer_lag_messages gauge\n\
             consumer_lag_messages{{consumer=\"{consumer}\"}} {}\n\
             # HELP consumer_lag_seconds Age of the oldest message the consumer has not acknowledged.\n\
             # TYPE consumer_lag_seconds gauge\n\
             consumer_lag_seconds{{consumer=\"{consumer}\"}} {:.3}\n",
            self.messages, self.seconds
        )
    }
}

/// A connection to the stream.
pub struct Bus {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    stream: String,
}

impl Bus {
    /// Connects and makes sure the stream exists (creating it with `config`'s settings).
    pub async fn connect(config: &BusConfig) -> Result<Bus, BusError> {
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .connect(config.servers.as_slice())
            .await
            .map_err(|source| BusError::Connect {
                servers: config.servers.join(","),
                source,
            })?;
        let wanted = stream::Config {
            name: config.stream.clone(),
            subjects: vec!["pfc.>".into()],
            storage: stream::StorageType::File,
            num_replicas: config.replicas,
            duplicate_window: config.duplicate_window,
            ..Default::default()
        };
        let jetstream = jetstream::context::ContextBuilder::new()
            .timeout(config.ack_timeout)
            // Many batches publish at once; past this many unacknowledged, a publish waits.
            .max_ack_inflight(20_000)
            .backpressure_on_inflight(true)
            .build(client.clone());
        // Servers started together elect JetStream's leaders for some seconds before they
        // take requests, and a stream just made elects its own before it takes a publish:
        // keep asking for a while, until the stream has a leader.
        let deadline = tokio::time::Instant::now() + STARTUP_WAIT;
        loop {
            let led = match jetstream.get_or_create_stream(wanted.clone()).await {
                Ok(mut stream) => stream
                    .info()
                    .await
                    .map(|info| info.cluster.as_ref().is_none_or(|c| c.leader.is_some()))
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match led {
                Ok(true) => break,
                _ if tokio::time::Instant::now() < deadline => {
                    tracing::info!(?led, "the stream takes no publishes yet; asking again");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Ok(false) => {
                    return Err(BusError::Stream {
                        stream: config.stream.clone(),
                        message: "it has no leader".into(),
                    });
                }
                Err(message) => {
                    return Err(BusError::Stream {
                        stream: config.stream.clone(),
                        message,
                    });
                }
            }
        }
        Ok(Bus {
            client,
            jetstream,
            stream: config.stream.clone(),
        })
    }

    /// Whether the connection to NATS is up.
    pub fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// The durable pull consumer `name` of the stream, created on first use: any number of
    /// processes fetching from it share its messages. A message not acknowledged within
    /// `ack_wait` is delivered again.
    pub async fn consumer(
        &self,
        name: &str,
        ack_wait: Duration,
    ) -> Result<consumer::PullConsumer, BusError> {
        let failed = |e: &dyn std::fmt::Display| BusError::Stream {
            stream: self.stream.clone(),
            message: e.to_string(),
        };
        let stream = self
            .jetstream
            .get_stream(&self.stream)
            .await
            .map_err(|e| failed(&e))?;
        stream
            .get_or_create_consumer(
                name,
                consumer::pull::Config {
                    durable_name: Some(name.to_owned()),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait,
                    max_ack_pending: 50_000,
                    // A consumer nobody has fetched from for a week is deleted; its node, back
                    // later, makes it anew and reads the stream from the start.
                    inactive_threshold: Duration::from_secs(7 * 86_400),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| failed(&e))
    }

    /// How far behind the consumer `name` is: messages it has not acknowledged, and the age
    /// of the oldest of them (zero when none).
    pub async fn lag(&self, name: &str) -> Result<Lag, BusError> {
        let failed = |e: &dyn std::fmt::Display| BusError::Stream {
            stream: self.stream.clone(),
            message: e.to_string(),
        };
        let stream = self
            .jetstream
            .get_stream(&self.stream)
            .await
            .map_err(|e| failed(&e))?;
        let consumer: consumer::PullConsumer =
            stream.get_consumer(name).await.map_err(|e| failed(&e))?;
        let info = consumer.get_info().await.map_err(|e| failed(&e))?;
        let messages = info.num_pending + info.num_ack_pending as u64;
        let seconds = if messages == 0 {
            0.0
        } else {
            // The oldest message not acknowledged is the first past the acknowledgement floor
            // that the stream still has (a gap is a message deleted from it).
            match stream
                .get_raw_message(info.ack_floor.stream_sequence + 1)
                .await
            {
                Ok(oldest) => {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_nanos() as i128);
                    ((now - oldest.time.unix_timestamp_nanos()).max(0) as f64) / 1e9
                }
                Err(_) => 0.0,
            }
        };
        Ok(Lag { messages, seconds })
    }

    /// Publishes a user's erasure; returns its position in the stream, which orders it
    /// after every event published before it.
    pub async fn publish_erasure(
        &self,
        tenant_id: i64,
        user_ids: &[String],
    ) -> Result<u64, SinkError> {
        let message = ErasureMessage {
            user_ids: user_ids.iter().map(|u| Cow::Borrowed(u.as_str())).collect(),
        };
        let ack = self
            .publish(Kind::Erasure.subject(tenant_id), None, to_json(&message))
            .await?
            .await?;
        Ok(ack.sequence)
    }

    async fn publish(
        &self,
        subject: String,
        id: Option<String>,
        payload: String,
    ) -> Result<PublishAckFuture, SinkError> {
        let mut headers = HeaderMap::new();
        if let Some(id) = id {
            headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
        }
        Ok(self
            .jetstream
            .publish_with_headers(subject, headers, payload.into())
            .await?)
    }

    async fn write(&self, write: Write) -> Result<WriteOutcome, SinkError> {
        let tenant = write.tenant_id;
        let mut acks = Vec::with_capacity(write.events.len());
        for event in write.events {
            let id = format!("{tenant}.{}", event.event_id);
            acks.push(
                self.publish(Kind::Event.subject(tenant), Some(id), event.payload)
                    .await?,
            );
        }
        let mut others = Vec::with_capacity(write.failed.len() + write.vault.len());
        for failed in &write.failed {
            let message = FailedMessage {
                error: Cow::Borrowed(&failed.error),
                message: Cow::Borrowed(&failed.message),
                payload: Cow::Borrowed(&failed.payload),
                received_at: write.received_at,
            };
            others.push(
                self.publish(Kind::Failed.subject(tenant), None, to_json(&message))
                    .await?,
            );
        }
        for sealed in &write.vault {
            let id = format!("{tenant}.{}", sealed.user_id);
            let message = to_json(&VaultMessage::from_sealed(sealed));
            others.push(
                self.publish(Kind::Vault.subject(tenant), Some(id), message)
                    .await?,
            );
        }
        let mut inserted = Vec::with_capacity(acks.len());
        for ack in acks {
            inserted.push(!ack.await?.duplicate);
        }
        for ack in others {
            ack.await?;
        }
        Ok(WriteOutcome {
            inserted,
            last_seq: None,
        })
    }
}

/// Up to `max` messages of `consumer`, waiting at most `fill_wait` for more.
pub(crate) async fn fetch(
    consumer: &consumer::PullConsumer,
    max: usize,
    fill_wait: Duration,
) -> Result<Vec<jetstream::Message>, SinkError> {
    use futures_util::StreamExt;
    let mut fetched = consumer
        .fetch()
        .max_messages(max)
        .expires(fill_wait)
        .messages()
        .await?;
    let mut messages = Vec::with_capacity(max);
    while let Some(message) = fetched.next().await {
        messages.push(message?);
    }
    Ok(messages)
}

/// A message's JSON: of strings and numbers only, so it always serialises.
fn to_json(message: &impl Serialize) -> String {
    serde_json::to_string(message).expect("a message of strings and numbers")
}

impl Sink for Bus {
    fn write(&self, write: Write) -> SinkFuture<'_> {
        Box::pin(Bus::write(self, write))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::testing::NatsServer;
    use serde_json::json;

    use crate::store::{FailedEvent, StoredEvent};

    fn write(ids: &[&str]) -> Write {
        Write {
            tenant_id: 7,
            received_at: 1_736_165_000_000,
            events: ids
                .iter()
                .map(|id| StoredEvent {
                    event_id: (*id).into(),
                    event_time: 1_736_165_000_000,
                    user_id: Some("u".into()),
                    payload: format!(r#"{{"event_id":"{id}"}}"#),
                })
                .collect(),
            failed: vec![FailedEvent {
                error: "missing_field".into(),
                message: "`action` is missing".into(),
                payload: "{}".into(),
            }],
            vault: Vec::new(),
            inputs: Vec::new(),
        }
    }

    /// How many messages the stream holds.
    async fn messages(bus: &Bus) -> u64 {
        let mut stream = bus.jetstream.get_stream("PFC").await.unwrap();
        stream.info().await.unwrap().state.messages
    }

    #[test]
    fn a_subject_names_its_kind_and_tenant() {
        for kind in Kind::ALL {
            assert_eq!(Kind::of(&kind.subject(12)), Some((kind, 12)));
        }
        for other in [
            "pfc.events.x",
            "pfc.other.7",
            "pfc.events.7.more",
            "pfc.events",
            "x.events.7",
        ] {
            assert_eq!(Kind::of(other), None, "{other}");
        }
    }

    #[test]
    fn a_vault_entry_reads_back_and_bad_hex_is_refused() {
        let sealed = Sealed {
            user_id: "u".into(),
            nonce: [7; 12],
            ciphertext: vec![1, 2, 250],
        };
        let message = VaultMessage::from_sealed(&sealed);
        let back = message.sealed().unwrap();
        assert_eq!(
            (back.nonce, &back.ciphertext),
            (sealed.nonce, &sealed.ciphertext)
        );
        let short = VaultMessage {
            nonce: Cow::Borrowed("0102"),
            ..message.clone()
        };
        assert!(short.sealed().is_none(), "a nonce is 12 bytes");
        let bad = VaultMessage {
            ciphertext: Cow::Borrowed("zz"),
            ..message
        };
        assert!(bad.sealed().is_none());
    }

    #[tokio::test]
    async fn a_batch_is_published_once_and_its_redelivery_is_told_apart() {
        let nats = NatsServer::start();
        let bus = Bus::connect(&BusConfig::new(vec![nats.url.clone()]))
            .await
            .unwrap();
        let first = bus.write(write(&["a", "b", "c"])).await.unwrap();
        assert_eq!(first.inserted, [true, true, true]);
        // A retried batch with one new event: the others are duplicates.
        let again = bus.write(write(&["a", "b", "d"])).await.unwrap();
        assert_eq!(again.inserted, [false, false, true]);
        // Four events, and each write's failed event.
        assert_eq!(messages(&bus).await, 6);
    }

    #[tokio::test]
    async fn the_service_answers_a_batch_once_the_stream_has_it() {
        use tower::ServiceExt;
        let nats = NatsServer::start();
        let bus = Arc::new(
            Bus::connect(&BusConfig::new(vec![nats.url.clone()]))
                .await
                .unwrap(),
        );
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(crate::Store::open(dir.path()).unwrap());
        store.add_tenant("pk_bus", &[]).unwrap();
        let keyring = Arc::new(crate::Keyring::from_secret(vec![7; 32]));
        let app = crate::app(crate::AppState::new(store, keyring).with_sink(bus.clone()));
        let event = |id: &str| {
            json!({"client_key": "pk_bus", "event_id": id, "created_at": "2026-11-28T14:00:00Z",
                   "event_type": "instrument", "action": "viewed",
                   "channel_meta": {"session_id": "s1", "client_ref": "alice"}})
        };
        let post = |ids: &[&str]| {
            let events: Vec<_> = ids.iter().map(|id| event(id)).collect();
            axum::http::Request::post("/v1/events")
                .header("content-type", "application/json")
                .body(axum::body::Body::from(
                    json!({ "events": events }).to_string(),
                ))
                .unwrap()
        };
        let answer = |request: axum::http::Request<axum::body::Body>| async {
            let response = app.clone().oneshot(request).await.unwrap();
            assert_eq!(response.status(), 200);
            let body = http_body_util::BodyExt::collect(response.into_body())
                .await
                .unwrap()
                .to_bytes();
            serde_json::from_slice::<serde_json::Value>(&body).unwrap()
        };
        let first = answer(post(&["e1", "e2"])).await;
        assert_eq!(
            (first["accepted"].as_u64(), first["duplicates"].as_u64()),
            (Some(2), Some(0))
        );
        let retried = answer(post(&["e1", "e2"])).await;
        assert_eq!(
            (retried["accepted"].as_u64(), retried["duplicates"].as_u64()),
            (Some(0), Some(2))
        );
        // What the stream holds is anonymised: the client_ref is not in it.
        let stream = bus.jetstream.get_stream("PFC").await.unwrap();
        let message = stream.get_raw_message(1).await.unwrap();
        let payload = String::from_utf8(message.payload.to_vec()).unwrap();
        assert!(payload.contains("\"event_id\":\"e1\""), "{payload}");
        assert!(!payload.contains("alice"), "{payload}");
        assert_eq!(messages(&bus).await, 2);
    }

    #[tokio::test]
    async fn an_unreachable_stream_fails_the_write() {
        let nats = NatsServer::start();
        let mut config = BusConfig::new(vec![nats.url.clone()]);
        config.ack_timeout = Duration::from_millis(500);
        let bus = Arc::new(Bus::connect(&config).await.unwrap());
        drop(nats);
        assert!(bus.write(write(&["a"])).await.is_err());
    }
}
