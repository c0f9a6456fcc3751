//! Hostile artifacts against the `llmos` binary itself: guest text is data
//! (clipped, clamped, stripped of terminal control sequences) and what the
//! process writes and holds stays bounded, measured with `wait4`.

use llmos_tests::{Measured, fixture_path, measure_llmos, scratch_data_dir};

/// Peak RSS of a whole `llmos run` process that any hostile run must stay under.
const MAX_RSS: u64 = 400 << 20;

fn run(rel: &str, extra: &[&str], data: &str) -> Measured {
    let path = fixture_path(rel).display().to_string();
    let mut args = vec!["run", path.as_str()];
    args.extend_from_slice(extra);
    let m = measure_llmos(&args, &scratch_data_dir(data));
    eprintln!(
        "{rel} {extra:?}: exit {:?}, wall {:?}, cpu {:?}, rss {} MiB, stdout {} B, stderr {} B",
        m.code,
        m.wall,
        m.cpu,
        m.max_rss_bytes >> 20,
        m.stdout.len(),
        m.stderr.len()
    );
    m
}

fn assert_bounded(m: &Measured, max_out: usize) {
    assert!(m.wall.as_secs_f64() < 10.0, "wall {:?}", m.wall);
    assert!(
        m.max_rss_bytes < MAX_RSS,
        "rss {} MiB",
        m.max_rss_bytes >> 20
    );
    assert!(
        m.stdout.len() + m.stderr.len() < max_out,
        "{} + {} bytes written",
        m.stdout.len(),
        m.stderr.len()
    );
}

#[test]
fn an_error_flood_is_clipped_and_never_reaches_the_terminal_raw() {
    for rel in ["hostile/cli_error_flood.js", "hostile/cli_error_flood.py"] {
        // Human output: a few KiB, no escape byte from the guest.
        let m = run(rel, &[], "error-flood-human");
        assert_eq!(
            m.code,
            Some(1),
            "{}",
            String::from_utf8_lossy(&m.stderr[..m.stderr.len().min(2000)])
        );
        assert_bounded(&m, 256 << 10);
        assert!(!m.stderr.contains(&0x1b), "an ESC byte reached stderr");
        assert!(!m.stderr.contains(&0x07), "a BEL byte reached stderr");
        let err = String::from_utf8_lossy(&m.stderr);
        assert!(
            err.contains("\\u{1b}"),
            "the escape is shown, escaped: {err:.2000}"
        );

        // JSON: the record is clipped and clamped.
        let m = run(rel, &["--json"], "error-flood-json");
        assert_eq!(m.code, Some(1));
        assert_bounded(&m, 512 << 10);
        let v = m.json();
        assert_eq!(v["status"], "error", "{v:.2000}");
        let e = &v["error"];
        assert!(
            e["message"].as_str().map_or(0, str::len) <= 8 << 10,
            "message not clipped"
        );
        assert!(
            e["stack"].as_array().map_or(0, Vec::len) <= 64,
            "stack not clipped"
        );
        for f in e["stack"].as_array().into_iter().flatten() {
            assert!(
                f["column"].as_u64().unwrap_or(0) <= 10_000_000,
                "column not clamped: {f}"
            );
        }
        if let Some(c) = e["column"].as_u64() {
            assert!(c <= 10_000_000, "column not clamped: {c}");
        }
        let globals = e["globals"].as_array().map_or(0, Vec::len);
        assert!(globals <= 64, "{globals} globals kept");
    }
}

#[test]
fn empty_log_fields_cost_log_budget() {
    let m = run("hostile/cli_log_fields.js", &["--json"], "log-fields");
    assert_eq!(m.code, Some(1));
    assert_bounded(&m, 4 << 20);
    let v = m.json();
    assert_eq!(v["status"], "output_limit", "{}", v["trap"]);
    let fields: usize = v["logs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| r["fields"].as_array().map_or(0, Vec::len))
        .sum();
    // 1 MiB of output budget at 8+ bytes per field shown.
    assert!(fields <= (1 << 20) / 8, "{fields} fields kept");
    assert!(m.stdout.len() < 2 << 20, "{} bytes of JSON", m.stdout.len());
}

#[test]
fn a_clean_exit_is_ok_and_carries_no_error() {
    for (lang, src) in [
        ("python", "print('bye')\nimport sys\nsys.exit(0)"),
        ("python", "import os\nos._exit(0)"),
        ("js", "console.log('bye'); kernel.exit(0)"),
    ] {
        let o = llmos_tests::run(lang, src);
        assert_eq!(o.status, llmos::Status::Ok, "{src}: {o:?}");
        assert!(o.error.is_none() && o.trap.is_none(), "{src}: {o:?}");
        let v = serde_json::to_value(&o).expect("json");
        assert!(v["error"].is_null(), "{v}");
    }
}

#[test]
fn a_closed_stdout_ends_quietly() {
    let cfg = llmos_tests::test_config();
    let mut child = std::process::Command::new(llmos_tests::llmos_bin())
        .args(["api", "python"])
        .env("LLMOS_COMPONENTS", &cfg.components_dir)
        .env("LLMOS_CACHE_DIR", &cfg.cache_dir)
        .env("LLMOS_SYSTEM_VOLUME", &cfg.system_volume)
        .env("LLMOS_DATA_DIR", &cfg.data_dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn llmos");
    // Hang up before llmos writes anything (as `| head -c0` would).
    drop(child.stdout.take());
    let o = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_ne!(o.status.code(), Some(101), "{err}");
}
