//! Shared helpers for the llmos integration tests and benchmarks.
//!
//! Tests run the real guest components built by `make guests`; when they are
//! missing, the failure says so. All tests share one precompiled-component
//! cache under `target/test-cache`, so the Python component is compiled once.

pub mod fake_llm;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use llmos::{Limits, Outcome, RunRequest, Runtime, RuntimeConfig};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Path of a fixture under `tests/fixtures`.
pub fn fixture_path(rel: &str) -> PathBuf {
    repo().join("tests").join("fixtures").join(rel)
}

/// The text of a fixture under `tests/fixtures`.
pub fn fixture(rel: &str) -> String {
    let p = fixture_path(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("fixture {}: {e}", p.display()))
}

/// The runtime configuration used by tests: the built components, the source
/// system volume, and a cache shared by all tests.
pub fn test_config() -> RuntimeConfig {
    RuntimeConfig {
        components_dir: repo().join("target").join("components"),
        system_volume: repo().join("volumes").join("system"),
        cache_dir: repo().join("target").join("test-cache"),
        data_dir: test_data_dir(),
    }
}

/// A data directory (storage database, outputs) private to this test
/// process, emptied when first used.
pub fn test_data_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = repo()
            .join("target")
            .join("test-data")
            .join(format!("run-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    })
    .clone()
}

/// One runtime shared by every test in the process.
pub fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| Runtime::new(test_config()).unwrap_or_else(|e| panic!("runtime: {e}")))
}

/// Block on a future with a fresh single-threaded tokio runtime.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("tokio: {e}"))
        .block_on(f)
}

/// Run `source` in `language` as the artifact `id` (its storage namespace).
pub fn run_as(language: &str, id: &str, source: &str) -> Outcome {
    run_with(language, source, |r| r.artifact_id = id.to_string())
}

/// Run `source` in `language` with default limits.
pub fn run(language: &str, source: &str) -> Outcome {
    run_with(language, source, |_| {})
}

/// Run `source` in `language` after adjusting the request.
pub fn run_with(language: &str, source: &str, adjust: impl FnOnce(&mut RunRequest)) -> Outcome {
    let mut req = RunRequest::new(language, source);
    adjust(&mut req);
    block_on(runtime().run(&req)).unwrap_or_else(|e| panic!("host error: {e}"))
}

/// Run a fixture file, naming it by its file name (as `llmos run` does).
pub fn run_fixture(language: &str, rel: &str, limits: Limits) -> Outcome {
    let name = Path::new(rel)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    run_with(language, &fixture(rel), |r| {
        r.filename = name;
        r.limits = limits;
    })
}

/// The `llmos` binary built next to the test executable.
pub fn llmos_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
    // target/<profile>/deps/all-<hash> → target/<profile>/llmos
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("llmos"))
        .unwrap_or_else(|| PathBuf::from("llmos"));
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --release -p llmos` (make test does)",
        bin.display()
    );
    bin
}
