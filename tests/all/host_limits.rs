//! Host work done inside kernel calls is bounded by the run's own limits
//! (issue 9): hostile artifacts (`tests/fixtures/hostile/host_*`) run
//! through the real binary, measured from outside (wall time, CPU and peak
//! RSS of the whole `llmos` process, from `wait4`).
//!
//! Every run must end within its timeout plus [`SLACK`] (plus the process's
//! own start and exit, measured first with a trivial artifact), spend no
//! more CPU than it had wall time to (plus a margin for start-up), keep the
//! process under [`MAX_RSS`], and keep its outputs within the run's bounds.

use std::time::Duration;

use llmos_tests::{Measured, fixture_path, measure_llmos, scratch_data_dir};

const MIB: u64 = 1 << 20;
/// Peak resident set of the whole `llmos` process (Wasmtime, the guest's
/// 128 MiB linear memory at most, the 64 MiB host-memory budget, code).
const MAX_RSS: u64 = 400 * MIB;
/// How far past its timeout a run may end.
const SLACK: Duration = Duration::from_millis(250);
/// Total bytes of a run's outputs (`Quotas::max_outputs_bytes`).
const MAX_OUTPUT_BYTES: u64 = 64 * MIB;
/// Fuel so large that only the deadline can end the run.
const HUGE_FUEL: &str = "1000000000000";

struct Run {
    m: Measured,
    json: serde_json::Value,
}

impl Run {
    fn status(&self) -> &str {
        self.json["status"].as_str().unwrap_or("?")
    }

    fn output_bytes(&self) -> u64 {
        self.json["outputs"]
            .as_array()
            .map(|outs| {
                outs.iter()
                    .flat_map(|o| o["items"].as_array().cloned().unwrap_or_default())
                    .map(|i| i["bytes"].as_u64().unwrap_or(0))
                    .sum()
            })
            .unwrap_or(0)
    }
}

/// Wall time of a trivial run in `lang` ("js" or "py"), with the compiled
/// component already cached: the process's own start-up and exit.
fn startup(ext: &str) -> Duration {
    let dir = scratch_data_dir(&format!("host_limits_startup_{ext}"));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let file = dir.join(format!("trivial.{ext}"));
    std::fs::write(&file, "1\n").unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let f = file.to_string_lossy().into_owned();
    // The first run may compile the component into the cache.
    let _ = measure_llmos(&["run", &f, "--json"], &dir);
    let m = measure_llmos(&["run", &f, "--json"], &dir);
    assert_eq!(m.code, Some(0), "{}", String::from_utf8_lossy(&m.stdout));
    m.wall
}

/// Run `tests/fixtures/hostile/<name>` with `args` after `run <file> --json`.
fn hostile(name: &str, args: &[&str]) -> Run {
    let ext = name.rsplit('.').next().unwrap_or("js");
    let start = startup(ext);
    let path = fixture_path(&format!("hostile/{name}"));
    let p = path.to_string_lossy().into_owned();
    let data = scratch_data_dir(&format!("host_limits_{name}"));
    let mut all = vec!["run", p.as_str(), "--json"];
    all.extend_from_slice(args);
    let m = measure_llmos(&all, &data);
    let json: serde_json::Value = serde_json::from_slice(&m.stdout).unwrap_or_else(|e| {
        panic!(
            "{name}: not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&m.stdout),
            String::from_utf8_lossy(&m.stderr)
        )
    });
    let run = Run { m, json };
    eprintln!(
        "{name} {args:?}: status {} value {} wall {:?} (start-up {:?}) cpu {:?} peak rss {} MiB, outputs {} bytes",
        run.status(),
        run.json["value"],
        run.m.wall,
        start,
        run.m.cpu,
        run.m.max_rss_bytes / MIB,
        run.output_bytes()
    );
    assert!(
        run.m.max_rss_bytes < MAX_RSS,
        "{name}: peak RSS {} MiB",
        run.m.max_rss_bytes / MIB
    );
    assert!(
        run.output_bytes() <= MAX_OUTPUT_BYTES,
        "{name}: outputs {} bytes",
        run.output_bytes()
    );
    // Within its timeout (when it has one on the command line).
    if let Some(t) = args
        .iter()
        .position(|a| *a == "--timeout")
        .and_then(|i| args.get(i + 1))
    {
        let t = llmos::limits::parse_duration(t).unwrap_or_else(|e| panic!("{t}: {e}"));
        let bound = t + SLACK + start;
        assert!(
            run.m.wall <= bound,
            "{name}: ended after {:?}, past its timeout {t:?} + {SLACK:?} + start-up {start:?}",
            run.m.wall
        );
        // One thread runs the guest and its host calls; the epoch ticker
        // and start-up add a little.
        assert!(
            run.m.cpu <= bound + Duration::from_millis(500),
            "{name}: {:?} of CPU in a {t:?} run",
            run.m.cpu
        );
    }
    run
}

fn assert_status(r: &Run, allowed: &[&str]) {
    assert!(
        allowed.contains(&r.status()),
        "status {} (expected one of {allowed:?}): {}",
        r.status(),
        r.json
    );
}

// ---------------------------------------------------------------- time

#[test]
fn canvas_flood_ends_at_its_timeout_js() {
    let r = hostile(
        "host_canvas_flood.js",
        &["--timeout", "2s", "--fuel", HUGE_FUEL],
    );
    assert_status(&r, &["timeout"]);
}

#[test]
fn canvas_flood_ends_at_its_timeout_py() {
    let r = hostile(
        "host_canvas_flood.py",
        &["--timeout", "2s", "--fuel", HUGE_FUEL],
    );
    assert_status(&r, &["timeout"]);
}

#[test]
fn canvas_flood_runs_out_of_default_fuel() {
    // Each show pays ~8e9 fuel for its rasterizing: the default 1e10 buys
    // about one, not 64 a second.
    let r = hostile("host_canvas_flood.js", &["--timeout", "2s"]);
    assert_status(&r, &["out_of_fuel", "timeout"]);
}

#[test]
fn plot_flood_ends_at_its_timeout_js() {
    let r = hostile(
        "host_plot_flood.js",
        &["--timeout", "2s", "--fuel", HUGE_FUEL],
    );
    assert_status(&r, &["timeout"]);
}

#[test]
fn plot_flood_is_bounded_with_default_fuel_py() {
    let r = hostile("host_plot_flood.py", &["--timeout", "2s"]);
    assert_status(&r, &["out_of_fuel", "timeout"]);
}

#[test]
fn quantum_flood_ends_at_its_timeout_js() {
    let r = hostile(
        "host_quantum_flood.js",
        &["--timeout", "2s", "--fuel", HUGE_FUEL],
    );
    assert_status(&r, &["timeout"]);
}

#[test]
fn quantum_flood_is_refused_before_it_runs_py() {
    // 10k gates on 16 qubits plus 1e6 shots cost more than the default
    // fuel: refused before any amplitude is touched.
    let r = hostile("host_quantum_flood.py", &["--timeout", "2s"]);
    assert_status(&r, &["out_of_fuel"]);
    assert!(r.m.wall < Duration::from_millis(1500), "{:?}", r.m.wall);
}

#[test]
fn dom_flood_ends_at_its_timeout_and_keeps_a_safe_document_js() {
    let r = hostile(
        "host_dom_flood.js",
        &["--timeout", "2s", "--fuel", HUGE_FUEL],
    );
    assert_status(&r, &["timeout"]);
    let html = r.json["outputs"]
        .as_array()
        .and_then(|o| o.iter().find(|o| o["kind"] == "html"))
        .and_then(|o| o["items"].as_array())
        .and_then(|items| items.iter().find(|i| i["mime"] == "text/html"))
        .and_then(|i| i["file"].as_str())
        .map(|f| std::fs::read_to_string(f).unwrap_or_else(|e| panic!("{f}: {e}")))
        .unwrap_or_else(|| panic!("no html output: {}", r.json));
    assert!(html.starts_with("<!doctype html>\n"), "{}", &html[..200]);
    assert!(html.contains("<meta charset=\"utf-8\">"));
    assert!(html.contains("content=\"default-src 'none'; img-src data:;"));
    assert!(
        html.contains("&quot;q&quot; &#39;a&#39; <"),
        "quotes escaped in text"
    );
    assert!(!html.contains('\u{1}'), "control characters removed");
}

#[test]
fn dom_flood_is_bounded_with_default_fuel_py() {
    let r = hostile("host_dom_flood.py", &["--timeout", "2s"]);
    assert_status(&r, &["out_of_fuel", "timeout"]);
}

#[test]
fn storage_flood_is_bounded_py() {
    let r = hostile("host_storage_flood.py", &["--timeout", "2s"]);
    assert_status(&r, &["out_of_fuel", "timeout"]);
}

#[test]
fn storage_flood_ends_at_its_timeout_js() {
    let r = hostile(
        "host_storage_flood.js",
        &["--timeout", "2s", "--fuel", HUGE_FUEL],
    );
    assert_status(&r, &["timeout"]);
}

// ---------------------------------------------------------------- fuel

#[test]
fn small_fuel_cannot_buy_host_rasterizing_js() {
    let r = hostile(
        "host_small_fuel.js",
        &["--timeout", "2s", "--fuel", "50000000"],
    );
    assert_status(&r, &["out_of_fuel"]);
    assert!(r.m.wall < Duration::from_millis(1000), "{:?}", r.m.wall);
    assert_eq!(r.output_bytes(), 0);
}

#[test]
fn small_fuel_cannot_buy_host_rasterizing_py() {
    let r = hostile(
        "host_small_fuel.py",
        &["--timeout", "2s", "--fuel", "50000000"],
    );
    assert_status(&r, &["out_of_fuel"]);
    assert!(r.m.wall < Duration::from_millis(1500), "{:?}", r.m.wall);
}

// ---------------------------------------------------------------- memory

#[test]
fn canvas_bytes_are_refused_past_the_host_memory_budget_js() {
    let r = hostile(
        "host_canvas_memory.js",
        &["--timeout", "60s", "--fuel", HUGE_FUEL],
    );
    assert_status(&r, &["ok"]);
    let v = r.json["value"].as_str().unwrap_or_default();
    assert!(
        v.starts_with("'too-large after ") && v.ends_with("plot: too-large'"),
        "{v}"
    );
}

#[test]
fn canvas_bytes_are_refused_past_the_host_memory_budget_py() {
    let r = hostile(
        "host_canvas_memory.py",
        &["--timeout", "60s", "--fuel", HUGE_FUEL],
    );
    assert_status(&r, &["ok"]);
    let v = r.json["value"].as_str().unwrap_or_default();
    assert!(v.starts_with("'too-large after "), "{v}");
}

#[test]
fn kept_scenes_are_refused_past_the_host_memory_budget_py() {
    let r = hostile(
        "host_scene_memory.py",
        &["--timeout", "60s", "--fuel", HUGE_FUEL],
    );
    assert_status(&r, &["ok"]);
    let v = r.json["value"].as_str().unwrap_or_default();
    assert!(v.starts_with("'too-large after "), "{v}");
}
