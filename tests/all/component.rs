//! Component artifacts (`llmos run app.wasm`): Rust commands built for
//! wasm32-wasip2 by the Makefile (tests/fixtures/component), run under the
//! same limits, outcomes and no-capability WASI as every artifact; files
//! that are not runnable components are refused with a clear error.

use std::path::PathBuf;

use llmos_tests::{measure_llmos, repo, scratch_data_dir};

fn fixture(name: &str) -> String {
    let p: PathBuf = repo()
        .join("target/test-components")
        .join(format!("{name}.wasm"));
    assert!(p.exists(), "{} is missing: run `make test`", p.display());
    p.display().to_string()
}

fn run(name: &str, extra: &[&str], data: &std::path::Path) -> (Option<i32>, serde_json::Value) {
    let f = fixture(name);
    let mut args = vec!["run", f.as_str(), "--json"];
    args.extend_from_slice(extra);
    let m = measure_llmos(&args, data);
    (m.code, m.json())
}

#[test]
fn a_component_runs_with_its_streams_exit_code_traps_and_limits() {
    let d = scratch_data_dir("component-basics");
    let (code, v) = run("hello", &[], &d);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["status"], "ok");
    assert_eq!(v["language"], "component");
    assert_eq!(v["stdout"], "hello from a component\n");
    assert_eq!(v["stderr"], "a line on stderr\n");
    assert!(v["fuel_consumed"].as_u64().is_some_and(|f| f > 0));

    let (code, v) = run("exit3", &[], &d);
    assert_eq!(code, Some(1));
    assert_eq!(v["status"], "error");
    assert_eq!(v["error"]["kind"], "exit");
    assert_eq!(v["stdout"], "about to exit\n");

    let (code, v) = run("trap", &[], &d);
    assert_eq!(code, Some(1));
    assert_eq!(v["status"], "trap", "{v}");
    assert!(
        v["stderr"]
            .as_str()
            .is_some_and(|s| s.contains("index out of bounds"))
    );

    let (_, v) = run("spin", &["--fuel", "50000000"], &d);
    assert_eq!(v["status"], "out_of_fuel");
    assert_eq!(v["fuel_consumed"], 50_000_000);
    let (_, v) = run("spin", &["--fuel", "none", "--timeout", "300ms"], &d);
    assert_eq!(v["status"], "timeout");
    let (_, v) = run("hog", &["--memory", "32MiB"], &d);
    assert_eq!(v["status"], "memory_limit", "{v}");
    assert!(
        v["memory_peak_bytes"]
            .as_u64()
            .is_some_and(|m| m <= 32 << 20)
    );

    // Seeded runs of a component are deterministic too.
    let (_, a) = run("hello", &["--seed", "3"], &d);
    let (_, b) = run("hello", &["--seed", "3"], &d);
    assert_eq!(a["fuel_consumed"], b["fuel_consumed"]);
}

#[test]
fn a_component_uses_the_kernel_with_typed_errors() {
    let d = scratch_data_dir("component-kernel");
    let (code, v) = run("kernel", &[], &d);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(
        v["stdout"],
        "typed error: ErrorCode::InvalidKey\nvisits 1\n"
    );
    assert_eq!(v["logs"][0]["message"], "visit counted");
    // Storage persists across runs, in the artifact's own namespace.
    let (_, v) = run("kernel", &[], &d);
    assert!(
        v["stdout"]
            .as_str()
            .is_some_and(|s| s.ends_with("visits 2\n")),
        "{v}"
    );
}

#[test]
fn what_is_not_a_runnable_component_is_refused_before_it_runs() {
    let d = scratch_data_dir("component-refused");
    std::fs::create_dir_all(&d).expect("dir");
    let refused = |path: &str, why: &str| {
        let m = measure_llmos(&["run", path], &d);
        let err = String::from_utf8_lossy(&m.stderr).to_string();
        assert_eq!(m.code, Some(2), "{path}: {err}");
        assert!(err.contains(why), "{path}: {err}");
        assert!(m.stdout.is_empty());
    };
    refused(
        &fixture("alien"),
        "component imports instance `fixture:alien/sensors`",
    );
    let write = |name: &str, bytes: &[u8]| {
        let p = d.join(name);
        std::fs::write(&p, bytes).expect("write");
        p.display().to_string()
    };
    refused(
        &write("text.wasm", b"print('not wasm')\n"),
        "not a WebAssembly file",
    );
    refused(&write("empty.wasm", b""), "not a WebAssembly file");
    refused(
        &write("core.wasm", b"\0asm\x01\0\0\0"),
        "a core WebAssembly module, not a component",
    );
    let whole = std::fs::read(fixture("hello")).expect("read");
    refused(
        &write("cut.wasm", &whole[..whole.len() / 3]),
        "cannot compile component",
    );
    // The interpreter's world is not a command.
    let lang = repo().join("target/components/quickjs.wasm");
    refused(
        &lang.display().to_string(),
        "does not export `wasi:cli/run`",
    );
}
