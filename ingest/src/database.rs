//! The store of record in a cluster: PostgreSQL. Tenants and their keys live here, so every
//! node reads the same ones; the sink (`sink`) writes here what the stream holds, one
//! transaction a fetched batch, idempotently, so a batch delivered twice is stored once.
//!
//! Events land in `events`, with the SQLite log's columns and payload, partitioned by the day
//! of the device's `created_at` (UTC). PostgreSQL wants a partitioned table's unique key to
//! hold the partition key, so the key is `(tenant_id, event_id, created_at)`: an event the
//! stream delivers again carries the same `created_at`, so it is the same row. Days within a
//! year back and a day ahead get a partition of their own, created by whichever sink first
//! needs it (under an advisory lock); anything else — a device clock years off — goes to
//! `events_default`. `seq` is the event's position in the stream. Failed events are in
//! `failed_events`, keyed by their stream position; identity-vault entries in
//! `identity_vault`.

use std::borrow::Cow;
use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

use crate::anonymise::keyring::{Keyring, KeyringError};
use crate::lock;
use crate::store::{self, Tenant};

/// One day in milliseconds.
const DAY_MS: i64 = 86_400_000;
/// Days back from today that get a partition of their own.
const PARTITION_DAYS_BACK: i64 = 366;
/// Days ahead of today that do (a device clock a little fast).
const PARTITION_DAYS_AHEAD: i64 = 1;
/// The advisory lock migrations and partition creation take, so that nodes starting or
/// sinking at once do not race on the catalogue.
const SCHEMA_LOCK: i64 = 0x5046_4300_0001;
/// Taken shared by every write of the sink, exclusively by an erasure: an erasure waits for
/// the writes under way, and every write after it sees its tombstones.
const ERASURE_LOCK: i64 = 0x5046_4300_0002;
/// Held, for as long as its connection lives, by the one node that writes documents and
/// feedback (see `presenter`).
pub(crate) const PRESENTER_LOCK: i64 = 0x5046_4300_0003;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tenants (
    id BIGSERIAL PRIMARY KEY,
    client_key TEXT NOT NULL UNIQUE,
    api_key_sha256 TEXT NOT NULL,
    previous_api_key_sha256 TEXT,
    previous_api_key_expires_at BIGINT,
    key_version INTEGER NOT NULL DEFAULT 1,
    origins TEXT[] NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS tenants_by_api_key ON tenants (api_key_sha256);
CREATE INDEX IF NOT EXISTS tenants_by_previous_api_key ON tenants (previous_api_key_sha256);
-- The event log: anonymised events, each stored once per tenant.
CREATE TABLE IF NOT EXISTS events (
    seq BIGINT NOT NULL,
    tenant_id BIGINT NOT NULL,
    event_id TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    event_time BIGINT NOT NULL,
    user_id TEXT,
    payload JSONB NOT NULL,
    PRIMARY KEY (tenant_id, event_id, created_at)
) PARTITION BY RANGE (created_at);
CREATE TABLE IF NOT EXISTS events_default PARTITION OF events DEFAULT;
CREATE INDEX IF NOT EXISTS events_by_user ON events (tenant_id, user_id);
CREATE TABLE IF NOT EXISTS failed_events (
    seq BIGINT PRIMARY KEY,
    tenant_id BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    error TEXT NOT NULL,
    message TEXT NOT NULL,
    -- What was sent, de-identified: JSON, or a JSON string of a body that was not JSON.
    payload JSONB NOT NULL
);
CREATE INDEX IF NOT EXISTS failed_events_by_tenant ON failed_events (tenant_id, seq);
CREATE TABLE IF NOT EXISTS identity_vault (
    tenant_id BIGINT NOT NULL,
    user_id TEXT NOT NULL,
    nonce BYTEA NOT NULL,
    ciphertext BYTEA NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);
-- Erased users, with the stream position of their latest erasure: an event, failed event or
-- vault entry published before it and delivered to a sink after it is not stored again.
CREATE TABLE IF NOT EXISTS erasures (
    tenant_id BIGINT NOT NULL,
    user_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);
-- Each erasure, by its stream position, and the rows it removed (by the node that took it
-- or by a sink that met it on the stream first).
CREATE TABLE IF NOT EXISTS erasure_log (
    tenant_id BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    events BIGINT NOT NULL,
    failed_events BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);
-- The materialised lists, as the query API serves them, written by one node at a time.
CREATE TABLE IF NOT EXISTS documents (
    tenant_id BIGINT NOT NULL,
    key TEXT NOT NULL,
    body JSONB NOT NULL,
    as_of BIGINT NOT NULL,
    etag TEXT NOT NULL,
    written_by TEXT NOT NULL,
    PRIMARY KEY (tenant_id, key)
);
-- Engagement feedback for recommenders: a record for each change of an impression's labels.
CREATE TABLE IF NOT EXISTS feedback (
    tenant_id BIGINT NOT NULL,
    impression_id TEXT NOT NULL,
    clicked BOOLEAN NOT NULL,
    converted BOOLEAN NOT NULL,
    recommender TEXT,
    record JSONB NOT NULL,
    written_by TEXT NOT NULL,
    PRIMARY KEY (tenant_id, impression_id, clicked, converted)
);
CREATE TABLE IF NOT EXISTS settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DatabaseError {
    #[error("`{url}` is not a PostgreSQL connection URL: {message}")]
    Url { url: String, message: String },
    #[error("cannot reach PostgreSQL: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("PostgreSQL: {0}")]
    Query(#[from] tokio_postgres::Error),
    #[error("tenant `{0}` already exists")]
    TenantExists(String),
    #[error("unknown client_key `{0}`")]
    UnknownTenant(String),
    #[error(transparent)]
    Store(#[from] store::StoreError),
}

/// An event as the sink stores it.
#[derive(Debug, Clone)]
pub struct EventRow {
    /// Its position in the stream.
    pub seq: i64,
    pub tenant_id: i64,
    /// By the device's clock, ms since the Unix epoch: what the table is partitioned by.
    pub created_at: i64,
    /// The event as the SQLite log keeps it.
    pub event: store::StoredEvent,
}

/// A failed event as the sink stores it.
#[derive(Debug, Clone)]
pub struct FailedRow {
    pub seq: i64,
    pub tenant_id: i64,
    pub received_at: i64,
    pub error: String,
    pub message: String,
    pub payload: String,
}

/// An identity-vault entry as the sink stores it.
#[derive(Debug, Clone)]
pub struct VaultRow {
    pub seq: i64,
    pub tenant_id: i64,
    pub sealed: store::Sealed,
}

/// A user's erasure, at its position in the stream.
#[derive(Debug, Clone)]
pub struct ErasureRow {
    pub seq: i64,
    pub tenant_id: i64,
    /// The user's pseudonyms, under every key version.
    pub user_ids: Vec<String>,
}

/// What one transaction of the sink stores.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub events: Vec<EventRow>,
    pub failed: Vec<FailedRow>,
    pub vault: Vec<VaultRow>,
    /// Applied after the rest: each removes what came before it on the stream.
    pub erasures: Vec<ErasureRow>,
}

/// A session-level advisory lock, held while this connection lives: dropped, or its process
/// gone, PostgreSQL releases it.
pub struct HeldLock {
    client: tokio_postgres::Client,
    _connection: tokio::task::JoinHandle<()>,
}

impl HeldLock {
    /// Whether the lock is still held: its connection is open.
    pub fn held(&self) -> bool {
        !self.client.is_closed()
    }
}

/// A document as `documents` keeps it.
#[derive(Debug, Clone)]
pub struct DocumentRow {
    pub key: String,
    pub body: String,
    pub as_of: i64,
    pub etag: String,
}

/// A pool of connections to the cluster's database.
pub struct Database {
    /// How to connect, for connections of their own (a held lock).
    config: tokio_postgres::Config,
    pool: Pool,
    /// Days whose partition is known to exist (or known to stay in the default partition).
    partitions: Mutex<HashSet<i64>>,
}

impl Database {
    /// Connects, and creates the tables when they are missing.
    pub async fn connect(url: &str) -> Result<Database, DatabaseError> {
        let bad = |message: String| DatabaseError::Url {
            url: redact(url),
            message,
        };
        let mut config = tokio_postgres::Config::from_str(url).map_err(|e| bad(e.to_string()))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(8)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(5)))
            .create_timeout(Some(Duration::from_secs(5)))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(|e| bad(e.to_string()))?;
        let database = Database {
            config,
            pool,
            partitions: Mutex::default(),
        };
        database.migrate().await?;
        Ok(database)
    }

    async fn migrate(&self) -> Result<(), DatabaseError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
            .await?;
        // Not a notice for each table that exists already.
        tx.batch_execute("SET LOCAL client_min_messages = warning")
            .await?;
        tx.batch_execute(SCHEMA).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The advisory lock `key` on a connection of its own, named `holder` (PostgreSQL's
    /// `application_name`, so `pg_stat_activity` shows who holds it); `None` when another
    /// session holds it.
    pub async fn try_lock(
        &self,
        key: i64,
        holder: &str,
    ) -> Result<Option<HeldLock>, DatabaseError> {
        let mut config = self.config.clone();
        config.application_name(holder);
        let (client, connection) = config.connect(NoTls).await?;
        let connection = tokio::spawn(async move {
            let _ = connection.await;
        });
        let got: bool = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
            .await?
            .get(0);
        Ok(got.then_some(HeldLock {
            client,
            _connection: connection,
        }))
    }

    /// Replaces the tenant's documents with `documents` (its whole set) and adds the
    /// feedback records it lacks, in one transaction, as written by `writer`.
    pub async fn present(
        &self,
        tenant_id: i64,
        documents: &[DocumentRow],
        feedback: &[store::FeedbackRecord],
        writer: &str,
    ) -> Result<(), DatabaseError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let keys: Vec<&str> = documents.iter().map(|d| d.key.as_str()).collect();
        let bodies: Vec<&str> = documents.iter().map(|d| d.body.as_str()).collect();
        let as_of: Vec<i64> = documents.iter().map(|d| d.as_of).collect();
        let etags: Vec<&str> = documents.iter().map(|d| d.etag.as_str()).collect();
        tx.execute(
            "DELETE FROM documents WHERE tenant_id = $1 AND NOT key = ANY($2)",
            &[&tenant_id, &keys],
        )
        .await?;
        tx.execute(
            "INSERT INTO documents (tenant_id, key, body, as_of, etag, written_by)
             SELECT $1, k, b::jsonb, a, e, $6 FROM UNNEST($2::text[], $3::text[], $4::bigint[],
                 $5::text[]) AS x(k, b, a, e)
             ON CONFLICT (tenant_id, key) DO UPDATE SET body = excluded.body,
                 as_of = excluded.as_of, etag = excluded.etag, written_by = excluded.written_by",
            &[&tenant_id, &keys, &bodies, &as_of, &etags, &writer],
        )
        .await?;
        if !feedback.is_empty() {
            let ids: Vec<&str> = feedback.iter().map(|f| f.impression_id.as_str()).collect();
            let clicked: Vec<bool> = feedback.iter().map(|f| f.clicked).collect();
            let converted: Vec<bool> = feedback.iter().map(|f| f.converted).collect();
            let recommenders: Vec<Option<&str>> =
                feedback.iter().map(|f| f.recommender.as_deref()).collect();
            let records: Vec<&str> = feedback.iter().map(|f| f.record.as_str()).collect();
            tx.execute(
                "INSERT INTO feedback (tenant_id, impression_id, clicked, converted, recommender,
                     record, written_by)
                 SELECT $1, i, c, v, r, j::jsonb, $7 FROM UNNEST($2::text[], $3::bool[],
                     $4::bool[], $5::text[], $6::text[]) AS x(i, c, v, r, j)
                 ON CONFLICT DO NOTHING",
                &[
                    &tenant_id,
                    &ids,
                    &clicked,
                    &converted,
                    &recommenders,
                    &records,
                    &writer,
                ],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), DatabaseError> {
        self.pool.get().await?.simple_query("SELECT 1").await?;
        Ok(())
    }

    /// Registers a tenant; returns it with its secret API key, shown once and stored only as
    /// a SHA-256 hash (as [`store::Store::add_tenant`]).
    pub async fn add_tenant(
        &self,
        client_key: &str,
        origins: &[String],
    ) -> Result<(Tenant, String), DatabaseError> {
        let origins = origins
            .iter()
            .map(|o| store::normalise_origin(o))
            .collect::<Result<Vec<_>, _>>()?;
        let api_key = store::new_api_key();
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "INSERT INTO tenants (client_key, api_key_sha256, origins, created_at)
                 VALUES ($1, $2, $3, $4) ON CONFLICT (client_key) DO NOTHING RETURNING id",
                &[
                    &client_key,
                    &store::sha256_hex(&api_key),
                    &origins,
                    &store::now_ms(),
                ],
            )
            .await?
            .ok_or_else(|| DatabaseError::TenantExists(client_key.to_owned()))?;
        let tenant = Tenant {
            id: row.get(0),
            client_key: client_key.to_owned(),
            origins,
            key_version: 1,
        };
        Ok((tenant, api_key))
    }

    pub async fn tenant(&self, client_key: &str) -> Result<Option<Tenant>, DatabaseError> {
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached(
                "SELECT id, client_key, origins, key_version FROM tenants WHERE client_key = $1",
            )
            .await?;
        let row = client.query_opt(&statement, &[&client_key]).await?;
        Ok(row.map(|r| tenant_row(&r)))
    }

    pub async fn tenant_by_id(&self, id: i64) -> Result<Option<Tenant>, DatabaseError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "SELECT id, client_key, origins, key_version FROM tenants WHERE id = $1",
                &[&id],
            )
            .await?;
        Ok(row.map(|r| tenant_row(&r)))
    }

    /// The tenant whose secret API key this is: its current one, or the one before it until
    /// that one's grace period ends.
    pub async fn tenant_by_api_key(&self, api_key: &str) -> Result<Option<Tenant>, DatabaseError> {
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached(
                "SELECT id, client_key, origins, key_version FROM tenants WHERE api_key_sha256 = $1
                 UNION ALL
                 SELECT id, client_key, origins, key_version FROM tenants
                 WHERE previous_api_key_sha256 = $1 AND previous_api_key_expires_at > $2
                 LIMIT 1",
            )
            .await?;
        let row = client
            .query_opt(&statement, &[&store::sha256_hex(api_key), &store::now_ms()])
            .await?;
        Ok(row.map(|r| tenant_row(&r)))
    }

    pub async fn tenants(&self) -> Result<Vec<Tenant>, DatabaseError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT id, client_key, origins, key_version FROM tenants ORDER BY client_key",
                &[],
            )
            .await?;
        Ok(rows.iter().map(tenant_row).collect())
    }

    /// Starts a new pseudonymisation key version for the tenant; returns the new version.
    pub async fn rotate_key(&self, client_key: &str) -> Result<u32, DatabaseError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "UPDATE tenants SET key_version = key_version + 1 WHERE client_key = $1
                 RETURNING key_version",
                &[&client_key],
            )
            .await?
            .ok_or_else(|| DatabaseError::UnknownTenant(client_key.to_owned()))?;
        Ok(row.get::<_, i32>(0) as u32)
    }

    /// A new secret API key for the tenant, returned; the one it had stays valid for `grace`
    /// (as [`store::Store::rotate_api_key`]).
    pub async fn rotate_api_key(
        &self,
        client_key: &str,
        grace: Duration,
    ) -> Result<String, DatabaseError> {
        let api_key = store::new_api_key();
        let expires =
            store::now_ms().saturating_add(grace.as_millis().min(i64::MAX as u128) as i64);
        let client = self.pool.get().await?;
        let changed = client
            .execute(
                "UPDATE tenants SET previous_api_key_sha256 = api_key_sha256,
                    previous_api_key_expires_at = $3, api_key_sha256 = $2
                 WHERE client_key = $1",
                &[&client_key, &store::sha256_hex(&api_key), &expires],
            )
            .await?;
        if changed == 0 {
            return Err(DatabaseError::UnknownTenant(client_key.to_owned()));
        }
        Ok(api_key)
    }

    /// Refuses every secret API key of the tenant at once, and returns its new one.
    pub async fn revoke_api_keys(&self, client_key: &str) -> Result<String, DatabaseError> {
        let api_key = store::new_api_key();
        let client = self.pool.get().await?;
        let changed = client
            .execute(
                "UPDATE tenants SET api_key_sha256 = $2, previous_api_key_sha256 = NULL,
                    previous_api_key_expires_at = NULL
                 WHERE client_key = $1",
                &[&client_key, &store::sha256_hex(&api_key)],
            )
            .await?;
        if changed == 0 {
            return Err(DatabaseError::UnknownTenant(client_key.to_owned()));
        }
        Ok(api_key)
    }

    /// The master secret every node of the cluster must share, read from `path`: its
    /// fingerprint is recorded in the database by the first node, and any other secret is
    /// refused after (its pseudonyms would match none of the stored ones).
    pub async fn keyring(&self, path: &std::path::Path) -> Result<Keyring, KeyringError> {
        let keyring = Keyring::read(path)?;
        let found = keyring.fingerprint();
        let recorded = self
            .record_fingerprint(&found)
            .await
            .map_err(|e| KeyringError::Shared(e.to_string()))?;
        if recorded != found {
            return Err(KeyringError::Mismatch {
                path: path.to_owned(),
                found,
                expected: recorded,
            });
        }
        Ok(keyring)
    }

    /// Records `fingerprint` unless one is recorded already; returns the recorded one.
    async fn record_fingerprint(&self, fingerprint: &str) -> Result<String, DatabaseError> {
        let client = self.pool.get().await?;
        client
            .execute(
                "INSERT INTO settings (key, value) VALUES ('master_fingerprint', $1)
                 ON CONFLICT (key) DO NOTHING",
                &[&fingerprint],
            )
            .await?;
        let row = client
            .query_one(
                "SELECT value FROM settings WHERE key = 'master_fingerprint'",
                &[],
            )
            .await?;
        Ok(row.get(0))
    }

    /// Stores a batch in one transaction; what is already stored (the same event, failed
    /// event or vault entry delivered again) is skipped. Returns the events newly stored.
    pub async fn store(&self, batch: &Batch) -> Result<u64, DatabaseError> {
        self.make_partitions(batch.events.iter().map(|e| e.created_at.div_euclid(DAY_MS)))
            .await?;
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        if batch.erasures.is_empty() {
            tx.execute("SELECT pg_advisory_xact_lock_shared($1)", &[&ERASURE_LOCK])
                .await?;
        } else {
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&ERASURE_LOCK])
                .await?;
        }
        let mut inserted = 0;
        if !batch.events.is_empty() {
            let column = |f: fn(&EventRow) -> i64| batch.events.iter().map(f).collect::<Vec<_>>();
            let (seq, tenant, created, time) = (
                column(|e| e.seq),
                column(|e| e.tenant_id),
                column(|e| e.created_at),
                column(|e| e.event.event_time),
            );
            let events = batch.events.iter().map(|e| &e.event);
            let ids: Vec<&str> = events.clone().map(|e| e.event_id.as_str()).collect();
            let users: Vec<Option<&str>> = events.clone().map(|e| e.user_id.as_deref()).collect();
            let payloads: Vec<&str> = events.map(|e| e.payload.as_str()).collect();
            let statement = tx
                .prepare_cached(
                    "INSERT INTO events (seq, tenant_id, event_id, created_at, event_time, user_id, payload)
                     SELECT s, t, e, 'epoch'::timestamptz + c * interval '1 millisecond', et, u, p::jsonb
                     FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::bigint[], $5::bigint[],
                                 $6::text[], $7::text[]) AS x(s, t, e, c, et, u, p)
                     WHERE NOT EXISTS (SELECT 1 FROM erasures er
                                       WHERE er.tenant_id = t AND er.user_id = u AND er.seq > s)
                     ON CONFLICT DO NOTHING",
                )
                .await?;
            inserted = tx
                .execute(
                    &statement,
                    &[&seq, &tenant, &ids, &created, &time, &users, &payloads],
                )
                .await?;
        }
        if !batch.failed.is_empty() {
            let f = &batch.failed;
            let seq: Vec<i64> = f.iter().map(|r| r.seq).collect();
            let tenant: Vec<i64> = f.iter().map(|r| r.tenant_id).collect();
            let received: Vec<i64> = f.iter().map(|r| r.received_at).collect();
            let error: Vec<&str> = f.iter().map(|r| r.error.as_str()).collect();
            let message: Vec<&str> = f.iter().map(|r| r.message.as_str()).collect();
            let payload: Vec<Cow<str>> = f.iter().map(|r| as_json(&r.payload)).collect();
            tx.execute(
                "INSERT INTO failed_events (seq, tenant_id, received_at, error, message, payload)
                 SELECT s, t, r, e, m, p::jsonb FROM UNNEST($1::bigint[], $2::bigint[],
                     $3::bigint[], $4::text[], $5::text[], $6::text[]) AS x(s, t, r, e, m, p)
                 WHERE NOT EXISTS (SELECT 1 FROM erasures er WHERE er.tenant_id = t
                     AND er.user_id = p::jsonb -> 'channel_meta' ->> 'client_ref' AND er.seq > s)
                 ON CONFLICT DO NOTHING",
                &[&seq, &tenant, &received, &error, &message, &payload],
            )
            .await?;
        }
        if !batch.vault.is_empty() {
            let v = &batch.vault;
            let seq: Vec<i64> = v.iter().map(|r| r.seq).collect();
            let tenant: Vec<i64> = v.iter().map(|r| r.tenant_id).collect();
            let user: Vec<&str> = v.iter().map(|r| r.sealed.user_id.as_str()).collect();
            let nonce: Vec<&[u8]> = v.iter().map(|r| &r.sealed.nonce[..]).collect();
            let sealed: Vec<&[u8]> = v.iter().map(|r| r.sealed.ciphertext.as_slice()).collect();
            tx.execute(
                "INSERT INTO identity_vault (tenant_id, user_id, nonce, ciphertext)
                 SELECT t, u, n, c FROM UNNEST($1::bigint[], $2::bigint[], $3::text[],
                     $4::bytea[], $5::bytea[]) AS x(s, t, u, n, c)
                 WHERE NOT EXISTS (SELECT 1 FROM erasures er
                                   WHERE er.tenant_id = t AND er.user_id = u AND er.seq > s)
                 ON CONFLICT DO NOTHING",
                &[&seq, &tenant, &user, &nonce, &sealed],
            )
            .await?;
        }
        for erasure in &batch.erasures {
            erase_in(&tx, erasure).await?;
        }
        tx.commit().await?;
        Ok(inserted)
    }

    /// Erases a user: every event, failed event and vault entry of theirs that came before
    /// the erasure's position on the stream, now and when delivered to a sink later. Returns
    /// the rows removed.
    pub async fn erase(&self, erasure: &ErasureRow) -> Result<store::Erased, DatabaseError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&ERASURE_LOCK])
            .await?;
        let erased = erase_in(&tx, erasure).await?;
        tx.commit().await?;
        Ok(erased)
    }

    /// Makes sure each of `days` (days since the Unix epoch) within the partitioned range
    /// has its partition. A day whose events already sit in the default partition (it was
    /// out of range when they came) stays there: PostgreSQL refuses a partition the default
    /// holds rows of.
    async fn make_partitions(&self, days: impl Iterator<Item = i64>) -> Result<(), DatabaseError> {
        let today = store::now_ms().div_euclid(DAY_MS);
        let range = today - PARTITION_DAYS_BACK..=today + PARTITION_DAYS_AHEAD;
        let missing: HashSet<i64> = {
            let known = lock(&self.partitions);
            days.filter(|d| range.contains(d) && !known.contains(d))
                .collect()
        };
        for day in missing {
            let from = schema::Timestamp(day * DAY_MS).to_rfc3339();
            let to = schema::Timestamp((day + 1) * DAY_MS).to_rfc3339();
            let name = format!("events_{}", from[..10].replace('-', ""));
            let mut client = self.pool.get().await?;
            let tx = client.transaction().await?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
                .await?;
            let made = tx
                .batch_execute(&format!(
                    "CREATE TABLE IF NOT EXISTS {name} PARTITION OF events
                     FOR VALUES FROM ('{from}') TO ('{to}')"
                ))
                .await;
            match made {
                Ok(()) => tx.commit().await?,
                Err(e) if e.code() == Some(&SqlState::CHECK_VIOLATION) => {
                    tracing::warn!(
                        partition = name,
                        "events of this day are in events_default already; they stay there"
                    );
                }
                Err(e) => return Err(e.into()),
            }
            lock(&self.partitions).insert(day);
        }
        Ok(())
    }

    /// The newest events of a tenant, oldest first (as [`store::Store::recent_events`]).
    pub async fn recent_events(
        &self,
        tenant_id: i64,
        limit: i64,
    ) -> Result<Vec<serde_json::Value>, DatabaseError> {
        self.newest("SELECT seq, payload AS json FROM events", tenant_id, limit)
            .await
    }

    /// The newest failed events of a tenant, oldest first, with their reasons (as
    /// [`store::Store::recent_failed`]).
    pub async fn recent_failed(
        &self,
        tenant_id: i64,
        limit: i64,
    ) -> Result<Vec<serde_json::Value>, DatabaseError> {
        self.newest(
            "SELECT seq, jsonb_build_object('error', error, 'message', message, 'payload', payload)
                 AS json FROM failed_events",
            tenant_id,
            limit,
        )
        .await
    }

    /// The `json` column of `rows` (a select of `seq` and `json` from a table with a
    /// `tenant_id`): the tenant's `limit` newest, oldest first.
    async fn newest(
        &self,
        rows: &str,
        tenant_id: i64,
        limit: i64,
    ) -> Result<Vec<serde_json::Value>, DatabaseError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT json FROM ({rows} WHERE tenant_id = $1 ORDER BY seq DESC LIMIT $2)
                     AS newest ORDER BY seq"
                ),
                &[&tenant_id, &limit],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}

/// An erasure inside a transaction that holds the erasure lock exclusively.
async fn erase_in(
    tx: &deadpool_postgres::Transaction<'_>,
    erasure: &ErasureRow,
) -> Result<store::Erased, DatabaseError> {
    let ErasureRow {
        seq,
        tenant_id,
        user_ids,
    } = erasure;
    tx.execute(
        "INSERT INTO erasures (tenant_id, user_id, seq) SELECT $1, u, $3 FROM UNNEST($2::text[]) AS u
         ON CONFLICT (tenant_id, user_id) DO UPDATE SET seq = GREATEST(erasures.seq, excluded.seq)",
        &[tenant_id, user_ids, seq],
    )
    .await?;
    let events = tx
        .execute(
            "DELETE FROM events WHERE tenant_id = $1 AND user_id = ANY($2) AND seq < $3",
            &[tenant_id, user_ids, seq],
        )
        .await?;
    let failed_events = tx
        .execute(
            "DELETE FROM failed_events WHERE tenant_id = $1 AND seq < $3
             AND payload -> 'channel_meta' ->> 'client_ref' = ANY($2)",
            &[tenant_id, user_ids, seq],
        )
        .await?;
    tx.execute(
        "DELETE FROM identity_vault WHERE tenant_id = $1 AND user_id = ANY($2)",
        &[tenant_id, user_ids],
    )
    .await?;
    // The erasure's whole count: whoever took it first removed the rows.
    let total = tx
        .query_one(
            "INSERT INTO erasure_log (tenant_id, seq, events, failed_events) VALUES ($1, $2, $3, $4)
             ON CONFLICT (tenant_id, seq) DO UPDATE SET
                 events = erasure_log.events + excluded.events,
                 failed_events = erasure_log.failed_events + excluded.failed_events
             RETURNING events, failed_events",
            &[tenant_id, seq, &(events as i64), &(failed_events as i64)],
        )
        .await?;
    Ok(store::Erased {
        events: total.get::<_, i64>(0) as usize,
        failed_events: total.get::<_, i64>(1) as usize,
    })
}

/// `text` when it is JSON, else `text` as a JSON string.
fn as_json(text: &str) -> Cow<'_, str> {
    match serde_json::from_str::<serde::de::IgnoredAny>(text) {
        Ok(_) => Cow::Borrowed(text),
        Err(_) => Cow::Owned(serde_json::Value::from(text).to_string()),
    }
}

fn tenant_row(r: &tokio_postgres::Row) -> Tenant {
    Tenant {
        id: r.get(0),
        client_key: r.get(1),
        origins: r.get(2),
        key_version: r.get::<_, i32>(3) as u32,
    }
}

/// A connection URL as an error may show it: without its password.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => match url[scheme + 3..at].split_once(':') {
            Some((user, _password)) => format!("{}{user}:…{}", &url[..scheme + 3], &url[at..]),
            None => url.to_owned(),
        },
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::PostgresServer;

    fn event(seq: i64, id: &str, created_at: i64) -> EventRow {
        EventRow {
            seq,
            tenant_id: 1,
            created_at,
            event: store::StoredEvent {
                event_id: id.into(),
                event_time: created_at,
                user_id: Some("u1".into()),
                payload: format!(r#"{{"event_id":"{id}","created_at":{created_at}}}"#),
            },
        }
    }

    fn failed(seq: i64) -> FailedRow {
        FailedRow {
            seq,
            tenant_id: 1,
            received_at: 5,
            error: "missing_field".into(),
            message: "`action` is missing".into(),
            payload: "{}".into(),
        }
    }

    async fn count(database: &Database, sql: &str) -> i64 {
        let client = database.pool.get().await.unwrap();
        client.query_one(sql, &[]).await.unwrap().get(0)
    }

    #[tokio::test]
    async fn a_batch_delivered_again_is_stored_once() {
        let pg = PostgresServer::start();
        let database = Database::connect(&pg.url).await.unwrap();
        let now = store::now_ms();
        let vault = VaultRow {
            seq: 5,
            tenant_id: 1,
            sealed: store::Sealed {
                user_id: "u1".into(),
                nonce: [1; 12],
                ciphertext: vec![2, 3],
            },
        };
        let first = Batch {
            events: vec![event(1, "a", now), event(2, "b", now)],
            failed: vec![failed(3)],
            vault: vec![vault.clone()],
            erasures: Vec::new(),
        };
        assert_eq!(database.store(&first).await.unwrap(), 2);
        // Delivered again with one event more: only that one is new.
        let mut again = first.clone();
        again.events.push(event(4, "c", now));
        assert_eq!(database.store(&again).await.unwrap(), 1);
        assert_eq!(count(&database, "SELECT count(*) FROM events").await, 3);
        assert_eq!(
            count(&database, "SELECT count(*) FROM failed_events").await,
            1
        );
        assert_eq!(
            count(&database, "SELECT count(*) FROM identity_vault").await,
            1
        );
        // The payload is the log's JSON, queryable.
        let newest = database.recent_events(1, 1).await.unwrap();
        assert_eq!(newest[0]["event_id"], "c");
        let failed = database.recent_failed(1, 10).await.unwrap();
        assert_eq!(failed[0]["error"], "missing_field");
        // A second connect over the same tables changes nothing.
        let reconnected = Database::connect(&pg.url).await.unwrap();
        assert_eq!(count(&reconnected, "SELECT count(*) FROM events").await, 3);
    }

    #[tokio::test]
    async fn an_erasure_removes_what_came_before_it_now_and_when_it_is_delivered_late() {
        let pg = PostgresServer::start();
        let database = Database::connect(&pg.url).await.unwrap();
        let now = store::now_ms();
        let mut stranger = event(3, "other-user", now);
        stranger.event.user_id = Some("u2".into());
        let mut failed_u1 = failed(4);
        failed_u1.payload = r#"{"channel_meta":{"client_ref":"u1"}}"#.into();
        let before = Batch {
            events: vec![event(1, "a", now), event(2, "b", now), stranger],
            failed: vec![failed_u1, failed(5)],
            ..Batch::default()
        };
        database.store(&before).await.unwrap();
        let erasure = ErasureRow {
            seq: 10,
            tenant_id: 1,
            user_ids: vec!["u1".into(), "u1-v2".into()],
        };
        let erased = database.erase(&erasure).await.unwrap();
        assert_eq!((erased.events, erased.failed_events), (2, 1));
        // Taken again (a sink met it on the stream): nothing more to remove, the same count.
        let again = database.erase(&erasure).await.unwrap();
        assert_eq!((again.events, again.failed_events), (2, 1));
        // An event published before the erasure and sunk after it stays out; one published
        // after it is the user's new life. The erasure delivered to a sink again changes
        // nothing more.
        let late = Batch {
            events: vec![event(7, "late", now), event(11, "after", now)],
            erasures: vec![erasure],
            ..Batch::default()
        };
        assert_eq!(database.store(&late).await.unwrap(), 1);
        let ids: Vec<String> = database
            .recent_events(1, 10)
            .await
            .unwrap()
            .iter()
            .map(|e| e["event_id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(ids, ["other-user", "after"]);
        assert_eq!(
            count(&database, "SELECT count(*) FROM failed_events").await,
            1
        );
    }

    #[tokio::test]
    async fn events_land_in_their_days_partition_and_far_off_days_in_the_default() {
        let pg = PostgresServer::start();
        let database = Database::connect(&pg.url).await.unwrap();
        let now = store::now_ms();
        let year_1990 = 631_152_000_000;
        let batch = Batch {
            events: vec![
                event(1, "today", now),
                event(2, "yesterday", now - DAY_MS),
                event(3, "1990", year_1990),
            ],
            ..Batch::default()
        };
        assert_eq!(database.store(&batch).await.unwrap(), 3);
        let client = database.pool.get().await.unwrap();
        let partition = |id: &'static str| {
            let client = &client;
            async move {
                let row = client
                    .query_one(
                        "SELECT tableoid::regclass::text FROM events WHERE event_id = $1",
                        &[&id],
                    )
                    .await
                    .unwrap();
                row.get::<_, String>(0)
            }
        };
        let day = |ms: i64| {
            format!(
                "events_{}",
                schema::Timestamp(ms).to_rfc3339()[..10].replace('-', "")
            )
        };
        assert_eq!(partition("today").await, day(now));
        assert_eq!(partition("yesterday").await, day(now - DAY_MS));
        assert_eq!(partition("1990").await, "events_default");
        // Another process whose cache knows no partition finds them made.
        let other = Database::connect(&pg.url).await.unwrap();
        let again = Batch {
            events: vec![event(4, "today", now), event(5, "later", now)],
            ..Batch::default()
        };
        assert_eq!(other.store(&again).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn tenants_and_their_keys_live_in_the_database() {
        let pg = PostgresServer::start();
        let database = Database::connect(&pg.url).await.unwrap();
        let (tenant, api_key) = database
            .add_tenant("pk_pg", &["https://App.example.com/".into()])
            .await
            .unwrap();
        assert_eq!(tenant.origins, ["https://app.example.com"]);
        assert!(matches!(
            database.add_tenant("pk_pg", &[]).await,
            Err(DatabaseError::TenantExists(_))
        ));
        assert!(matches!(
            database
                .add_tenant("pk_bad", &["app.example.com".into()])
                .await,
            Err(DatabaseError::Store(store::StoreError::BadOrigin(_)))
        ));
        let found = database.tenant("pk_pg").await.unwrap().unwrap();
        assert_eq!((found.id, found.key_version), (tenant.id, 1));
        assert!(database.tenant("pk_none").await.unwrap().is_none());
        assert_eq!(
            database
                .tenant_by_api_key(&api_key)
                .await
                .unwrap()
                .unwrap()
                .id,
            tenant.id
        );
        // Rotated: both work during the grace period; revoked: only the newest.
        let rotated = database
            .rotate_api_key("pk_pg", Duration::from_secs(3600))
            .await
            .unwrap();
        assert!(
            database
                .tenant_by_api_key(&api_key)
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            database
                .tenant_by_api_key(&rotated)
                .await
                .unwrap()
                .is_some()
        );
        let revoked = database.revoke_api_keys("pk_pg").await.unwrap();
        assert!(
            database
                .tenant_by_api_key(&api_key)
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            database
                .tenant_by_api_key(&rotated)
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            database
                .tenant_by_api_key(&revoked)
                .await
                .unwrap()
                .is_some()
        );
        assert_eq!(database.rotate_key("pk_pg").await.unwrap(), 2);
        assert!(matches!(
            database.rotate_key("pk_none").await,
            Err(DatabaseError::UnknownTenant(_))
        ));
        let listed: Vec<_> = database.tenants().await.unwrap();
        assert_eq!(listed.len(), 1);
    }

    #[tokio::test]
    async fn every_node_must_use_the_master_secret_the_cluster_recorded() {
        let pg = PostgresServer::start();
        let database = Database::connect(&pg.url).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (first, other) = (dir.path().join("first"), dir.path().join("other"));
        std::fs::write(&first, [1u8; 32]).unwrap();
        std::fs::write(&other, [2u8; 32]).unwrap();
        database.keyring(&first).await.unwrap();
        database.keyring(&first).await.unwrap();
        let refused = database.keyring(&other).await.err().unwrap();
        assert!(
            matches!(refused, KeyringError::Mismatch { .. }),
            "{refused}"
        );
    }

    #[tokio::test]
    async fn a_database_that_cannot_be_reached_is_named_without_its_password() {
        let unreachable = "postgres://user:secret@127.0.0.1:1/db";
        let refused = Database::connect(unreachable).await.err().unwrap();
        assert!(matches!(refused, DatabaseError::Pool(_)), "{refused}");
        let bad = Database::connect("postgres://user:secret@[bad/db")
            .await
            .err()
            .unwrap();
        assert!(!bad.to_string().contains("secret"), "{bad}");
        assert!(bad.to_string().contains("user:…@"), "{bad}");
    }
}
