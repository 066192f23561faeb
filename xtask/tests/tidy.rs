//! The architecture invariants of ARCHITECTURE.md, checked (after rust-analyzer's `tidy.rs`).

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// Every crate `package` depends on for normal builds, by name, for `target` (`None`: this
/// machine's). Not `--target all`: that counts dependencies of targets nobody builds for, such
/// as wasm-bindgen-futures' tokio on emscripten.
fn dependencies(package: &str, target: Option<&str>) -> Vec<String> {
    let mut args = vec![
        "tree",
        "--package",
        package,
        "--edges",
        "normal",
        "--prefix",
        "none",
        "--format",
        "{p}",
    ];
    if let Some(t) = target {
        args.extend(["--target", t]);
    }
    let out = Command::new(env!("CARGO"))
        .args(&args)
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo tree: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

fn assert_none_of(package: &str, target: Option<&str>, forbidden: &[&str]) {
    let deps = dependencies(package, target);
    assert!(deps.len() > 1, "cargo tree listed nothing for {package}");
    for f in forbidden {
        assert!(
            !deps.iter().any(|d| d == f),
            "{package} must not depend on {f}, but does"
        );
    }
}

#[test]
fn schema_has_no_io_dependencies() {
    for target in [None, Some("wasm32-unknown-unknown")] {
        assert_none_of(
            "personafin-schema",
            target,
            &[
                "tokio",
                "mio",
                "axum",
                "hyper",
                "rusqlite",
                "wasm-bindgen",
                "web-sys",
                "js-sys",
            ],
        );
    }
}

/// The Rust files under `dir`, recursively.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

fn assert_no_io(dir: &str, what: &str, extra: &[&str]) {
    let files = rust_files(&root().join(dir));
    assert!(!files.is_empty(), "no Rust files under {dir}");
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let io = [
            "std::fs",
            "std::net",
            "std::io",
            "std::process",
            "std::env",
            "std::thread",
        ];
        for io in io.iter().chain(extra) {
            assert!(
                !text.contains(io),
                "{} uses {io}; {what} does no I/O",
                path.display()
            );
        }
    }
}

#[test]
fn schema_source_does_no_io() {
    assert_no_io("schema/src", "schema", &[]);
}

/// The datasets engine takes its time and its randomness from its callers, so replays,
/// tests and the service compute alike.
#[test]
fn the_datasets_engine_does_no_io_and_reads_no_clock() {
    assert_no_io(
        "ingest/src/datasets",
        "the datasets engine",
        &[
            "tokio",
            "rusqlite",
            "SystemTime",
            "Instant::now",
            "getrandom",
        ],
    );
}

#[test]
fn schema_builds_for_wasm() {
    let out = Command::new(env!("CARGO"))
        .args([
            "build",
            "--package",
            "personafin-schema",
            "--target",
            "wasm32-unknown-unknown",
        ])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "schema does not build for wasm32: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn tracker_never_depends_on_tokio_or_axum() {
    for target in [None, Some("wasm32-unknown-unknown")] {
        assert_none_of(
            "personafin-tracker",
            target,
            &["tokio", "axum", "hyper", "mio", "rusqlite"],
        );
    }
}

#[test]
fn ingest_never_depends_on_browser_crates() {
    assert_none_of("ingest", None, &["web-sys", "js-sys", "wasm-bindgen"]);
}

#[test]
fn the_readme_has_exactly_the_two_setup_commands() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let commands: Vec<&str> = readme
        .lines()
        .filter(|l| l.trim_start().starts_with("cargo xtask "))
        .map(str::trim)
        .collect();
    assert_eq!(commands, ["cargo xtask demo", "cargo xtask test"]);
    let ci = std::fs::read_to_string(root().join(".ci/run")).unwrap();
    let steps: Vec<&str> = ci
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with("set "))
        .collect();
    assert_eq!(
        steps,
        ["cargo xtask test"],
        ".ci/run calls the README's test command and nothing else"
    );
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap()
}

#[test]
fn the_wrapper_and_the_wasm_agree_on_the_numbers_of_call() {
    let ts = read("js-wrapper/src/index.ts");
    let start = ts.find("const enum Call {").unwrap();
    let body = &ts[start..start + ts[start..].find('}').unwrap()];
    let snake = |camel: &str| {
        let mut out = String::new();
        for (i, c) in camel.chars().enumerate() {
            if c.is_ascii_uppercase() && i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        }
        out
    };
    let wrapper: Vec<String> = body
        .lines()
        .skip(1)
        .map(|l| l.trim().trim_end_matches(','))
        .filter(|l| !l.is_empty())
        .map(snake)
        .collect();
    let lib = read("tracker-wasm/src/lib.rs");
    let start = lib.find("pub fn call(").unwrap();
    let body = &lib[start..start + lib[start..].find("\n}\n").unwrap()];
    let wasm: Vec<String> = (0..wrapper.len())
        .map(|n| {
            let arm = body
                .lines()
                .find(|l| l.trim().starts_with(&format!("{n} =>")))
                .unwrap_or_else(|| panic!("call() has no arm {n}"));
            arm.split("=>")
                .nth(1)
                .unwrap()
                .trim()
                .trim_start_matches("return ")
                .to_owned()
        })
        .collect();
    assert!(wrapper.len() >= 7, "{wrapper:?}");
    for (n, (name, arm)) in wrapper.iter().zip(&wasm).enumerate() {
        assert!(
            arm.contains(&format!("{name}(")),
            "call({n}) is `{name}` in the wrapper but runs `{arm}` in the wasm"
        );
    }
}

/// The sections `docs/datasets.md` has (`## §1 …`, `### §4.1 …`).
fn datasets_sections() -> Vec<String> {
    read("docs/datasets.md")
        .lines()
        .filter(|l| l.starts_with('#'))
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with('§')))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_code_cites_sections_docs_datasets_has_and_nothing_outside_the_project() {
    let sections = datasets_sections();
    assert!(sections.len() >= 15, "{sections:?}");
    let mut cited = 0;
    for dir in ["ingest/src", "ingest/tests", "ingest/benches"] {
        for path in rust_files(&root().join(dir)) {
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                !text.contains("shared/") && !text.contains("SPEC.md"),
                "{} cites a document outside the project",
                path.display()
            );
            for (i, _) in text.match_indices("docs/datasets.md` §") {
                let rest = &text[i + "docs/datasets.md` ".len()..];
                // `§4.1–4.3` cites a range: its first section must exist.
                let section: String = rest
                    .chars()
                    .take_while(|c| *c == '§' || c.is_ascii_digit() || *c == '.')
                    .collect();
                let section = section.trim_end_matches('.');
                assert!(
                    sections.iter().any(|s| s == section),
                    "{} cites {section}, which docs/datasets.md does not have",
                    path.display()
                );
                cited += 1;
            }
        }
    }
    assert!(cited >= 8, "only {cited} citations found");
}
