//! `cargo xtask …`: the project's tasks, in Rust so they run wherever cargo does.
//!
//! - `demo`: build everything, start ingest with its embedded store, serve the example page.
//! - `cluster`: the same demo on a local cluster (NATS JetStream, PostgreSQL, two edges, a sink).
//! - `test`: install what is missing, then run every check and test (`.ci/run` calls this).
//! - `build-wasm`: build the optimised tracker package and the npm wrapper; print sizes.
//! - `gen-types`: write the wrapper's wire-format TypeScript types from the `schema` crate.
//! - `bench ingest|datasets|tracker`: measure ingest against its baselines, the datasets
//!   engine and query API against their targets, or the browser package beside the peer
//!   trackers; the reports go to `target/bench/`.

mod build;
mod cmd;
mod demo;
mod ingest;
mod install;
mod test;

use std::net::{Ipv4Addr, SocketAddr};

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Personafin Capture's tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Build everything and run the demo: ingest plus the example page. Ctrl-C, SIGTERM or
    /// SIGHUP stops it, with ingest and the web server.
    Demo {
        /// Ingest's port on 127.0.0.1 (0: any free one).
        #[arg(long, default_value_t = 8787)]
        ingest_port: u16,
        /// The demo UI's port on 127.0.0.1 (0: any free one).
        #[arg(long, default_value_t = 8080)]
        web_port: u16,
        /// Ingest's store for the demo, kept between runs.
        #[arg(long, default_value = ".data/demo")]
        data_dir: std::path::PathBuf,
    },
    /// Run the demo on a local cluster: three NATS JetStream servers, PostgreSQL, two
    /// ingest edges behind a round-robin proxy, a sink. Ctrl-C, SIGTERM or SIGHUP stops it
    /// all; its data goes with it.
    Cluster {
        /// The edges' round-robin proxy's port on 127.0.0.1 (0: any free one).
        #[arg(long, default_value_t = 8787)]
        ingest_port: u16,
        /// The demo UI's port on 127.0.0.1 (0: any free one).
        #[arg(long, default_value_t = 8080)]
        web_port: u16,
    },
    /// Install what is missing, then run every check and test.
    Test,
    /// Build the optimised wasm package and the npm wrapper, and print their sizes.
    BuildWasm,
    /// Regenerate js-wrapper/src/wire.ts from the schema crate, and host.js's protocol block
    /// from the tracker's.
    GenTypes,
    /// Measure, and write a report under target/bench/.
    Bench {
        #[arg(value_enum)]
        what: Bench,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Bench {
    /// Events/s and batch latency with durable commits, beside a bare axum server and the
    /// store alone.
    Ingest,
    /// The datasets engine on 1 M synthetic events, materialisation, and query latency
    /// under concurrent ingest.
    Datasets,
    /// Bytes a page loads and `track()` main-thread cost in headless Chromium, beside the
    /// peer trackers from npm.
    Tracker,
    /// Events/s end to end through edge → JetStream → sink → PostgreSQL, answer latency, lag
    /// to PostgreSQL and to the query answers, CPU per event of each role, beside one single
    /// node measured in the same run.
    Cluster,
}

/// Builds the optimised package, installs the peer trackers (once), and runs the
/// measurement in `bench/tracker/run.mjs`.
fn tracker_bench() -> anyhow::Result<()> {
    install::for_tests()?;
    let sizes = build::package()?;
    eprintln!("browser package:\n{sizes}");
    let bench = cmd::root().join("bench/tracker");
    install::npm_ci(&bench)?;
    let report = cmd::root().join("target/bench/tracker.md");
    cmd::run(&mut cmd::cmd(
        "node",
        &[
            "bench/tracker/run.mjs",
            report.to_str().context("non-UTF-8 path")?,
        ],
    ))?;
    eprintln!("\nreport written to {}", report.display());
    Ok(())
}

/// Builds ingest for release and runs `bench/cluster/run.mjs` over a local cluster.
fn cluster_bench() -> anyhow::Result<()> {
    install::for_cluster()?;
    cmd::run(&mut cmd::cmd(
        "cargo",
        &["build", "--release", "--package", "ingest"],
    ))?;
    let report = cmd::root().join("target/bench/cluster.md");
    let target = ingest::binary();
    let binary = target
        .parent()
        .and_then(std::path::Path::parent)
        .context("the target directory")?
        .join("release/ingest");
    cmd::run(
        cmd::cmd(
            "node",
            &[
                "bench/cluster/run.mjs",
                report.to_str().context("non-UTF-8 path")?,
            ],
        )
        .env("INGEST_BIN", binary),
    )?;
    eprintln!("\nreport written to {}", report.display());
    Ok(())
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().task {
        Task::Demo {
            ingest_port,
            web_port,
            data_dir,
        } => demo::run(
            SocketAddr::from((Ipv4Addr::LOCALHOST, ingest_port)),
            SocketAddr::from((Ipv4Addr::LOCALHOST, web_port)),
            &cmd::root().join(data_dir),
        ),
        Task::Cluster {
            ingest_port,
            web_port,
        } => demo::cluster(ingest_port, web_port),
        Task::Test => {
            test::all()?;
            eprintln!("\nall checks and tests passed");
            Ok(())
        }
        Task::BuildWasm => {
            install::for_build()?;
            let sizes = build::package()?;
            println!("{sizes}");
            Ok(())
        }
        Task::Bench { what } => {
            let bench = match what {
                Bench::Ingest => "throughput",
                Bench::Datasets => "datasets",
                Bench::Tracker => return tracker_bench(),
                Bench::Cluster => return cluster_bench(),
            };
            cmd::run(&mut cmd::cmd(
                "cargo",
                &["bench", "--package", "ingest", "--bench", bench],
            ))
        }
        Task::GenTypes => {
            let path = cmd::root().join("js-wrapper/src/wire.ts");
            std::fs::write(&path, schema::typescript::declarations())?;
            eprintln!("wrote {}", path.display());
            let path = cmd::root().join("tracker-wasm/js/host.js");
            let host = std::fs::read_to_string(&path)?;
            let fresh =
                personafin_tracker::protocol::with_fresh_block(&host).with_context(|| {
                    format!(
                        "{} has no protocol block: put the lines `{}` and `{}` where it goes",
                        path.display(),
                        personafin_tracker::protocol::BEGIN,
                        personafin_tracker::protocol::END
                    )
                })?;
            std::fs::write(&path, fresh)?;
            eprintln!("wrote the protocol block of {}", path.display());
            Ok(())
        }
    }
}
