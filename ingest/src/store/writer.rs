//! Group commit. Every request hands its events to one writer thread and waits; the thread
//! takes everything waiting, writes it in one transaction, commits (one fsync), then answers
//! every request in it. Under load many requests share a commit; alone, a request pays one.
//! Erasures go through the same thread, so the one writer owns every change to the log.

use std::sync::Mutex;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;

use rusqlite::{Connection, params};
use tokio::sync::oneshot;

use super::StoreError;
use crate::anonymise::vault::Sealed;

/// Upper bound of events in one transaction, so one commit's latency stays bounded.
const MAX_EVENTS_PER_COMMIT: usize = 5_000;

/// A valid, anonymised event ready for the log.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub event_id: String,
    pub event_type: String,
    pub action: String,
    pub event_time: i64,
    pub created_at: i64,
    pub sent_at: Option<i64>,
    pub user_id: Option<String>,
    pub session_id: String,
    pub payload: String,
}

/// A rejected event and why.
#[derive(Debug, Clone)]
pub struct FailedEvent {
    pub error: String,
    pub message: String,
    pub payload: String,
}

/// One request's share of a commit.
#[derive(Debug, Clone)]
pub struct Write {
    pub tenant_id: i64,
    pub received_at: i64,
    pub events: Vec<StoredEvent>,
    pub failed: Vec<FailedEvent>,
    /// Identity-vault entries; empty unless the vault is on.
    pub vault: Vec<Sealed>,
}

/// Per event of [`Write::events`]: true when stored, false when it was a duplicate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteOutcome {
    pub inserted: Vec<bool>,
}

/// Removal of users' events: every pseudonym a user had under any key version.
#[derive(Debug, Clone)]
pub struct Erasure {
    pub tenant_id: i64,
    pub user_ids: Vec<String>,
}

/// Rows an erasure removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Erased {
    pub events: usize,
    pub failed_events: usize,
}

/// Materialised documents (replacing those under the same keys) and feedback records of
/// one tenant.
#[derive(Debug, Clone, Default)]
pub struct Presentation {
    pub tenant_id: i64,
    pub documents: Vec<crate::datasets::Document>,
    /// `(recommender, record JSON)`.
    pub feedback: Vec<(Option<String>, String)>,
}

pub(super) enum Op {
    Write(Write),
    Erase(Erasure),
    Present(Presentation),
}

pub(super) enum Outcome {
    Written(WriteOutcome),
    Erased(Erased),
    Presented,
}

impl Op {
    fn events(&self) -> usize {
        match self {
            Op::Write(w) => w.events.len(),
            Op::Erase(_) => 1,
            Op::Present(p) => p.documents.len() + p.feedback.len(),
        }
    }
}

type Job = (Op, oneshot::Sender<Result<Outcome, String>>);

pub(super) struct Handle {
    sender: Mutex<Option<Sender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Handle {
    pub(super) fn start(conn: Connection) -> Handle {
        let (sender, receiver) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || run(conn, receiver))
            .expect("the writer thread can be spawned");
        Handle {
            sender: Mutex::new(Some(sender)),
            thread: Mutex::new(Some(thread)),
        }
    }

    pub(super) async fn submit(&self, op: Op) -> Result<Outcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        {
            let sender = self.sender.lock().unwrap_or_else(|p| p.into_inner());
            sender
                .as_ref()
                .ok_or(StoreError::Closed)?
                .send((op, reply))
                .map_err(|_| StoreError::Closed)?;
        }
        match answer.await {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(message)) => Err(StoreError::Commit(message)),
            Err(_) => Err(StoreError::Closed),
        }
    }

    pub(super) fn is_running(&self) -> bool {
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner());
        thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Lets the writer finish what was submitted, then waits for it to stop.
    pub(super) fn close(&self) {
        drop(self.sender.lock().unwrap_or_else(|p| p.into_inner()).take());
        if let Some(thread) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.close();
    }
}

fn run(mut conn: Connection, jobs: Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut group = vec![first];
        let mut events = group[0].0.events();
        while events < MAX_EVENTS_PER_COMMIT {
            match jobs.try_recv() {
                Ok(job) => {
                    events += job.0.events();
                    group.push(job);
                }
                Err(_) => break,
            }
        }
        match commit(&mut conn, &group) {
            Ok(outcomes) => {
                for ((_, reply), outcome) in group.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, requests = group.len(), "group commit failed");
                for (_, reply) in group {
                    let _ = reply.send(Err(e.to_string()));
                }
            }
        }
    }
}

fn commit(conn: &mut Connection, group: &[Job]) -> rusqlite::Result<Vec<Outcome>> {
    let tx = conn.transaction()?;
    let mut outcomes = Vec::with_capacity(group.len());
    for (op, _) in group {
        outcomes.push(match op {
            Op::Write(w) => Outcome::Written(write(&tx, w)?),
            Op::Erase(e) => Outcome::Erased(erase(&tx, e)?),
            Op::Present(p) => {
                present(&tx, p)?;
                Outcome::Presented
            }
        });
    }
    tx.commit()?;
    Ok(outcomes)
}

fn write(tx: &rusqlite::Transaction<'_>, w: &Write) -> rusqlite::Result<WriteOutcome> {
    let mut insert = tx.prepare_cached(
        "INSERT OR IGNORE INTO events
         (tenant_id, event_id, event_type, action, event_time, created_at, sent_at, received_at, user_id, session_id, payload)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?;
    let mut inserted = Vec::with_capacity(w.events.len());
    for e in &w.events {
        let n = insert.execute(params![
            w.tenant_id,
            e.event_id,
            e.event_type,
            e.action,
            e.event_time,
            e.created_at,
            e.sent_at,
            w.received_at,
            e.user_id,
            e.session_id,
            e.payload
        ])?;
        inserted.push(n == 1);
    }
    let mut insert_failed = tx.prepare_cached(
        "INSERT INTO failed_events (tenant_id, received_at, error, message, payload) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for f in &w.failed {
        insert_failed.execute(params![
            w.tenant_id,
            w.received_at,
            f.error,
            f.message,
            f.payload
        ])?;
    }
    let mut seal = tx.prepare_cached(
        "INSERT OR IGNORE INTO identity_vault (tenant_id, user_id, nonce, ciphertext) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for v in &w.vault {
        seal.execute(params![w.tenant_id, v.user_id, &v.nonce[..], v.ciphertext])?;
    }
    Ok(WriteOutcome { inserted })
}

fn present(tx: &rusqlite::Transaction<'_>, p: &Presentation) -> rusqlite::Result<()> {
    let mut put = tx.prepare_cached(
        "INSERT OR REPLACE INTO documents (tenant_id, key, body, as_of, etag) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for d in &p.documents {
        put.execute(params![p.tenant_id, d.key, d.body, d.as_of, d.etag])?;
    }
    let mut append = tx.prepare_cached(
        "INSERT INTO feedback (tenant_id, recommender, record) VALUES (?1, ?2, ?3)",
    )?;
    for (recommender, record) in &p.feedback {
        append.execute(params![p.tenant_id, recommender, record])?;
    }
    Ok(())
}

/// Erasure scans the tenant's events: it is rare, while an index on `user_id` (random
/// pseudonyms) halved the ingest rate when measured (`cargo xtask bench ingest`).
fn erase(tx: &rusqlite::Transaction<'_>, e: &Erasure) -> rusqlite::Result<Erased> {
    let mut erased = Erased {
        events: 0,
        failed_events: 0,
    };
    for user_id in &e.user_ids {
        erased.events += tx.execute(
            "DELETE FROM events WHERE tenant_id = ?1 AND user_id = ?2",
            params![e.tenant_id, user_id],
        )?;
        erased.failed_events += tx.execute(
            "DELETE FROM failed_events WHERE tenant_id = ?1 AND json_valid(payload)
             AND json_extract(payload, '$.channel_meta.client_ref') = ?2",
            params![e.tenant_id, user_id],
        )?;
        tx.execute(
            "DELETE FROM identity_vault WHERE tenant_id = ?1 AND user_id = ?2",
            params![e.tenant_id, user_id],
        )?;
    }
    Ok(erased)
}
