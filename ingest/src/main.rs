//! The `ingest` command: the service and its administration.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use ingest::{Config, Keyring, Store};
use tracing_subscriber::EnvFilter;

/// Ingest makes and frees many small strings per event; mimalloc measured ~10 % more events/s
/// than the system allocator under `cargo xtask bench ingest`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "ingest", version, about = "Personafin Capture ingest service")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service.
    Serve(Box<Config>),
    /// Cluster mode: store what the edges publish to the stream in PostgreSQL, one
    /// transaction a batch, acknowledged after the commit. Run any number: they share the
    /// stream's work.
    Sink(SinkArgs),
    /// Manage tenants (customers and their keys).
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Read what the store holds.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Erase a user: delete every event of theirs, found by your own client_ref.
    Erase {
        #[command(flatten)]
        tenant: TenantKeys,
        #[arg(long)]
        client_ref: String,
    },
    /// Read the identity vault (kept only with `serve --identity-vault`).
    #[command(subcommand)]
    Vault(VaultCommand),
    /// Feed wire-format events (one JSON event a line) through validation, anonymisation and
    /// the datasets with a manual clock, in event-time order, then print each query's JSON
    /// response on its own line. Needs no data dir: the events' client_key becomes an
    /// ephemeral tenant.
    Replay {
        /// Files of events, one JSON event a line.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The clock: events later than this (plus 5 minutes) are refused, and queries are
        /// answered as of this time unless they give `as_of`.
        #[arg(long, value_parser = ingest::replay::parse_as_of)]
        as_of: i64,
        /// A query API request, `PATH?QUERY`, e.g.
        /// `/v1/trending/entities?entity_type=ticker&mode=popular`; repeat for more.
        #[arg(long = "query")]
        queries: Vec<String>,
        /// The datasets' parameters (`datasets.toml`); defaults to those of `docs/datasets.md` §3.
        #[arg(long)]
        datasets_config: Option<PathBuf>,
        /// Derive pseudonyms from this master secret instead of a random one, so they are the
        /// same from run to run.
        #[arg(long)]
        master_secret_file: Option<PathBuf>,
    },
    /// The customer-side tool: read client_refs, one a line, on stdin and print their
    /// pseudonyms (HMAC-SHA256 under your secret, in hex), so the originals never leave you.
    Pseudonymise {
        /// File holding your secret (at least 16 bytes; a trailing newline is ignored).
        #[arg(long)]
        secret_file: PathBuf,
    },
}

#[derive(clap::Args)]
struct SinkArgs {
    /// NATS servers, `nats://host:port` comma-separated.
    #[arg(long, env = "INGEST_BUS", value_delimiter = ',', required = true)]
    bus: Vec<String>,
    /// The PostgreSQL database, `postgres://user@host:port/name`.
    #[arg(long, env = "INGEST_DATABASE")]
    database: String,
    /// Copies the stream keeps of each message, if this process creates it.
    #[arg(long, env = "INGEST_BUS_REPLICAS", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..=5))]
    bus_replicas: u64,
    /// Messages stored in one transaction, at most.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    batch: u64,
    /// Seconds a fetched batch may go unacknowledged before the stream gives it to another
    /// sink (a sink that died mid-batch).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    ack_wait_secs: u64,
    /// Serve readiness (`/readyz`) and metrics (`/metrics`) on this address.
    #[arg(long, env = "INGEST_OPS_LISTEN")]
    ops_listen: Option<std::net::SocketAddr>,
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Register a tenant and print its secret API key (shown only this once).
    Add {
        #[command(flatten)]
        place: Place,
        /// The master secret `serve` will use (see `serve --help`); by default `master.key`
        /// in the data directory, created with the first tenant. A cluster needs it given: its
        /// fingerprint is recorded in the database, and every node must use the same.
        #[arg(long, env = "INGEST_MASTER_SECRET_FILE")]
        master_secret_file: Option<PathBuf>,
        /// The public write key pages send with their events.
        #[arg(long)]
        client_key: String,
        /// An origin allowed to send events, e.g. https://app.example.com; repeat for more.
        /// Without any, every origin may send.
        #[arg(long = "origin")]
        origins: Vec<String>,
    },
    /// Start a new pseudonymisation key version: later events get pseudonyms that cannot be
    /// linked to earlier ones. Prints the new version.
    RotateKey {
        #[command(flatten)]
        place: Place,
        #[arg(long)]
        client_key: String,
    },
    /// Give a tenant a new secret API key and print it (shown only this once). The old key
    /// keeps working for the grace period, for the tenant's services to move over.
    RotateApiKey {
        #[command(flatten)]
        place: Place,
        #[arg(long)]
        client_key: String,
        /// Hours the old key stays valid (0: refused at once).
        #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u64).range(0..=24 * 365))]
        grace_hours: u64,
    },
    /// Refuse every secret API key of a tenant at once (a leaked key) and print a new one.
    /// A running service stops taking them within its tenant cache's 5 s.
    RevokeApiKey {
        #[command(flatten)]
        place: Place,
        #[arg(long)]
        client_key: String,
    },
    /// List tenants: client key and allowed origins, one per line.
    List {
        #[command(flatten)]
        place: Place,
    },
}

/// Where tenants live: a node's data directory, or a cluster's database.
#[derive(clap::Args)]
struct Place {
    #[arg(long, env = "INGEST_DATA_DIR", required_unless_present = "database")]
    data_dir: Option<PathBuf>,
    /// Cluster mode: the PostgreSQL database the cluster's tenants live in (it wins over
    /// `--data-dir`).
    #[arg(long, env = "INGEST_DATABASE")]
    database: Option<String>,
}

/// The tenants of a [`Place`], opened.
enum Book {
    Local(Store, PathBuf),
    Shared(Box<ingest::database::Database>, tokio::runtime::Runtime),
}

impl Place {
    fn open(self) -> anyhow::Result<Book> {
        match (self.database, self.data_dir) {
            (Some(url), _) => {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                let database = runtime.block_on(ingest::database::Database::connect(&url))?;
                Ok(Book::Shared(Box::new(database), runtime))
            }
            (None, Some(dir)) => Ok(Book::Local(Store::open(&dir)?, dir)),
            (None, None) => anyhow::bail!("give --data-dir, or --database in cluster mode"),
        }
    }
}

impl Book {
    fn add(
        &self,
        client_key: &str,
        origins: &[String],
        master_secret_file: Option<&std::path::Path>,
    ) -> anyhow::Result<(ingest::store::Tenant, String)> {
        Ok(match self {
            Book::Local(store, dir) => {
                // The store's master secret is settled with its first tenant, before anything
                // is pseudonymised with it.
                Keyring::open(store, dir, master_secret_file)?;
                store.add_tenant(client_key, origins)?
            }
            Book::Shared(database, runtime) => {
                let file = master_secret_file.context(
                    "a cluster's tenant needs --master-secret-file: the secret every node uses",
                )?;
                runtime.block_on(async {
                    database.keyring(file).await?;
                    anyhow::Ok(database.add_tenant(client_key, origins).await?)
                })?
            }
        })
    }

    fn tenant(&self, client_key: &str) -> anyhow::Result<ingest::store::Tenant> {
        let found = match self {
            Book::Local(store, _) => store.tenant(client_key)?,
            Book::Shared(database, runtime) => runtime.block_on(database.tenant(client_key))?,
        };
        found.with_context(|| format!("unknown client_key `{client_key}`"))
    }

    fn tenants(&self) -> anyhow::Result<Vec<ingest::store::Tenant>> {
        Ok(match self {
            Book::Local(store, _) => store.tenants()?,
            Book::Shared(database, runtime) => runtime.block_on(database.tenants())?,
        })
    }

    fn rotate_key(&self, client_key: &str) -> anyhow::Result<u32> {
        Ok(match self {
            Book::Local(store, _) => store.rotate_key(client_key)?,
            Book::Shared(database, runtime) => runtime.block_on(database.rotate_key(client_key))?,
        })
    }

    fn rotate_api_key(
        &self,
        client_key: &str,
        grace: std::time::Duration,
    ) -> anyhow::Result<String> {
        Ok(match self {
            Book::Local(store, _) => store.rotate_api_key(client_key, grace)?,
            Book::Shared(database, runtime) => {
                runtime.block_on(database.rotate_api_key(client_key, grace))?
            }
        })
    }

    fn revoke_api_keys(&self, client_key: &str) -> anyhow::Result<String> {
        Ok(match self {
            Book::Local(store, _) => store.revoke_api_keys(client_key)?,
            Book::Shared(database, runtime) => {
                runtime.block_on(database.revoke_api_keys(client_key))?
            }
        })
    }
}

#[derive(Subcommand)]
enum VaultCommand {
    /// Print the original client_ref behind a pseudonym (a stored `user_id`).
    Reveal {
        #[command(flatten)]
        tenant: TenantKeys,
        #[arg(long)]
        user_id: String,
    },
}

/// A tenant's store and keys, for the commands that need the master secret.
#[derive(clap::Args)]
struct TenantKeys {
    #[arg(long, env = "INGEST_DATA_DIR")]
    data_dir: PathBuf,
    #[arg(long, env = "INGEST_MASTER_SECRET_FILE")]
    master_secret_file: Option<PathBuf>,
    #[arg(long)]
    client_key: String,
}

impl TenantKeys {
    fn open(&self) -> anyhow::Result<(Keyring, Store, ingest::store::Tenant)> {
        let store = Store::open(&self.data_dir)?;
        let keyring = Keyring::open(&store, &self.data_dir, self.master_secret_file.as_deref())?;
        let key = &self.client_key;
        let tenant = store
            .tenant(key)?
            .with_context(|| format!("unknown client_key `{key}`"))?;
        Ok((keyring, store, tenant))
    }
}

#[derive(Subcommand)]
enum EventsCommand {
    /// Print a tenant's newest stored events (anonymised), one JSON object per line.
    List {
        #[command(flatten)]
        place: Place,
        #[arg(long)]
        client_key: String,
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Show the failed (rejected) events and their reasons instead.
        #[arg(long)]
        failed: bool,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Serve(config) => serve(*config),
        Command::Sink(args) => sink(args),
        Command::Tenant(command) => command.run(),
        Command::Events(command) => command.run(),
        Command::Erase { tenant, client_ref } => erase(&tenant, &client_ref),
        Command::Vault(command) => command.run(),
        Command::Pseudonymise { secret_file } => pseudonymise(&secret_file),
        Command::Replay {
            files,
            as_of,
            queries,
            datasets_config,
            master_secret_file,
        } => replay(
            &files,
            as_of,
            &queries,
            datasets_config.as_deref(),
            master_secret_file.as_deref(),
        ),
    }
}

impl TenantCommand {
    fn run(self) -> anyhow::Result<()> {
        match self {
            TenantCommand::Add {
                place,
                master_secret_file,
                client_key,
                origins,
            } => {
                schema::check_id(&client_key, "client_key")?;
                let (tenant, api_key) =
                    place
                        .open()?
                        .add(&client_key, &origins, master_secret_file.as_deref())?;
                eprintln!(
                    "added tenant `{}`; its secret API key follows (it is not shown again):",
                    tenant.client_key
                );
                println!("{api_key}");
            }
            TenantCommand::List { place } => {
                for t in place.open()?.tenants()? {
                    let origins = if t.origins.is_empty() {
                        "*".to_owned()
                    } else {
                        t.origins.join(",")
                    };
                    println!("{}\t{origins}", t.client_key);
                }
            }
            TenantCommand::RotateKey { place, client_key } => {
                println!("{}", place.open()?.rotate_key(&client_key)?);
            }
            TenantCommand::RotateApiKey {
                place,
                client_key,
                grace_hours,
            } => {
                let grace = std::time::Duration::from_secs(grace_hours * 3600);
                let api_key = place.open()?.rotate_api_key(&client_key, grace)?;
                eprintln!(
                    "a new secret API key for `{client_key}` follows (it is not shown again); the old one works for {grace_hours} more hours:"
                );
                println!("{api_key}");
            }
            TenantCommand::RevokeApiKey { place, client_key } => {
                let api_key = place.open()?.revoke_api_keys(&client_key)?;
                eprintln!(
                    "every earlier secret API key of `{client_key}` is refused now; its new one follows (it is not shown again):"
                );
                println!("{api_key}");
            }
        }
        Ok(())
    }
}

impl EventsCommand {
    fn run(self) -> anyhow::Result<()> {
        let EventsCommand::List {
            place,
            client_key,
            limit,
            failed,
        } = self;
        let book = place.open()?;
        let tenant = book.tenant(&client_key)?;
        let rows = match &book {
            Book::Local(store, _) if failed => store.recent_failed(tenant.id, limit)?,
            Book::Local(store, _) => store.recent_events(tenant.id, limit)?,
            Book::Shared(database, runtime) => {
                let limit = limit.min(i64::MAX as usize) as i64;
                runtime.block_on(async {
                    match failed {
                        true => database.recent_failed(tenant.id, limit).await,
                        false => database.recent_events(tenant.id, limit).await,
                    }
                })?
            }
        };
        for row in rows {
            println!("{row}");
        }
        Ok(())
    }
}

impl VaultCommand {
    fn run(self) -> anyhow::Result<()> {
        let VaultCommand::Reveal { tenant, user_id } = self;
        let (keyring, store, tenant) = tenant.open()?;
        let sealed = store.sealed(tenant.id, &user_id)?.with_context(|| {
            format!(
                "the identity vault holds no user `{user_id}` (is serve run with --identity-vault?)"
            )
        })?;
        let vault = ingest::anonymise::vault::Vault::new(&keyring.vault_key(&tenant.client_key));
        println!("{}", vault.open(&sealed)?);
        Ok(())
    }
}

/// Erases a user's events; a service running on the same store forgets the user in its
/// datasets too (it looks for such erasures every second), and this waits for it.
fn erase(tenant: &TenantKeys, client_ref: &str) -> anyhow::Result<()> {
    let serving = ingest::store::ServiceLock::held(&tenant.data_dir);
    let (keyring, store, tenant) = tenant.open()?;
    let user_ids = ingest::anonymise::user_ids(&keyring, &tenant, client_ref);
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    let erased = runtime.block_on(store.erase(ingest::store::Erasure {
        tenant_id: tenant.id,
        user_ids,
    }))?;
    let wait = std::time::Duration::from_secs(if serving { 30 } else { 0 });
    if !store.settle_erasures(wait) && serving {
        eprintln!(
            "the running service did not take the erasure within 30 s: its datasets may show the user until it restarts"
        );
    }
    store.close();
    println!("{}", serde_json::to_string(&erased)?);
    Ok(())
}

fn pseudonymise(secret_file: &std::path::Path) -> anyhow::Result<()> {
    use ingest::anonymise::pseudonym::{MIN_CUSTOMER_SECRET_BYTES, customer_pseudonym};
    use std::io::{BufRead, Write};
    let mut secret = std::fs::read(secret_file)
        .with_context(|| format!("cannot read {}", secret_file.display()))?;
    while matches!(secret.last(), Some(b'\n' | b'\r')) {
        secret.pop();
    }
    if secret.len() < MIN_CUSTOMER_SECRET_BYTES {
        anyhow::bail!(
            "the secret in {} has {} bytes; it needs at least {MIN_CUSTOMER_SECRET_BYTES}",
            secret_file.display(),
            secret.len()
        );
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for (n, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line.with_context(|| format!("line {} of stdin is not UTF-8", n + 1))?;
        writeln!(
            out,
            "{}",
            customer_pseudonym(&secret, line.trim_end_matches('\r'))
        )?;
    }
    out.flush()?;
    Ok(())
}

fn replay(
    files: &[PathBuf],
    as_of: i64,
    queries: &[String],
    datasets_config: Option<&std::path::Path>,
    master_secret_file: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let params = match datasets_config {
        Some(path) => ingest::load_datasets_params(path)?,
        None => ingest::datasets::Params::default(),
    };
    let secret = master_secret_file
        .map(|f| std::fs::read(f).with_context(|| format!("cannot read {}", f.display())))
        .transpose()?;
    let sources = files
        .iter()
        .map(|f| {
            Ok(ingest::replay::Source {
                name: f.display().to_string(),
                text: std::fs::read_to_string(f)
                    .with_context(|| format!("cannot read {}", f.display()))?,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let out = ingest::replay::replay(&sources, as_of, queries, params, secret)?;
    for line in &out.rejected {
        eprintln!("rejected {line}");
    }
    eprintln!(
        "replayed {} events ({} duplicates, {} rejected)",
        out.applied,
        out.duplicates,
        out.rejected.len()
    );
    for answer in &out.answers {
        println!("{answer}");
    }
    if out.failed_queries > 0 {
        anyhow::bail!("{} of {} queries failed", out.failed_queries, queries.len());
    }
    Ok(())
}

fn serve(config: Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        // Scripts and tests read this line to find the port when they asked for port 0.
        println!("ingest listening on http://{}", listener.local_addr()?);
        let ops = match config.ops_listen {
            Some(addr) => {
                let ops = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr} (--ops-listen)"))?;
                println!("ingest operations on http://{}", ops.local_addr()?);
                Some(ops)
            }
            None => None,
        };
        ingest::serve_with_ops(config, listener, ops, shutdown_signal()).await
    })
}

fn sink(args: SinkArgs) -> anyhow::Result<()> {
    use std::sync::Arc;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let config = ingest::sink::SinkConfig {
            batch: args.batch as usize,
            ack_wait: std::time::Duration::from_secs(args.ack_wait_secs),
            ..Default::default()
        };
        let cluster = Arc::new(
            ingest::Cluster::connect(
                &args.bus,
                &args.database,
                args.bus_replicas,
                config.consumer.clone(),
            )
            .await?,
        );
        let stats = Arc::new(ingest::sink::SinkStats::default());
        if let Some(addr) = args.ops_listen {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (--ops-listen)"))?;
            println!(
                "ingest sink operations on http://{}",
                listener.local_addr()?
            );
            let router = ingest::sink::ops(cluster.clone(), stats.clone());
            tokio::spawn(async move { axum::serve(listener, router).await });
        }
        println!("ingest sink storing the stream in PostgreSQL");
        ingest::sink::run(
            &cluster.bus,
            &cluster.database,
            &config,
            stats,
            shutdown_signal(),
        )
        .await?;
        Ok(())
    })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return ctrl_c.await.unwrap_or(()),
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term.recv() => {},
    }
    tracing::info!("shutting down: draining requests and commits");
}
