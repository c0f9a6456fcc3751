//! Every limit, hit by a hostile artifact, in both languages.

use std::time::Duration;

use llmos::{Limits, Status};
use llmos_tests::{run, run_fixture, run_with};

fn both() -> [(&'static str, &'static str); 2] {
    [("js", "js"), ("python", "py")]
}

#[test]
fn infinite_loop_runs_out_of_fuel() {
    for (lang, ext) in both() {
        let limits = Limits {
            fuel: Some(200_000_000),
            ..Limits::default()
        };
        let o = run_fixture(lang, &format!("hostile/infinite_loop.{ext}"), limits);
        assert_eq!(o.status, Status::OutOfFuel, "{lang}: {o:?}");
        // The host's trap at the limit, or the interpreter's own stop just
        // before it (with the position): never more than the limit.
        let fuel = o.fuel_consumed.unwrap_or(0);
        assert!(
            (190_000_000..=200_000_000).contains(&fuel),
            "{lang}: {fuel}"
        );
        assert!(
            o.trap.is_some() || o.error.as_ref().is_some_and(|e| e.line.is_some()),
            "{lang}: {o:?}"
        );
    }
}

#[test]
fn fuel_is_deterministic() {
    let limits = Limits {
        fuel: Some(50_000_000),
        ..Limits::default()
    };
    let a = run_fixture("python", "python/hello.py", limits.clone());
    let b = run_fixture("python", "python/hello.py", limits);
    assert_eq!(a.fuel_consumed, b.fuel_consumed);
}

#[test]
fn infinite_loop_with_plenty_of_fuel_times_out() {
    for (lang, ext) in both() {
        let limits = Limits {
            fuel: Some(u64::MAX / 2),
            timeout: Duration::from_millis(300),
            ..Limits::default()
        };
        let o = run_fixture(lang, &format!("hostile/infinite_loop.{ext}"), limits);
        assert_eq!(o.status, Status::Timeout, "{lang}: {o:?}");
        assert!(o.duration_ms < 3000.0, "{lang}: took {} ms", o.duration_ms);
    }
}

#[test]
fn unmetered_infinite_loop_times_out() {
    let limits = Limits {
        fuel: None,
        timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let o = run_fixture("js", "hostile/infinite_loop.js", limits);
    assert_eq!(o.status, Status::Timeout, "{o:?}");
    assert_eq!(o.fuel_consumed, None);
}

#[test]
fn guest_blocked_in_a_host_call_times_out() {
    let limits = Limits {
        timeout: Duration::from_millis(400),
        ..Limits::default()
    };
    let o = run_fixture("python", "hostile/sleep.py", limits);
    assert_eq!(o.status, Status::Timeout, "{o:?}");
    assert!(o.duration_ms < 5000.0, "took {} ms", o.duration_ms);
}

#[test]
fn memory_bombs_hit_the_memory_limit_and_the_host_carries_on() {
    let limits = Limits {
        memory_bytes: 64 << 20,
        ..Limits::default()
    };
    for (lang, file) in [
        ("js", "hostile/memory_bomb.js"),
        ("python", "hostile/memory_bomb.py"),
        ("python", "hostile/memory_grind.py"),
    ] {
        let o = run_fixture(lang, file, limits.clone());
        assert_eq!(o.status, Status::MemoryLimit, "{file}: {o:?}");
        assert!(
            o.memory_peak_bytes <= 64 << 20,
            "{file}: peak {}",
            o.memory_peak_bytes
        );
        // The host is unaffected: the next run in a fresh sandbox works.
        assert_eq!(run(lang, "1+1").value.as_deref(), Some("2"));
    }
}

#[test]
fn a_caught_memory_error_is_not_a_failure() {
    let src = "try:\n    x = 'a' * 10**9\nexcept MemoryError:\n    print('survived')\n";
    let o = run("python", src);
    assert_eq!(o.status, Status::Ok, "{o:?}");
    assert_eq!(o.stdout, "survived\n");
}

#[test]
fn deep_recursion_is_a_stack_overflow_or_a_recursion_error() {
    let o = run_fixture("js", "hostile/deep_recursion.js", Limits::default());
    let js_ok = o.status == Status::StackOverflow
        || o.error
            .as_ref()
            .is_some_and(|e| e.class == "RangeError" || e.class == "InternalError");
    assert!(js_ok, "{o:?}");
    let o = run_fixture("python", "hostile/deep_recursion.py", Limits::default());
    let py_ok = o.status == Status::StackOverflow
        || o.error
            .as_ref()
            .is_some_and(|e| e.class == "RecursionError");
    assert!(py_ok, "{o:?}");
    assert_eq!(run("js", "1+1").status, Status::Ok);
}

#[test]
fn stdout_floods_hit_the_output_limit_with_bounded_capture() {
    let limit = 64 * 1024;
    for file in [
        "hostile/stdout_flood.js",
        "hostile/stdout_flood.py",
        "hostile/stderr_flood.py",
    ] {
        let lang = if file.ends_with(".js") {
            "js"
        } else {
            "python"
        };
        let limits = Limits {
            output_bytes: limit,
            ..Limits::default()
        };
        let o = run_fixture(lang, file, limits);
        assert_eq!(o.status, Status::OutputLimit, "{file}: {o:?}");
        let (text, stream) = if file.contains("stderr") {
            (&o.stderr, "stderr")
        } else {
            (&o.stdout, "stdout")
        };
        let marker = llmos::truncation_marker(stream, limit);
        assert!(text.ends_with(&marker), "{file}: no marker");
        assert!(
            text.len() <= limit + 1 + marker.len(),
            "{file}: captured {} bytes",
            text.len()
        );
        assert!(text.len() >= limit, "{file}: lost output");
        assert_eq!(o.truncated, vec![stream.to_string()]);
    }
}

#[test]
fn log_floods_hit_the_output_limit() {
    let limits = Limits {
        log_records: 100,
        ..Limits::default()
    };
    let o = run_fixture("python", "hostile/log_flood.py", limits);
    assert_eq!(o.status, Status::OutputLimit, "{o:?}");
    assert_eq!(o.logs.len(), 101, "100 records and the truncation marker");
    assert_eq!(o.truncated, vec!["logs".to_string()]);
}

#[test]
fn output_before_a_trap_is_kept() {
    let limits = Limits {
        fuel: Some(100_000_000),
        ..Limits::default()
    };
    let o = llmos_tests::run_with("python", "print('before')\nwhile True: pass", |r| {
        r.limits = limits
    });
    assert_eq!(o.status, Status::OutOfFuel);
    assert_eq!(o.stdout, "before\n");
}

#[test]
fn javascript_recursion_depth_is_practical() {
    // Ordinary deep-but-finite recursion (a DFS 5,000 levels deep) must work.
    let o = run(
        "js",
        "function d(n) { return n === 0 ? 0 : 1 + d(n - 1); }\nd(5000)",
    );
    assert_eq!(o.value.as_deref(), Some("5000"), "{o:?}");
    let o = run(
        "python",
        "import sys\nsys.setrecursionlimit(20000)\ndef d(n):\n    return 0 if n == 0 else 1 + d(n - 1)\nd(5000)",
    );
    assert_eq!(o.value.as_deref(), Some("5000"), "{o:?}");
}

/// JavaScript and Lua stop a runaway artifact themselves just before the
/// host would (polling `process.budget`), so the limit's outcome names the
/// line and stack where it was; a `try`/`pcall` cannot catch the stop.
#[test]
fn runaway_loops_are_located_in_javascript_and_lua() {
    let cases = [
        (
            "javascript",
            "let total = 0;\nfunction step(i) {\n  return i * 2;\n}\nfor (let i = 0; i < 10; ) {\n  try { total += step(i); } catch (e) {}\n}\n",
            [5, 6],
        ),
        (
            "lua",
            "local total = 0\nlocal function step(i)\n  return i * 2\nend\nlocal i = 0\nwhile i < 10 do\n  pcall(function() total = total + step(i) end)\nend\n",
            [3, 7],
        ),
    ];
    for (lang, source, line) in cases {
        let o = run_with(lang, source, |r| r.limits.fuel = Some(200_000_000));
        assert_eq!(o.status, Status::OutOfFuel, "{lang}: {o:?}");
        let e = o
            .error
            .as_ref()
            .unwrap_or_else(|| panic!("{lang}: no location: {o:?}"));
        assert_eq!(e.class, "out_of_fuel");
        assert!(e.line.is_some_and(|l| line.contains(&l)), "{lang}: {e:?}");
        assert!(!e.stack.is_empty(), "{lang}: {e:?}");
        assert!(o.fuel_consumed.is_some_and(|f| f <= 200_000_000));
        // Deterministic: the same fuel, the same place.
        let again = run_with(lang, source, |r| r.limits.fuel = Some(200_000_000));
        assert_eq!(again.fuel_consumed, o.fuel_consumed, "{lang}");

        let o = run_with(lang, source, |r| {
            r.limits.fuel = Some(1 << 50);
            r.limits.timeout = std::time::Duration::from_millis(400);
        });
        assert_eq!(o.status, Status::Timeout, "{lang}: {o:?}");
        assert!(
            o.error
                .as_ref()
                .is_some_and(|e| e.class == "timeout" && e.line.is_some()),
            "{lang}: {o:?}"
        );
    }
}

/// CPython has no cheap periodic hook: `llmos run` re-runs an `out_of_fuel`
/// Python artifact on its recorded inputs with its lines traced, so the
/// report names where it was and the lines it ran most (nothing written
/// twice: storage replays from the record).
#[test]
fn a_python_runaway_loop_is_located_by_a_traced_replay() {
    let d = llmos_tests::scratch_data_dir("located-python");
    std::fs::create_dir_all(&d).expect("dir");
    let art = d.join("loop.py");
    std::fs::write(
        &art,
        "from llmos import storage\nstorage.set('runs', storage.get('runs', 0) + 1)\ntotal = 0\ndef step(i):\n    return i * 2\n\ni = 0\nwhile i < 10:\n    try:\n        total += step(i)\n    except ValueError:\n        pass\n",
    )
    .expect("write");
    let a = art.display().to_string();
    let m = llmos_tests::measure_llmos(&["run", &a, "--fuel", "300000000", "--json"], &d);
    let v = m.json();
    assert_eq!(v["status"], "out_of_fuel", "{v}");
    assert_eq!(v["fuel_consumed"], 300_000_000);
    assert_eq!(v["error"]["kind"], "limit");
    assert!(
        v["error"]["line"]
            .as_u64()
            .is_some_and(|l| (4..=12).contains(&l)),
        "{v}"
    );
    let msg = v["error"]["message"].as_str().expect("message");
    assert!(msg.contains("lines run most: line"), "{msg}");
    // The replay did not count a second run.
    let probe = d.join("probe.py");
    std::fs::write(&probe, "from llmos import storage\nstorage.get('runs')\n").expect("write");
    let id = std::fs::canonicalize(&art)
        .expect("canonical")
        .display()
        .to_string();
    let p = probe.display().to_string();
    let n = llmos_tests::measure_llmos(&["run", &p, "--id", &id, "--json"], &d).json();
    assert_eq!(n["value"], "1", "{n}");
}
