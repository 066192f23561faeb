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

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use rusqlite::{Connection, params};
use tokio::sync::oneshot;

use super::StoreError;
use crate::anonymise::vault::Sealed;

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
    /// A write the size of a large batch, undone in its transaction: whether commits go
    /// through again.
    Probe,
}

pub(super) enum Outcome {
    Written(WriteOutcome),
    Erased(Erased),
    Presented,
    Probed,
}

impl Op {
    fn events(&self) -> usize {
        match self {
            Op::Write(w) => w.events.len(),
            Op::Erase(_) => 1,
            Op::Present(p) => p.documents.len() + p.feedback.len(),
            Op::Probe => 1,
        }
    }
}

type Reply = oneshot::Sender<Result<Outcome, String>>;
type Job = (Op, Reply);

/// One commit's answers, waiting for the sync that makes it durable.
type Committed = Vec<(Reply, Outcome)>;

pub(super) struct Handle {
    sender: Mutex<Option<Sender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Set when a sync failed: the store takes no more writes.
    failed: Arc<AtomicBool>,
    /// Set while commits fail (a full disk, say), cleared by the next one that succeeds.
    failing: Arc<AtomicBool>,
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
    ) -> Handle {
        let (sender, receiver) = mpsc::channel();
        let failed = Arc::new(AtomicBool::new(false));
        let (committed, to_sync) = mpsc::channel();
        let syncer = {
            let failed = failed.clone();
            std::thread::Builder::new()
                .name("store-sync".into())
                .spawn(move || make_durable(to_sync, sync, &failed))
                .expect("the sync thread can be spawned")
        };
        let durable = Durable {
            committed,
            failed: failed.clone(),
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

    /// Whether the store takes writes: its writer runs and no sync has failed.
    pub(super) fn check(&self) -> Result<(), StoreError> {
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner());
        if thread.as_ref().is_none_or(|t| t.is_finished()) {
            return Err(StoreError::Closed);
        }
        if self.failed.load(Ordering::Relaxed) {
            return Err(StoreError::Commit(STOPPED.into()));
        }
        Ok(())
    }

    /// Whether the last commit failed.
    pub(super) fn failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
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

/// The writer's side of the checkpointer: a tick asks for a checkpoint (one waits at most)
/// every `every` events; `restart` is the checkpointer asking the writer to start the WAL over.
struct Checkpoints {
    tick: SyncSender<()>,
    every: usize,
    restart: Arc<AtomicBool>,
}

/// The writer's side of the syncer: where commits wait for their sync, and whether a sync
/// has failed.
struct Durable {
    committed: Sender<Committed>,
    failed: Arc<AtomicBool>,
}

/// A probe writes as much as the largest beacon a tracker sends.
const PROBE_BYTES: usize = 64 * 1024;

const STOPPED: &str = "the store stopped taking writes after a failed sync; restart it";

fn run(
    mut conn: Connection,
    jobs: Receiver<Job>,
    checkpoints: Checkpoints,
    durable: Durable,
    failing: &AtomicBool,
) {
    let mut since_checkpoint = 0;
    while let Ok(first) = jobs.recv() {
        if durable.failed.load(Ordering::Relaxed) {
            let _ = first.1.send(Err(STOPPED.into()));
            continue;
        }
        if checkpoints.restart.swap(false, Ordering::Relaxed) {
            // Waits (busy_timeout) for a checkpoint under way, then copies what is left and
            // starts the WAL over.
            if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(())) {
                tracing::warn!(error = %e, "cannot restart the WAL");
            }
        }
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
        since_checkpoint += events;
        if since_checkpoint >= checkpoints.every {
            since_checkpoint = 0;
            let _ = checkpoints.tick.try_send(());
        }
        let committed = commit(&mut conn, &group);
        failing.store(committed.is_err(), Ordering::Relaxed);
        match committed {
            Ok(outcomes) => {
                let answers = group.into_iter().map(|(_, reply)| reply).zip(outcomes);
                if let Err(mpsc::SendError(answers)) = durable.committed.send(answers.collect()) {
                    for (reply, _) in answers {
                        let _ = reply.send(Err("the sync thread stopped".into()));
                    }
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

/// The syncer: takes every commit made so far, syncs, answers them; until the writer stops.
fn make_durable(
    committed: Receiver<Committed>,
    mut sync: impl FnMut() -> io::Result<()>,
    failed: &AtomicBool,
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
                for (reply, outcome) in commits.into_iter().flatten() {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                failed.store(true, Ordering::Relaxed);
                tracing::error!(error = %e, "cannot sync the WAL; the store takes no more writes");
                for (reply, _) in commits.into_iter().flatten() {
                    let _ = reply.send(Err(format!("cannot sync the WAL: {e}")));
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
        });
    }
    tx.commit()?;
    Ok(outcomes)
}

fn write(tx: &rusqlite::Transaction<'_>, w: &Write) -> rusqlite::Result<WriteOutcome> {
    let mut insert = tx.prepare_cached(
        "INSERT OR IGNORE INTO events
         (tenant_id, event_id, event_time, user_id, payload) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    let mut inserted = Vec::with_capacity(w.events.len());
    for e in &w.events {
        let n = insert.execute(params![
            w.tenant_id,
            e.event_id,
            e.event_time,
            e.user_id,
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
        })
    }

    /// The writer's side of a syncer thread that syncs with `sync`.
    fn syncing(sync: impl FnMut() -> io::Result<()> + Send + 'static) -> Durable {
        let (committed, to_sync) = mpsc::channel();
        let failed = Arc::new(AtomicBool::new(false));
        let flag = failed.clone();
        std::thread::spawn(move || make_durable(to_sync, sync, &flag));
        Durable { committed, failed }
    }

    /// A writer on a new database whose syncs are `sync`, and the checkpointer beside it.
    fn writer(
        dir: &Path,
        sync: impl FnMut() -> io::Result<()> + Send + 'static,
        policy: CheckpointPolicy,
    ) -> Handle {
        let conn = database(dir);
        Handle::start(conn, sync, connect(&dir.join(DB_FILE)).unwrap(), policy)
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
        let failed = writer.submit(batch(1, 1)).await.err().unwrap().to_string();
        assert!(
            failed.contains("cannot sync the WAL: disk on fire"),
            "{failed}"
        );
        let not_ready = writer.check().err().unwrap().to_string();
        assert!(not_ready.contains(STOPPED), "{not_ready}");
        let refused = writer.submit(batch(2, 1)).await.err().unwrap().to_string();
        assert!(refused.contains(STOPPED), "{refused}");
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
            let (reply, _) = oneshot::channel();
            commit(&mut conn, &[(batch(i * 50, 50), reply)]).unwrap();
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
}
