//! Group commit. Every request hands its events to one writer thread and waits; the thread
//! takes everything waiting, writes it in one transaction, commits (one fsync), then answers
//! every request in it. Under load many requests share a commit; alone, a request pays one.
//! Erasures go through the same thread, so the one writer owns every change to the log.
//!
//! The commit's fsync runs on a thread of its own too. The writer's connection commits with
//! `synchronous=NORMAL`, which writes the transaction's frames to the WAL file without waiting
//! for the disk (SQLite still syncs around checkpoints, so the file stays consistent); the
//! syncer then fdatasyncs the WAL file and only then answers the requests of every commit made
//! before that sync began. The disk flushes one group while the writer inserts the next, and
//! no request is answered before its events are on disk, as with `synchronous=FULL`. A sync
//! that fails stops the store taking writes: the kernel may have dropped the pages it could
//! not write, so nothing later could be promised durable.
//!
//! Checkpoints (copying the WAL back into the database file) run on a thread of their own.
//! SQLite's automatic checkpoint runs inside the commit that crosses its threshold and stalls
//! every request waiting on that commit: 150 ms at p99 and a fifth of the throughput, measured
//! by `cargo xtask bench ingest`. A PASSIVE checkpoint beside the writer never blocks it; the
//! writer restarts the WAL itself only when sustained load keeps the checkpointer from ever
//! catching up, so the WAL stays bounded.

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;

use super::StoreError;
use super::snapshots::Snapshots;
use crate::datasets::Input;
use crate::lock;

/// Upper bound of events in one transaction, so one commit's latency stays bounded.
const MAX_EVENTS_PER_COMMIT: usize = 5_000;

/// When checkpoints run.
#[derive(Debug, Clone, Copy)]
pub(super) struct CheckpointPolicy {
    /// Events committed between two checkpoints.
    pub every: usize,
    /// WAL frames (pages) past which the writer restarts the WAL itself: the checkpointer
    /// has not caught up with the writer since the WAL last started over.
    pub restart_frames: i64,
}

impl CheckpointPolicy {
    /// A checkpoint every ~20 MiB of WAL; a restart forced past ~400 MiB.
    pub(super) const DEFAULT: CheckpointPolicy = CheckpointPolicy {
        every: 40_000,
        restart_frames: 100_000,
    };
}

/// A valid, anonymised event ready for the log.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub event_id: String,
    /// Skew-corrected, ms since the Unix epoch.
    pub event_time: i64,
    /// The pseudonym of the event's `client_ref`.
    pub user_id: Option<String>,
    /// The whole anonymised event, JSON.
    pub payload: String,
}

/// A sealed `client_ref` (see `anonymise::vault`), keyed by its pseudonym.
#[derive(Debug, Clone)]
pub struct Sealed {
    pub user_id: String,
    pub nonce: [u8; 12],
    pub ciphertext: Vec<u8>,
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
    /// What the datasets read of each of `events`, in the same order; those of the events
    /// newly stored are published with the commit (see [`Change`]). Empty: nothing is.
    pub inputs: Vec<Input>,
}

/// Per event of [`Write::events`]: true when stored, false when it was a duplicate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteOutcome {
    pub inserted: Vec<bool>,
    /// The log position (`seq`) of the last event stored, if any was.
    pub last_seq: Option<i64>,
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
pub struct Materialised {
    pub tenant_id: i64,
    pub documents: Vec<crate::datasets::Document>,
    /// `documents` are the tenant's whole set: any other stored document (an entity type's
    /// lists once nothing of that type is left) is deleted.
    pub every_document: bool,
    pub feedback: Vec<FeedbackRecord>,
}

/// One impression's feedback: appended only when its labels differ from those last
/// appended for it (or none were), so offering it again is harmless.
#[derive(Debug, Clone)]
pub struct FeedbackRecord {
    pub recommender: Option<String>,
    pub impression_id: String,
    pub clicked: bool,
    pub converted: bool,
    /// The record, JSON.
    pub record: String,
}

impl FeedbackRecord {
    /// A record as the engine finalised it (`impression_id`, `clicked`, `converted` read
    /// from it), for `recommender`.
    pub fn new(record: &serde_json::Value, recommender: Option<String>) -> FeedbackRecord {
        let flag = |name: &str| record[name].as_bool().unwrap_or(false);
        FeedbackRecord {
            impression_id: record["impression_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            clicked: flag("clicked"),
            converted: flag("converted"),
            record: record.to_string(),
            recommender,
        }
    }
}

/// What a durable commit changed that the datasets follow. Subscribers (see
/// [`Store::subscribe`](super::Store::subscribe)) receive every commit's changes in commit
/// order, after its sync and before its requests are answered, so the datasets apply stored
/// events and erasures in the order the log took them.
#[derive(Debug)]
pub enum Change {
    /// Newly stored events (duplicates left out), as the datasets read them; `through` is
    /// the log position of the last. Positions grow in commit order, so a reader of the log
    /// who read up to a position knows which changes it has already seen.
    Stored {
        tenant_id: i64,
        inputs: Vec<Input>,
        through: i64,
    },
    /// Users whose events are gone: every pseudonym each had.
    Erased {
        tenant_id: i64,
        user_ids: Vec<String>,
    },
}

/// One durable commit's changes; `position` counts such commits from the subscription.
#[derive(Debug)]
pub struct Committed {
    pub position: u64,
    pub changes: Vec<Change>,
}

/// The subscribers to durable commits, and the position of the last one published.
#[derive(Default)]
pub(super) struct Feed {
    position: u64,
    subscribers: Vec<Sender<Arc<Committed>>>,
    /// The engines' snapshots, which an erasure deletes before it is answered.
    snapshots: Option<Arc<Snapshots>>,
}

impl Feed {
    pub(super) fn subscribe(&mut self) -> (u64, Receiver<Arc<Committed>>) {
        let (sender, receiver) = mpsc::channel();
        self.subscribers.push(sender);
        (self.position, receiver)
    }

    pub(super) fn position(&self) -> u64 {
        self.position
    }

    fn followed(&self) -> bool {
        !self.subscribers.is_empty()
    }

    fn publish(&mut self, changes: Vec<Change>) {
        if changes.is_empty() || self.subscribers.is_empty() {
            return;
        }
        self.position += 1;
        if let Some(snapshots) = &self.snapshots {
            for change in &changes {
                if let Change::Erased { tenant_id, .. } = change {
                    snapshots.forget(*tenant_id, self.position);
                }
            }
        }
        let committed = Arc::new(Committed {
            position: self.position,
            changes,
        });
        self.subscribers
            .retain(|s| s.send(committed.clone()).is_ok());
    }
}

pub(super) enum Op {
    Write(Write),
    Erase(Erasure),
    Present(Materialised),
    /// A write the size of a large batch, undone in its transaction: whether commits go
    /// through again.
    Probe,
    /// Deletes up to [`TRIM_ROWS`] of the oldest failed events received before this time.
    TrimFailed {
        before: i64,
    },
}

pub(super) enum Outcome {
    Written(WriteOutcome),
    Erased(Erased),
    Presented,
    Probed,
    Trimmed(usize),
}

impl Op {
    fn events(&self) -> usize {
        match self {
            Op::Write(w) => w.events.len(),
            Op::Erase(_) => 1,
            Op::Present(p) => p.documents.len() + p.feedback.len(),
            Op::Probe => 1,
            Op::TrimFailed { .. } => TRIM_ROWS,
        }
    }
}

/// Why the writer could not make a request's change durable. Cloned to every request of a
/// commit that failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum CommitError {
    #[error("{0}")]
    Transaction(Arc<rusqlite::Error>),
    #[error("cannot sync the WAL: {0}")]
    Sync(Arc<io::Error>),
    #[error("the store stopped taking writes after a failed sync; restart it")]
    Stopped,
    #[error("the sync thread stopped")]
    SyncerGone,
    #[error("the writer answered out of turn")]
    OutOfTurn,
}

type Reply = oneshot::Sender<Result<Outcome, CommitError>>;
type Job = (Op, Reply);

/// One commit's answers and changes, waiting for the sync that makes them durable.
#[derive(Default)]
struct Commit {
    answers: Vec<(Reply, Outcome)>,
    changes: Vec<Change>,
}

pub(super) struct Handle {
    sender: Mutex<Option<Sender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Set when a sync failed: the store takes no more writes.
    failed: Arc<AtomicBool>,
    /// Set while commits fail (a full disk, say), cleared by the next one that succeeds.
    failing: Arc<AtomicBool>,
    feed: Arc<Mutex<Feed>>,
}

impl Handle {
    /// Starts the writer on `conn` (which commits with `synchronous=NORMAL`), the syncer with
    /// `sync` (which makes the WAL durable: [`sync_file`]), and the checkpointer on
    /// `checkpoints`, another connection to the same database.
    pub(super) fn start(
        conn: Connection,
        sync: impl FnMut() -> io::Result<()> + Send + 'static,
        checkpoints: Connection,
        policy: CheckpointPolicy,
        snapshots: Arc<Snapshots>,
    ) -> Handle {
        let (sender, receiver) = mpsc::channel();
        let failed = Arc::new(AtomicBool::new(false));
        let feed = Arc::new(Mutex::new(Feed {
            snapshots: Some(snapshots),
            ..Feed::default()
        }));
        let (committed, to_sync) = mpsc::channel();
        let syncer = {
            let (failed, feed) = (failed.clone(), feed.clone());
            std::thread::Builder::new()
                .name("store-sync".into())
                .spawn(move || make_durable(to_sync, sync, &failed, &feed))
                .expect("the sync thread can be spawned")
        };
        let durable = Durable {
            committed,
            failed: failed.clone(),
            feed: feed.clone(),
        };
        let failing = Arc::new(AtomicBool::new(false));
        let (tick, ticks) = mpsc::sync_channel(1);
        let restart = Arc::new(AtomicBool::new(false));
        let checkpointer = {
            let restart = restart.clone();
            std::thread::Builder::new()
                .name("store-checkpoint".into())
                .spawn(move || checkpoint(&checkpoints, ticks, &restart, policy.restart_frames))
                .expect("the checkpoint thread can be spawned")
        };
        let writer = Checkpoints {
            tick,
            every: policy.every,
            restart,
        };
        let thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn({
                let failing = failing.clone();
                move || {
                    run(conn, receiver, writer, durable, &failing);
                    let _ = syncer.join();
                    let _ = checkpointer.join();
                }
            })
            .expect("the writer thread can be spawned");
        Handle {
            sender: Mutex::new(Some(sender)),
            thread: Mutex::new(Some(thread)),
            failed,
            failing,
            feed,
        }
    }

    pub(super) async fn submit(&self, op: Op) -> Result<Outcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        lock(&self.sender)
            .as_ref()
            .ok_or(StoreError::Closed)?
            .send((op, reply))
            .map_err(|_| StoreError::Closed)?;
        match answer.await {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(e)) => Err(StoreError::Commit(e)),
            Err(_) => Err(StoreError::Closed),
        }
    }

    pub(super) fn feed(&self) -> std::sync::MutexGuard<'_, Feed> {
        lock(&self.feed)
    }

    /// Whether the store takes writes: its writer runs and no sync has failed.
    pub(super) fn check(&self) -> Result<(), StoreError> {
        if lock(&self.thread).as_ref().is_none_or(|t| t.is_finished()) {
            return Err(StoreError::Closed);
        }
        if self.failed.load(Ordering::Relaxed) {
            return Err(StoreError::Commit(CommitError::Stopped));
        }
        Ok(())
    }

    /// Whether the last commit failed.
    pub(super) fn failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }

    /// Lets the writer finish what was submitted (erasures under way included), then waits
    /// for it to stop.
    pub(super) fn close(&self) {
        drop(lock(&self.sender).take());
        if let Some(thread) = lock(&self.thread).take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.close();
    }
}

/// The writer's side of the checkpointer: a tick asks for a checkpoint (one waits at most)
/// every `every` events; `restart` is the checkpointer asking the writer to start the WAL over.
struct Checkpoints {
    tick: SyncSender<()>,
    every: usize,
    restart: Arc<AtomicBool>,
}

/// The writer's side of the syncer: where commits wait for their sync, whether a sync has
/// failed, and who follows the commits.
struct Durable {
    committed: Sender<Commit>,
    failed: Arc<AtomicBool>,
    feed: Arc<Mutex<Feed>>,
}

impl Durable {
    /// Hands a commit to the syncer; its requests are told if the syncer is gone.
    fn send(&self, commit: Commit) {
        if let Err(mpsc::SendError(commit)) = self.committed.send(commit) {
            for (reply, _) in commit.answers {
                let _ = reply.send(Err(CommitError::SyncerGone));
            }
        }
    }

    /// Whether anything follows the commits (the running service's datasets do).
    fn followed(&self) -> bool {
        lock(&self.feed).followed()
    }
}

/// Failed events one trim deletes at most.
pub(super) const TRIM_ROWS: usize = 5_000;

/// A probe writes as much as the largest beacon a tracker sends.
const PROBE_BYTES: usize = 64 * 1024;

/// How often an idle writer looks for erasures made by another process (`ingest erase`).
const POLL: Duration = Duration::from_secs(1);

fn run(
    mut conn: Connection,
    jobs: Receiver<Job>,
    checkpoints: Checkpoints,
    durable: Durable,
    failing: &AtomicBool,
) {
    let mut since_checkpoint = 0;
    let mut next_seq = next_seq(&conn);
    let mut eraser = Eraser::default();
    // Changes when another connection commits: then the journal may hold erasures.
    let mut data_version = None;
    let mut open = true;
    while open || eraser.busy() {
        // Blocks only while no erasure is under way: a pass goes on between commits.
        let first = if !open {
            None
        } else if eraser.busy() {
            match jobs.try_recv() {
                Ok(job) => Some(job),
                Err(TryRecvError::Empty) => None,
                Err(TryRecvError::Disconnected) => {
                    open = false;
                    None
                }
            }
        } else {
            match jobs.recv_timeout(POLL) {
                Ok(job) => Some(job),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => {
                    open = false;
                    None
                }
            }
        };
        if durable.failed.load(Ordering::Relaxed) {
            first
                .into_iter()
                .chain(jobs.try_iter())
                .for_each(|(_, reply)| {
                    let _ = reply.send(Err(CommitError::Stopped));
                });
            eraser.fail(&CommitError::Stopped);
            continue;
        }
        if checkpoints.restart.swap(false, Ordering::Relaxed) {
            // Waits (busy_timeout) for a checkpoint under way, then copies what is left and
            // starts the WAL over.
            if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(())) {
                tracing::warn!(error = %e, "cannot restart the WAL");
            }
        }
        let mut group = Vec::new();
        let mut events = 0;
        let mut next = first;
        while let Some(job) = next.take() {
            match job {
                (Op::Erase(erasure), reply) => eraser.waiting.push((erasure, reply)),
                job => {
                    events += job.0.events();
                    group.push(job);
                }
            }
            if events < MAX_EVENTS_PER_COMMIT {
                next = jobs.try_recv().ok();
            }
        }
        let journal = durable.followed() && {
            let version = conn
                .query_row("PRAGMA data_version", [], |r| r.get::<_, i64>(0))
                .ok();
            std::mem::replace(&mut data_version, version) != version || version.is_none()
        };
        if !group.is_empty() || journal {
            since_checkpoint += events;
            if since_checkpoint >= checkpoints.every {
                since_checkpoint = 0;
                let _ = checkpoints.tick.try_send(());
            }
            let (ops, replies): (Vec<Op>, Vec<Reply>) = group.into_iter().unzip();
            let committed = commit(&mut conn, &ops, journal, &mut next_seq);
            failing.store(committed.is_err(), Ordering::Relaxed);
            match committed {
                Ok((outcomes, mut changes)) => {
                    for (op, outcome) in ops.into_iter().zip(&outcomes) {
                        changes.extend(change(op, outcome));
                    }
                    durable.send(Commit {
                        answers: replies.into_iter().zip(outcomes).collect(),
                        changes,
                    });
                }
                Err(e) => {
                    tracing::error!(error = %e, requests = replies.len(), "group commit failed");
                    // The journal was not taken either: look again next time.
                    data_version = None;
                    let e = CommitError::Transaction(Arc::new(e));
                    for reply in replies {
                        let _ = reply.send(Err(e.clone()));
                    }
                }
            }
        }
        if eraser.busy() {
            match eraser.step(&mut conn, durable.followed()) {
                Ok(Some(done)) => durable.send(done),
                Ok(None) => {}
                Err(e) => {
                    failing.store(true, Ordering::Relaxed);
                    tracing::error!(error = %e, "an erasure failed");
                    eraser.fail(&CommitError::Transaction(Arc::new(e)));
                }
            }
        }
    }
}

/// The log position after the last event stored.
fn next_seq(conn: &Connection) -> i64 {
    conn.query_row("SELECT coalesce(max(seq), 0) + 1 FROM events", [], |r| {
        r.get(0)
    })
    .unwrap_or(1)
}

/// What the datasets follow of one committed op: a write's newly stored events.
fn change(op: Op, outcome: &Outcome) -> Option<Change> {
    let (Op::Write(w), Outcome::Written(written)) = (op, outcome) else {
        return None;
    };
    let inputs: Vec<Input> = w
        .inputs
        .into_iter()
        .zip(&written.inserted)
        .filter_map(|(input, &new)| new.then_some(input))
        .collect();
    let through = written.last_seq?;
    (!inputs.is_empty()).then_some(Change::Stored {
        tenant_id: w.tenant_id,
        inputs,
        through,
    })
}

/// The syncer: takes every commit made so far, syncs, publishes their changes and answers
/// them; until the writer stops.
fn make_durable(
    committed: Receiver<Commit>,
    mut sync: impl FnMut() -> io::Result<()>,
    failed: &AtomicBool,
    feed: &Mutex<Feed>,
) {
    while let Ok(first) = committed.recv() {
        let mut commits = vec![first];
        commits.extend(committed.try_iter());
        let synced = if failed.load(Ordering::Relaxed) {
            Err(io::Error::other("an earlier sync failed"))
        } else {
            sync()
        };
        match synced {
            Ok(()) => {
                for commit in commits {
                    // Published before the answers, so that a reader told of a commit finds
                    // its changes published too.
                    lock(feed).publish(commit.changes);
                    for (reply, outcome) in commit.answers {
                        let _ = reply.send(Ok(outcome));
                    }
                }
            }
            Err(e) => {
                failed.store(true, Ordering::Relaxed);
                tracing::error!(error = %e, "cannot sync the WAL; the store takes no more writes");
                let e = CommitError::Sync(Arc::new(e));
                for (reply, _) in commits.into_iter().flat_map(|c| c.answers) {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// fdatasync of the file at `path` (the WAL), opened on first use: the first sync follows a
/// commit, so the file is there.
pub(super) fn sync_file(path: PathBuf) -> impl FnMut() -> io::Result<()> + Send + 'static {
    let mut file = None;
    move || {
        let f = match &file {
            Some(f) => f,
            None => file.insert(std::fs::File::open(&path)?),
        };
        f.sync_data()
    }
}

/// The checkpointer: a PASSIVE checkpoint per tick, until the writer stops.
fn checkpoint(conn: &Connection, ticks: Receiver<()>, restart: &AtomicBool, restart_frames: i64) {
    while ticks.recv().is_ok() {
        let frames = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(1));
        match frames {
            Ok(frames) if frames > restart_frames => restart.store(true, Ordering::Relaxed),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "checkpoint failed"),
        }
    }
}

/// Commits `ops` in one transaction; with `journal`, also takes the erasures other processes
/// left in the journal, returned as changes (they come first: they were committed earlier).
fn commit(
    conn: &mut Connection,
    ops: &[Op],
    journal: bool,
    next_seq: &mut i64,
) -> rusqlite::Result<(Vec<Outcome>, Vec<Change>)> {
    let tx = conn.transaction()?;
    let changes = if journal {
        take_journal(&tx)?
    } else {
        Vec::new()
    };
    let mut outcomes = Vec::with_capacity(ops.len());
    for op in ops {
        outcomes.push(match op {
            Op::Write(w) => Outcome::Written(write(&tx, w, next_seq)?),
            Op::Erase(_) => unreachable!("erasures run in passes of their own"),
            Op::Present(p) => {
                present(&tx, p)?;
                Outcome::Presented
            }
            Op::Probe => {
                // As much as a large batch, so that it needs room as a batch does: a few
                // bytes would fit in a page with room to spare on a full disk.
                tx.execute(
                    "INSERT OR REPLACE INTO settings (key, value) VALUES ('probe', ?1)",
                    ["x".repeat(PROBE_BYTES)],
                )?;
                tx.execute("DELETE FROM settings WHERE key = 'probe'", [])?;
                Outcome::Probed
            }
            Op::TrimFailed { before } => Outcome::Trimmed(tx.execute(
                // The oldest rows by seq, which follows the time they came: a bounded read
                // of the table's head, however long the table.
                "DELETE FROM failed_events WHERE received_at < ?1
                 AND seq IN (SELECT seq FROM failed_events ORDER BY seq LIMIT ?2)",
                params![before, TRIM_ROWS as i64],
            )?),
        });
    }
    tx.commit()?;
    Ok((outcomes, changes))
}

/// Stores a request's events at the next log positions: the writer numbers them itself,
/// one more than any it has given, so that positions grow in commit order even after the
/// newest events were erased (SQLite would give the highest number again).
fn write(
    tx: &rusqlite::Transaction<'_>,
    w: &Write,
    next_seq: &mut i64,
) -> rusqlite::Result<WriteOutcome> {
    let mut insert = tx.prepare_cached(
        "INSERT OR IGNORE INTO events
         (seq, tenant_id, event_id, event_time, user_id, payload) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    let mut inserted = Vec::with_capacity(w.events.len());
    let mut last_seq = None;
    for e in &w.events {
        let n = insert.execute(params![
            *next_seq,
            w.tenant_id,
            e.event_id,
            e.event_time,
            e.user_id,
            e.payload
        ])?;
        if n == 1 {
            last_seq = Some(*next_seq);
            *next_seq += 1;
        }
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
    Ok(WriteOutcome { inserted, last_seq })
}

fn present(tx: &rusqlite::Transaction<'_>, p: &Materialised) -> rusqlite::Result<()> {
    if p.every_document {
        tx.prepare_cached("DELETE FROM documents WHERE tenant_id = ?1")?
            .execute([p.tenant_id])?;
    }
    let mut put = tx.prepare_cached(
        "INSERT OR REPLACE INTO documents (tenant_id, key, body, as_of, etag) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for d in &p.documents {
        put.execute(params![p.tenant_id, d.key, d.body, d.as_of, d.etag])?;
    }
    let mut last = tx.prepare_cached(
        "SELECT clicked, converted FROM feedback_labels WHERE tenant_id = ?1 AND impression_id = ?2",
    )?;
    let mut label = tx.prepare_cached(
        "INSERT OR REPLACE INTO feedback_labels (tenant_id, impression_id, clicked, converted)
         VALUES (?1, ?2, ?3, ?4)",
    )?;
    let mut append = tx.prepare_cached(
        "INSERT INTO feedback (tenant_id, recommender, record) VALUES (?1, ?2, ?3)",
    )?;
    for f in &p.feedback {
        let labels = (f.clicked, f.converted);
        let exported: Option<(bool, bool)> = last
            .query_row(params![p.tenant_id, f.impression_id], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        if exported != Some(labels) {
            append.execute(params![p.tenant_id, f.recommender, f.record])?;
            label.execute(params![
                p.tenant_id,
                f.impression_id,
                f.clicked,
                f.converted
            ])?;
        }
    }
    Ok(())
}

/// The erasures another process (`ingest erase`) recorded for a running service, taken out
/// of the journal.
fn take_journal(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<Vec<Change>> {
    let rows: Vec<(i64, String)> = tx
        .prepare_cached("DELETE FROM erasure_journal RETURNING tenant_id, user_ids")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    Ok(rows
        .into_iter()
        .map(|(tenant_id, user_ids)| Change::Erased {
            tenant_id,
            user_ids: serde_json::from_str(&user_ids).unwrap_or_default(),
        })
        .collect())
}

/// Rows of a table an erasure pass reads in one transaction: a few milliseconds' work, so
/// that commits of events go on between them.
const ERASE_CHUNK_ROWS: i64 = 20_000;

/// The tables an erasure pass reads, in order, and how each finds a user's rows: a chunk's
/// deletion, given `(after, through)` seq bounds, returning each row's `(tenant_id, user_id)`.
/// There is no index on pseudonyms: one halved the ingest rate when measured (random keys
/// spread every commit over the index), while a pass reads the log in order.
const PASSES: [&str; 2] = [
    "DELETE FROM events WHERE seq > ?1 AND seq <= ?2
       AND (tenant_id, user_id) IN (SELECT tenant_id, user_id FROM temp.erasing)
     RETURNING tenant_id, user_id",
    "DELETE FROM failed_events WHERE seq > ?1 AND seq <= ?2
       AND (tenant_id, CASE WHEN json_valid(payload)
                       THEN json_extract(payload, '$.channel_meta.client_ref') END)
           IN (SELECT tenant_id, user_id FROM temp.erasing)
     RETURNING tenant_id, json_extract(payload, '$.channel_meta.client_ref')",
];
const PASS_TABLES: [&str; 2] = ["events", "failed_events"];

/// Erasures waiting, and the pass under way. A pass serves every erasure waiting when it
/// begins: it reads the log in order, [`ERASE_CHUNK_ROWS`] rows a transaction, each
/// transaction between two group commits, so a burst of erasures costs one read of the log
/// and never holds up the commits of events for longer than one chunk.
#[derive(Default)]
struct Eraser {
    waiting: Vec<(Erasure, Reply)>,
    pass: Option<Pass>,
}

struct Pass {
    requests: Vec<(Erasure, Reply)>,
    /// The table being read (of [`PASS_TABLES`]), and per table the last seq read in it.
    table: usize,
    after: [i64; 2],
    /// Rows deleted per (tenant, pseudonym), per table.
    deleted: HashMap<(i64, String), [usize; 2]>,
}

impl Pass {
    /// Deletes the users' rows of table `table` (of [`PASS_TABLES`]) after the last seq read
    /// and through `through`, counting them.
    fn delete(
        &mut self,
        tx: &rusqlite::Transaction<'_>,
        table: usize,
        through: i64,
    ) -> rusqlite::Result<()> {
        let mut delete = tx.prepare_cached(PASSES[table])?;
        let mut rows = delete.query(params![self.after[table], through])?;
        while let Some(row) = rows.next()? {
            let key = (row.get::<_, i64>(0)?, row.get::<_, String>(1)?);
            self.deleted.entry(key).or_default()[table] += 1;
        }
        Ok(())
    }
}

impl Eraser {
    fn busy(&self) -> bool {
        self.pass.is_some() || !self.waiting.is_empty()
    }

    /// Tells every erasure waiting or under way that it failed; they were not completed.
    fn fail(&mut self, error: &CommitError) {
        let requests = self.pass.take().map(|p| p.requests).unwrap_or_default();
        for (_, reply) in requests.into_iter().chain(self.waiting.drain(..)) {
            let _ = reply.send(Err(error.clone()));
        }
    }

    /// One transaction of the pass (starting one if none is under way). The last returns
    /// the pass's commit: its answers, and as changes the users erased when the datasets
    /// follow the commits; else the journal keeps them for a service that may be running.
    fn step(&mut self, conn: &mut Connection, followed: bool) -> rusqlite::Result<Option<Commit>> {
        let tx = conn.transaction()?;
        let pass = match &mut self.pass {
            Some(pass) => pass,
            None => {
                tx.execute_batch(
                    "CREATE TEMP TABLE IF NOT EXISTS erasing (tenant_id INTEGER NOT NULL,
                        user_id TEXT NOT NULL, PRIMARY KEY (tenant_id, user_id)) WITHOUT ROWID;
                     DELETE FROM temp.erasing;",
                )?;
                let mut add =
                    tx.prepare_cached("INSERT OR IGNORE INTO temp.erasing VALUES (?1, ?2)")?;
                for (e, _) in &self.waiting {
                    for user_id in &e.user_ids {
                        add.execute(params![e.tenant_id, user_id])?;
                    }
                }
                drop(add);
                self.pass.insert(Pass {
                    requests: std::mem::take(&mut self.waiting),
                    table: 0,
                    after: [0; 2],
                    deleted: HashMap::new(),
                })
            }
        };
        let table = PASS_TABLES[pass.table];
        let last: i64 = tx.query_row(
            &format!("SELECT coalesce(max(seq), 0) FROM {table}"),
            [],
            |r| r.get(0),
        )?;
        // The chunk that reaches the end of the table reads to its end: rows committed
        // meanwhile are the user's too.
        let through = match pass.after[pass.table].saturating_add(ERASE_CHUNK_ROWS) {
            through if through >= last => i64::MAX,
            through => through,
        };
        pass.delete(&tx, pass.table, through)?;
        if through < i64::MAX {
            pass.after[pass.table] = through;
            tx.commit()?;
            return Ok(None);
        }
        // A row committed from now on gets a seq past the table's last (the writer numbers
        // events past any it gave; SQLite numbers failed events past the largest left).
        pass.after[pass.table] = tx.query_row(
            &format!("SELECT coalesce(max(seq), 0) FROM {table}"),
            [],
            |r| r.get(0),
        )?;
        pass.table += 1;
        if pass.table < PASS_TABLES.len() {
            tx.commit()?;
            return Ok(None);
        }
        // The last transaction: the rows committed to the tables read earlier while the pass
        // read the later ones are taken here, so nothing of the users committed before the
        // pass ends is left, and nothing is committed between this and its answer.
        for table in 0..PASS_TABLES.len() - 1 {
            pass.delete(&tx, table, i64::MAX)?;
        }
        tx.execute(
            "DELETE FROM identity_vault
             WHERE (tenant_id, user_id) IN (SELECT tenant_id, user_id FROM temp.erasing)",
            [],
        )?;
        if !followed {
            let mut note = tx.prepare_cached(
                "INSERT INTO erasure_journal (tenant_id, user_ids) VALUES (?1, ?2)",
            )?;
            for (e, _) in &pass.requests {
                note.execute(params![
                    e.tenant_id,
                    serde_json::to_string(&e.user_ids).unwrap_or_default()
                ])?;
            }
        }
        tx.execute("DELETE FROM temp.erasing", [])?;
        tx.commit()?;
        let Some(pass) = self.pass.take() else {
            return Ok(None);
        };
        let mut done = Commit::default();
        for (erasure, reply) in pass.requests {
            let mut erased = Erased {
                events: 0,
                failed_events: 0,
            };
            for user_id in &erasure.user_ids {
                if let Some([events, failed]) =
                    pass.deleted.get(&(erasure.tenant_id, user_id.clone()))
                {
                    erased.events += events;
                    erased.failed_events += failed;
                }
            }
            done.answers.push((reply, Outcome::Erased(erased)));
            if followed {
                done.changes.push(Change::Erased {
                    tenant_id: erasure.tenant_id,
                    user_ids: erasure.user_ids,
                });
            }
        }
        Ok(Some(done))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::store::{DB_FILE, SCHEMA, connect};

    /// A store's database with one tenant, and the writer's connection to it.
    fn database(dir: &Path) -> Connection {
        let conn = connect(&dir.join(DB_FILE)).unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        conn.execute_batch("PRAGMA wal_autocheckpoint = 0;")
            .unwrap();
        conn.execute(
            "INSERT INTO tenants (id, client_key, api_key_sha256, origins, created_at)
             VALUES (1, 'pk_test', '', '[]', 0)",
            [],
        )
        .unwrap();
        conn
    }

    fn batch(first: usize, n: usize) -> Op {
        let events = (first..first + n)
            .map(|i| StoredEvent {
                event_id: format!("e-{i}"),
                event_time: 0,
                user_id: None,
                payload: format!(r#"{{"event_id":"e-{i}","padding":"{}"}}"#, "x".repeat(400)),
            })
            .collect();
        Op::Write(Write {
            tenant_id: 1,
            received_at: 0,
            events,
            failed: Vec::new(),
            vault: Vec::new(),
            inputs: Vec::new(),
        })
    }

    /// The writer's side of a syncer thread that syncs with `sync`.
    fn syncing(sync: impl FnMut() -> io::Result<()> + Send + 'static) -> Durable {
        let (committed, to_sync) = mpsc::channel();
        let failed = Arc::new(AtomicBool::new(false));
        let flag = failed.clone();
        let feed = Arc::new(Mutex::new(Feed::default()));
        let published = feed.clone();
        std::thread::spawn(move || make_durable(to_sync, sync, &flag, &published));
        Durable {
            committed,
            failed,
            feed,
        }
    }

    /// A writer on a new database whose syncs are `sync`, and the checkpointer beside it.
    fn writer(
        dir: &Path,
        sync: impl FnMut() -> io::Result<()> + Send + 'static,
        policy: CheckpointPolicy,
    ) -> Handle {
        let conn = database(dir);
        Handle::start(
            conn,
            sync,
            connect(&dir.join(DB_FILE)).unwrap(),
            policy,
            Arc::new(Snapshots::new(dir)),
        )
    }

    /// Column `column` of the first row `sql` answers, on a connection of its own.
    fn ask(dir: &Path, sql: &str, column: usize) -> i64 {
        connect(&dir.join(DB_FILE))
            .unwrap()
            .query_row(sql, [], |r| r.get(column))
            .unwrap()
    }

    fn stored(dir: &Path) -> i64 {
        ask(dir, "SELECT count(*) FROM events", 0)
    }

    #[tokio::test]
    async fn failing_commits_are_told_until_one_goes_through_again() {
        let dir = tempfile::tempdir().unwrap();
        // A database that may not grow past a few pages more: a full disk, as SQLite sees it.
        let conn = database(dir.path());
        let pages: i64 = conn
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap();
        conn.execute_batch(&format!("PRAGMA max_page_count = {};", pages + 20))
            .unwrap();
        let writer = Handle::start(
            conn,
            || Ok(()),
            connect(&dir.path().join(DB_FILE)).unwrap(),
            CheckpointPolicy::DEFAULT,
            Arc::new(Snapshots::new(dir.path())),
        );
        let mut written = 0;
        let full = loop {
            match writer.submit(batch(written, 10)).await {
                Ok(_) => written += 10,
                Err(e) => break e.to_string(),
            }
            assert!(written < 10_000, "the database never filled");
        };
        assert!(full.contains("full"), "{full}");
        assert!(writer.failing());
        assert!(writer.check().is_ok(), "the writer still runs");
        assert!(writer.submit(Op::Probe).await.is_err(), "still full");
        assert!(writer.failing());
        // Room again (the events' pages freed, here by a connection of the test's own): the
        // probe goes through and clears the state.
        connect(&dir.path().join(DB_FILE))
            .unwrap()
            .execute("DELETE FROM events", [])
            .unwrap();
        assert!(matches!(
            writer.submit(Op::Probe).await,
            Ok(Outcome::Probed)
        ));
        assert!(!writer.failing());
    }

    #[tokio::test]
    async fn a_commit_is_answered_only_after_the_sync_that_follows_it() {
        let dir = tempfile::tempdir().unwrap();
        let (started, sync_started) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        let sync = move || {
            started.send(()).unwrap();
            released.recv().map_err(io::Error::other)
        };
        let writer = writer(dir.path(), sync, CheckpointPolicy::DEFAULT);
        let answer = writer.submit(batch(0, 5));
        tokio::pin!(answer);
        // The commit is made and its sync begun, but the request is not answered yet.
        let wait = tokio::task::spawn_blocking(move || sync_started.recv().unwrap());
        tokio::select! {
            r = &mut answer => panic!("answered before its sync: {:?}", r.map(|_| ())),
            _ = wait => {}
        }
        assert_eq!(stored(dir.path()), 5);
        assert!(
            futures_util::poll!(&mut answer).is_pending(),
            "answered during its sync"
        );
        release.send(()).unwrap();
        assert!(matches!(answer.await, Ok(Outcome::Written(w)) if w.inserted == [true; 5]));
        drop(release);
        writer.close();
    }

    #[tokio::test]
    async fn a_failed_sync_fails_its_commit_and_stops_the_store_taking_writes() {
        let dir = tempfile::tempdir().unwrap();
        let mut syncs = 0;
        let sync = move || {
            syncs += 1;
            if syncs == 1 {
                Ok(())
            } else {
                Err(io::Error::other("disk on fire"))
            }
        };
        let writer = writer(dir.path(), sync, CheckpointPolicy::DEFAULT);
        assert!(writer.submit(batch(0, 1)).await.is_ok());
        assert!(writer.check().is_ok());
        let failed = writer.submit(batch(1, 1)).await.err().unwrap();
        assert!(
            matches!(&failed, StoreError::Commit(CommitError::Sync(e)) if e.to_string() == "disk on fire"),
            "{failed}"
        );
        let not_ready = writer.check().err().unwrap();
        assert!(
            matches!(not_ready, StoreError::Commit(CommitError::Stopped)),
            "{not_ready}"
        );
        let refused = writer.submit(batch(2, 1)).await.err().unwrap();
        assert!(
            matches!(refused, StoreError::Commit(CommitError::Stopped)),
            "{refused}"
        );
        writer.close();
    }

    /// Frames in the WAL since it last started over. (Checkpoints what it can as it asks.)
    fn wal_frames(dir: &Path) -> i64 {
        ask(dir, "PRAGMA wal_checkpoint(PASSIVE)", 1)
    }

    #[tokio::test]
    async fn the_checkpointer_copies_the_wal_into_the_database_beside_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let policy = CheckpointPolicy {
            every: 100,
            restart_frames: i64::MAX,
        };
        let wal = sync_file(dir.path().join(format!("{DB_FILE}-wal")));
        let writer = writer(dir.path(), wal, policy);
        let db_size = || std::fs::metadata(dir.path().join(DB_FILE)).unwrap().len();
        let before = db_size();
        for i in 0..10 {
            writer.submit(batch(i * 50, 50)).await.unwrap();
        }
        // The writer never checkpoints, so the events reach the database file only through
        // the checkpointer (and the last connection's close, which has not happened yet).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while db_size() < before + 200_000 {
            assert!(
                std::time::Instant::now() < deadline,
                "no checkpoint: the database file stayed at {} bytes",
                db_size()
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        writer.close();
    }

    #[test]
    fn the_checkpointer_asks_for_a_restart_only_past_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = database(dir.path());
        for i in 0..10 {
            let mut seq = next_seq(&conn);
            commit(&mut conn, &[batch(i * 50, 50)], false, &mut seq).unwrap();
        }
        let asks = |restart_frames| {
            let (tick, ticks) = mpsc::sync_channel(1);
            tick.send(()).unwrap();
            drop(tick);
            let restart = AtomicBool::new(false);
            let checkpointer = connect(&dir.path().join(DB_FILE)).unwrap();
            checkpoint(&checkpointer, ticks, &restart, restart_frames);
            restart.load(Ordering::Relaxed)
        };
        assert!(!asks(1_000_000));
        assert!(asks(10));
        drop(conn);
    }

    #[test]
    fn the_writer_restarts_the_wal_when_asked() {
        for asked in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let conn = database(dir.path());
            let (jobs, receiver) = mpsc::channel();
            let (tick, _ticks) = mpsc::sync_channel(1);
            let restart = Arc::new(AtomicBool::new(false));
            let checkpoints = Checkpoints {
                tick,
                every: usize::MAX,
                restart: restart.clone(),
            };
            let durable = syncing(|| Ok(()));
            let writer = std::thread::spawn(move || {
                run(
                    conn,
                    receiver,
                    checkpoints,
                    durable,
                    &AtomicBool::new(false),
                )
            });
            let submit = |op| {
                let (reply, answer) = oneshot::channel();
                jobs.send((op, reply)).unwrap();
                assert!(answer.blocking_recv().unwrap().is_ok());
            };
            for i in 0..20 {
                submit(batch(i * 50, 50));
            }
            restart.store(asked, Ordering::Relaxed);
            submit(batch(1_000, 1));
            let frames = wal_frames(dir.path());
            if asked {
                assert!(frames < 10, "{frames} frames after a restart");
            } else {
                assert!(frames > 100, "only {frames} frames without a restart");
            }
            drop(jobs);
            writer.join().unwrap();
        }
    }

    /// Rows of `user_id` in the table, the failed events matched by their pseudonym.
    fn rows_of(conn: &Connection, table: &str, user_id: &str) -> i64 {
        let column = match table {
            "events" => "user_id",
            _ => "CASE WHEN json_valid(payload) THEN payload ->> '$.channel_meta.client_ref' END",
        };
        conn.query_row(
            &format!("SELECT count(*) FROM {table} WHERE {column} = ?1"),
            [user_id],
            |r| r.get(0),
        )
        .unwrap()
    }

    #[test]
    fn an_erasure_reads_the_log_in_chunks_between_commits_and_takes_rows_written_meanwhile() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = database(dir.path());
        // 45,000 events, a third of them the erased user's, in the order they came.
        conn.execute_batch(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 45000)
             INSERT INTO events (tenant_id, event_id, event_time, user_id, payload)
             SELECT 1, 'e-' || i, i, CASE i % 3 WHEN 0 THEN 'u-gone' ELSE 'u-kept' END, '{}'
             FROM n;
             INSERT INTO failed_events (tenant_id, received_at, error, message, payload) VALUES
                (1, 0, 'x', 'x', '{\"channel_meta\":{\"client_ref\":\"u-gone\"}}'),
                (1, 0, 'x', 'x', 'not json'),
                (1, 0, 'x', 'x', '{\"channel_meta\":{\"client_ref\":\"u-kept\"}}');
             INSERT INTO identity_vault VALUES (1, 'u-gone', x'00', x'00');",
        )
        .unwrap();
        let mut eraser = Eraser::default();
        let (reply, answer) = oneshot::channel();
        let erasure = Erasure {
            tenant_id: 1,
            user_ids: vec!["u-gone".into()],
        };
        eraser.waiting.push((erasure, reply));

        // The first transaction reads the first chunk only.
        assert!(eraser.step(&mut conn, true).unwrap().is_none());
        let gone_after_chunk = |conn: &Connection| -> i64 {
            conn.query_row(
                "SELECT count(*) FROM events WHERE user_id = 'u-gone' AND seq > ?1",
                [ERASE_CHUNK_ROWS],
                |r| r.get(0),
            )
            .unwrap()
        };
        assert_eq!(
            rows_of(&conn, "events", "u-gone"),
            15_000 - ERASE_CHUNK_ROWS / 3
        );
        assert_eq!(gone_after_chunk(&conn), 15_000 - ERASE_CHUNK_ROWS / 3);
        // Events are committed between two of its transactions, the user's among them.
        let mut late = batch(100_000, 1);
        if let Op::Write(w) = &mut late {
            w.events[0].user_id = Some("u-gone".into());
        }
        let mut seq = next_seq(&conn);
        commit(&mut conn, &[late, batch(200_000, 1)], false, &mut seq).unwrap();
        // And one more once the pass has gone on to the failed events.
        while eraser.pass.as_ref().is_some_and(|p| p.table == 0) {
            assert!(eraser.step(&mut conn, true).unwrap().is_none());
        }
        let mut later = batch(300_000, 1);
        if let Op::Write(w) = &mut later {
            w.events[0].user_id = Some("u-gone".into());
        }
        commit(&mut conn, &[later], false, &mut seq).unwrap();

        let done = loop {
            if let Some(done) = eraser.step(&mut conn, true).unwrap() {
                break done;
            }
        };
        assert_eq!(rows_of(&conn, "events", "u-gone"), 0, "the late events too");
        assert_eq!(rows_of(&conn, "events", "u-kept"), 30_000);
        assert_eq!(ask_conn(&conn, "SELECT count(*) FROM events"), 30_001);
        assert_eq!(rows_of(&conn, "failed_events", "u-gone"), 0);
        assert_eq!(ask_conn(&conn, "SELECT count(*) FROM failed_events"), 2);
        assert_eq!(ask_conn(&conn, "SELECT count(*) FROM identity_vault"), 0);
        assert!(!eraser.busy());
        let [(reply, Outcome::Erased(erased))] = &done.answers[..] else {
            panic!("one answer, an erasure's");
        };
        assert_eq!(
            *erased,
            Erased {
                events: 15_002,
                failed_events: 1
            }
        );
        assert!(matches!(
            &done.changes[..],
            [Change::Erased { tenant_id: 1, user_ids }] if user_ids == &["u-gone"]
        ));
        assert!(!reply.is_closed());
        drop(answer);
        assert_eq!(ask_conn(&conn, "SELECT count(*) FROM erasure_journal"), 0);
    }

    fn ask_conn(conn: &Connection, sql: &str) -> i64 {
        conn.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    #[test]
    fn an_erasure_nothing_follows_is_journalled_for_a_running_service_to_take() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = database(dir.path());
        let (reply, _answer) = oneshot::channel();
        let mut eraser = Eraser::default();
        let user_ids = vec!["u-a".to_owned(), "u-a2".to_owned()];
        eraser.waiting.push((
            Erasure {
                tenant_id: 1,
                user_ids: user_ids.clone(),
            },
            reply,
        ));
        let done = loop {
            if let Some(done) = eraser.step(&mut conn, false).unwrap() {
                break done;
            }
        };
        assert!(done.changes.is_empty(), "nothing follows: no changes");
        assert_eq!(ask_conn(&conn, "SELECT count(*) FROM erasure_journal"), 1);
        // A writer that is followed takes it as a change, once.
        let (_, changes) = commit(&mut conn, &[], true, &mut 1).unwrap();
        assert!(matches!(
            &changes[..],
            [Change::Erased { tenant_id: 1, user_ids: taken }] if taken == &user_ids
        ));
        assert_eq!(ask_conn(&conn, "SELECT count(*) FROM erasure_journal"), 0);
        let (_, changes) = commit(&mut conn, &[], true, &mut 1).unwrap();
        assert!(changes.is_empty());
    }

    #[test]
    fn a_whole_set_of_documents_replaces_the_tenants_others() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = database(dir.path());
        let doc =
            |key: &str| crate::datasets::Document::parse(key, r#"{"items":[]}"#, "\"e\"").unwrap();
        let present = |documents, every_document| {
            Op::Present(Materialised {
                tenant_id: 1,
                documents,
                every_document,
                feedback: Vec::new(),
            })
        };
        let keys = |conn: &Connection| -> Vec<String> {
            conn.prepare("SELECT key FROM documents ORDER BY key")
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        let (a, b) = ("entities/trending/gone", "entities/trending/ticker");
        commit(
            &mut conn,
            &[present(vec![doc(a), doc(b)], true)],
            false,
            &mut 1,
        )
        .unwrap();
        commit(&mut conn, &[present(vec![doc(b)], false)], false, &mut 1).unwrap();
        assert_eq!(
            keys(&conn),
            [a, b],
            "a partial set replaces only its own keys"
        );
        commit(&mut conn, &[present(vec![doc(b)], true)], false, &mut 1).unwrap();
        assert_eq!(keys(&conn), [b]);
    }
}
