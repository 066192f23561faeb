//! The sink role of a cluster (`ingest sink`): takes what the edges published to the stream
//! and stores it in PostgreSQL. Any number of sinks share one durable pull consumer; each
//! fetches a batch, stores it in one transaction (`Database::store`, idempotent), and only
//! then acknowledges its messages. A sink killed mid-batch leaves its messages
//! unacknowledged: the stream delivers them again after the consumer's acknowledgement wait,
//! to this sink or another, and what the killed one had committed is skipped.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use futures_util::StreamExt;

use crate::bus::{Bus, BusError, FailedMessage, Kind, VaultMessage};
use crate::database::{Batch, Database, EventRow, FailedRow, VaultRow};
use crate::store::Payload;

/// How a sink fetches.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// The durable consumer every sink shares.
    pub consumer: String,
    /// Messages fetched, and stored in one transaction, at most.
    pub batch: usize,
    /// How long a fetch waits for its batch to fill before taking what came.
    pub fill_wait: Duration,
    /// How long a fetched message may stay unacknowledged before the stream delivers it
    /// again (to any sink).
    pub ack_wait: Duration,
}

impl Default for SinkConfig {
    fn default() -> SinkConfig {
        SinkConfig {
            consumer: "sink".into(),
            batch: 1_000,
            fill_wait: Duration::from_millis(200),
            ack_wait: Duration::from_secs(30),
        }
    }
}

/// What a sink has done, for `/metrics` and tests.
#[derive(Debug, Default)]
pub struct SinkStats {
    /// Transactions committed.
    pub batches: AtomicU64,
    /// Messages stored (events, failed events, vault entries), duplicates included.
    pub messages: AtomicU64,
    /// Events newly stored.
    pub events: AtomicU64,
    /// Events already stored (delivered again).
    pub duplicates: AtomicU64,
    /// Messages no sink can store (a subject or body no version of the edge writes).
    pub unreadable: AtomicU64,
    /// Batches that could not be stored, delivered again later.
    pub failures: AtomicU64,
}

/// Stores what the stream holds until `stop` resolves. Errors of NATS or PostgreSQL are
/// logged and retried, a second apart; only a consumer that cannot be made at start is
/// returned.
pub async fn run(
    bus: &Bus,
    database: &Database,
    config: &SinkConfig,
    stats: Arc<SinkStats>,
    stop: impl Future<Output = ()>,
) -> Result<(), BusError> {
    let consumer = bus.consumer(&config.consumer, config.ack_wait).await?;
    let mut stop = std::pin::pin!(stop);
    loop {
        let round = async {
            let messages = fetch(&consumer, config).await?;
            if messages.is_empty() {
                return Ok::<_, Box<dyn std::error::Error + Send + Sync>>(());
            }
            let (batch, unreadable) = decode(&messages);
            stats.unreadable.fetch_add(unreadable as u64, Relaxed);
            match database.store(&batch).await {
                Ok(inserted) => {
                    // Committed: now, and only now, the stream may forget them.
                    for message in &messages {
                        message.ack().await?;
                    }
                    stats.batches.fetch_add(1, Relaxed);
                    stats.messages.fetch_add(messages.len() as u64, Relaxed);
                    stats.events.fetch_add(inserted, Relaxed);
                    stats
                        .duplicates
                        .fetch_add(batch.events.len() as u64 - inserted, Relaxed);
                    Ok(())
                }
                Err(e) => {
                    stats.failures.fetch_add(1, Relaxed);
                    // Delivered again a second from now rather than after the whole wait.
                    for message in &messages {
                        let _ = message
                            .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                            .await;
                    }
                    Err(e.into())
                }
            }
        };
        tokio::select! {
            _ = &mut stop => return Ok(()),
            outcome = round => if let Err(e) = outcome {
                tracing::warn!(error = %e, "the sink could not store a batch; retrying in a second");
                tokio::select! {
                    _ = &mut stop => return Ok(()),
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            },
        }
    }
}

/// Up to a batch of messages, waiting at most the fill wait for more.
async fn fetch(
    consumer: &jetstream::consumer::PullConsumer,
    config: &SinkConfig,
) -> Result<Vec<jetstream::Message>, Box<dyn std::error::Error + Send + Sync>> {
    let mut fetched = consumer
        .fetch()
        .max_messages(config.batch)
        .expires(config.fill_wait)
        .messages()
        .await?;
    let mut messages = Vec::with_capacity(config.batch);
    while let Some(message) = fetched.next().await {
        messages.push(message?);
    }
    Ok(messages)
}

/// The rows a batch of messages stores, and how many messages could not be read. An event
/// whose body is not the log's JSON is kept as a failed event (`unreadable_message`), with
/// its body; a message whose subject names no tenant is logged and dropped from the batch
/// (it is still acknowledged: no sink could ever store it, and the stream keeps it).
fn decode(messages: &[jetstream::Message]) -> (Batch, usize) {
    let mut batch = Batch::default();
    let mut unreadable = 0;
    for message in messages {
        let seq = message.info().map_or(0, |i| i.stream_sequence as i64);
        let body = std::str::from_utf8(&message.payload);
        let Some((kind, tenant_id)) = Kind::of(&message.subject) else {
            unreadable += 1;
            tracing::error!(subject = %message.subject, seq, "a message on a subject no sink reads");
            continue;
        };
        let stored = body.ok().and_then(|body| match kind {
            Kind::Event => {
                let payload: Payload = serde_json::from_str(body).ok()?;
                batch.events.push(EventRow {
                    seq,
                    tenant_id,
                    event_id: payload.event_id.into_owned(),
                    created_at: payload.created_at.0,
                    event_time: payload.event_time.0,
                    user_id: payload.channel_meta.user_id.map(|u| u.into_owned()),
                    payload: body.to_owned(),
                });
                Some(())
            }
            Kind::Failed => {
                let failed: FailedMessage = serde_json::from_str(body).ok()?;
                batch.failed.push(FailedRow {
                    seq,
                    tenant_id,
                    received_at: failed.received_at,
                    error: failed.error.into_owned(),
                    message: failed.message.into_owned(),
                    payload: failed.payload.into_owned(),
                });
                Some(())
            }
            Kind::Vault => {
                let entry: VaultMessage = serde_json::from_str(body).ok()?;
                batch.vault.push(VaultRow {
                    tenant_id,
                    sealed: entry.sealed()?,
                });
                Some(())
            }
        });
        if stored.is_none() {
            unreadable += 1;
            tracing::error!(subject = %message.subject, seq, "a message the sink cannot read; kept as a failed event");
            batch.failed.push(FailedRow {
                seq,
                tenant_id,
                received_at: crate::store::now_ms(),
                error: "unreadable_message".into(),
                message: format!("a message on `{}` the sink cannot read", message.subject),
                payload: String::from_utf8_lossy(&message.payload).into_owned(),
            });
        }
    }
    (batch, unreadable)
}

/// The sink's `/readyz` (NATS and PostgreSQL reachable) and `/metrics` (what it stored, and
/// its consumer's lag), for `--ops-listen`.
pub fn ops(
    bus: Arc<Bus>,
    database: Arc<Database>,
    consumer: String,
    stats: Arc<SinkStats>,
) -> axum::Router {
    use axum::http::{StatusCode, header};
    use axum::routing::get;
    let ready = {
        let (bus, database) = (bus.clone(), database.clone());
        move || async move {
            let fault = if !bus.connected() {
                Some("not connected to NATS".to_owned())
            } else {
                database.ping().await.err().map(|e| e.to_string())
            };
            match fault {
                None => (StatusCode::OK, "ready\n"),
                Some(fault) => {
                    // The cause goes to the log, not into the answer.
                    tracing::warn!(fault, "not ready");
                    (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
                }
            }
        }
    };
    let metrics = move || async move {
        let lag = bus.lag(&consumer).await.ok();
        let body = render(&stats, &consumer, lag);
        (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
            body,
        )
    };
    axum::Router::new()
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
}

/// The sink's counters in Prometheus' text format.
fn render(stats: &SinkStats, consumer: &str, lag: Option<crate::bus::Lag>) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let mut counter = |name: &str, help: &str, value: &AtomicU64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
            value.load(Relaxed)
        );
    };
    counter("sink_batches_total", "Transactions committed.", &stats.batches);
    counter("sink_messages_total", "Messages stored, duplicates included.", &stats.messages);
    counter("sink_events_total", "Events newly stored.", &stats.events);
    counter("sink_duplicates_total", "Events delivered again, already stored.", &stats.duplicates);
    counter("sink_unreadable_total", "Messages no sink can read.", &stats.unreadable);
    counter("sink_failures_total", "Batches that could not be stored (delivered again).", &stats.failures);
    if let Some(lag) = lag {
        let _ = writeln!(
            out,
            "# HELP consumer_lag_messages Messages the consumer has not acknowledged.\n\
             # TYPE consumer_lag_messages gauge\n\
             consumer_lag_messages{{consumer=\"{consumer}\"}} {}\n\
             # HELP consumer_lag_seconds Age of the oldest message the consumer has not acknowledged.\n\
             # TYPE consumer_lag_seconds gauge\n\
             consumer_lag_seconds{{consumer=\"{consumer}\"}} {:.3}",
            lag.messages, lag.seconds
        );
    }
    out
}
