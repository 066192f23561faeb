//! The sink role of a cluster (`ingest sink`): takes what the edges published to the stream
//! and stores it in PostgreSQL. Any number of sinks share one durable pull consumer; each
//! fetches a batch, stores it in one transaction (`Database::store`, idempotent), and only
//! then acknowledges its messages. A sink killed mid-batch leaves its messages
//! unacknowledged: the stream delivers them again after the consumer's acknowledgement wait,
//! to this sink or another, and what the killed one had committed is skipped.

use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use async_nats::jetstream::{self, AckKind};

use crate::Cluster;
use crate::bus::{self, Bus, BusError, ErasureMessage, FailedMessage, Kind, VaultMessage};
use crate::database::{Batch, Database, ErasureRow, EventRow, FailedRow, VaultRow};
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
            let messages = bus::fetch(&consumer, config.batch, config.fill_wait).await?;
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
                let (event, payload) = Payload::stored(body).ok()?;
                batch.events.push(EventRow {
                    seq,
                    tenant_id,
                    created_at: payload.created_at.0,
                    event,
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
                    seq,
                    tenant_id,
                    sealed: entry.sealed()?,
                });
                Some(())
            }
            Kind::Erasure => {
                let erasure: ErasureMessage = serde_json::from_str(body).ok()?;
                batch.erasures.push(ErasureRow {
                    seq,
                    tenant_id,
                    user_ids: erasure.user_ids.into_iter().map(Cow::into_owned).collect(),
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
pub fn ops(cluster: Arc<Cluster>, stats: Arc<SinkStats>) -> axum::Router {
    use axum::http::{StatusCode, header};
    use axum::routing::get;
    let ready = {
        let cluster = cluster.clone();
        move || async move {
            match cluster.fault().await {
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
        let lag = cluster.bus.lag(&cluster.consumer).await.ok();
        let body = render(&stats, &cluster.consumer, lag);
        (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
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
    counter(
        "sink_batches_total",
        "Transactions committed.",
        &stats.batches,
    );
    counter(
        "sink_messages_total",
        "Messages stored, duplicates included.",
        &stats.messages,
    );
    counter("sink_events_total", "Events newly stored.", &stats.events);
    counter(
        "sink_duplicates_total",
        "Events delivered again, already stored.",
        &stats.duplicates,
    );
    counter(
        "sink_unreadable_total",
        "Messages no sink can read.",
        &stats.unreadable,
    );
    counter(
        "sink_failures_total",
        "Batches that could not be stored (delivered again).",
        &stats.failures,
    );
    if let Some(lag) = lag {
        out.push_str(&lag.render(consumer));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::BusConfig;
    use crate::pipeline::Sink;
    use crate::store::{FailedEvent, Sealed, StoredEvent, Write};
    use crate::testing::{NatsServer, PostgresServer};

    fn write(ids: &[&str]) -> Write {
        let now = crate::store::now_ms();
        Write {
            tenant_id: 3,
            received_at: now,
            events: ids
                .iter()
                .map(|id| StoredEvent {
                    event_id: (*id).into(),
                    event_time: now,
                    user_id: Some("u1".into()),
                    payload: payload(id, now),
                })
                .collect(),
            failed: vec![FailedEvent {
                error: "missing_field".into(),
                message: "`action` is missing".into(),
                payload: r#"{"event_id":"x"}"#.into(),
            }],
            vault: vec![Sealed {
                user_id: "u1".into(),
                nonce: [9; 12],
                ciphertext: vec![1, 2, 3],
            }],
            inputs: Vec::new(),
        }
    }

    /// The log's JSON of an event, as the pipeline writes it.
    fn payload(id: &str, now: i64) -> String {
        let at = schema::Timestamp(now).to_rfc3339();
        serde_json::json!({
            "action": "viewed", "created_at": at, "event_id": id, "event_meta": {},
            "event_time": at, "event_type": "instrument", "received_at": at,
            "related_entities": [{"id": "AAPL", "type": "ticker"}],
            "channel_meta": {"anonymous_id": null, "session_id": "s1", "user_id": "u1"},
        })
        .to_string()
    }

    async fn count(database: &Database, table: &str) -> i64 {
        let rows = match table {
            "events" => database.recent_events(3, 1_000).await.unwrap().len(),
            "failed_events" => database.recent_failed(3, 1_000).await.unwrap().len(),
            _ => unreachable!(),
        };
        rows as i64
    }

    /// Waits until `table` holds `rows` rows of the tenant, or 20 s have passed.
    async fn wait_for(database: &Database, table: &str, rows: i64) -> i64 {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let found = count(database, table).await;
            if found >= rows || tokio::time::Instant::now() > deadline {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A real NATS and PostgreSQL, and the stream and database on them.
    async fn servers() -> (NatsServer, PostgresServer, Arc<Bus>, Arc<Database>) {
        let (nats, pg) = (NatsServer::start(), PostgresServer::start());
        let bus = Bus::connect(&BusConfig::new(vec![nats.url.clone()]))
            .await
            .unwrap();
        let database = Database::connect(&pg.url).await.unwrap();
        (nats, pg, Arc::new(bus), Arc::new(database))
    }

    struct Running {
        stop: tokio::sync::oneshot::Sender<()>,
        task: tokio::task::JoinHandle<()>,
    }

    fn start(
        bus: Arc<Bus>,
        database: Arc<Database>,
        config: SinkConfig,
        stats: Arc<SinkStats>,
    ) -> Running {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            run(&bus, &database, &config, stats, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        Running { stop, task }
    }

    #[tokio::test]
    async fn what_the_edges_publish_is_stored_once_with_redeliveries_skipped() {
        let (nats, _pg, bus, database) = servers().await;
        bus.write(write(&["a", "b"])).await.unwrap();
        // Someone else's message on an event subject: kept as a failed event, with its body.
        let client = async_nats::connect(&nats.url).await.unwrap();
        jetstream::new(client)
            .publish("pfc.events.3", "not an event".into())
            .await
            .unwrap()
            .await
            .unwrap();
        let stats = Arc::new(SinkStats::default());
        let sink = start(
            bus.clone(),
            database.clone(),
            SinkConfig::default(),
            stats.clone(),
        );
        assert_eq!(wait_for(&database, "events", 2).await, 2);
        // The stream drops "b" as a duplicate; "c" is new. The failed event is not deduplicated
        // by the stream (it has no id), so there are two.
        bus.write(write(&["b", "c"])).await.unwrap();
        assert_eq!(wait_for(&database, "events", 3).await, 3);
        assert_eq!(wait_for(&database, "failed_events", 3).await, 3);
        let unreadable = database.recent_failed(3, 10).await.unwrap();
        assert!(
            unreadable
                .iter()
                .any(|f| f["error"] == "unreadable_message" && f["payload"] == "not an event"),
            "{unreadable:?}"
        );
        assert_eq!(stats.unreadable.load(Relaxed), 1);
        let _ = sink.stop.send(());
        sink.task.await.unwrap();
        assert_eq!(count(&database, "events").await, 3);
        let lag = bus.lag(&SinkConfig::default().consumer).await.unwrap();
        assert_eq!(lag.messages, 0, "{lag:?}");
        assert_eq!(stats.events.load(Relaxed), 3);
        let metrics = render(&stats, "sink", Some(lag));
        assert!(metrics.contains("sink_events_total 3\n"), "{metrics}");
        assert!(
            metrics.contains("consumer_lag_messages{consumer=\"sink\"} 0\n"),
            "{metrics}"
        );
    }

    #[tokio::test]
    async fn a_batch_a_sink_took_and_never_acknowledged_is_stored_by_another() {
        let (_nats, _pg, bus, database) = servers().await;
        let config = SinkConfig {
            ack_wait: Duration::from_secs(1),
            ..SinkConfig::default()
        };
        bus.write(write(&["a", "b", "c"])).await.unwrap();
        // A sink that dies after its fetch: it has the messages and acknowledges none.
        let consumer = bus
            .consumer(&config.consumer, config.ack_wait)
            .await
            .unwrap();
        let taken = bus::fetch(&consumer, config.batch, config.fill_wait)
            .await
            .unwrap();
        assert_eq!(
            taken.len(),
            5,
            "three events, a failed event, a vault entry"
        );
        // ... and one that died after its commit, before its acknowledgements.
        let (half, _) = decode(&taken[..2]);
        database.store(&half).await.unwrap();
        drop(taken);
        let stats = Arc::new(SinkStats::default());
        let sink = start(bus.clone(), database.clone(), config, stats.clone());
        assert_eq!(wait_for(&database, "events", 3).await, 3);
        assert_eq!(wait_for(&database, "failed_events", 1).await, 1);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while stats.messages.load(Relaxed) < 5 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = sink.stop.send(());
        sink.task.await.unwrap();
        assert_eq!(stats.messages.load(Relaxed), 5);
        assert_eq!(
            (stats.events.load(Relaxed), stats.duplicates.load(Relaxed)),
            (1, 2),
            "the two the dead sink committed are skipped"
        );
        assert_eq!(count(&database, "events").await, 3);
    }
}
