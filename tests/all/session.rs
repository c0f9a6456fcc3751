//! Sessions, snapshots and deterministic runs, end to end through the
//! `llmos` binary: every command is a new process, so each test also shows
//! that a session's state survives between processes (restore by replay).

use std::path::{Path, PathBuf};

use llmos_tests::{Measured, fixture_path, measure_llmos, scratch_data_dir};
use serde_json::Value;

fn scratch(name: &str) -> PathBuf {
    let d = scratch_data_dir(&format!("session-{name}"));
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

fn llmos(args: &[&str], data: &Path) -> Measured {
    let m = measure_llmos(args, data);
    eprintln!(
        "llmos {args:?}: exit {:?}, wall {:?}\nstderr: {}",
        m.code,
        m.wall,
        String::from_utf8_lossy(&m.stderr[..m.stderr.len().min(3000)])
    );
    m
}

/// Run `source` as the next cell of `session`; the `--json` object.
fn cell(data: &Path, session: &str, file: &str, source: &str, extra: &[&str]) -> Value {
    let path = data.join(file);
    std::fs::write(&path, source).expect("write cell");
    let p = path.display().to_string();
    let mut args = vec!["session", "run", session, p.as_str(), "--json"];
    args.extend_from_slice(extra);
    let m = llmos(&args, data);
    let v = m.json();
    assert_eq!(v["session"], session);
    v
}

fn new_session(data: &Path, name: &str, lang: &str, extra: &[&str]) {
    let mut args = vec!["session", "new", "--name", name, "--lang", lang];
    args.extend_from_slice(extra);
    let m = llmos(&args, data);
    assert_eq!(m.code, Some(0));
}

#[test]
fn python_session_keeps_state_survives_raises_and_traps_and_restores_elsewhere() {
    let d = scratch("python");
    new_session(&d, "nb", "python", &[]);
    let c1 = cell(
        &d,
        "nb",
        "setup.py",
        "import json, time\n\
         x = 41\n\
         def f(y):\n    return x + y\n\
         class Point:\n    def __init__(self, a):\n        self.a = a\n    def norm(self):\n        return f(self.a)\n\
         squares = (i * i for i in range(10))\n\
         def counter():\n    n = 0\n    def bump():\n        nonlocal n\n        n += 1\n        return n\n    return bump\n\
         bump = counter()\n\
         t0 = time.time()\n\
         data = json.loads('{\"k\": [1, 2, 3]}')\n\
         t0\n",
        &[],
    );
    assert_eq!(c1["status"], "ok", "{c1}");
    assert_eq!(c1["cell"], 1);
    assert_eq!(c1["journaled"], true);
    let t0 = c1["value"].as_str().expect("t0").to_string();

    let c2 = cell(
        &d,
        "nb",
        "c2.py",
        "p = Point(1)\nprint(next(squares), next(squares), bump(), bump())\n[p.norm(), data['k'][2]]\n",
        &[],
    );
    assert_eq!(c2["status"], "ok", "{c2}");
    assert_eq!(c2["stdout"], "0 1 1 2\n");
    assert_eq!(c2["value"], "[42, 3]");

    // A raise keeps what the cell did before it (notebook semantics).
    let c3 = cell(
        &d,
        "nb",
        "c3.py",
        "x = 100\nraise ValueError('after the assignment')\n",
        &[],
    );
    assert_eq!(c3["status"], "error");
    assert_eq!(c3["error"]["class"], "ValueError");
    assert_eq!(c3["journaled"], true);

    // A trap poisons the instance: the session comes back as after cell 3.
    let c4 = cell(
        &d,
        "nb",
        "c4.py",
        "x = -1\nwhile True:\n    pass\n",
        &["--fuel", "50000000"],
    );
    assert_eq!(c4["status"], "out_of_fuel", "{c4}");
    assert_eq!(c4["restored"], true);
    assert_eq!(c4["journaled"], false);
    let c5 = cell(
        &d,
        "nb",
        "c5.py",
        "x = -2\nbig = []\nwhile True:\n    big.append(' ' * 10 ** 6)\n",
        &["--memory", "64MiB"],
    );
    assert_eq!(c5["status"], "memory_limit", "{c5}");
    assert_eq!(c5["restored"], true);

    // A function from cell 1 failing in cell 6 is reported in cell 1's file.
    let c6 = cell(
        &d,
        "nb",
        "c6.py",
        "print(x, next(squares), bump(), t0 == time.time() or 'clock moves')\nf(None)\n",
        &[],
    );
    assert_eq!(c6["stdout"], "100 4 3 clock moves\n", "{c6}");
    assert_eq!(c6["error"]["class"], "TypeError");
    let files: Vec<&str> = c6["error"]["stack"]
        .as_array()
        .expect("stack")
        .iter()
        .filter_map(|f| f["file"].as_str())
        .collect();
    assert_eq!(files, ["c6.py", "setup.py"], "{c6}");

    // Save, restore under another name (a new process), and both sessions
    // go on identically: same value, same output, same fuel.
    let saved = d.join("nb.session");
    let s = saved.display().to_string();
    assert_eq!(llmos(&["session", "save", "nb", &s], &d).code, Some(0));
    let r = llmos(&["session", "restore", &s, "--name", "copy", "--json"], &d);
    assert_eq!(r.code, Some(0));
    assert_eq!(r.json()["replayed"]["cells"], 4);
    let probe = "print(x, next(squares), bump(), t0, p.norm())\nsorted(k for k in globals() if not k.startswith('_'))\n";
    let a = cell(&d, "nb", "probe.py", probe, &[]);
    let b = cell(&d, "copy", "probe.py", probe, &[]);
    assert_eq!(a["status"], "ok", "{a}");
    assert_eq!(a["stdout"], format!("100 9 4 {t0} 101\n"));
    for k in ["stdout", "value", "fuel_consumed", "status"] {
        assert_eq!(a[k], b[k], "{k}: {a} vs {b}");
    }

    let list = llmos(&["session", "list", "--json"], &d).json();
    let names: Vec<&str> = list
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, ["copy", "nb"]);
    assert_eq!(llmos(&["session", "drop", "copy"], &d).code, Some(0));
    let gone = llmos(&["session", "run", "copy", &s], &d);
    assert_eq!(gone.code, Some(2));
    assert!(String::from_utf8_lossy(&gone.stderr).contains("no session named `copy`"));
}

#[test]
fn javascript_session_keeps_closures_and_prototypes_and_recovers_from_a_timeout() {
    let d = scratch("javascript");
    new_session(&d, "js", "javascript", &[]);
    let c1 = cell(
        &d,
        "js",
        "setup.js",
        "let n = 1;\n\
         const counter = (() => { let c = 0; return () => ++c; })();\n\
         class Shape { constructor(k) { this.k = k; } area() { return this.k * n; } }\n\
         Array.prototype.total = function () { return this.reduce((a, b) => a + b, 0); };\n\
         function* ids() { let i = 0; while (true) yield i++; }\n\
         var gen = ids();\n\
         const started = Date.now();\n\
         counter();\n",
        &[],
    );
    assert_eq!(c1["status"], "ok", "{c1}");
    assert_eq!(c1["value"], "1");
    let c2 = cell(
        &d,
        "js",
        "c2.js",
        "n = 10; [new Shape(3).area(), counter(), [1, 2, 3].total(), gen.next().value, gen.next().value]",
        &[],
    );
    assert_eq!(c2["value"], "[ 30, 2, 6, 0, 1 ]", "{c2}");
    let c3 = cell(&d, "js", "c3.js", "for (;;) {}", &["--timeout", "300ms"]);
    assert_eq!(c3["status"], "timeout", "{c3}");
    assert_eq!(c3["restored"], true);
    let c4 = cell(
        &d,
        "js",
        "c4.js",
        "[n, counter(), gen.next().value, new Shape(2) instanceof Shape, typeof started]",
        &[],
    );
    assert_eq!(c4["value"], "[ 10, 3, 2, true, 'number' ]", "{c4}");
    // Redeclaring a `let` is the language's error, not the session's.
    let c5 = cell(&d, "js", "c5.js", "let n = 2;", &[]);
    assert_eq!(c5["status"], "error");
    assert_eq!(c5["error"]["class"], "SyntaxError");
}

#[test]
fn restoring_never_repeats_a_storage_write_and_replays_what_storage_answered() {
    let d = scratch("storage");
    new_session(&d, "st", "python", &[]);
    let c1 = cell(
        &d,
        "st",
        "c1.py",
        "from llmos import storage\nvisits = storage.get('visits', 0) + 1\nstorage.set('visits', visits)\nvisits\n",
        &[],
    );
    assert_eq!(c1["value"], "1", "{c1}");
    // Every later command replays cell 1; the stored count must stay 1 and
    // cell 1's `visits` must stay what storage answered then.
    for _ in 0..3 {
        let c = cell(&d, "st", "probe.py", "(visits, storage.get('visits'))", &[]);
        assert_eq!(c["value"], "(1, 1)", "{c}");
    }
}

#[test]
fn a_tampered_or_malformed_session_file_is_refused_with_a_clear_error() {
    let d = scratch("tamper");
    new_session(&d, "t", "python", &[]);
    let c1 = cell(&d, "t", "c1.py", "x = 1\nx\n", &[]);
    assert_eq!(c1["status"], "ok");
    let saved = d.join("t.session");
    let s = saved.display().to_string();
    assert_eq!(llmos(&["session", "save", "t", &s], &d).code, Some(0));
    let mut j: Value = serde_json::from_slice(&std::fs::read(&saved).expect("read")).expect("json");
    j["cells"][0]["source"] = "x = 2\nx\n".into();
    std::fs::write(&saved, j.to_string()).expect("write");
    let r = llmos(&["session", "restore", &s, "--name", "t2"], &d);
    assert_eq!(r.code, Some(2));
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        err.contains("replaying cell 1 did not reproduce it"),
        "{err}"
    );

    for bad in [
        "",
        "{",
        "[]",
        "{\"format\": \"llmos-session/1\"}",
        "\u{0}\u{1}",
    ] {
        std::fs::write(&saved, bad).expect("write");
        let r = llmos(&["session", "restore", &s, "--name", "t3"], &d);
        assert_eq!(r.code, Some(2), "{bad:?}");
        assert!(String::from_utf8_lossy(&r.stderr).contains("is not a session file"));
    }
    let r = llmos(&["session", "new", "--name", "../escape"], &d);
    assert_eq!(r.code, Some(2));
}

#[test]
fn the_session_fuel_budget_holds() {
    let d = scratch("budget");
    new_session(&d, "b", "javascript", &["--budget-fuel", "5000000"]);
    let c1 = cell(
        &d,
        "b",
        "c1.js",
        "let s = 0; for (let i = 0; i < 1e6; i++) s += i; s",
        &[],
    );
    assert_eq!(c1["status"], "out_of_fuel", "{c1}");
    assert_eq!(c1["fuel_consumed"], 5_000_000);
    let p = d.join("c1.js").display().to_string();
    let r = llmos(&["session", "run", "b", &p], &d);
    assert_eq!(r.code, Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("fuel budget (5000000) is spent"));
}

#[test]
fn runs_and_sessions_start_from_a_snapshot() {
    let d = scratch("snapshot");
    new_session(&d, "setup", "python", &[]);
    let c1 = cell(
        &d,
        "setup",
        "setup.py",
        "import json, random\nrows = json.loads('[1, 2, 3, 4]')\ndef mean(v):\n    return sum(v) / len(v)\n",
        &[],
    );
    assert_eq!(c1["status"], "ok");
    let snap = d.join("setup.snapshot").display().to_string();
    assert_eq!(
        llmos(&["snapshot", "create", "setup", "-o", &snap], &d).code,
        Some(0)
    );
    let art = d.join("job.py");
    std::fs::write(&art, "print(mean(rows))\nrandom.random()\n").expect("write");
    let a = art.display().to_string();
    let r1 = llmos(&["run", "--from", &snap, &a, "--json"], &d).json();
    let r2 = llmos(&["run", "--from", &snap, &a, "--json"], &d).json();
    assert_eq!(r1["status"], "ok", "{r1}");
    assert_eq!(r1["stdout"], "2.5\n");
    // Randomness is drawn per run, never baked into the snapshot.
    assert_ne!(r1["value"], r2["value"]);

    let m = llmos(&["session", "new", "--name", "forked", "--from", &snap], &d);
    assert_eq!(m.code, Some(0));
    let c = cell(&d, "forked", "c.py", "rows.append(5)\nmean(rows)\n", &[]);
    assert_eq!(c["value"], "3.0", "{c}");
    // The snapshot itself is unchanged.
    let r3 = llmos(&["run", "--from", &snap, &a, "--json"], &d).json();
    assert_eq!(r3["stdout"], "2.5\n");
    // A snapshot of another language is refused.
    std::fs::write(d.join("job.js"), "1").expect("write");
    let js = d.join("job.js").display().to_string();
    let r = llmos(&["run", "--from", &snap, &js], &d);
    assert_eq!(r.code, Some(2));
}

/// The outcome without what measures the host rather than the run.
fn comparable(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.remove("duration_ms");
    }
    v
}

#[test]
fn seeded_runs_are_byte_identical_demo_and_hostile_fixtures() {
    let fixtures = [
        ("demo/1-hello.js", vec![]),
        ("demo/2-error.js", vec![]),
        ("demo/4-hello.py", vec![]),
        ("demo/5-error.py", vec![]),
        ("demo/7-kernel.js", vec![]),
        ("demo/8-kernel.py", vec![]),
        ("demo/3-runaway.js", vec!["--fuel", "200000000"]),
        ("demo/6-runaway.py", vec!["--fuel", "200000000"]),
        ("hostile/memory_bomb.py", vec!["--memory", "64MiB"]),
        ("hostile/memory_bomb.js", vec!["--memory", "64MiB"]),
        ("hostile/deep_recursion.js", vec![]),
        ("hostile/deep_recursion.py", vec![]),
        ("hostile/stdout_flood.py", vec!["--output-limit", "64KiB"]),
        ("hostile/host_small_fuel.js", vec![]),
        ("hostile/host_storage_flood.py", vec!["--fuel", "300000000"]),
        // Sleeps advance the virtual clock at once.
        ("hostile/sleep.py", vec![]),
    ];
    for (rel, extra) in fixtures {
        let path = fixture_path(rel).display().to_string();
        let mut runs = Vec::new();
        for i in 0..2 {
            // Each run has its own data directory (storage starts empty)
            // and the same output directory.
            let d = scratch(&format!("det-{}-{i}", rel.replace('/', "-")));
            let out = scratch_data_dir("det-out").display().to_string();
            let mut args = vec![
                "run",
                path.as_str(),
                "--seed",
                "42",
                "--json",
                "--out",
                &out,
            ];
            args.extend(extra.iter().copied());
            let m = llmos(&args, &d);
            runs.push(comparable(m.json()));
        }
        assert_eq!(runs[0]["inputs"]["clock"], "virtual", "{rel}");
        assert_eq!(
            serde_json::to_string(&runs[0]).expect("json"),
            serde_json::to_string(&runs[1]).expect("json"),
            "{rel}: two seeded runs differ"
        );
    }
}

#[test]
fn replay_reproduces_a_recorded_run_at_the_same_fuel_without_touching_storage() {
    let d = scratch("replay");
    let art = d.join("visit.py");
    std::fs::write(
        &art,
        "import time, random\nfrom llmos import storage\n\
         n = storage.get('n', 0)\nstorage.set('n', n + 1)\n\
         print(n, time.time(), time.monotonic(), random.random())\n\
         if n == 0:\n    raise ValueError('first visit')\n",
    )
    .expect("write");
    let a = art.display().to_string();
    let trace = d.join("trace.json").display().to_string();
    let first = llmos(&["run", &a, "--trace", &trace, "--json"], &d);
    assert_eq!(first.code, Some(1));
    let recorded = first.json();
    // Storage moves on: the replay must still see n == 0, and write nothing.
    assert_eq!(llmos(&["run", &a], &d).code, Some(0));
    let r = llmos(&["replay", &trace, "--json"], &d);
    assert_eq!(r.code, Some(0), "{}", String::from_utf8_lossy(&r.stdout));
    let v = r.json();
    assert_eq!(v["reproduced"], true, "{v}");
    assert_eq!(v["outcome"]["stdout"], recorded["stdout"]);
    assert_eq!(v["outcome"]["fuel_consumed"], recorded["fuel_consumed"]);
    assert_eq!(v["outcome"]["error"]["message"], "first visit");
    let probe = d.join("probe.py");
    std::fs::write(&probe, "from llmos import storage\nstorage.get('n')\n").expect("write");
    let p = probe.display().to_string();
    // Same storage namespace as the artifact: its canonical path.
    let canonical = std::fs::canonicalize(&art).expect("canonical");
    let id = canonical.display().to_string();
    let n = llmos(&["run", &p, "--id", &id, "--json"], &d).json();
    assert_eq!(n["value"], "2", "the replay wrote to storage: {n}");

    // A tampered trace: the replay notices it ran off its record.
    let mut t: Value = serde_json::from_slice(&std::fs::read(d.join("trace.json")).expect("read"))
        .expect("trace json");
    t["attempts"][0]["code"] = "import time\ntime.time(); time.time(); time.time()\n".into();
    std::fs::write(d.join("trace.json"), t.to_string()).expect("write");
    let r = llmos(&["replay", &trace, "--json"], &d);
    assert_eq!(r.code, Some(1));
    assert_eq!(r.json()["reproduced"], false);
    let bad = llmos(&["replay", &trace, "--attempt", "7"], &d);
    assert_eq!(bad.code, Some(2));
}

#[test]
fn a_batch_starts_every_job_from_a_snapshot() {
    let d = scratch("batch-from");
    new_session(&d, "setup", "python", &[]);
    let c = cell(
        &d,
        "setup",
        "setup.py",
        "import json\nrows = json.loads('[1, 2, 3, 4]')\ndef mean(v):\n    return sum(v) / len(v)\n",
        &[],
    );
    assert_eq!(c["status"], "ok");
    let snap = d.join("setup.snapshot").display().to_string();
    assert_eq!(
        llmos(&["snapshot", "create", "setup", "-o", &snap], &d).code,
        Some(0)
    );
    let jobs = d.join("jobs");
    std::fs::create_dir_all(&jobs).expect("jobs dir");
    for i in 1..=4 {
        std::fs::write(
            jobs.join(format!("j{i}.py")),
            format!("print(mean(rows) * {i})\n"),
        )
        .expect("job");
    }
    let (j, out) = (
        jobs.display().to_string(),
        d.join("r.jsonl").display().to_string(),
    );
    let m = llmos(
        &["batch", &j, "--from", &snap, "--out", &out, "--jobs", "2"],
        &d,
    );
    assert_eq!(m.code, Some(0));
    let text = std::fs::read_to_string(d.join("r.jsonl")).expect("results");
    let mut got: Vec<(String, String)> = text
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("line");
            (
                v["id"]
                    .as_str()
                    .expect("id")
                    .rsplit('/')
                    .next()
                    .unwrap_or("")
                    .to_string(),
                v["stdout"].as_str().expect("stdout").to_string(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("j1.py".to_string(), "2.5\n".to_string()),
            ("j2.py".into(), "5.0\n".into()),
            ("j3.py".into(), "7.5\n".into()),
            ("j4.py".into(), "10.0\n".into()),
        ]
    );
    // A snapshot that cannot be read stops the batch before any job.
    let bad = d.join("none.snapshot").display().to_string();
    let out2 = d.join("r2.jsonl").display().to_string();
    let m = llmos(&["batch", &j, "--from", &bad, "--out", &out2], &d);
    assert_eq!(m.code, Some(2));
}
