use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::protect::Limits;

/// Everything `ingest serve` is configured by, from flags or `INGEST_*` environment
/// variables. Tests build it literally.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, env = "INGEST_LISTEN", default_value = "127.0.0.1:8787")]
    pub listen: SocketAddr,
    /// Directory holding the embedded store (created if missing).
    #[arg(long, env = "INGEST_DATA_DIR")]
    pub data_dir: PathBuf,
    /// File holding the master secret (at least 32 bytes) that derives every tenant's
    /// pseudonymisation key; by default `master.key` in the data directory, created on first run.
    /// Keep it apart from the data in production: whoever has both can link pseudonyms.
    #[arg(long, env = "INGEST_MASTER_SECRET_FILE")]
    pub master_secret_file: Option<PathBuf>,
    /// Keep each original client_ref, sealed with AES-256-GCM, in the identity vault.
    #[arg(long, env = "INGEST_IDENTITY_VAULT")]
    pub identity_vault: bool,
    /// Sustained events per second one client_key may send; beyond it, 429 with Retry-After.
    #[arg(long, env = "INGEST_RATE_LIMIT", default_value_t = Limits::default().events_per_second)]
    pub rate_limit: f64,
    /// Events one client_key may send in a burst.
    #[arg(long, env = "INGEST_RATE_BURST", default_value_t = Limits::default().burst_events)]
    pub rate_burst: f64,
    /// Longest a request may take, body upload included, in seconds.
    #[arg(long, env = "INGEST_REQUEST_TIMEOUT", default_value_t = Limits::default().request_timeout.as_secs())]
    pub request_timeout: u64,
    /// Requests handled at once; more get 503 with Retry-After.
    #[arg(long, env = "INGEST_MAX_CONCURRENT_REQUESTS", default_value_t = Limits::default().max_concurrent_requests)]
    pub max_concurrent_requests: usize,
    /// The datasets' parameters (`datasets.toml`: half-lives, thresholds, weights); every
    /// key is optional and defaults to the datasets spec.
    #[arg(long, env = "INGEST_DATASETS_CONFIG")]
    pub datasets_config: Option<PathBuf>,
    /// Honour `as_of` in queries, for acceptance tests over historical fixtures. Never in
    /// production: it lets a caller recompute lists at any time.
    #[arg(long, env = "INGEST_TEST_MODE")]
    pub test_mode: bool,
}

impl Config {
    /// A configuration with every limit at its default.
    pub fn new(listen: SocketAddr, data_dir: PathBuf) -> Config {
        let limits = Limits::default();
        Config {
            listen,
            data_dir,
            master_secret_file: None,
            identity_vault: false,
            rate_limit: limits.events_per_second,
            rate_burst: limits.burst_events,
            request_timeout: limits.request_timeout.as_secs(),
            max_concurrent_requests: limits.max_concurrent_requests,
            datasets_config: None,
            test_mode: false,
        }
    }

    pub fn limits(&self) -> Limits {
        Limits {
            events_per_second: self.rate_limit,
            burst_events: self.rate_burst,
            request_timeout: Duration::from_secs(self.request_timeout),
            max_concurrent_requests: self.max_concurrent_requests,
        }
    }
}
