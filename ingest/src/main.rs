//! The `ingest` command: the service and its administration.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use ingest::{Config, Store};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(name = "ingest", version, about = "Personafin Capture ingest service")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service.
    Serve(Config),
    /// Manage tenants (customers and their keys).
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Read what the store holds.
    #[command(subcommand)]
    Events(EventsCommand),
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Register a tenant and print its secret API key (shown only this once).
    Add {
        #[arg(long, env = "INGEST_DATA_DIR")]
        data_dir: PathBuf,
        /// The public write key pages send with their events.
        #[arg(long)]
        client_key: String,
        /// An origin allowed to send events, e.g. https://app.example.com; repeat for more.
        /// Without any, every origin may send.
        #[arg(long = "origin")]
        origins: Vec<String>,
    },
    /// List tenants: client key and allowed origins, one per line.
    List {
        #[arg(long, env = "INGEST_DATA_DIR")]
        data_dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum EventsCommand {
    /// Print a tenant's newest stored events (anonymised), one JSON object per line.
    List {
        #[arg(long, env = "INGEST_DATA_DIR")]
        data_dir: PathBuf,
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
        Command::Serve(config) => serve(config),
        Command::Tenant(TenantCommand::Add {
            data_dir,
            client_key,
            origins,
        }) => {
            schema::check_id(&client_key, "client_key")?;
            let store = Store::open(&data_dir)?;
            let (tenant, api_key) = store.add_tenant(&client_key, &origins)?;
            eprintln!(
                "added tenant `{}`; its secret API key follows (it is not shown again):",
                tenant.client_key
            );
            println!("{api_key}");
            Ok(())
        }
        Command::Tenant(TenantCommand::List { data_dir }) => {
            for t in Store::open(&data_dir)?.tenants()? {
                let origins = if t.origins.is_empty() {
                    "*".to_owned()
                } else {
                    t.origins.join(",")
                };
                println!("{}\t{origins}", t.client_key);
            }
            Ok(())
        }
        Command::Events(EventsCommand::List {
            data_dir,
            client_key,
            limit,
            failed,
        }) => {
            let store = Store::open(&data_dir)?;
            let tenant = store
                .tenant(&client_key)?
                .with_context(|| format!("unknown client_key `{client_key}`"))?;
            let rows = if failed {
                store.recent_failed(tenant.id, limit)?
            } else {
                store.recent_events(tenant.id, limit)?
            };
            for row in rows {
                println!("{row}");
            }
            Ok(())
        }
    }
}

fn serve(config: Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        // Scripts and tests read this line to find the port when they asked for port 0.
        println!("ingest listening on http://{}", listener.local_addr()?);
        ingest::serve(config, listener, shutdown_signal()).await
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
