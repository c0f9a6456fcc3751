//! Boot: stages and events, verified volumes, config files, addressing and
//! trust tiers, through the `llmos` binary.

use std::path::Path;
use std::process::{Command, Output};

use llmos_tests::{llmos_bin, repo, test_config};

fn llmos(envs: &[(&str, &Path)], args: &[&str]) -> Output {
    let cfg = test_config();
    let mut c = Command::new(llmos_bin());
    c.env("LLMOS_COMPONENTS", &cfg.components_dir)
        .env("LLMOS_CACHE_DIR", &cfg.cache_dir)
        .env("LLMOS_SYSTEM_VOLUME", &cfg.system_volume)
        .env("LLMOS_DATA_DIR", &cfg.data_dir)
        .env_remove("LLMOS_CONFIG")
        .current_dir(repo());
    for (k, v) in envs {
        c.env(k, v);
    }
    c.args(args).output().expect("spawn llmos")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&o.stdout)))
}

/// A copy of the system volume to tamper with.
fn volume_copy() -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("tempdir");
    let src = test_config().system_volume;
    let status = Command::new("cp")
        .args([
            "-r",
            &format!("{}/.", src.display()),
            &d.path().display().to_string(),
        ])
        .status()
        .expect("cp");
    assert!(status.success());
    d
}

#[test]
fn boot_reports_every_stage_in_order() {
    let o = llmos(&[], &["boot", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON event per line"))
        .collect();
    // Progress events appear only while a component compiles (cold cache).
    let events: Vec<serde_json::Value> = events
        .into_iter()
        .filter(|e| e["event"] != "progress")
        .collect();
    let seq: Vec<String> = events
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["event"].as_str().unwrap_or(""),
                e["stage"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        &seq[..6],
        [
            "started system",
            "done system",
            "started volumes",
            "done volumes",
            "started runtime",
            "done runtime"
        ]
    );
    // Language and stdlib checks run concurrently: both start before either ends.
    assert_eq!(&seq[6..8], ["started languages", "started stdlib"]);
    assert!(
        seq[8..10].contains(&"done languages".to_string())
            && seq[8..10].contains(&"done stdlib".to_string())
    );
    assert_eq!(seq.last().map(String::as_str), Some("done ready"));
    let runtime = events
        .iter()
        .find(|e| e["event"] == "done" && e["stage"] == "runtime")
        .expect("runtime");
    let detail = runtime["detail"].as_str().unwrap_or("");
    assert!(
        detail.contains("javascript") && detail.contains("python"),
        "{detail}"
    );

    let o = llmos(&[], &["boot"]);
    let err = stderr(&o);
    assert!(
        err.contains("wasmtime 48")
            && err.contains("mounting volumes")
            && err.contains("system ready in"),
        "{err}"
    );
}

/// The languages' check details of a `boot --json`, by stage.
fn check_details(o: &Output) -> (String, String) {
    assert_eq!(o.status.code(), Some(0), "{}", stderr(o));
    let mut d = (String::new(), String::new());
    for line in String::from_utf8_lossy(&o.stdout).lines() {
        let e: serde_json::Value = serde_json::from_str(line).expect("JSON event");
        let detail = e["detail"].as_str().unwrap_or("").to_string();
        match (e["event"].as_str(), e["stage"].as_str()) {
            (Some("done"), Some("languages")) => d.0 = detail,
            (Some("done"), Some("stdlib")) => d.1 = detail,
            _ => {}
        }
    }
    d
}

#[test]
fn passed_checks_are_not_rerun_until_something_they_depend_on_changes() {
    // A cache of our own (hard links to the shared entries: nothing to
    // compile), so no other test's boot replaces the record meanwhile.
    // (Made next to the shared cache, so the links stay on one filesystem;
    // copied where a link cannot be made.)
    let shared = test_config().cache_dir;
    let cache = tempfile::tempdir_in(shared.parent().expect("cache parent")).expect("tempdir");
    for e in std::fs::read_dir(&shared).expect("cache").flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".cwasm") || name.ends_with(".sum") || name.ends_with(".stamp") {
            let to = cache.path().join(&name);
            if std::fs::hard_link(e.path(), &to).is_err() {
                std::fs::copy(e.path(), &to).expect("copy");
            }
        }
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(cache.path(), std::fs::Permissions::from_mode(0o700)).expect("0700");
    let vol = volume_copy();
    let envs = [
        ("LLMOS_CACHE_DIR", cache.path()),
        ("LLMOS_SYSTEM_VOLUME", vol.path()),
    ];
    let unchanged = "unchanged since it passed";

    let (langs, stdlib) = check_details(&llmos(&envs, &["boot", "--json", "--recheck"]));
    assert!(
        !langs.contains(unchanged) && !stdlib.contains(unchanged),
        "{langs} | {stdlib}"
    );
    let (langs, stdlib) = check_details(&llmos(&envs, &["boot", "--json"]));
    for lang in ["javascript", "lua", "python"] {
        for d in [&langs, &stdlib] {
            assert!(d.contains(&format!("{lang} ({unchanged})")), "{d}");
        }
    }
    // `--recheck` runs them all again.
    let (langs, _) = check_details(&llmos(&envs, &["boot", "--json", "--recheck"]));
    assert!(!langs.contains(unchanged), "{langs}");

    // A changed check (with the volume's manifest regenerated, as `make`
    // does) runs again.
    let toml = vol.path().join("languages/python.toml");
    let text = std::fs::read_to_string(&toml).expect("python.toml");
    let changed = text.replace(
        "sys.version_info[0] + 1",
        "sys.version_info[0] + 1  # changed",
    );
    assert_ne!(text, changed, "the python check's source moved");
    std::fs::write(&toml, changed).expect("write");
    let manifest = llmos::volume::manifest(vol.path()).expect("manifest");
    std::fs::write(vol.path().join("MANIFEST.sha256"), manifest).expect("manifest");
    // The whole volume is part of every key: any change reruns every check.
    let (langs, _) = check_details(&llmos(&envs, &["boot", "--json"]));
    assert!(
        langs.contains("python") && !langs.contains(unchanged),
        "{langs}"
    );
    let (langs, _) = check_details(&llmos(&envs, &["boot", "--json"]));
    assert!(langs.contains(&format!("python ({unchanged})")), "{langs}");

    // A failing check is reported and not recorded: the next boot runs it.
    let text = std::fs::read_to_string(&toml).expect("python.toml");
    std::fs::write(&toml, text.replace("value = \"4\"", "value = \"5\"")).expect("write");
    let manifest = llmos::volume::manifest(vol.path()).expect("manifest");
    std::fs::write(vol.path().join("MANIFEST.sha256"), manifest).expect("manifest");
    for _ in 0..2 {
        let o = llmos(&envs, &["boot"]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(
            stderr(&o).contains("returned Some(\"4\") instead of 5"),
            "{}",
            stderr(&o)
        );
    }
}

#[test]
fn a_tampered_system_volume_stops_boot_naming_the_file() {
    let vol = volume_copy();
    std::fs::write(vol.path().join("kernel/stdlib.js"), "// evil\n").expect("write");
    for args in [&["boot"][..], &["run", "tests/fixtures/js/hello.js"][..]] {
        let o = llmos(&[("LLMOS_SYSTEM_VOLUME", vol.path())], args);
        assert_eq!(o.status.code(), Some(2));
        let err = stderr(&o);
        assert!(
            err.contains("kernel/stdlib.js") && err.contains("SHA-256"),
            "{err}"
        );
    }
    let vol = volume_copy();
    std::fs::write(vol.path().join("kernel/planted.py"), "x = 1\n").expect("write");
    let o = llmos(&[("LLMOS_SYSTEM_VOLUME", vol.path())], &["boot"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("planted.py"), "{}", stderr(&o));
}

#[test]
fn a_missing_component_stops_boot_with_the_fix() {
    let empty = tempfile::tempdir().expect("tempdir");
    let o = llmos(&[("LLMOS_COMPONENTS", empty.path())], &["boot"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    // Whichever language loads first names its missing component.
    assert!(
        ["quickjs.wasm", "python.wasm", "lua.wasm"]
            .iter()
            .any(|c| err.contains(&format!("{c}` is missing"))),
        "{err}"
    );
    assert!(err.contains("make guests"), "{err}");
}

#[test]
fn config_file_errors_name_the_key_and_limits_apply() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("llmos.toml");
    std::fs::write(&bad, "[limits]\nfuel = 1000\nmemroy = \"1MiB\"\n").expect("write");
    let o = llmos(&[], &["--config", &bad.display().to_string(), "boot"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("memroy") && err.contains("llmos.toml"),
        "{err}"
    );
    // Through LLMOS_CONFIG too.
    let o = llmos(&[("LLMOS_CONFIG", &bad)], &["boot"]);
    assert!(stderr(&o).contains("memroy"));

    let good = dir.path().join("good.toml");
    std::fs::write(&good, "[limits]\nfuel = 1000000\n").expect("write");
    let o = llmos(
        &[("LLMOS_CONFIG", &good)],
        &["run", "tests/fixtures/demo/3-runaway.js", "--json"],
    );
    let v = json(&o);
    assert_eq!(v["status"], "out_of_fuel");
    assert_eq!(v["fuel_consumed"], 1_000_000, "the config's fuel applies");
    // A flag wins over the file.
    let o = llmos(
        &[("LLMOS_CONFIG", &good)],
        &[
            "run",
            "tests/fixtures/demo/3-runaway.js",
            "--json",
            "--fuel",
            "2000000",
        ],
    );
    assert_eq!(json(&o)["fuel_consumed"], 2_000_000);
}

#[test]
fn tiers_follow_the_artifacts_source() {
    // A verified system-volume artifact is trusted and runs un-metered.
    let o = llmos(&[], &["run", "system:/bin/selftest.js", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(
        (v["tier"].as_str(), v["status"].as_str()),
        (Some("trusted"), Some("ok"))
    );
    assert!(
        v["fuel_consumed"].is_null(),
        "trusted runs are not metered: {v}"
    );
    assert!(
        v["stdout"].as_str().is_some_and(|s| !s.contains("FAIL")),
        "{v}"
    );
    // The same path without the prefix is the same file: still trusted.
    let path = test_config().system_volume.join("bin/selftest.py");
    let o = llmos(&[], &["run", &path.display().to_string(), "--json"]);
    assert_eq!(json(&o)["tier"], "trusted");

    // A copy outside the volume is a user file: sandboxed, metered.
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = dir.path().join("selftest.js");
    std::fs::copy(test_config().system_volume.join("bin/selftest.js"), &copy).expect("copy");
    let v = json(&llmos(&[], &["run", &copy.display().to_string(), "--json"]));
    assert_eq!(v["tier"], "sandboxed");
    assert!(v["fuel_consumed"].as_u64().is_some_and(|f| f > 0));

    // --untrusted: metered even when asked for no fuel limit.
    let v = json(&llmos(
        &[],
        &[
            "run",
            "system:/bin/selftest.js",
            "--untrusted",
            "--fuel",
            "none",
            "--json",
        ],
    ));
    assert_eq!(v["tier"], "untrusted");
    assert!(v["fuel_consumed"].as_u64().is_some_and(|f| f > 0), "{v}");

    // user:/ paths live in the user volume.
    let data = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(data.path().join("artifacts/demo")).expect("mkdir");
    std::fs::write(
        data.path().join("artifacts/demo/hi.py"),
        "print('hi from user')\n",
    )
    .expect("write");
    let o = llmos(
        &[("LLMOS_DATA_DIR", data.path())],
        &["run", "user:/demo/hi.py", "--json"],
    );
    let v = json(&o);
    assert_eq!(
        (v["tier"].as_str(), v["stdout"].as_str()),
        (Some("sandboxed"), Some("hi from user\n"))
    );
    // Volume paths cannot escape their volume, and system: must be verified.
    assert_eq!(llmos(&[], &["run", "user:/../x.py"]).status.code(), Some(2));
    assert_eq!(
        llmos(&[], &["run", "system:/bin/missing.js"]).status.code(),
        Some(2)
    );
}

#[test]
fn an_unusable_data_directory_stops_boot_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x").expect("write");
    let o = llmos(&[("LLMOS_DATA_DIR", &file)], &["boot"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("not-a-dir") && err.contains("LLMOS_DATA_DIR"),
        "{err}"
    );
}

/// Boot is an `async fn` with no internal `block_on`: it runs inside a
/// caller's current-thread runtime (where a nested `block_on` would panic),
/// with every check, and the runtime stays responsive while it works (the
/// checks are rerun, not taken from an earlier boot's record, so the boot
/// does work of its own for the ticker to interleave with).
#[tokio::test(flavor = "current_thread")]
async fn boots_inside_an_existing_tokio_runtime() {
    let cfg = llmos_tests::test_config();
    let ticks = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let t = ticks.clone();
    let ticker = tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            t.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    });
    let events = std::sync::Mutex::new(Vec::new());
    let llmos = llmos::Llmos::boot(
        &llmos::BootOptions {
            checks: true,
            recheck: true,
            components_dir: Some(cfg.components_dir.clone()),
            system_volume: Some(cfg.system_volume.clone()),
            cache_dir: Some(cfg.cache_dir.clone()),
            data_dir: Some(cfg.data_dir.join("tokio-boot")),
            ..Default::default()
        },
        &|e| events.lock().expect("events").push(format!("{e:?}")),
    )
    .await
    .expect("boot");
    ticker.abort();
    assert!(llmos.languages().iter().count() >= 2);
    let events = events.into_inner().expect("events");
    assert!(events.iter().any(|e| e.contains("Ready")), "{events:?}");
    // The checks ran languages on this very runtime; other tasks kept running.
    assert!(ticks.load(std::sync::atomic::Ordering::Relaxed) > 0);
}
