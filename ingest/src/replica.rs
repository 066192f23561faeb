//! A cluster node's own copy of the stream's events, in its data directory's store. Every
//! node that serves the query API follows the stream through a durable consumer of its own
//! (`datasets-<node id>`) and writes what it fetches into its local store with the same
//! group commit a single node uses — idempotent on (tenant, event_id) — acknowledging only
//! after the commit. From there the node's datasets engines take the events exactly as on a
//! single node: fed from the store's commits, snapshotted, rebuilt from the log after the
//! newest snapshot on start, materialised. The engines are a function of the set of events,
//! so every node converges on the same answers, whatever order the stream gave them in.
//!
//! A node restarted goes on from its consumer's acknowledgement floor; a node whose data
//! directory is lost gets a new id, and a new consumer that reads the stream from the start.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;

use crate::Cluster;
use crate::bus::{self, ErasureMessage, Kind};
use crate::database::Database;
use crate::pipeline::SinkError;
use crate::store::{Erasure, Payload, Store, Write, now_ms};

/// The file in the data directory that names this node's consumer.
const NODE_ID_FILE: &str = "node.id";
/// Messages written to the local store in one round, at most.
const BATCH: usize = 2_000;
/// How long a fetch waits for its batch to fill.
const FILL_WAIT: Duration = Duration::from_millis(100);
/// How long a fetched message may stay unacknowledged before the stream delivers it again.
const ACK_WAIT: Duration = Duration::from_secs(60);

/// This node's consumer: `datasets-` and an id made once for the data directory.
pub fn consumer_name(data_dir: &Path) -> std::io::Result<String> {
    let file = data_dir.join(NODE_ID_FILE);
    let id = match std::fs::read_to_string(&file) {
        Ok(id) if !id.trim().is_empty() => id.trim().to_owned(),
        Ok(_) | Err(_) => {
            let id = crate::bytes::hex(&crate::bytes::random::<8>());
            std::fs::write(&file, &id)?;
            id
        }
    };
    Ok(format!("datasets-{id}"))
}

/// Copies the stream's events and erasures into `store`, through the cluster's consumer,
/// until `stop` resolves, and tells `cluster.replicated` the stream position up to which it
/// has. Errors of NATS, PostgreSQL or the store
/// are logged and the same batch tried again a second later: nothing after it is fetched
/// before it is in, so the store takes the stream in its order.
pub async fn run(cluster: &Cluster, store: Arc<Store>, stop: impl Future<Output = ()>) {
    let (bus, database) = (&*cluster.bus, &*cluster.database);
    let (consumer, through) = (&cluster.consumer, &cluster.replicated);
    let mut stop = std::pin::pin!(stop);
    // NATS may be electing leaders, or down for a while: ask until it answers.
    let consumer = loop {
        tokio::select! {
            _ = &mut stop => return,
            made = bus.consumer(consumer, ACK_WAIT) => match made {
                Ok(consumer) => break consumer,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot make this node's consumer; asking again in a second");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            },
        }
    };
    let mut copier = Copier {
        database,
        store,
        mirrored: HashSet::new(),
        erased: HashMap::new(),
    };
    let mut pending: Vec<jetstream::Message> = Vec::new();
    loop {
        let round = async {
            if pending.is_empty() {
                pending = bus::fetch(&consumer, BATCH, FILL_WAIT).await?;
            }
            if pending.is_empty() {
                return Ok::<_, SinkError>(());
            }
            copier.copy(&pending).await?;
            for message in &pending {
                message.ack().await?;
            }
            let last = pending
                .iter()
                .filter_map(|m| m.info().ok())
                .map(|i| i.stream_sequence)
                .max();
            through.send_if_modified(|at| match last {
                Some(last) if last > *at => {
                    *at = last;
                    true
                }
                _ => false,
            });
            pending.clear();
            Ok(())
        };
        tokio::select! {
            _ = &mut stop => return,
            outcome = round => if let Err(e) = outcome {
                tracing::warn!(error = %e, "cannot copy the stream into this node's store; trying again in a second");
                tokio::select! {
                    _ = &mut stop => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            },
        }
    }
}

struct Copier<'a> {
    database: &'a Database,
    store: Arc<Store>,
    /// Tenants whose copy the store has.
    mirrored: HashSet<i64>,
    /// Erased users, with their erasure's position: an event from before it delivered
    /// again (a batch the stream gave anew after its acknowledgement wait) is not copied.
    erased: HashMap<(i64, String), u64>,
}

impl Copier<'_> {
    /// Writes the events among `messages` into the store, a write per tenant committed
    /// together, up to each erasure, which is applied in its turn. Failed events and vault
    /// entries are the sink's alone.
    async fn copy(&mut self, messages: &[jetstream::Message]) -> Result<(), SinkError> {
        let mut writes: HashMap<i64, Write> = HashMap::new();
        for message in messages {
            let seq = message.info().map_or(0, |i| i.stream_sequence);
            let body = std::str::from_utf8(&message.payload).unwrap_or_default();
            match Kind::of(&message.subject) {
                Some((Kind::Event, tenant_id)) => {
                    let Ok((event, payload)) = Payload::stored(body) else {
                        // The sink keeps it as a failed event; the datasets have nothing to read.
                        tracing::warn!(subject = %message.subject, "an event message that is not the log's JSON");
                        continue;
                    };
                    let gone = event.user_id.as_ref().is_some_and(|user| {
                        self.erased
                            .get(&(tenant_id, user.clone()))
                            .is_some_and(|&at| at > seq)
                    });
                    if gone {
                        continue;
                    }
                    let write = writes.entry(tenant_id).or_insert_with(|| Write {
                        tenant_id,
                        received_at: now_ms(),
                        events: Vec::new(),
                        failed: Vec::new(),
                        vault: Vec::new(),
                        inputs: Vec::new(),
                    });
                    write.events.push(event);
                    write.inputs.push(payload.input());
                }
                Some((Kind::Erasure, tenant_id)) => {
                    let Ok(erasure) = serde_json::from_str::<ErasureMessage>(body) else {
                        tracing::error!(subject = %message.subject, seq, "an erasure message that cannot be read");
                        continue;
                    };
                    // What came before it is in first.
                    self.commit(std::mem::take(&mut writes)).await?;
                    let user_ids: Vec<String> = erasure
                        .user_ids
                        .into_iter()
                        .map(|u| u.into_owned())
                        .collect();
                    for user in &user_ids {
                        self.erased.insert((tenant_id, user.clone()), seq);
                    }
                    if self.mirror(tenant_id).await? {
                        self.store
                            .erase(Erasure {
                                tenant_id,
                                user_ids,
                            })
                            .await?;
                    }
                }
                _ => {}
            }
        }
        self.commit(writes).await
    }

    async fn commit(&mut self, mut writes: HashMap<i64, Write>) -> Result<(), SinkError> {
        let tenants: Vec<i64> = writes.keys().copied().collect();
        for tenant_id in tenants {
            if !self.mirror(tenant_id).await? {
                // Not published by an edge: they publish for the database's tenants alone.
                tracing::error!(
                    tenant_id,
                    "events on the stream for a tenant the database does not hold; skipped"
                );
                writes.remove(&tenant_id);
            }
        }
        let committed = writes.into_values().map(|write| self.store.write(write));
        futures_util::future::try_join_all(committed).await?;
        Ok(())
    }

    /// Copies the tenant from the database into the store, once; false when the database
    /// does not hold it.
    async fn mirror(&mut self, tenant_id: i64) -> Result<bool, SinkError> {
        if self.mirrored.contains(&tenant_id) {
            return Ok(true);
        }
        let Some(tenant) = self.database.tenant_by_id(tenant_id).await? else {
            return Ok(false);
        };
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.mirror_tenant(&tenant)).await??;
        self.mirrored.insert(tenant_id);
        Ok(true)
    }
}
