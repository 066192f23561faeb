//! Building the browser package: the tracker's wasm (size-optimised) and the TypeScript
//! wrapper around it.

use std::path::PathBuf;

use anyhow::Context;

use crate::cmd::{cargo_bin, cmd, npm_bin, root, run};

/// The wasm-bindgen output the wrapper imports, in `js-wrapper/pkg/`.
pub(crate) fn pkg_dir() -> PathBuf {
    root().join("js-wrapper/pkg")
}

/// `PATH` with `~/.cargo/bin` first, so wasm-pack finds the pinned wasm-bindgen there.
fn path_with_cargo_bin() -> std::ffi::OsString {
    let mut paths = vec![cargo_bin()];
    paths.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(paths).unwrap_or_default()
}

/// Runs wasm-pack in the tracker crate without ever letting it download anything.
pub(crate) fn wasm_pack(args: &[&str]) -> std::process::Command {
    let mut c = cmd(cargo_bin().join("wasm-pack"), args);
    c.current_dir(root().join("tracker-wasm"))
        .env("PATH", path_with_cargo_bin());
    c
}

/// Where the size-optimised build goes: its own target directory, because its flags (and
/// its standard library) differ from every other build's.
fn size_target_dir() -> PathBuf {
    root().join("target/wasm-size")
}

/// Builds the optimised wasm package, then the wrapper; returns the size report.
///
/// The tracker is built with the standard library recompiled for size (`-Z build-std`, which
/// the stable toolchain allows under `RUSTC_BOOTSTRAP=1`) and `panic=immediate-abort`, so no
/// panic message or formatting code is linked: about 8 KB of gzip off what every page loads.
/// `wasm-bindgen` (the pinned CLI) then writes the JS glue, and `wasm-opt` shrinks the rest.
pub(crate) fn package() -> anyhow::Result<String> {
    let out_dir = pkg_dir();
    let out = out_dir.to_str().context("non-UTF-8 path")?;
    let target_dir = size_target_dir();
    run(cmd(
        "cargo",
        &[
            "build",
            "--package",
            "personafin-tracker",
            "--lib",
            "--target",
            "wasm32-unknown-unknown",
            "--profile",
            "wasm-release",
            "-Z",
            "build-std=std,panic_abort",
            "--target-dir",
            target_dir.to_str().context("non-UTF-8 path")?,
        ],
    )
    .env("RUSTC_BOOTSTRAP", "1")
    .env(
        "RUSTFLAGS",
        "-Zunstable-options -Cpanic=immediate-abort -Zlocation-detail=none -Zfmt-debug=none",
    ))?;
    let built = target_dir.join("wasm32-unknown-unknown/wasm-release/personafin_tracker.wasm");
    if out_dir.exists() {
        std::fs::remove_dir_all(&out_dir)?;
    }
    run(&mut cmd(
        cargo_bin().join("wasm-bindgen"),
        &[
            "--target",
            "web",
            // Every browser with wasm's reference types has `TextEncoder.encodeInto`.
            "--encode-into",
            "always",
            "--out-dir",
            out,
            "--out-name",
            "personafin_tracker",
            built.to_str().context("non-UTF-8 path")?,
        ],
    ))?;
    // binaryen from npm, never Debian's: its older wasm-opt breaks current rustc output.
    let wasm = out_dir.join("personafin_tracker_bg.wasm");
    let wasm = wasm.to_str().context("non-UTF-8 path")?;
    // A second `-Oz` still finds work after the first. The memory is the module's own (so
    // zero-filled), and its low kilobyte is the far end of the stack (rustc puts the 1 MB
    // stack first), which these flags let binaryen assume. The producers and target-features
    // sections are read by no browser.
    run(&mut cmd(
        npm_bin("wasm-opt"),
        &[
            "-Oz",
            "--low-memory-unused",
            "--zero-filled-memory",
            "-Oz",
            "--strip-producers",
            "--strip-target-features",
            wasm,
            "-o",
            wasm,
        ],
    ))?;
    run(&mut cmd(
        "npm",
        &["run", "build", "--workspace", "js-wrapper"],
    ))?;
    sizes()
}

/// Bytes and gzip bytes of what a page loads: the wasm, its JS glue, the browser side
/// (`host.js`, copied under `pkg/snippets/`) and the wrapper, as built (not minified; `cargo
/// xtask bench tracker` measures a minified bundle).
fn sizes() -> anyhow::Result<String> {
    let mut files = vec![
        pkg_dir().join("personafin_tracker_bg.wasm"),
        pkg_dir().join("personafin_tracker.js"),
    ];
    for snippet in std::fs::read_dir(pkg_dir().join("snippets"))? {
        files.push(snippet?.path().join("js/host.js"));
    }
    files.push(root().join("js-wrapper/dist/index.js"));
    let mut report = String::new();
    let (mut total, mut total_gz) = (0, 0);
    for f in &files {
        let raw = std::fs::read(f).with_context(|| format!("{} was not built", f.display()))?;
        let gz = gzip_len(&raw)?;
        total += raw.len();
        total_gz += gz;
        let name = f.strip_prefix(root()).unwrap_or(f).display();
        report.push_str(&format!("  {name}: {} bytes, {gz} gzip\n", raw.len()));
    }
    report.push_str(&format!(
        "  total: {total} bytes, {total_gz} gzip ({:.1} KiB)\n",
        total_gz as f64 / 1024.0
    ));
    let dist = root().join("js-wrapper/dist");
    let gz = |file: &str| -> anyhow::Result<usize> {
        let raw = std::fs::read(dist.join(file))
            .with_context(|| format!("js-wrapper/dist/{file} was not built"))?;
        gzip_len(&raw)
    };
    let (script, wasm) = (gz("personafin.js")?, gz("personafin.wasm")?);
    report.push_str(&format!(
        "  script-tag build (js-wrapper/dist/personafin.js, and personafin.wasm beside it): {script} + {wasm} gzip ({:.1} KiB)\n",
        (script + wasm) as f64 / 1024.0
    ));
    report.push_str(&format!(
        "  with every plugin (personafin.all.js): {} gzip; one file, wasm inlined (personafin.inline.js): {} gzip\n",
        gz("personafin.all.js")?,
        gz("personafin.inline.js")?
    ));
    Ok(report)
}

fn gzip_len(data: &[u8]) -> anyhow::Result<usize> {
    use std::io::Write;
    let mut child = cmd("gzip", &["-9", "-c"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("gzip is needed to measure sizes")?;
    child.stdin.take().context("gzip stdin")?.write_all(data)?;
    Ok(child.wait_with_output()?.stdout.len())
}
