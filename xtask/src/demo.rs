//! `cargo xtask demo`: build the browser package, start ingest on an embedded store, serve
//! the demo trading UI (`examples/demo/`) and the other examples, print the URLs; Ctrl-C (or
//! any other termination signal) stops both.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Stdio};

use anyhow::{Context, bail};

use crate::cmd::{cmd, root};
use crate::ingest::{self, Ingest};
use crate::{build, install};

pub(crate) const CLIENT_KEY: &str = "pk_demo";

pub(crate) fn run(
    ingest_addr: SocketAddr,
    web_addr: SocketAddr,
    data_dir: &Path,
) -> anyhow::Result<()> {
    install::for_build()?;
    ingest::build()?;
    let sizes = build::package()?;
    eprintln!("browser package:\n{sizes}");
    // The demo keeps its tenant's secret key beside its store, so every run can link the
    // dashboard; a real deployment shows the key once and stores only its hash.
    let key_file = data_dir.join("demo-api-key");
    if !ingest::tenants(data_dir)?.iter().any(|k| k == CLIENT_KEY) {
        let key = ingest::add_tenant(data_dir, CLIENT_KEY)?;
        std::fs::write(&key_file, &key)?;
    }
    let api_key = std::fs::read_to_string(&key_file).unwrap_or_default();
    if api_key.trim().is_empty() {
        eprintln!(
            "note: {} has no saved secret API key for {CLIENT_KEY} (its tenant predates the demo saving it), so the demo's \
             recommendations and trending panels stay empty; delete {} to start afresh",
            data_dir.display(),
            data_dir.display()
        );
    }
    let runtime = tokio::runtime::Runtime::new()?;
    // Caught from here on: a signal while the children start still stops them.
    let stop = {
        let _entered = runtime.enter();
        stop_signal()?
    };
    let server = Ingest::start(data_dir, &ingest_addr.to_string())?;
    // The demo's web server is the one the end-to-end tests start too: it serves the UI and
    // asks the query API for it with the secret key, which never reaches the browser.
    let mut web = Stopped(
        cmd(
            "node",
            &[
                "examples/demo/server.mjs",
                "--port",
                &web_addr.port().to_string(),
                "--ingest",
                &server.url,
                "--client-key",
                CLIENT_KEY,
                "--api-key-file",
                key_file.to_str().context("non-UTF-8 path")?,
            ],
        )
        .current_dir(root())
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot start the demo's web server (node)")?,
    );
    let mut line = String::new();
    BufReader::new(web.0.stdout.take().context("demo server stdout")?).read_line(&mut line)?;
    let Some(url) = line.trim().strip_prefix("demo listening on ") else {
        bail!(
            "the demo's web server did not start (it printed {line:?}); pass --web-port to pick another port"
        );
    };
    let dashboard = match api_key.trim() {
        "" => format!(
            "{}/dashboard (enter the tenant's secret API key)",
            server.url
        ),
        key => format!("{}/dashboard#key={key}", server.url),
    };
    println!(
        "\nPersonafin Capture demo\n  open      {url}/\n  examples  {url}/examples/basic/  {url}/examples/script-tag/  {url}/examples/iframe-widget/host.html\n  dashboard {dashboard}\n  ingest    {} (store: {})\n  events    `cargo run -q -p ingest -- events list --data-dir {} --client-key {CLIENT_KEY}`\nCtrl-C stops it.",
        server.url,
        data_dir.display(),
        data_dir.display()
    );
    let signal = runtime.block_on(stop);
    eprintln!("{signal}: stopping the demo");
    drop((web, server));
    Ok(())
}

/// The node web server, stopped (and waited for) when dropped, like `Ingest`.
struct Stopped(Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Catches the signals to stop on from now, and resolves with the first one's name. Ctrl-C in
/// a terminal reaches the whole process group, children included; `kill`, a service manager
/// or a closed terminal signal this process alone, so each is caught here and the children
/// are stopped on the way out. Call inside the runtime.
#[cfg(unix)]
fn stop_signal() -> std::io::Result<impl Future<Output = &'static str>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    let mut quit = signal(SignalKind::quit())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
            _ = hangup.recv() => "SIGHUP",
            _ = quit.recv() => "SIGQUIT",
        }
    })
}

#[cfg(not(unix))]
fn stop_signal() -> std::io::Result<impl Future<Output = &'static str>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    })
}

/// `cargo xtask cluster`: the demo on a whole local cluster (`examples/cluster/run.mjs`, on
/// the same harness as the cluster tests). Stopped by a signal, it stops the cluster first:
/// its servers run in temporary directories that go with it.
pub(crate) fn cluster(ingest_port: u16, web_port: u16) -> anyhow::Result<()> {
    install::for_cluster()?;
    ingest::build()?;
    let sizes = build::package()?;
    eprintln!("browser package:\n{sizes}");
    let runtime = tokio::runtime::Runtime::new()?;
    let stop = {
        let _entered = runtime.enter();
        stop_signal()?
    };
    let mut child = cmd(
        "node",
        &[
            "examples/cluster/run.mjs",
            "--ingest-port",
            &ingest_port.to_string(),
            "--web-port",
            &web_port.to_string(),
        ],
    )
    .current_dir(root())
    .env("INGEST_BIN", ingest::binary())
    .spawn()
    .context("cannot start the cluster (node)")?;
    let pid = child.id().to_string();
    let exited = runtime.block_on(async {
        let mut waited = tokio::task::spawn_blocking(move || child.wait());
        tokio::select! {
            signal = stop => {
                eprintln!("{signal}: stopping the cluster");
                // The runner stops its servers on SIGTERM, then exits.
                let _ = std::process::Command::new("kill").args(["-TERM", &pid]).status();
                (&mut waited).await
            }
            status = &mut waited => status,
        }
    })??;
    if !exited.success() && exited.code().is_some() {
        bail!("the cluster stopped with {exited}");
    }
    Ok(())
}
