//! Installs what the tasks need, each only when missing, from the registries this project's
//! machines reach: rustup's target, crates.io, Debian's apt and npm.

use std::path::Path;

use anyhow::{Context, bail};

use crate::cmd::{cargo_bin, cmd, output, root, run};

const WASM_PACK: &str = "0.15.1";
const GECKODRIVER: &str = "0.37.1";
const CARGO_FUZZ: &str = "0.13.2";
/// Debian packages and a file each installs, to tell whether it is there.
type Packages = [(&'static str, &'static str)];
/// The browsers the tests drive.
const BROWSERS: &Packages = &[
    ("chromium", "/usr/bin/chromium"),
    ("chromium-driver", "/usr/bin/chromedriver"),
    ("firefox-esr", "/usr/bin/firefox-esr"),
    // WebKit, Safari's engine: WebKitGTK's MiniBrowser and its WebDriver, on an X server of
    // its own (MiniBrowser has no headless mode).
    ("webkit2gtk-driver", "/usr/bin/WebKitWebDriver"),
    ("xvfb", "/usr/bin/Xvfb"),
];
/// What a cluster runs on: a real JetStream and a real PostgreSQL (Debian 12's is 15).
const CLUSTER: &Packages = &[
    ("nats-server", "/usr/sbin/nats-server"),
    ("postgresql", "/usr/lib/postgresql/15/bin/postgres"),
];

/// Everything `cargo xtask test` needs.
pub(crate) fn for_tests() -> anyhow::Result<()> {
    for_build()?;
    apt(&[BROWSERS, CLUSTER].concat())?;
    cargo_tool("geckodriver", "geckodriver", GECKODRIVER, true)?;
    cargo_tool("cargo-fuzz", "cargo-fuzz", CARGO_FUZZ, true)
}

/// Everything building the wasm package needs.
pub(crate) fn for_build() -> anyhow::Result<()> {
    wasm_target()?;
    cargo_tool("wasm-pack", "wasm-pack", WASM_PACK, true)?;
    // Not `--locked`: the CLI's own lockfile names a crate version the registry lacks.
    cargo_tool(
        "wasm-bindgen-cli",
        "wasm-bindgen",
        &pinned_wasm_bindgen()?,
        false,
    )?;
    npm()
}

/// The wasm target, and the standard library's source: the package build recompiles std
/// for size (see `build::package`).
fn wasm_target() -> anyhow::Result<()> {
    let installed =
        output(&mut cmd("rustup", &["target", "list", "--installed"])).unwrap_or_default();
    if !installed
        .lines()
        .any(|l| l.trim() == "wasm32-unknown-unknown")
    {
        run(&mut cmd(
            "rustup",
            &["target", "add", "wasm32-unknown-unknown"],
        ))?;
    }
    let components =
        output(&mut cmd("rustup", &["component", "list", "--installed"])).unwrap_or_default();
    if components.lines().any(|l| l.trim().starts_with("rust-src")) {
        return Ok(());
    }
    run(&mut cmd("rustup", &["component", "add", "rust-src"]))
}

/// The exact `wasm-bindgen` version the workspace pins; the CLI must match it.
pub(crate) fn pinned_wasm_bindgen() -> anyhow::Result<String> {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml"))?;
    manifest
        .lines()
        .find_map(|l| l.strip_prefix("wasm-bindgen = \"="))
        .and_then(|rest| rest.split('"').next())
        .map(str::to_owned)
        .context("Cargo.toml must pin wasm-bindgen exactly, as `wasm-bindgen = \"=0.2.N\"`")
}

fn cargo_tool(krate: &str, binary: &str, version: &str, locked: bool) -> anyhow::Result<()> {
    let path = cargo_bin().join(binary);
    let current = output(&mut cmd(&path, &["--version"])).unwrap_or_default();
    if current.split_whitespace().nth(1) == Some(version) {
        return Ok(());
    }
    let mut args = vec!["install", krate, "--version", version];
    if locked {
        args.push("--locked");
    }
    run(&mut cmd("cargo", &args))
}

/// Everything `cargo xtask cluster` needs.
pub(crate) fn for_cluster() -> anyhow::Result<()> {
    for_build()?;
    apt(CLUSTER)
}

fn apt(packages: &Packages) -> anyhow::Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .filter(|(_, file)| !Path::new(file).exists())
        .map(|(pkg, _)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let root_user = output(&mut cmd("id", &["-u"])).is_some_and(|id| id.trim() == "0");
    if !root_user {
        bail!(
            "missing Debian packages {}: install them with `sudo apt-get install -y {}`",
            missing.join(", "),
            missing.join(" ")
        );
    }
    run(cmd("apt-get", &["update"]).env("DEBIAN_FRONTEND", "noninteractive"))?;
    let mut args = vec!["install", "-y", "--no-install-recommends"];
    args.extend(&missing);
    run(cmd("apt-get", &args).env("DEBIAN_FRONTEND", "noninteractive"))
}

/// `npm ci` when `node_modules` does not match `package-lock.json` (a stamp remembers).
fn npm() -> anyhow::Result<()> {
    npm_ci(&root())
}

/// `npm ci` in `dir` when its `node_modules` does not match its `package-lock.json`.
pub(crate) fn npm_ci(dir: &std::path::Path) -> anyhow::Result<()> {
    let lock = std::fs::read(dir.join("package-lock.json"))
        .with_context(|| format!("{}/package-lock.json is missing", dir.display()))?;
    let stamp = dir.join("node_modules/.xtask-installed-lock");
    if std::fs::read(&stamp).ok().as_deref() == Some(&lock[..]) {
        return Ok(());
    }
    run(cmd("npm", &["ci", "--no-audit", "--no-fund"]).current_dir(dir))?;
    std::fs::write(&stamp, &lock)?;
    Ok(())
}
