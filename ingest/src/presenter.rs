//! In a cluster, one node at a time writes the materialised documents and the engagement
//! feedback to PostgreSQL, for the customer's data team and exports. Every node
//! materialises into its own store (its queries are served from there); the node that holds
//! an advisory lock (`database::PRESENTER_LOCK`, on a connection of its own) also copies its
//! documents and feedback records into the database each materialisation interval. When
//! that node dies, its connection closes, PostgreSQL releases the lock, and another node
//! takes it on its next round. Every node's engines hold the same events, so whichever
//! writes, the documents are the same; a feedback record is kept once per impression and
//! labels (the table's key), so a takeover offers them again without doubling any.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::Cluster;
use crate::database::{DocumentRow, HeldLock, PRESENTER_LOCK};
use crate::pipeline::SinkError;
use crate::store::{FeedbackRecord, Store};

/// Feedback records read from the store at a time.
const FEEDBACK_PAGE: usize = 5_000;

/// Every `every`, takes the lock if no node holds it, and while this node holds it, copies
/// the store's documents and new feedback records into the database; until `stop`.
pub async fn run(
    cluster: Arc<Cluster>,
    store: Arc<Store>,
    every: Duration,
    stop: impl Future<Output = ()>,
) {
    let mut stop = std::pin::pin!(stop);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut held: Option<HeldLock> = None;
    // Per tenant, the last feedback record copied (the store's position).
    let mut copied: HashMap<i64, i64> = HashMap::new();
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tick.tick() => {}
        }
        if !held.as_ref().is_some_and(HeldLock::held) {
            if held.take().is_some() {
                tracing::warn!("lost the lock to write documents to PostgreSQL");
            }
            copied.clear();
            match cluster
                .database
                .try_lock(PRESENTER_LOCK, &cluster.consumer)
                .await
            {
                Ok(Some(lock)) => {
                    tracing::info!("this node writes documents and feedback to PostgreSQL now");
                    held = Some(lock);
                }
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot ask for the lock to write documents");
                    continue;
                }
            }
        }
        if let Err(e) = copy(&cluster, &store, &mut copied).await {
            tracing::warn!(error = %e, "cannot write documents and feedback to PostgreSQL");
        }
    }
}

/// Copies each tenant's documents and the feedback records after `copied`'s.
async fn copy(
    cluster: &Cluster,
    store: &Arc<Store>,
    copied: &mut HashMap<i64, i64>,
) -> Result<(), SinkError> {
    let local = store.clone();
    let tenants = tokio::task::spawn_blocking(move || local.tenants()).await??;
    for tenant in tenants {
        let after = copied.get(&tenant.id).copied().unwrap_or(0);
        let local = store.clone();
        let (documents, feedback) = tokio::task::spawn_blocking(move || {
            let documents = local.documents(tenant.id)?;
            let feedback = local.feedback(tenant.id, None, after, FEEDBACK_PAGE)?;
            Ok::<_, crate::store::StoreError>((documents, feedback))
        })
        .await??;
        let last = feedback.last().map(|(seq, _)| *seq);
        let documents: Vec<DocumentRow> = documents
            .into_iter()
            .map(|(key, body, as_of, etag)| DocumentRow {
                key,
                body,
                as_of,
                etag,
            })
            .collect();
        let feedback: Vec<FeedbackRecord> = feedback
            .into_iter()
            .map(|(_, record)| {
                let recommender = record["recommender"].as_str().map(str::to_owned);
                FeedbackRecord::new(&record, recommender)
            })
            .collect();
        cluster
            .database
            .present(tenant.id, &documents, &feedback, &cluster.consumer)
            .await?;
        if let Some(last) = last {
            copied.insert(tenant.id, last);
        }
    }
    Ok(())
}
