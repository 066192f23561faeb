use std::net::SocketAddr;
use std::path::PathBuf;

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
}
