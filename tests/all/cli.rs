//! The `llmos` binary: output formats and every exit code.

use std::process::{Command, Output};

use llmos_tests::{fixture_path, llmos_bin, repo, test_config};

fn llmos(args: &[&str]) -> Output {
    let cfg = test_config();
    Command::new(llmos_bin())
        .args(args)
        .env("LLMOS_COMPONENTS", &cfg.components_dir)
        .env("LLMOS_CACHE_DIR", &cfg.cache_dir)
        .env("LLMOS_SYSTEM_VOLUME", &cfg.system_volume)
        .env("LLMOS_DATA_DIR", &cfg.data_dir)
        .env_remove("LLMOS_CONFIG")
        .current_dir(repo())
        .output()
        .expect("spawn llmos")
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

fn path(rel: &str) -> String {
    fixture_path(rel).display().to_string()
}

#[test]
fn ok_run_exits_zero_with_the_documented_json_fields() {
    let out = llmos(&["run", &path("python/hello.py"), "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let v = json(&out);
    for field in [
        "status",
        "language",
        "stdout",
        "stderr",
        "value",
        "error",
        "fuel_consumed",
        "memory_peak_bytes",
        "duration_ms",
        "logs",
    ] {
        assert!(v.get(field).is_some(), "missing {field}: {v}");
    }
    assert_eq!(v["status"], "ok");
    assert_eq!(v["value"], "5.6");
    assert!(v["error"].is_null());
}

#[test]
fn human_output_shows_the_artifact_output_and_status() {
    let out = llmos(&["run", &path("js/hello.js")]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "primes: 2, 3, 5, 7, 11\n"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("✓ ok") && err.contains("=> 28"), "{err}");
}

#[test]
fn failing_artifacts_exit_one() {
    let out = llmos(&["run", &path("js/nested_error.js"), "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(v["status"], "error");
    assert_eq!(v["error"]["class"], "TypeError");
    assert_eq!(v["error"]["line"], 3);
    assert_eq!(v["error"]["kind"], "runtime");

    let out = llmos(&["run", &path("python/nested_error.py")]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ZeroDivisionError") && err.contains("return a / b"),
        "{err}"
    );

    let out = llmos(&[
        "run",
        &path("hostile/infinite_loop.py"),
        "--fuel",
        "10000000",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json(&out)["status"], "out_of_fuel");

    let out = llmos(&[
        "run",
        &path("hostile/infinite_loop.js"),
        "--fuel",
        "none",
        "--timeout",
        "200ms",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json(&out)["status"], "timeout");
    assert!(json(&out)["fuel_consumed"].is_null());

    let out = llmos(&[
        "run",
        &path("hostile/memory_bomb.py"),
        "--memory",
        "64MiB",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json(&out)["status"], "memory_limit");
}

#[test]
fn language_flag_overrides_the_extension() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("snippet.txt");
    std::fs::write(&f, "6 * 7").expect("write");
    let f = f.display().to_string();
    let out = llmos(&["run", &f, "--lang", "python", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json(&out)["value"], "42");
    // Without --lang the extension says nothing: a usage error.
    let out = llmos(&["run", &f]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn usage_and_host_errors_exit_two_with_one_line() {
    let cases: &[&[&str]] = &[
        &["run", "/no/such/file.js"],
        &["run", "README.md", "--lang", "cobol"],
        &["run", "README.md"],
        &["run", "tests/fixtures/js/hello.js", "--fuel", "lots"],
        &["run", "tests/fixtures/js/hello.js", "--memory", "12X"],
        &["run", "tests/fixtures/js/hello.js", "--timeout", "soon"],
        &["run", "tests/fixtures/js/hello.js", "--no-such-flag"],
        &["run"],
        &["frobnicate"],
    ];
    for args in cases {
        let out = llmos(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout.is_empty(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.trim().is_empty(), "{args:?}: no message");
        if args.len() > 1 && !args.contains(&"--no-such-flag") {
            assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
            assert!(err.starts_with("llmos: error:"), "{args:?}: {err}");
        }
    }
}

#[test]
fn a_missing_component_exits_two_naming_the_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(llmos_bin())
        .args(["run", &path("js/hello.js")])
        .env("LLMOS_COMPONENTS", dir.path())
        .env("LLMOS_CACHE_DIR", dir.path())
        .env("LLMOS_SYSTEM_VOLUME", test_config().system_volume)
        .output()
        .expect("spawn");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("make guests"));
}

#[test]
fn languages_are_listed() {
    let out = llmos(&["languages", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let v = json(&out);
    let names: Vec<_> = v
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|l| l["name"].as_str())
        .collect();
    // Every manifest of the system volume, each ready, with its version.
    let mut want: Vec<String> =
        std::fs::read_dir(llmos_tests::repo().join("volumes/system/languages"))
            .expect("languages dir")
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let p = e.path();
                let stem = p.file_stem()?.to_string_lossy().into_owned();
                (p.extension()? == "toml").then_some(stem)
            })
            .collect();
    want.sort();
    assert_eq!(names, want);
    for l in v.as_array().expect("array") {
        assert_eq!(l["status"], "ready", "{l}");
        assert!(l["version"].as_str().is_some_and(|v| !v.is_empty()), "{l}");
    }
}

#[test]
fn outputs_are_written_to_the_out_directory_and_named_in_json() {
    let out_dir = tempfile::tempdir().expect("tempdir");
    let data = tempfile::tempdir().expect("tempdir");
    let cfg = test_config();
    let out = Command::new(llmos_bin())
        .args([
            "run",
            &path("kernel/outputs.js"),
            "--json",
            "--out",
            &out_dir.path().display().to_string(),
        ])
        .env("LLMOS_COMPONENTS", &cfg.components_dir)
        .env("LLMOS_CACHE_DIR", &cfg.cache_dir)
        .env("LLMOS_SYSTEM_VOLUME", &cfg.system_volume)
        .env("LLMOS_DATA_DIR", data.path())
        .output()
        .expect("spawn llmos");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    let outputs = v["outputs"].as_array().expect("outputs");
    let kinds: Vec<&str> = outputs.iter().filter_map(|o| o["kind"].as_str()).collect();
    assert_eq!(kinds, ["plot", "canvas", "scene", "circuit", "html"]);
    let mut files = 0;
    for o in outputs {
        for item in o["items"].as_array().expect("items") {
            let mime = item["mime"].as_str().unwrap_or_default();
            match item["file"].as_str() {
                Some(f) => {
                    files += 1;
                    let meta = std::fs::metadata(f).unwrap_or_else(|e| panic!("{f}: {e}"));
                    assert_eq!(meta.len(), item["bytes"].as_u64().unwrap_or(0), "{f}");
                    assert!(f.starts_with(&out_dir.path().display().to_string()));
                }
                None => assert_eq!(mime, "text/plain", "{item}"),
            }
        }
    }
    assert_eq!(files, 2 + 2 + 1 + 1 + 1);

    // Human output lists each output with its files.
    let out = Command::new(llmos_bin())
        .args([
            "run",
            &path("kernel/outputs.js"),
            "--out",
            &out_dir.path().display().to_string(),
        ])
        .env("LLMOS_COMPONENTS", &cfg.components_dir)
        .env("LLMOS_CACHE_DIR", &cfg.cache_dir)
        .env("LLMOS_SYSTEM_VOLUME", &cfg.system_volume)
        .env("LLMOS_DATA_DIR", data.path())
        .output()
        .expect("spawn llmos");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("[output 0] line chart"), "{err}");
    assert!(err.contains("0-plot.png"), "{err}");
}

#[test]
fn api_prints_each_languages_reference() {
    let out = llmos(&["api", "javascript"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    for sig in [
        "## kernel.storage.get(key, defaultValue = null) -> any",
        "## kernel.viz.plot(data, options = {}) -> number",
        "## kernel.dom.createElement(tag, props = {}) -> Element",
        "## kernel.quantum.circuit(qubits) -> Circuit",
        "## kernel.log.info(message, fields?)",
    ] {
        assert!(text.contains(sig), "missing {sig}:\n{text}");
    }
    let out = llmos(&["api", "py", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let v = json(&out);
    let sigs: Vec<&str> = v
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|e| e["signature"].as_str())
        .collect();
    for want in [
        "llmos.storage.get(key, default=None) -> object",
        "llmos.viz.canvas(width, height) -> Canvas",
        "llmos.dom.create_element(tag, text=None, children=(), **attributes) -> Element",
        "llmos.quantum.Circuit.simulate(shots=0, seed=None) -> Result",
    ] {
        assert!(sigs.contains(&want), "missing {want}: {sigs:?}");
    }
    assert_eq!(llmos(&["api", "cobol"]).status.code(), Some(2));
}

#[test]
fn an_unwritable_output_directory_still_reports_the_outcome() {
    let dir = tempfile::tempdir().expect("tempdir");
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "x").expect("write");
    let out = llmos(&[
        "run",
        &path("kernel/outputs.js"),
        "--json",
        "--out",
        &blocker.join("sub").display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let v = json(&out);
    assert_eq!(v["status"], "ok");
    assert_eq!(v["outputs"].as_array().map(Vec::len), Some(5));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot write the outputs"));
}

#[test]
fn source_on_stdin_runs_untrusted() {
    use std::io::Write;
    let cfg = test_config();
    let mut child = Command::new(llmos_bin())
        .args(["run", "-", "--lang", "python", "--json", "--fuel", "none"])
        .env("LLMOS_COMPONENTS", &cfg.components_dir)
        .env("LLMOS_CACHE_DIR", &cfg.cache_dir)
        .env("LLMOS_SYSTEM_VOLUME", &cfg.system_volume)
        .env("LLMOS_DATA_DIR", &cfg.data_dir)
        .env_remove("LLMOS_CONFIG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn llmos");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"print('hi')\n6 * 7\n")
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(0));
    let v = json(&out);
    assert_eq!(
        (v["value"].as_str(), v["tier"].as_str()),
        (Some("42"), Some("untrusted"))
    );
    // Untrusted: `--fuel none` cannot lift the fuel limit.
    assert!(v["fuel_consumed"].is_u64(), "{v}");
    let out = llmos(&["run", "-"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--lang"));
}

#[test]
fn limits_come_from_flags_then_environment_then_config() {
    let cfg = test_config();
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("llmos.toml");
    std::fs::write(&conf, "[limits]\nfuel = 1000\n").expect("write");
    let run = |env_fuel: Option<&str>, flag: Option<&str>| {
        let mut c = Command::new(llmos_bin());
        c.args(["run", &path("js/hello.js"), "--json", "--config"])
            .arg(&conf)
            .env("LLMOS_COMPONENTS", &cfg.components_dir)
            .env("LLMOS_CACHE_DIR", &cfg.cache_dir)
            .env("LLMOS_SYSTEM_VOLUME", &cfg.system_volume)
            .env("LLMOS_DATA_DIR", &cfg.data_dir)
            .env_remove("LLMOS_FUEL");
        if let Some(f) = env_fuel {
            c.env("LLMOS_FUEL", f);
        }
        if let Some(f) = flag {
            c.args(["--fuel", f]);
        }
        c.output().expect("spawn llmos")
    };
    let status = |o: Output| json(&o)["status"].clone();
    // The config file's 1000 is too little for hello.js; the environment and
    // then the flag win over it.
    assert_eq!(status(run(None, None)), "out_of_fuel");
    assert_eq!(status(run(Some("1000000000"), None)), "ok");
    assert_eq!(status(run(Some("1000000000"), Some("1000"))), "out_of_fuel");
    let bad = run(Some("lots"), None);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("environment"));
}
