use std::net::SocketAddr;

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::TypedValueParser;

use crate::protect::{Limits, Rate};

/// Everything `ingest serve` is configured by, from flags or `INGEST_*` environment
/// variables. Tests build it literally.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, env = "INGEST_LISTEN", default_value = "127.0.0.1:8787")]
    pub listen: SocketAddr,
    /// Serve readiness (`/readyz`) and metrics (`/metrics`) on this address alone, e.g. an
    /// internal interface's, instead of beside the API. They name no tenant and no user, but
    /// belong to load balancers and Prometheus, not to the internet.
    #[arg(long, env = "INGEST_OPS_LISTEN")]
    pub ops_listen: Option<SocketAddr>,
    /// Directory holding the embedded store (created if missing).
    #[arg(long, env = "INGEST_DATA_DIR")]
    pub data_dir: PathBuf,
    /// File holding the master secret (at least 32 bytes) that derives every tenant's
    /// pseudonymisation key; by default `master.key` in the data directory, created with the
    /// first tenant. The store records its fingerprint and refuses any other secret after.
    /// Keep it apart from the data in production: whoever has both can link pseudonyms.
    #[arg(long, env = "INGEST_MASTER_SECRET_FILE")]
    pub master_secret_file: Option<PathBuf>,
    /// Keep each original client_ref, sealed with AES-256-GCM, in the identity vault.
    #[arg(long, env = "INGEST_IDENTITY_VAULT")]
    pub identity_vault: bool,
    /// Sustained events per second one client_key may send; beyond it, 429 with Retry-After.
    #[arg(long, env = "INGEST_RATE_LIMIT", default_value_t = Limits::default().events.per_second,
          value_parser = positive("INGEST_RATE_LIMIT", MAX_EVENTS_PER_SECOND))]
    pub rate_limit: f64,
    /// Events one client_key may send in a burst.
    #[arg(long, env = "INGEST_RATE_BURST", default_value_t = Limits::default().events.burst,
          value_parser = positive("INGEST_RATE_BURST", MAX_EVENTS_PER_SECOND))]
    pub rate_burst: f64,
    /// Sustained bytes per second (of decompressed bodies) one client_key may send, with a
    /// burst of two seconds' worth.
    #[arg(long, env = "INGEST_BYTE_RATE_LIMIT", default_value_t = Limits::default().bytes.per_second,
          value_parser = positive("INGEST_BYTE_RATE_LIMIT", MAX_BYTES_PER_SECOND))]
    pub byte_rate_limit: f64,
    /// Sustained events per second one source address may send, whatever the client_key: one
    /// visitor cannot use up a tenant's allowance. Behind a proxy, see --client-ip-header.
    #[arg(long, env = "INGEST_SOURCE_RATE_LIMIT", default_value_t = Limits::default().source_events.per_second,
          value_parser = positive("INGEST_SOURCE_RATE_LIMIT", MAX_EVENTS_PER_SECOND))]
    pub source_rate_limit: f64,
    /// Events one source address may send in a burst.
    #[arg(long, env = "INGEST_SOURCE_RATE_BURST", default_value_t = Limits::default().source_events.burst,
          value_parser = positive("INGEST_SOURCE_RATE_BURST", MAX_EVENTS_PER_SECOND))]
    pub source_rate_burst: f64,
    /// Sustained bytes per second one source address may send, with a burst of two seconds'.
    #[arg(long, env = "INGEST_SOURCE_BYTE_RATE_LIMIT", default_value_t = Limits::default().source_bytes.per_second,
          value_parser = positive("INGEST_SOURCE_BYTE_RATE_LIMIT", MAX_BYTES_PER_SECOND))]
    pub source_byte_rate_limit: f64,
    /// Behind a reverse proxy: the header it writes the client's address into (e.g.
    /// `X-Forwarded-For`); the last address in it, the one the proxy added, is the source the
    /// rate limits count by. Only with a proxy that sets it: a client can write any header.
    #[arg(long, env = "INGEST_CLIENT_IP_HEADER")]
    pub client_ip_header: Option<axum::http::HeaderName>,
    /// Days failed (rejected) events are kept; older ones are deleted, a bounded number at
    /// a time.
    #[arg(long, env = "INGEST_FAILED_RETENTION_DAYS", default_value_t = DEFAULT_FAILED_RETENTION_DAYS,
          value_parser = whole("INGEST_FAILED_RETENTION_DAYS", MAX_RETENTION_DAYS))]
    pub failed_retention_days: u64,
    /// Longest a request may take, body upload included, in seconds.
    #[arg(long, env = "INGEST_REQUEST_TIMEOUT", default_value_t = Limits::default().request_timeout.as_secs(),
          value_parser = whole("INGEST_REQUEST_TIMEOUT", MAX_REQUEST_TIMEOUT_SECS))]
    pub request_timeout: u64,
    /// Longest a client may take to send a request's head, in seconds; then the connection
    /// is closed. (The request timeout starts only once the head is read.)
    #[arg(long, env = "INGEST_HEADER_READ_TIMEOUT", default_value_t = DEFAULT_HEADER_READ_TIMEOUT_SECS,
          value_parser = whole("INGEST_HEADER_READ_TIMEOUT", MAX_REQUEST_TIMEOUT_SECS))]
    pub header_read_timeout: u64,
    /// Connections open at once; more wait, unaccepted, until one closes.
    #[arg(long, env = "INGEST_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS,
          value_parser = whole("INGEST_MAX_CONNECTIONS", MAX_CONCURRENT_REQUESTS).map(|n| n as usize))]
    pub max_connections: usize,
    /// Requests handled at once; more get 503 with Retry-After.
    #[arg(long, env = "INGEST_MAX_CONCURRENT_REQUESTS", default_value_t = Limits::default().max_concurrent_requests,
          value_parser = whole("INGEST_MAX_CONCURRENT_REQUESTS", MAX_CONCURRENT_REQUESTS).map(|n| n as usize))]
    pub max_concurrent_requests: usize,
    /// The datasets' parameters (`datasets.toml`: half-lives, thresholds, weights); every
    /// key is optional and defaults to `docs/datasets.md` §3.
    #[arg(long, env = "INGEST_DATASETS_CONFIG")]
    pub datasets_config: Option<PathBuf>,
    /// Seconds between two snapshots of a tenant's datasets engine (when it has taken events
    /// since the last); a restart loads the snapshot and reads only the log after it. One is
    /// also written when the service stops.
    #[arg(long, env = "INGEST_SNAPSHOT_EVERY_SECS", default_value_t = DEFAULT_SNAPSHOT_EVERY_SECS,
          value_parser = whole("INGEST_SNAPSHOT_EVERY_SECS", MAX_SNAPSHOT_EVERY_SECS))]
    pub snapshot_every_secs: u64,
    /// Honour `as_of` in queries, for acceptance tests over historical fixtures. Never in
    /// production: it lets a caller recompute lists at any time.
    #[arg(long, env = "INGEST_TEST_MODE")]
    pub test_mode: bool,
    /// Cluster mode (an edge): the NATS servers, `nats://host:port` comma-separated, whose
    /// JetStream stream accepted events are published to instead of the data directory's
    /// store. Needs `--database` and `--master-secret-file`.
    #[arg(long, env = "INGEST_BUS", value_delimiter = ',', requires = "database")]
    pub bus: Vec<String>,
    /// Cluster mode: the PostgreSQL database, `postgres://user@host:port/name`, tenants are
    /// read from. Needs `--bus`.
    #[arg(long, env = "INGEST_DATABASE", requires = "bus")]
    pub database: Option<String>,
    /// Cluster mode: copies the stream keeps of each message when this node creates it (3 in
    /// production; at most the number of NATS servers in the JetStream cluster).
    #[arg(long, env = "INGEST_BUS_REPLICAS", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..=5))]
    pub bus_replicas: u64,
}

/// The largest rate and burst accepted: far past what one process takes, yet small enough
/// that every wait the rate limiter computes is a finite duration.
const MAX_EVENTS_PER_SECOND: f64 = 1e9;
/// Bytes a second: a terabyte, far past any link.
const MAX_BYTES_PER_SECOND: f64 = 1e12;
/// A month of failed events is enough to find out why a tracker's events were refused.
const DEFAULT_FAILED_RETENTION_DAYS: u64 = 30;
/// Ten years.
const MAX_RETENTION_DAYS: u64 = 3_650;
/// An hour: past it a stalled upload holds a connection for no client's good.
const MAX_REQUEST_TIMEOUT_SECS: u64 = 3_600;
/// Ten seconds for a request's head: a page on a slow mobile link sends its few hundred bytes
/// of headers in far less.
const DEFAULT_HEADER_READ_TIMEOUT_SECS: u64 = 10;
/// Well under a default descriptor limit raised for a server, and far above what keep-alive
/// trackers need: a page holds one connection while it sends.
const DEFAULT_MAX_CONNECTIONS: usize = 16_384;
/// Ten minutes of events to read again after a crash, at most.
const DEFAULT_SNAPSHOT_EVERY_SECS: u64 = 600;
/// A day.
const MAX_SNAPSHOT_EVERY_SECS: u64 = 86_400;
/// Each request in flight holds memory for its body (up to the 1 MiB cap).
const MAX_CONCURRENT_REQUESTS: u64 = 1_000_000;

/// A parser for a number greater than zero and at most `max`: zero, a negative number, NaN or
/// infinity would make the rate limiter refuse everything or compute no wait at all. Its
/// error names the environment variable too (clap names the flag), since either may have
/// given the value.
fn positive(env: &'static str, max: f64) -> impl Fn(&str) -> Result<f64, String> + Clone {
    move |text| {
        text.trim()
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite() && *n > 0.0 && *n <= max)
            .ok_or_else(|| {
                format!("must be a number greater than 0 and at most {max} (the flag or {env})")
            })
    }
}

/// A parser for a whole number from 1 to `max`, whose error names the variable like
/// [`positive`]'s.
fn whole(env: &'static str, max: u64) -> impl TypedValueParser<Value = u64> {
    move |text: &str| {
        text.trim()
            .parse::<u64>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| format!("must be a whole number from 1 to {max} (the flag or {env})"))
    }
}

impl Config {
    /// A configuration with every limit at its default.
    pub fn new(listen: SocketAddr, data_dir: PathBuf) -> Config {
        let limits = Limits::default();
        Config {
            listen,
            ops_listen: None,
            data_dir,
            master_secret_file: None,
            identity_vault: false,
            rate_limit: limits.events.per_second,
            rate_burst: limits.events.burst,
            byte_rate_limit: limits.bytes.per_second,
            source_rate_limit: limits.source_events.per_second,
            source_rate_burst: limits.source_events.burst,
            source_byte_rate_limit: limits.source_bytes.per_second,
            client_ip_header: None,
            failed_retention_days: DEFAULT_FAILED_RETENTION_DAYS,
            request_timeout: limits.request_timeout.as_secs(),
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT_SECS,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_concurrent_requests: limits.max_concurrent_requests,
            datasets_config: None,
            snapshot_every_secs: DEFAULT_SNAPSHOT_EVERY_SECS,
            test_mode: false,
            bus: Vec::new(),
            database: None,
            bus_replicas: 1,
        }
    }

    pub fn limits(&self) -> Limits {
        Limits {
            events: Rate {
                per_second: self.rate_limit,
                burst: self.rate_burst,
            },
            bytes: Rate::with_two_second_burst(self.byte_rate_limit),
            source_events: Rate {
                per_second: self.source_rate_limit,
                burst: self.source_rate_burst,
            },
            source_bytes: Rate::with_two_second_burst(self.source_byte_rate_limit),
            request_timeout: Duration::from_secs(self.request_timeout),
            max_concurrent_requests: self.max_concurrent_requests,
        }
    }
}
