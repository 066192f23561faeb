//! `cargo xtask test`: every check and test, in the order that fails fastest.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::build::{self, wasm_pack};
use crate::cmd::{cargo_bin, cmd, root, run};
use crate::ingest::{self, Ingest};
use crate::install;

/// Events each browser's run of `tracker-wasm/tests/` stores with its run marker in
/// `event_meta.run`: 17 from `web.rs` (the 429 test sends to the rate-limited ingest), 4 from
/// `autocapture.rs` (page views carry the marker in their path instead).
const EVENTS_PER_BROWSER_RUN: usize = 21;

pub(crate) fn all() -> anyhow::Result<()> {
    install::for_tests()?;
    run(&mut cmd("cargo", &["fmt", "--all", "--check"]))?;
    run(&mut cmd(
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    ))?;
    run(&mut cmd(
        "cargo",
        &[
            "clippy",
            "--package",
            "personafin-tracker",
            "--target",
            "wasm32-unknown-unknown",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    ))?;
    run(&mut cmd("cargo", &["test", "--workspace"]))?;
    fuzz_briefly()?;
    ingest::build()?;
    let sizes = build::package()?;
    eprintln!("browser package:\n{sizes}");
    browser_unit_tests()?;
    let xtask = xtask_binary()?;
    for dir in [
        "tracker-wasm/js/test",
        "js-wrapper/test",
        "tests/e2e",
        "tests/faults",
        "tests/cluster",
    ] {
        node_tests(dir, &xtask)?;
    }
    Ok(())
}

/// The fuzz target over parsing, validation and anonymisation, for a short while, seeded
/// with the valid payload fixtures. No sanitizer: the project's code forbids `unsafe`, and an
/// ASan build of every dependency takes twice as long on two cores.
fn fuzz_briefly() -> anyhow::Result<()> {
    let corpus = root().join("ingest/fuzz/corpus/ingest_batch");
    std::fs::create_dir_all(&corpus)?;
    let seeds = root().join("schema/fixtures/valid");
    let (corpus, seeds) = (
        corpus.to_str().context("non-UTF-8 path")?,
        seeds.to_str().context("non-UTF-8 path")?,
    );
    // cargo-fuzz needs nightly-only flags; the machines have one stable toolchain.
    run(cmd(
        "cargo",
        &[
            "fuzz",
            "run",
            "--sanitizer",
            "none",
            "ingest_batch",
            corpus,
            seeds,
            "--",
            "-max_total_time=20",
        ],
    )
    .current_dir(root().join("ingest"))
    .env("RUSTC_BOOTSTRAP", "1"))
}

/// `wasm-pack test` in headless Chrome and Firefox against a real ingest, then a look in
/// its store for what each browser sent.
fn browser_unit_tests() -> anyhow::Result<()> {
    let data_dir = scratch_dir("wasm-test")?;
    let client_key = "pk_wasm_test";
    ingest::add_tenant(&data_dir, client_key)?;
    let server = Ingest::start(&data_dir, "127.0.0.1:0")?;
    let endpoint = format!("{}/v1/events", server.url);
    // A second ingest that allows a burst of two events, then one a second: the 429 test.
    let limited_dir = scratch_dir("wasm-test-limited")?;
    ingest::add_tenant(&limited_dir, client_key)?;
    let limited = Ingest::start_with(
        &limited_dir,
        "127.0.0.1:0",
        &["--rate-limit", "1", "--rate-burst", "2"],
    )?;
    let limited_endpoint = format!("{}/v1/events", limited.url);
    let run_id = format!("run-{}", std::process::id());
    let geckodriver = cargo_bin().join("geckodriver");
    let browsers: [(&str, &[&str]); 2] = [
        (
            "chrome",
            &["--chrome", "--chromedriver", "/usr/bin/chromedriver"],
        ),
        (
            "firefox",
            &[
                "--firefox",
                "--geckodriver",
                geckodriver.to_str().context("non-UTF-8 path")?,
            ],
        ),
    ];
    for (name, flags) in browsers {
        let mut args = vec!["test", "--mode", "no-install", "--headless"];
        args.extend_from_slice(flags);
        let marker = format!("{run_id}-{name}");
        run(wasm_pack(&args)
            .env("PF_TEST_ENDPOINT", &endpoint)
            .env("PF_TEST_LIMITED_ENDPOINT", &limited_endpoint)
            .env("PF_TEST_CLIENT_KEY", client_key)
            .env("PF_TEST_RUN", &marker))?;
        let needle = format!("\"run\":\"{marker}\"");
        // Beacons from the last test may still be on their way: wait for them, a while.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let stored = loop {
            let stored = ingest::events(&data_dir, client_key)?
                .iter()
                .filter(|e| e.contains(&needle))
                .count();
            if stored >= EVENTS_PER_BROWSER_RUN || std::time::Instant::now() > deadline {
                break stored;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        };
        if stored != EVENTS_PER_BROWSER_RUN {
            bail!(
                "{name}: ingest stored {stored} of the {EVENTS_PER_BROWSER_RUN} events the browser tests sent"
            );
        }
        eprintln!("{name}: ingest stored all {stored} events the browser tests sent");
    }
    drop((server, limited));
    let _ = std::fs::remove_dir_all(&data_dir);
    let _ = std::fs::remove_dir_all(&limited_dir);
    Ok(())
}

/// Node's test runner over every `*.test.mjs` in `dir`; they start the ingest binary named
/// by `INGEST_BIN` themselves, `cargo xtask demo` as this binary, `XTASK_BIN`, and Firefox
/// through the geckodriver `GECKODRIVER` names.
fn node_tests(dir: &str, xtask: &Path) -> anyhow::Result<()> {
    let mut files: Vec<String> = std::fs::read_dir(root().join(dir))
        .with_context(|| format!("cannot read {dir}"))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".test.mjs"))
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("no *.test.mjs files in {dir}");
    }
    let mut args = vec!["--test", "--test-concurrency=1"];
    args.extend(files.iter().map(String::as_str));
    run(cmd("node", &args)
        .env("INGEST_BIN", ingest::binary())
        .env("XTASK_BIN", xtask)
        .env("GECKODRIVER", cargo_bin().join("geckodriver")))
}

/// This program as cargo builds it now. Not `current_exe()`: `cargo test --workspace` may
/// have linked it anew since it started, and the running one's file is then gone.
fn xtask_binary() -> anyhow::Result<PathBuf> {
    run(&mut cmd("cargo", &["build", "--package", "xtask"]))?;
    Ok(ingest::binary().with_file_name("xtask"))
}

/// A fresh directory under the system temp dir, for one step's store.
fn scratch_dir(name: &str) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("personafin-xtask-{name}-{}", std::process::id()));
    if Path::new(&dir).exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
