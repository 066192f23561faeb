//! Personafin Capture's ingest service: takes batches from the tracker, validates them
//! against wire format v1, pseudonymises identifiers, and stores events durably in an
//! embedded SQLite log, answering only after the commit is on disk — or, in a cluster, in a
//! replicated NATS JetStream stream that sinks store in PostgreSQL (`docs/deploy.md`).
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! let config = ingest::Config::new("127.0.0.1:0".parse()?, "data".into());
//! let listener = tokio::net::TcpListener::bind(config.listen).await?;
//! ingest::serve(config, listener, std::future::pending()).await?;
//! # Ok(()) }
//! ```
//!
//! Layout: `routes` (HTTP surface), `pipeline` (a batch's events validated and anonymised,
//! handed to a sink), `anonymise` (pseudonyms, PII, URLs, user agents),
//! `store` (SQLite, group commit, presentation documents), `datasets` (the pure datasets
//! engine), `engines` (per-tenant engines fed live, materialisation), `replay`
//! (`ingest replay`), `tenants` (lookup cache), `error` (the one `ApiError`), `config`,
//! `listen` (the accept loop: header deadline, connection cap, graceful shutdown). Cluster
//! mode: `bus` (the stream, a sink), `database` (PostgreSQL), `sink` (`ingest sink`),
//! `replica` (each edge's copy of the stream), `presenter` (documents and feedback to
//! PostgreSQL, one edge at a time).

pub mod anonymise;
mod answer;
pub mod bus;
mod bytes;
mod config;
pub mod database;
pub mod datasets;
mod engines;
mod error;
mod listen;
mod metrics;
pub mod pipeline;
pub mod presenter;
mod protect;
pub mod replay;
pub mod replica;
mod routes;
pub mod sink;
pub mod store;
mod tenants;
#[cfg(test)]
mod testing;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;

pub use anonymise::keyring::Keyring;
pub use config::Config;
pub use error::ApiError;
pub use protect::{Limits, Rate};
pub use store::Store;

/// The mutex's guard, also when a thread panicked holding it: every state kept behind one
/// here stays valid between statements.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// [`lock`] for reading an `RwLock`.
pub(crate) fn read<T>(l: &std::sync::RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

/// [`lock`] for writing an `RwLock`.
pub(crate) fn write<T>(l: &std::sync::RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<Store>,
    /// Where accepted batches go: the store, unless [`AppState::with_sink`] says otherwise.
    sink: Arc<dyn pipeline::Sink>,
    pub keyring: Arc<Keyring>,
    limits: Limits,
    rate_limiter: Arc<protect::RateLimiter>,
    identity_vault: bool,
    metrics: Arc<metrics::Metrics>,
    /// Each tenant's live datasets engine.
    engines: Arc<engines::Engines>,
    /// Tenants by client key, and by the SHA-256 of their secret API key.
    tenants: Arc<tenants::Cache>,
    api_keys: Arc<tenants::Cache>,
    tenant_ttl: std::time::Duration,
    unknown_ttl: std::time::Duration,
    /// The header a trusted proxy writes the client's address into.
    client_ip_header: Option<axum::http::HeaderName>,
    /// In a cluster: the stream accepted batches go to, and the database tenants are read
    /// from.
    pub(crate) cluster: Option<Arc<Cluster>>,
}

/// What an edge node of a cluster is connected to.
pub struct Cluster {
    pub bus: Arc<bus::Bus>,
    pub database: Arc<database::Database>,
    /// The stream's durable consumer this process reads it through.
    pub consumer: String,
    /// The stream position up to which this node's store has the stream (see `replica`).
    pub replicated: tokio::sync::watch::Sender<u64>,
}

impl Cluster {
    /// Connects to the stream (creating it with `replicas` copies if it is missing) and to
    /// the database (creating its tables if they are missing). `consumer` names the
    /// stream's durable consumer this process reads it through.
    pub async fn connect(
        servers: &[String],
        database: &str,
        replicas: u64,
        consumer: String,
    ) -> anyhow::Result<Cluster> {
        let mut config = bus::BusConfig::new(servers.to_vec());
        config.replicas = replicas as usize;
        Ok(Cluster {
            bus: Arc::new(bus::Bus::connect(&config).await?),
            database: Arc::new(database::Database::connect(database).await?),
            consumer,
            replicated: tokio::sync::watch::Sender::new(0),
        })
    }

    /// Why this process is not ready (NATS or PostgreSQL out of reach), or `None`.
    pub async fn fault(&self) -> Option<String> {
        if !self.bus.connected() {
            return Some("not connected to NATS".into());
        }
        self.database.ping().await.err().map(|e| e.to_string())
    }
}

impl AppState {
    pub fn new(store: Arc<Store>, keyring: Arc<Keyring>) -> AppState {
        AppState::with_limits(store, keyring, Limits::default())
    }

    pub fn with_limits(store: Arc<Store>, keyring: Arc<Keyring>, limits: Limits) -> AppState {
        let engines = Arc::new(engines::Engines::new(datasets::Params::default(), false));
        engines.follow(&store);
        AppState {
            sink: store.clone(),
            store,
            keyring,
            rate_limiter: Arc::new(protect::RateLimiter::new(&limits)),
            limits,
            metrics: Arc::default(),
            identity_vault: false,
            engines,
            tenants: Arc::default(),
            api_keys: Arc::default(),
            tenant_ttl: tenants::CACHE_FOR,
            unknown_ttl: tenants::UNKNOWN_FOR,
            client_ip_header: None,
            cluster: None,
        }
    }

    /// An edge of a cluster: accepted batches go to the stream, tenants are those of the
    /// cluster's database.
    pub fn with_cluster(mut self, cluster: Cluster) -> AppState {
        self.sink = cluster.bus.clone();
        self.cluster = Some(Arc::new(cluster));
        self
    }

    /// Takes the client's address from this header, which a trusted reverse proxy sets (the
    /// last address in it), instead of the connection's.
    pub fn with_client_ip_header(mut self, header: Option<axum::http::HeaderName>) -> AppState {
        self.client_ip_header = header;
        self
    }

    /// The address a request counts against: the proxy's header's last address when one is
    /// configured and readable, else the connection's.
    fn source(
        &self,
        headers: &axum::http::HeaderMap,
        peer: Option<std::net::IpAddr>,
    ) -> Option<std::net::IpAddr> {
        let forwarded = self.client_ip_header.as_ref().and_then(|name| {
            let value = headers.get_all(name).iter().next_back()?.to_str().ok()?;
            value.rsplit(',').next()?.trim().parse().ok()
        });
        forwarded.or(peer)
    }

    /// Uses these dataset parameters; `test_mode` honours `as_of` in queries (for replays
    /// and acceptance tests over historical events; never in production).
    pub fn with_datasets(mut self, params: datasets::Params, test_mode: bool) -> AppState {
        self.engines = Arc::new(engines::Engines::new(params, test_mode));
        self.engines.follow(&self.store);
        self
    }

    /// Writes a snapshot of each tenant's datasets engine this often (10 minutes by default),
    /// when it has taken events since its last.
    pub fn with_snapshot_every(self, every: std::time::Duration) -> AppState {
        self.engines.snapshot_every(every);
        self
    }

    /// How long a tenant read from the store is trusted (5 s by default): a key rotated or a
    /// tenant changed by the CLI takes effect within it.
    pub fn with_tenant_cache_for(mut self, ttl: std::time::Duration) -> AppState {
        self.tenant_ttl = ttl;
        self
    }

    /// How long a client key or API key that names no tenant is answered without asking the
    /// store (1 s by default).
    pub fn with_unknown_cache_for(mut self, ttl: std::time::Duration) -> AppState {
        self.unknown_ttl = ttl;
        self
    }

    /// Hands accepted batches to `sink` instead of the store; the batch is answered once the
    /// sink has taken it.
    pub fn with_sink(mut self, sink: Arc<dyn pipeline::Sink>) -> AppState {
        self.sink = sink;
        self
    }

    /// Keeps each original client_ref sealed in the identity vault (off by default).
    pub fn with_identity_vault(mut self, on: bool) -> AppState {
        self.identity_vault = on;
        self
    }
}

/// Reads the datasets' parameters from a `datasets.toml`.
pub fn load_datasets_params(path: &std::path::Path) -> anyhow::Result<datasets::Params> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    Ok(datasets::Params::from_toml(
        &text,
        &path.display().to_string(),
    )?)
}

/// The whole HTTP application, for serving or for `oneshot` tests without a socket.
pub fn app(state: AppState) -> Router {
    routes::router(state, routes::Serves::Everything)
}

/// Serves until `shutdown` resolves, then finishes in-flight requests, lets the store commit
/// what they submitted, and returns. With `config.ops_listen`, readiness and metrics are
/// served on a listener of their own, bound here (see [`serve_with_ops`] to bind it first).
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let ops = match config.ops_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {addr} (--ops-listen): {e}"))?,
        ),
        None => None,
    };
    serve_with_ops(config, listener, ops, shutdown).await
}

/// [`serve`], with the operations' listener (readiness, metrics) already bound, or `None` to
/// serve them beside the API.
pub async fn serve_with_ops(
    config: Config,
    listener: TcpListener,
    ops: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // One service per data dir, checked before the store is touched.
    store::private_dir(&config.data_dir).map_err(|source| store::StoreError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    let _serving = store::ServiceLock::acquire(&config.data_dir)?;
    let store = Arc::new(Store::open(&config.data_dir)?);
    let cluster = match &config.database {
        Some(url) => {
            let consumer = replica::consumer_name(&config.data_dir)?;
            Some(Cluster::connect(&config.bus, url, config.bus_replicas, consumer).await?)
        }
        None => None,
    };
    let keyring = Arc::new(match &cluster {
        Some(cluster) => {
            let file = config.master_secret_file.as_deref().ok_or_else(|| {
                anyhow::anyhow!(
                    "a cluster node needs --master-secret-file: every node pseudonymises with the same secret"
                )
            })?;
            cluster.database.keyring(file).await?
        }
        None => Keyring::open(
            &store,
            &config.data_dir,
            config.master_secret_file.as_deref(),
        )?,
    });
    let params = match &config.datasets_config {
        Some(path) => load_datasets_params(path)?,
        None => datasets::Params::default(),
    };
    let state = AppState::with_limits(store.clone(), keyring, config.limits())
        .with_identity_vault(config.identity_vault)
        .with_client_ip_header(config.client_ip_header.clone())
        .with_datasets(params, config.test_mode)
        .with_snapshot_every(Duration::from_secs(config.snapshot_every_secs));
    let state = match cluster {
        Some(cluster) => state.with_cluster(cluster),
        None => state,
    };
    let engines = state.engines.clone();
    let materialiser = tokio::spawn(state.engines.clone().run(store.clone()));
    let trimmer = tokio::spawn(trim_failed_events(
        store.clone(),
        Duration::from_secs(config.failed_retention_days * 86_400),
    ));
    let header_read_timeout = Duration::from_secs(config.header_read_timeout);
    // One signal stops both listeners.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    let stopping = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|&stop| stop).await;
        }
    };
    // A cluster node copies the stream into its store, which feeds its datasets.
    let replica = state.cluster.clone().map(|cluster| {
        let (store, stop) = (store.clone(), stopping());
        tokio::spawn(async move { replica::run(&cluster, store, stop).await })
    });
    // ... and one node at a time writes its documents and feedback to PostgreSQL.
    let presenter = state.cluster.clone().map(|cluster| {
        let every = Duration::from_secs(state.engines.params().consensus.materialize_every_secs);
        tokio::spawn(presenter::run(cluster, store.clone(), every, stopping()))
    });
    let api = if ops.is_some() {
        routes::Serves::Api
    } else {
        routes::Serves::Everything
    };
    let ops = ops.map(|listener| {
        tokio::spawn(listen::serve(
            listener,
            routes::router(state.clone(), routes::Serves::Ops),
            header_read_timeout,
            config.max_connections,
            stopping(),
        ))
    });
    listen::serve(
        listener,
        routes::router(state, api),
        header_read_timeout,
        config.max_connections,
        stopping(),
    )
    .await;
    if let Some(ops) = ops {
        let _ = ops.await;
    }
    if let Some(presenter) = presenter {
        let _ = presenter.await;
    }
    if let Some(replica) = replica {
        // Stopped with the listeners: what it fetched and did not commit comes again.
        let _ = replica.await;
    }
    materialiser.abort();
    trimmer.abort();
    tokio::task::spawn_blocking(move || {
        // The next start reads only what is committed after these.
        engines.save_snapshots(&store);
        store.close();
    })
    .await?;
    Ok(())
}

/// Deletes failed events past their retention now and every ten minutes, until aborted.
async fn trim_failed_events(store: Arc<Store>, retention: Duration) {
    let mut tick = tokio::time::interval(Duration::from_secs(600));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let before = store::now_ms().saturating_sub(retention.as_millis() as i64);
        match store.trim_failed(before).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "failed events past their retention deleted"),
            Err(e) => {
                tracing::warn!(error = %e, "cannot delete failed events past their retention")
            }
        }
    }
}
