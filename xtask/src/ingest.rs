//! Driving the real ingest binary: build it, start it on a port, register tenants, read
//! what it stored.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use anyhow::{Context, bail};

use crate::cmd::{capture, cmd, root, run};

pub(crate) fn binary() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    target.join("debug/ingest")
}

/// The ingest binary, and the cluster's example subscriber (`subscribe`) beside it.
pub(crate) fn build() -> anyhow::Result<()> {
    run(&mut cmd(
        "cargo",
        &[
            "build",
            "--package",
            "ingest",
            "--package",
            "personafin-subscriber",
        ],
    ))
}

/// A running `ingest serve`, stopped when dropped.
pub(crate) struct Ingest {
    child: Child,
    /// `http://host:port`, the port chosen by the OS when asked for 0.
    pub(crate) url: String,
}

impl Ingest {
    pub(crate) fn start(data_dir: &Path, listen: &str) -> anyhow::Result<Ingest> {
        Ingest::start_with(data_dir, listen, &[])
    }

    /// Starts ingest with extra `serve` flags.
    pub(crate) fn start_with(
        data_dir: &Path,
        listen: &str,
        flags: &[&str],
    ) -> anyhow::Result<Ingest> {
        let dir = data_dir.to_str().context("non-UTF-8 data dir")?;
        let mut args = vec!["serve", "--listen", listen, "--data-dir", dir];
        args.extend_from_slice(flags);
        let mut child = cmd(binary(), &args)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .spawn()
            .context("cannot start ingest")?;
        let stdout = child.stdout.take().context("ingest stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let Some(url) = line.trim().strip_prefix("ingest listening on ") else {
            let _ = child.kill();
            bail!("ingest did not start (it printed {line:?}); is {listen} free?");
        };
        Ok(Ingest {
            url: url.to_owned(),
            child,
        })
    }
}

impl Drop for Ingest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dir_arg(data_dir: &Path) -> anyhow::Result<&str> {
    data_dir.to_str().context("non-UTF-8 data dir")
}

pub(crate) fn tenants(data_dir: &Path) -> anyhow::Result<Vec<String>> {
    let out = capture(&mut cmd(
        binary(),
        &["tenant", "list", "--data-dir", dir_arg(data_dir)?],
    ))?;
    Ok(out
        .lines()
        .filter_map(|l| l.split('\t').next())
        .map(str::to_owned)
        .collect())
}

/// Registers a tenant; returns its secret API key.
pub(crate) fn add_tenant(data_dir: &Path, client_key: &str) -> anyhow::Result<String> {
    let key = capture(&mut cmd(
        binary(),
        &[
            "tenant",
            "add",
            "--data-dir",
            dir_arg(data_dir)?,
            "--client-key",
            client_key,
        ],
    ))?;
    Ok(key.trim().to_owned())
}

/// The tenant's stored events, one JSON object per line.
pub(crate) fn events(data_dir: &Path, client_key: &str) -> anyhow::Result<Vec<String>> {
    let out = capture(&mut cmd(
        binary(),
        &[
            "events",
            "list",
            "--data-dir",
            dir_arg(data_dir)?,
            "--client-key",
            client_key,
            "--limit",
            "100000",
        ],
    ))?;
    Ok(out.lines().map(str::to_owned).collect())
}
