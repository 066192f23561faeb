//! The embedded store: one SQLite file in WAL mode under the data directory.
//!
//! Writes go through one writer thread that commits many requests' events in one fsync'd
//! transaction (group commit, see `writer`); reads use their own connection, which WAL lets
//! run beside the writer.

mod payload;
mod snapshots;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};

pub use payload::{Context, Payload, PayloadChannel, PayloadEntity};
pub use snapshots::SNAPSHOT_DIR;
use snapshots::Snapshots;
pub use writer::{
    Change, CommitError, Committed, Erased, Erasure, FailedEvent, FeedbackRecord, Materialised,
    Sealed, StoredEvent, Write, WriteOutcome,
};
use writer::{CheckpointPolicy, Op, Outcome};

/// The store file inside the data directory.
pub const DB_FILE: &str = "ingest.sqlite";

/// Reading connections: tenant and key lookups, documents, feedback pages. Each read takes
/// well under a millisecond, so a few serve every tenant; a slow one no longer holds up the
/// rest.
const READERS: usize = 4;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot make {path} private to this user: {source}")]
    Permissions {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the store has layout {found}, newer than the layout {known} this ingest knows: run the newer ingest that wrote it"
    )]
    NewerLayout { found: i64, known: i64 },
    #[error(
        "another ingest serves {0} already: stop it first, or give this one another --data-dir"
    )]
    Serving(PathBuf),
    #[error("cannot lock {path}: {source}")]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write or read the engine snapshot {path}: {source}")]
    Snapshot {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("store error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("commit failed: {0}")]
    Commit(#[from] CommitError),
    #[error("a datasets task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("the store is closed")]
    Closed,
    #[error("tenant `{0}` already exists")]
    TenantExists(String),
    #[error("unknown client_key `{0}`")]
    UnknownTenant(String),
    #[error(
        "origin `{0}` must be scheme://host[:port], without a path, e.g. https://app.example.com"
    )]
    BadOrigin(String),
}

/// A customer of the service. The client key is public (it ships in pages) and can only
/// write; the API key is secret and reads; the pseudonymisation key is derived from the
/// master secret and `key_version` (see `anonymise::keyring`), never stored.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: i64,
    pub client_key: String,
    /// Empty: any origin may send.
    pub origins: Vec<String>,
    pub key_version: u32,
}

impl Tenant {
    pub fn allows_origin(&self, origin: &str) -> bool {
        self.origins.is_empty() || self.origins.iter().any(|o| o == origin)
    }
}

/// The lock a serving ingest holds on its data directory for as long as it runs: one
/// service per store, and commands beside it (`ingest erase`) can tell that one runs.
#[derive(Debug)]
pub struct ServiceLock {
    /// Open for as long as the lock is held; the lock goes with it.
    _held: std::fs::File,
}

/// The lock file inside the data directory.
const LOCK_FILE: &str = "ingest.lock";

impl ServiceLock {
    fn file(data_dir: &Path) -> Result<(PathBuf, std::fs::File), StoreError> {
        let path = data_dir.join(LOCK_FILE);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(&path) {
            Ok(file) => Ok((path, file)),
            Err(source) => Err(StoreError::Lock { path, source }),
        }
    }

    /// Takes the lock, or says that another ingest serves the directory.
    pub fn acquire(data_dir: &Path) -> Result<ServiceLock, StoreError> {
        let (path, file) = ServiceLock::file(data_dir)?;
        match file.try_lock() {
            Ok(()) => Ok(ServiceLock { _held: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Serving(data_dir.to_owned())),
            Err(std::fs::TryLockError::Error(source)) => Err(StoreError::Lock { path, source }),
        }
    }

    /// Whether an ingest serves the directory now.
    pub fn held(data_dir: &Path) -> bool {
        match ServiceLock::file(data_dir) {
            Ok((_, file)) => matches!(file.try_lock(), Err(std::fs::TryLockError::WouldBlock)),
            Err(_) => false,
        }
    }
}

pub struct Store {
    path: PathBuf,
    /// Reading connections, each used by one read at a time; WAL lets them read beside the
    /// writer and each other.
    readers: Vec<Mutex<Connection>>,
    /// Where the next read starts looking for a free connection.
    next_reader: std::sync::atomic::AtomicUsize,
    writer: writer::Handle,
    snapshots: std::sync::Arc<Snapshots>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tenants (
    id INTEGER PRIMARY KEY,
    client_key TEXT NOT NULL UNIQUE,
    api_key_sha256 TEXT NOT NULL,
    key_version INTEGER NOT NULL DEFAULT 1,
    origins TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS tenants_by_api_key ON tenants (api_key_sha256);
-- The event log: anonymised events, each stored once per tenant.
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    event_id TEXT NOT NULL,
    -- What the log is read by: event time (for people querying the log), pseudonym (erasure).
    -- Everything else is in the payload.
    event_time INTEGER NOT NULL,
    user_id TEXT,
    payload TEXT NOT NULL,
    UNIQUE (tenant_id, event_id)
);
-- The identity vault (off by default): original client_refs, sealed, by pseudonym.
CREATE TABLE IF NOT EXISTS identity_vault (
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    user_id TEXT NOT NULL,
    nonce BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);
-- Events that failed validation, kept with the reason (nothing sent is silently lost).
CREATE TABLE IF NOT EXISTS failed_events (
    seq INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    received_at INTEGER NOT NULL,
    error TEXT NOT NULL,
    message TEXT NOT NULL,
    payload TEXT NOT NULL
);
-- Presentation-ready documents: each materialised API response, served verbatim.
CREATE TABLE IF NOT EXISTS documents (
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    key TEXT NOT NULL,
    body TEXT NOT NULL,
    as_of INTEGER NOT NULL,
    etag TEXT NOT NULL,
    PRIMARY KEY (tenant_id, key)
) WITHOUT ROWID;
-- Engagement feedback for recommenders: finalised impressions and later label changes.
CREATE TABLE IF NOT EXISTS feedback (
    seq INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    recommender TEXT,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS feedback_by_tenant ON feedback (tenant_id, seq);
-- The labels last exported per impression: a record is appended only when they change, so
-- feedback stays exactly-once across restarts and retries.
CREATE TABLE IF NOT EXISTS feedback_labels (
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    impression_id TEXT NOT NULL,
    clicked INTEGER NOT NULL,
    converted INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, impression_id)
) WITHOUT ROWID;
-- Erasures made by `ingest erase` beside a running service, until that service's datasets
-- have forgotten the users too (it takes them within a second, or the command does).
CREATE TABLE IF NOT EXISTS erasure_journal (
    seq INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL,
    user_ids TEXT NOT NULL
);
-- The store's own facts: the fingerprint of the master secret its pseudonyms are made with.
CREATE TABLE IF NOT EXISTS settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
";

/// The layout `SCHEMA` and [`migrate`] make, kept in the file's `user_version`.
const LAYOUT: i64 = 3;

/// The layout of the store on `conn`; an error when a newer version of ingest wrote it, whose
/// tables this one would misread (and relabel, were it to migrate).
fn layout(conn: &Connection) -> Result<i64, StoreError> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > LAYOUT {
        return Err(StoreError::NewerLayout {
            found,
            known: LAYOUT,
        });
    }
    Ok(found)
}

/// Brings a store written by an earlier version to [`LAYOUT`].
fn migrate(conn: &Connection, version: i64) -> Result<(), StoreError> {
    if version < 2 {
        // Layout 1 kept six of the payload's fields in columns as well, which no query read
        // and every insert paid for.
        let columns: Vec<String> = conn
            .prepare("SELECT name FROM pragma_table_info('events')")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let mut drop = String::from("BEGIN;");
        for column in [
            "event_type",
            "action",
            "created_at",
            "sent_at",
            "received_at",
            "session_id",
        ] {
            if columns.iter().any(|c| c == column) {
                drop += &format!("ALTER TABLE events DROP COLUMN {column};");
            }
        }
        drop += "COMMIT;";
        conn.execute_batch(&drop)?;
    }
    if version < 3 {
        // Layout 3: a rotated secret API key stays valid until its grace period ends.
        let columns: Vec<String> = conn
            .prepare("SELECT name FROM pragma_table_info('tenants')")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        if !columns.iter().any(|c| c == "previous_api_key_sha256") {
            conn.execute_batch(
                "BEGIN;
                 ALTER TABLE tenants ADD COLUMN previous_api_key_sha256 TEXT;
                 ALTER TABLE tenants ADD COLUMN previous_api_key_expires_at INTEGER;
                 CREATE INDEX IF NOT EXISTS tenants_by_previous_api_key
                    ON tenants (previous_api_key_sha256);
                 COMMIT;",
            )?;
        }
    }
    conn.execute_batch(&format!("PRAGMA user_version = {LAYOUT};"))?;
    Ok(())
}

fn connect(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    // For a new store only (an existing one keeps its page size). Fewer, larger pages per
    // commit measured ~8 % faster under `cargo xtask bench ingest`.
    conn.execute_batch("PRAGMA page_size = 16384;")?;
    // FULL makes every WAL commit reach the disk before it returns. The writer's connection
    // alone commits with NORMAL, and its syncer makes each group of requests durable before
    // they are answered (see `writer`): one fsync per commit, never one per event. A 64 MiB
    // page cache measured ~10 % faster under `cargo xtask bench ingest`. `secure_delete`
    // overwrites what a delete frees, so an erased user's events do not live on in free pages.
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;
         PRAGMA cache_size = -65536; PRAGMA secure_delete = ON;",
    )?;
    Ok(conn)
}

/// Creates `dir` (and missing parents) readable by this user alone: it holds pseudonymised
/// events, and by default the master secret. A directory that exists is the operator's and
/// is left as it is; the files in it are made private (see `private_files`).
pub(crate) fn private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Makes an existing file readable by this user alone (`mode` on Unix).
fn restrict(path: &Path, mode: u32) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let current = std::fs::metadata(path)?.permissions().mode() & 0o777;
        if current != mode {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
        }
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}

/// Creates the database file empty and owner-only unless it exists, before SQLite opens it:
/// SQLite gives the WAL and shared-memory files it creates the database file's permissions.
/// Those of an older ingest's files are narrowed too.
fn private_files(db: &Path) -> Result<(), StoreError> {
    let failed = |path: &Path| {
        let path = path.to_owned();
        move |source| StoreError::Permissions { path, source }
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(db).map_err(failed(db))?;
    restrict(db, 0o600).map_err(failed(db))?;
    for suffix in ["-wal", "-shm"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        let file = PathBuf::from(name);
        if file.exists() {
            restrict(&file, 0o600).map_err(failed(&file))?;
        }
    }
    Ok(())
}

impl Store {
    /// Opens (creating if needed) the store under `data_dir` and starts its writer.
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        private_dir(data_dir).map_err(|source| StoreError::DataDir {
            path: data_dir.to_owned(),
            source,
        })?;
        let path = data_dir.join(DB_FILE);
        private_files(&path)?;
        let conn = connect(&path)?;
        let version = layout(&conn)?;
        conn.execute_batch(SCHEMA)?;
        migrate(&conn, version)?;
        // The writer's own commits neither checkpoint nor wait for the disk: `writer` runs
        // checkpoints beside it and syncs the WAL before it answers.
        // Erasures keep the pseudonyms they look for in a temporary table: in memory only.
        conn.execute_batch(
            "PRAGMA wal_autocheckpoint = 0; PRAGMA synchronous = NORMAL; PRAGMA temp_store = MEMORY;",
        )?;
        let wal = data_dir.join(format!("{DB_FILE}-wal"));
        let snapshots = std::sync::Arc::new(Snapshots::new(data_dir));
        let writer = writer::Handle::start(
            conn,
            writer::sync_file(wal),
            connect(&path)?,
            CheckpointPolicy::DEFAULT,
            snapshots.clone(),
        );
        let readers = (0..READERS)
            .map(|_| connect(&path).map(Mutex::new))
            .collect::<Result<_, _>>()?;
        Ok(Store {
            readers,
            next_reader: Default::default(),
            path,
            writer,
            snapshots,
        })
    }

    /// Runs `f` on a free reading connection; when all are busy, waits for one in turn.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let start = self
            .next_reader
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let n = self.readers.len();
        let free = (0..n).find_map(|i| match self.readers[(start + i) % n].try_lock() {
            Ok(conn) => Some(conn),
            Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        });
        let conn = match free {
            Some(conn) => conn,
            None => crate::lock(&self.readers[start % n]),
        };
        Ok(f(&conn)?)
    }

    /// The fingerprint of the master secret this store's pseudonyms are made with, once one
    /// has been used (see `Keyring::open`).
    pub fn master_fingerprint(&self) -> Result<Option<String>, StoreError> {
        self.read(|c| {
            c.query_row(
                "SELECT value FROM settings WHERE key = 'master_fingerprint'",
                [],
                |r| r.get(0),
            )
            .optional()
        })
    }

    /// Records the master secret's fingerprint, unless one is recorded already.
    pub fn record_master_fingerprint(&self, fingerprint: &str) -> Result<(), StoreError> {
        self.read(|c| {
            c.execute(
                "INSERT OR IGNORE INTO settings (key, value) VALUES ('master_fingerprint', ?1)",
                [fingerprint],
            )
        })?;
        Ok(())
    }

    /// Whether any pseudonym has been stored: events, failed events or vault entries.
    pub fn holds_pseudonyms(&self) -> Result<bool, StoreError> {
        self.read(|c| {
            c.query_row(
                "SELECT EXISTS (SELECT 1 FROM events) OR EXISTS (SELECT 1 FROM failed_events)
                    OR EXISTS (SELECT 1 FROM identity_vault)",
                [],
                |r| r.get(0),
            )
        })
    }

    /// Registers a tenant; returns it with its secret API key, which is shown once and
    /// stored only as a SHA-256 hash.
    pub fn add_tenant(
        &self,
        client_key: &str,
        origins: &[String],
    ) -> Result<(Tenant, String), StoreError> {
        let origins = origins
            .iter()
            .map(|o| normalise_origin(o))
            .collect::<Result<Vec<_>, _>>()?;
        let api_key = new_api_key();
        let origins_json = serde_json::to_string(&origins).unwrap_or_default();
        let id = self.read(|c| {
            let inserted = c.execute(
                "INSERT OR IGNORE INTO tenants (client_key, api_key_sha256, origins, created_at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![client_key, sha256_hex(&api_key), origins_json, now_ms()],
            )?;
            Ok((inserted == 1).then(|| c.last_insert_rowid()))
        })?;
        let id = id.ok_or_else(|| StoreError::TenantExists(client_key.to_owned()))?;
        let tenant = Tenant {
            id,
            client_key: client_key.to_owned(),
            origins,
            key_version: 1,
        };
        Ok((tenant, api_key))
    }

    /// Keeps a copy of a tenant of the cluster's database (a node's store replicates the
    /// stream: its events need their tenant). Its API keys stay in the database alone.
    pub fn mirror_tenant(&self, tenant: &Tenant) -> Result<(), StoreError> {
        let origins = serde_json::to_string(&tenant.origins).unwrap_or_default();
        self.read(|c| {
            c.execute(
                "INSERT INTO tenants (id, client_key, api_key_sha256, key_version, origins, created_at)
                 VALUES (?1, ?2, '', ?3, ?4, ?5)
                 ON CONFLICT (id) DO UPDATE SET key_version = excluded.key_version,
                    origins = excluded.origins",
                params![tenant.id, tenant.client_key, tenant.key_version, origins, now_ms()],
            )
        })?;
        Ok(())
    }

    pub fn tenant(&self, client_key: &str) -> Result<Option<Tenant>, StoreError> {
        self.read(|c| {
            c.query_row(
                "SELECT id, client_key, origins, key_version FROM tenants WHERE client_key = ?1",
                [client_key],
                tenant_row,
            )
            .optional()
        })
    }

    /// The tenant whose secret API key this is: its current one, or the one before it until
    /// that one's grace period ends.
    pub fn tenant_by_api_key(&self, api_key: &str) -> Result<Option<Tenant>, StoreError> {
        self.read(|c| {
            c.query_row(
                "SELECT id, client_key, origins, key_version FROM tenants WHERE api_key_sha256 = ?1
                 UNION ALL
                 SELECT id, client_key, origins, key_version FROM tenants
                 WHERE previous_api_key_sha256 = ?1 AND previous_api_key_expires_at > ?2",
                params![sha256_hex(api_key), now_ms()],
                tenant_row,
            )
            .optional()
        })
    }

    /// Gives the tenant a new secret API key, returned (it is shown once). The key it had
    /// stays valid for `grace` more, for the tenant's services to move over; the one before
    /// that is refused at once.
    pub fn rotate_api_key(
        &self,
        client_key: &str,
        grace: std::time::Duration,
    ) -> Result<String, StoreError> {
        let api_key = new_api_key();
        let expires = now_ms().saturating_add(grace.as_millis().min(i64::MAX as u128) as i64);
        let changed = self.read(|c| {
            c.execute(
                "UPDATE tenants SET previous_api_key_sha256 = api_key_sha256,
                    previous_api_key_expires_at = ?3, api_key_sha256 = ?2
                 WHERE client_key = ?1",
                params![client_key, sha256_hex(&api_key), expires],
            )
        })?;
        if changed == 0 {
            return Err(StoreError::UnknownTenant(client_key.to_owned()));
        }
        Ok(api_key)
    }

    /// Refuses every secret API key the tenant has, at once (a leaked key), and gives it a
    /// new one, returned.
    pub fn revoke_api_keys(&self, client_key: &str) -> Result<String, StoreError> {
        let api_key = new_api_key();
        let changed = self.read(|c| {
            c.execute(
                "UPDATE tenants SET api_key_sha256 = ?2, previous_api_key_sha256 = NULL,
                    previous_api_key_expires_at = NULL
                 WHERE client_key = ?1",
                params![client_key, sha256_hex(&api_key)],
            )
        })?;
        if changed == 0 {
            return Err(StoreError::UnknownTenant(client_key.to_owned()));
        }
        Ok(api_key)
    }

    pub fn tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        self.read(|c| {
            c.prepare(
                "SELECT id, client_key, origins, key_version FROM tenants ORDER BY client_key",
            )?
            .query_map([], tenant_row)?
            .collect()
        })
    }

    /// Starts a new pseudonymisation key version for the tenant; returns the new version.
    pub fn rotate_key(&self, client_key: &str) -> Result<u32, StoreError> {
        let version = self.read(|c| {
            c.query_row(
                "UPDATE tenants SET key_version = key_version + 1 WHERE client_key = ?1 RETURNING key_version",
                [client_key],
                |r| r.get(0),
            )
            .optional()
        })?;
        version.ok_or_else(|| StoreError::UnknownTenant(client_key.to_owned()))
    }

    /// Commits events and failed events durably; resolves once they are on disk.
    pub async fn write(&self, write: Write) -> Result<WriteOutcome, StoreError> {
        match self.writer.submit(Op::Write(write)).await? {
            Outcome::Written(w) => Ok(w),
            _ => Err(StoreError::Commit(CommitError::OutOfTurn)),
        }
    }

    /// Deletes a user's events, failed events and vault entries, durably. The log is read in
    /// chunks between other commits (see `writer`), so this takes a read of the log, and
    /// erasures made meanwhile share it.
    ///
    /// The tenant's engine snapshot is deleted before this answers (see [`Store::snapshot`]).
    pub async fn erase(&self, erasure: Erasure) -> Result<Erased, StoreError> {
        let tenant_id = erasure.tenant_id;
        match self.writer.submit(Op::Erase(erasure)).await? {
            Outcome::Erased(e) => {
                // A running service's feed did so already; without one, nothing did.
                self.snapshots.forget(tenant_id, self.position());
                Ok(e)
            }
            _ => Err(StoreError::Commit(CommitError::OutOfTurn)),
        }
    }

    /// The tenant's datasets engine snapshot, as [`Store::save_snapshot`] stored it, if any.
    pub fn snapshot(&self, tenant_id: i64) -> Result<Option<Vec<u8>>, StoreError> {
        self.snapshots.load(tenant_id)
    }

    /// Stores the tenant's engine snapshot durably, in place of the one it had, unless users
    /// of the tenant were erased after `applied` (the position, see [`Store::subscribe`], of
    /// the last commit the snapshot's state had applied): then says it was not stored. An
    /// erasure deletes the snapshot before it is answered.
    pub fn save_snapshot(
        &self,
        tenant_id: i64,
        applied: u64,
        snapshot: &[u8],
    ) -> Result<bool, StoreError> {
        self.snapshots.save(tenant_id, applied, snapshot)
    }

    /// Replaces materialised documents and appends feedback records, durably.
    pub async fn present(&self, materialised: Materialised) -> Result<(), StoreError> {
        match self.writer.submit(Op::Present(materialised)).await? {
            Outcome::Presented => Ok(()),
            _ => Err(StoreError::Commit(CommitError::OutOfTurn)),
        }
    }

    /// Follows every durable commit from now on: the position of the last commit published
    /// so far, and the changes of each later one, in commit order (see [`Change`]). While
    /// anything follows, erasures by other processes (`ingest erase`) are taken from the
    /// journal and published as changes too.
    pub fn subscribe(&self) -> (u64, std::sync::mpsc::Receiver<std::sync::Arc<Committed>>) {
        self.writer.feed().subscribe()
    }

    /// The position of the last commit published to subscribers: every commit answered so
    /// far is at or before it.
    pub fn position(&self) -> u64 {
        self.writer.feed().position()
    }

    /// Waits up to `wait` until a running service has taken the erasures journalled here (a
    /// service looks every second); removes what is left then, and says whether nothing was.
    /// With no service running, `wait` is zero: the next one to start builds its datasets
    /// from the log, which no longer holds the users.
    pub fn settle_erasures(&self, wait: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + wait;
        let pending = || {
            self.read(|c| {
                c.query_row("SELECT EXISTS (SELECT 1 FROM erasure_journal)", [], |r| {
                    r.get::<_, bool>(0)
                })
            })
            .unwrap_or(true)
        };
        while pending() {
            if std::time::Instant::now() >= deadline {
                let tenants = self.read(|c| {
                    c.prepare("DELETE FROM erasure_journal RETURNING tenant_id")?
                        .query_map([], |r| r.get::<_, i64>(0))?
                        .collect::<Result<Vec<_>, _>>()
                });
                // The service may have written a snapshot before it stalled.
                for tenant_id in tenants.unwrap_or_default() {
                    self.snapshots.forget(tenant_id, self.position());
                }
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        true
    }

    /// Deletes the failed events received before `before` (ms since the epoch), a bounded
    /// number a commit so that commits of events go on between them; returns how many.
    pub async fn trim_failed(&self, before: i64) -> Result<usize, StoreError> {
        let mut deleted = 0;
        loop {
            match self.writer.submit(Op::TrimFailed { before }).await? {
                Outcome::Trimmed(n) => {
                    deleted += n;
                    if n < writer::TRIM_ROWS {
                        return Ok(deleted);
                    }
                }
                _ => return Err(StoreError::Commit(CommitError::OutOfTurn)),
            }
        }
    }

    /// A materialised document: `(body, etag)`.
    pub fn document(
        &self,
        tenant_id: i64,
        key: &str,
    ) -> Result<Option<(String, String)>, StoreError> {
        self.read(|c| {
            c.prepare_cached("SELECT body, etag FROM documents WHERE tenant_id = ?1 AND key = ?2")?
                .query_row(params![tenant_id, key], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
    }

    /// Every materialised document of the tenant: `(key, body, as_of, etag)`.
    pub fn documents(
        &self,
        tenant_id: i64,
    ) -> Result<Vec<(String, String, i64, String)>, StoreError> {
        self.read(|c| {
            c.prepare_cached("SELECT key, body, as_of, etag FROM documents WHERE tenant_id = ?1")?
                .query_map([tenant_id], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })?
                .collect()
        })
    }

    /// The labels last exported for each of the tenant's impressions:
    /// `(impression_id, clicked, converted)`.
    pub fn feedback_labels(&self, tenant_id: i64) -> Result<Vec<(String, bool, bool)>, StoreError> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT impression_id, clicked, converted FROM feedback_labels WHERE tenant_id = ?1",
            )?
            .query_map([tenant_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect()
        })
    }

    /// Feedback records after `cursor`, oldest first: `(seq, record)`.
    pub fn feedback(
        &self,
        tenant_id: i64,
        recommender: Option<&str>,
        cursor: i64,
        limit: usize,
    ) -> Result<Vec<(i64, serde_json::Value)>, StoreError> {
        let rows: Vec<(i64, String)> = self.read(|c| {
            c.prepare_cached(
                "SELECT seq, record FROM feedback WHERE tenant_id = ?1 AND seq > ?2
                 AND (?3 IS NULL OR recommender = ?3) ORDER BY seq LIMIT ?4",
            )?
            .query_map(params![tenant_id, cursor, recommender, limit as i64], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect()
        })?;
        Ok(rows
            .into_iter()
            .filter_map(|(seq, r)| Some((seq, serde_json::from_str(&r).ok()?)))
            .collect())
    }

    /// Calls `f` with every stored event payload of the tenant, in log order: the order the
    /// datasets took them as they were committed, so an engine rebuilt from the log drops the
    /// same late events the live one did. Returns how many there were and the log position
    /// of the newest (0 with none): a change published with a later one was not read. One
    /// statement on a connection of its own: it reads one snapshot (a commit's events all or
    /// none), and a long read blocks no other reader.
    pub fn for_each_event(
        &self,
        tenant_id: i64,
        f: impl FnMut(&str),
    ) -> Result<(usize, i64), StoreError> {
        self.for_each_event_after(tenant_id, 0, f)
    }

    /// As [`Store::for_each_event`], for the events after log position `after` alone (those
    /// an engine snapshot covering `after` lacks); the position returned is `after` with none.
    pub fn for_each_event_after(
        &self,
        tenant_id: i64,
        after: i64,
        mut f: impl FnMut(&str),
    ) -> Result<(usize, i64), StoreError> {
        let conn = connect(&self.path)?;
        // By position (the rowid), in order, with nothing to sort: `+` keeps SQLite from the
        // (tenant, event id) index, whose order would have to be sorted again. The rows of
        // other tenants are read and passed over: a log read whole is rare, since the engines'
        // snapshots leave only a tail to read.
        let mut stmt = conn.prepare(
            "SELECT payload, seq FROM events WHERE seq > ?2 AND +tenant_id = ?1 ORDER BY seq",
        )?;
        let mut rows = stmt.query([tenant_id, after])?;
        let (mut n, mut through) = (0, after);
        while let Some(row) = rows.next()? {
            f(row.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?);
            through = through.max(row.get::<_, i64>(1)?);
            n += 1;
        }
        Ok((n, through))
    }

    /// The newest stored events of a tenant, oldest first, as anonymised JSON.
    pub fn recent_events(
        &self,
        tenant_id: i64,
        limit: usize,
    ) -> Result<Vec<serde_json::Value>, StoreError> {
        self.stored_json(
            "SELECT payload FROM (SELECT seq, payload FROM events WHERE tenant_id = ?1 ORDER BY seq DESC LIMIT ?2) ORDER BY seq",
            tenant_id,
            limit,
        )
    }

    /// The newest failed events of a tenant, oldest first, with their reasons.
    pub fn recent_failed(
        &self,
        tenant_id: i64,
        limit: usize,
    ) -> Result<Vec<serde_json::Value>, StoreError> {
        self.stored_json(
            "SELECT json_object('error', error, 'message', message, 'payload', json(payload)) FROM
             (SELECT * FROM failed_events WHERE tenant_id = ?1 ORDER BY seq DESC LIMIT ?2) ORDER BY seq",
            tenant_id,
            limit,
        )
    }

    fn stored_json(
        &self,
        sql: &str,
        tenant_id: i64,
        limit: usize,
    ) -> Result<Vec<serde_json::Value>, StoreError> {
        let rows: Vec<String> = self.read(|c| {
            c.prepare(sql)?
                .query_map(params![tenant_id, limit as i64], |r| r.get(0))?
                .collect()
        })?;
        Ok(rows
            .iter()
            .filter_map(|r| serde_json::from_str(r).ok())
            .collect())
    }

    /// The sealed original of a pseudonym, if the vault holds it.
    pub fn sealed(&self, tenant_id: i64, user_id: &str) -> Result<Option<Sealed>, StoreError> {
        self.read(|c| {
            c.query_row(
                "SELECT nonce, ciphertext FROM identity_vault WHERE tenant_id = ?1 AND user_id = ?2",
                params![tenant_id, user_id],
                |r| {
                    let nonce: Vec<u8> = r.get(0)?;
                    Ok(Sealed {
                        user_id: user_id.to_owned(),
                        nonce: nonce.try_into().unwrap_or([0; 12]),
                        ciphertext: r.get(1)?,
                    })
                },
            )
            .optional()
        })
    }

    /// Fails unless the store answers a read and its writer takes writes.
    pub fn check(&self) -> Result<(), StoreError> {
        self.writer.check()?;
        self.read(|c| c.query_row("SELECT count(*) FROM tenants", [], |r| r.get::<_, i64>(0)))?;
        Ok(())
    }

    /// Whether the store takes writes now: [`Store::check`], and while commits fail (a full
    /// disk), a probe write that must go through. Traffic stops reaching a node that is not
    /// ready, so without the probe nothing would tell that commits succeed again.
    pub async fn ready(self: &std::sync::Arc<Self>) -> Result<(), StoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.check())
            .await
            .map_err(|_| StoreError::Closed)??;
        if self.writer.failing() {
            match self.writer.submit(Op::Probe).await? {
                Outcome::Probed => {}
                _ => return Err(StoreError::Commit(CommitError::OutOfTurn)),
            }
        }
        Ok(())
    }

    /// Stops the writer after it has committed everything already submitted.
    pub fn close(&self) {
        self.writer.close();
    }
}

fn tenant_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Tenant> {
    let origins: String = r.get(2)?;
    Ok(Tenant {
        id: r.get(0)?,
        client_key: r.get(1)?,
        origins: serde_json::from_str(&origins).unwrap_or_default(),
        key_version: r.get(3)?,
    })
}

/// `https://App.Example.com/` → `https://app.example.com`, as browsers send `Origin`.
pub(crate) fn normalise_origin(origin: &str) -> Result<String, StoreError> {
    let bad = || StoreError::BadOrigin(origin.to_owned());
    let trimmed = origin.strip_suffix('/').unwrap_or(origin);
    let (scheme, rest) = trimmed.split_once("://").ok_or_else(bad)?;
    let valid_host = |h: &str| {
        !h.is_empty()
            && h.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
    };
    if !matches!(scheme, "http" | "https") || !valid_host(rest) {
        return Err(bad());
    }
    Ok(format!("{scheme}://{}", rest.to_ascii_lowercase()))
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A secret API key: `sk_` and 24 random bytes in hex. Only its SHA-256 is stored.
pub(crate) fn new_api_key() -> String {
    format!("sk_{}", crate::bytes::hex(&crate::bytes::random::<24>()))
}

pub(crate) fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    crate::bytes::hex(&sha2::Sha256::digest(s.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events_columns(conn: &Connection) -> Vec<String> {
        conn.prepare("SELECT name FROM pragma_table_info('events')")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn a_layout_1_store_is_migrated_keeping_its_events() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB_FILE);
        {
            // Layout 1's events table, as version 0.1 created it, with one event.
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE tenants (id INTEGER PRIMARY KEY, client_key TEXT NOT NULL UNIQUE,
                    api_key_sha256 TEXT NOT NULL, key_version INTEGER NOT NULL DEFAULT 1,
                    origins TEXT NOT NULL, created_at INTEGER NOT NULL);
                 INSERT INTO tenants VALUES (1, 'pk_old', 'x', 1, '[]', 0);
                 CREATE TABLE events (seq INTEGER PRIMARY KEY,
                    tenant_id INTEGER NOT NULL REFERENCES tenants(id), event_id TEXT NOT NULL,
                    event_type TEXT NOT NULL, action TEXT NOT NULL, event_time INTEGER NOT NULL,
                    created_at INTEGER NOT NULL, sent_at INTEGER, received_at INTEGER NOT NULL,
                    user_id TEXT, session_id TEXT NOT NULL, payload TEXT NOT NULL,
                    UNIQUE (tenant_id, event_id));
                 INSERT INTO events VALUES (1, 1, 'e-old', 'instrument', 'viewed', 5, 5, NULL, 6,
                    'u', 's', '{\"event_id\":\"e-old\"}');",
            )
            .unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let mut payloads = Vec::new();
        store
            .for_each_event(1, |p| payloads.push(p.to_owned()))
            .unwrap();
        assert_eq!(payloads, [r#"{"event_id":"e-old"}"#]);
        let conn = connect(&path).unwrap();
        assert_eq!(
            events_columns(&conn),
            [
                "seq",
                "tenant_id",
                "event_id",
                "event_time",
                "user_id",
                "payload"
            ]
        );
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, LAYOUT);
        store.close();
        // Opening it again changes nothing.
        drop(Store::open(dir.path()).unwrap());
        assert_eq!(events_columns(&conn).len(), 6);
    }

    #[test]
    fn a_new_store_has_the_current_layout() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path()).unwrap());
        let conn = connect(&dir.path().join(DB_FILE)).unwrap();
        assert_eq!(events_columns(&conn).len(), 6);
        let (version, page_size): (i64, i64) = conn
            .query_row(
                "SELECT * FROM pragma_user_version, pragma_page_size",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((version, page_size), (LAYOUT, 16384));
    }

    #[test]
    fn a_store_of_a_newer_layout_is_refused_and_left_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path()).unwrap());
        let path = dir.path().join(DB_FILE);
        let newer = LAYOUT + 1;
        Connection::open(&path)
            .unwrap()
            .execute_batch(&format!("PRAGMA user_version = {newer};"))
            .unwrap();
        let err = Store::open(dir.path()).err().unwrap();
        assert!(
            matches!(err, StoreError::NewerLayout { found, known } if found == newer && known == LAYOUT),
            "{err}"
        );
        assert!(err.to_string().contains("newer than the layout"), "{err}");
        let version: i64 = Connection::open(&path)
            .unwrap()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, newer, "the layout number is not relabelled");
    }

    #[cfg(unix)]
    #[test]
    fn the_data_dir_and_its_files_are_the_owners_alone() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("data");
        let store = Store::open(&dir).unwrap();
        let db = dir.join(DB_FILE);
        let wal = dir.join(format!("{DB_FILE}-wal"));
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&db), 0o600);
        assert_eq!(
            mode(&wal),
            0o600,
            "SQLite gives the WAL the database's mode"
        );
        store.close();
        drop(store);
        // A store an older version left open to everyone is narrowed when opened; the
        // directory, being the operator's, is not touched.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        drop(Store::open(&dir).unwrap());
        assert_eq!((mode(&dir), mode(&db)), (0o755, 0o600));
    }

    #[test]
    fn a_rotated_api_key_works_through_its_grace_period_and_a_revoked_one_not_at_all() {
        use std::time::Duration;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (_, first) = store.add_tenant("pk_keys", &[]).unwrap();
        let found = |key: &str| store.tenant_by_api_key(key).unwrap().map(|t| t.client_key);
        let second = store
            .rotate_api_key("pk_keys", Duration::from_secs(3600))
            .unwrap();
        assert_eq!(found(&second).as_deref(), Some("pk_keys"));
        assert_eq!(
            found(&first).as_deref(),
            Some("pk_keys"),
            "in its grace period"
        );
        let third = store.rotate_api_key("pk_keys", Duration::ZERO).unwrap();
        assert_eq!(found(&third).as_deref(), Some("pk_keys"));
        assert_eq!(found(&second), None, "no grace period");
        assert_eq!(found(&first), None, "two rotations ago");
        let fourth = store
            .rotate_api_key("pk_keys", Duration::from_secs(3600))
            .unwrap();
        let fifth = store.revoke_api_keys("pk_keys").unwrap();
        assert_eq!(found(&fifth).as_deref(), Some("pk_keys"));
        assert_eq!(
            (found(&fourth), found(&third)),
            (None, None),
            "revoked at once"
        );
        assert!(matches!(
            store.rotate_api_key("pk_none", Duration::ZERO),
            Err(StoreError::UnknownTenant(_))
        ));
    }

    #[test]
    fn origins_are_normalised_or_refused() {
        assert_eq!(
            normalise_origin("https://App.Example.com/").unwrap(),
            "https://app.example.com"
        );
        assert_eq!(
            normalise_origin("http://127.0.0.1:5173").unwrap(),
            "http://127.0.0.1:5173"
        );
        for bad in [
            "app.example.com",
            "ftp://x",
            "https://x/path",
            "https://",
            "https://a b",
        ] {
            assert!(normalise_origin(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn failed_events_past_their_retention_are_deleted_in_bounded_commits() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (tenant, _) = store.add_tenant("pk_trim", &[]).unwrap();
        let failed = |n: usize| -> Vec<FailedEvent> {
            (0..n)
                .map(|_| FailedEvent {
                    error: "bad".into(),
                    message: "bad".into(),
                    payload: "{}".into(),
                })
                .collect()
        };
        for (received_at, n) in [(1_000, writer::TRIM_ROWS * 2 + 7), (5_000, 3)] {
            store
                .write(Write {
                    tenant_id: tenant.id,
                    received_at,
                    events: Vec::new(),
                    failed: failed(n),
                    vault: Vec::new(),
                    inputs: Vec::new(),
                })
                .await
                .unwrap();
        }
        assert_eq!(
            store.trim_failed(5_000).await.unwrap(),
            writer::TRIM_ROWS * 2 + 7
        );
        assert_eq!(store.recent_failed(tenant.id, 100).unwrap().len(), 3);
        assert_eq!(store.trim_failed(5_000).await.unwrap(), 0);
        store.close();
    }

    #[test]
    fn a_read_goes_on_while_another_holds_a_connection() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(Store::open(dir.path()).unwrap());
        store.add_tenant("pk_pool", &[]).unwrap();
        // One connection held, as by a slow read.
        let held = crate::lock(&store.readers[0]);
        let (done, finished) = std::sync::mpsc::channel();
        let reader = store.clone();
        std::thread::spawn(move || {
            for _ in 0..READERS {
                done.send(reader.tenant("pk_pool").unwrap().is_some())
                    .unwrap();
            }
        });
        for _ in 0..READERS {
            let found = finished
                .recv_timeout(std::time::Duration::from_secs(60))
                .expect("reads waited for the held connection");
            assert!(found);
        }
        drop(held);
    }
}
