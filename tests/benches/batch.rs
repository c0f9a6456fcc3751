//! `make bench` (second table): `llmos batch` throughput, end to end (input
//! files read to results written, whole process), against one `node -e` /
//! `python3 -S -c` process per artifact at the same parallelism, measured in
//! the same run. Also: scaling from one worker to two, and the peak RSS of
//! the coordinator and of each worker process.
//!
//! Each batch figure is the median of several whole `llmos batch` runs.
//! Set `LLMOS_BENCH_QUICK=1` for smaller corpora.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use llmos_tests::bench::median;
use llmos_tests::{RedisServer, llmos_command, scratch_data_dir};

fn quick() -> bool {
    std::env::var_os("LLMOS_BENCH_QUICK").is_some()
}

fn corpus(dir: &Path, n: usize, ext: &str, program: impl Fn(usize) -> String) -> Vec<String> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("corpus dir");
    (0..n)
        .map(|i| {
            let src = program(i);
            std::fs::write(dir.join(format!("a{i:05}.{ext}")), &src).expect("write artifact");
            src
        })
        .collect()
}

/// Peak RSS (VmHWM) of a process, bytes.
fn hwm(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(c) = std::fs::read_to_string(t.path().join("children")) {
                out.extend(c.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
            }
        }
    }
    out
}

struct BatchRun {
    rate: f64,
    coordinator_rss: u64,
    worker_rss: u64,
}

/// One whole `llmos batch` process over `input`; artifacts per second.
fn batch_once(input: &Path, workers: usize, data: &Path, n: usize) -> BatchRun {
    batch_with(input, &["-j", &workers.to_string()], data, n)
}

fn batch_with(input: &Path, extra: &[&str], data: &Path, n: usize) -> BatchRun {
    let out = data.join("results.jsonl");
    let _ = std::fs::remove_file(&out);
    let start = Instant::now();
    let (input, out_s) = (input.display().to_string(), out.display().to_string());
    let mut args = vec!["batch", input.as_str(), "--out", out_s.as_str(), "--json"];
    args.extend_from_slice(extra);
    let mut child = llmos_command(&args, data)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn llmos batch");
    let pid = child.id();
    let (mut coord, mut worker) = (0, 0);
    loop {
        coord = coord.max(hwm(pid).unwrap_or(0));
        for c in children(pid) {
            worker = worker.max(hwm(c).unwrap_or(0));
        }
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let secs = start.elapsed().as_secs_f64();
    let lines = std::fs::read_to_string(&out)
        .map(|t| t.lines().count())
        .unwrap_or(0);
    assert_eq!(lines, n, "every artifact has a result");
    BatchRun {
        rate: n as f64 / secs,
        coordinator_rss: coord,
        worker_rss: worker,
    }
}

fn batch_rate(input: &Path, workers: usize, data: &Path, n: usize, reps: usize) -> BatchRun {
    let runs: Vec<BatchRun> = (0..reps)
        .map(|_| batch_once(input, workers, data, n))
        .collect();
    BatchRun {
        rate: median(runs.iter().map(|r| r.rate).collect()),
        coordinator_rss: runs.iter().map(|r| r.coordinator_rss).max().unwrap_or(0),
        worker_rss: runs.iter().map(|r| r.worker_rss).max().unwrap_or(0),
    }
}

/// One process per artifact (`program args... source`), `parallel` at a
/// time; artifacts per second, or `None` if the program is missing.
fn per_process_rate(
    program: &str,
    args: &[&str],
    sources: &[String],
    parallel: usize,
) -> Option<f64> {
    Command::new(program).arg("--version").output().ok()?;
    let next = std::sync::atomic::AtomicUsize::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..parallel {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(src) = sources.get(i) else { break };
                    let st = Command::new(program)
                        .args(args)
                        .arg(src)
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status()
                        .expect("baseline process");
                    assert!(st.success() || src.contains("raise") || src.contains("throw"));
                }
            });
        }
    });
    Some(sources.len() as f64 / start.elapsed().as_secs_f64())
}

fn row(what: &str, value: String, note: String) {
    println!("  {what:<52} {value:>14}  {note}");
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64)
}

fn main() {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let data = scratch_data_dir("bench-batch");
    std::fs::create_dir_all(&data).expect("data dir");
    let root: PathBuf = data.join("corpora");
    let (n_js, n_py, n_base, reps) = if quick() {
        (800, 300, 60, 1)
    } else {
        (4000, 1500, 300, 3)
    };
    println!("llmos batch throughput ({cores} cores; medians of {reps} whole runs)");

    // Warm the component cache and the page cache once.
    let warm = corpus(&root.join("warm"), 4, "py", |i| format!("print({i})"));
    drop(warm);
    batch_once(&root.join("warm"), 1, &data, 4);

    let js_dir = root.join("js");
    let js = corpus(&js_dir, n_js, "js", |i| format!("console.log({i} * 2)"));
    let py_dir = root.join("py");
    let py = corpus(&py_dir, n_py, "py", |i| format!("print({i} * 3)"));

    let js1 = batch_rate(&js_dir, 1, &data, n_js, reps);
    let js2 = batch_rate(&js_dir, cores, &data, n_js, reps);
    let node = per_process_rate("node", &["-e"], &js[..n_base.min(js.len())], cores);
    row(
        &format!("batch: {n_js} trivial JS artifacts, {cores} workers"),
        format!("{:.0} /s", js2.rate),
        match node {
            Some(b) => format!(
                "`node -e` per artifact ×{cores}: {b:.0} /s → {:.1}× · target ≥ 8000 /s",
                js2.rate / b
            ),
            None => "node not installed: no baseline · target ≥ 8000 /s".into(),
        },
    );
    row(
        "batch: same, 1 worker",
        format!("{:.0} /s", js1.rate),
        format!("{cores} workers / 1 = {:.2}×", js2.rate / js1.rate),
    );

    let py1 = batch_rate(&py_dir, 1, &data, n_py, reps);
    let py2 = batch_rate(&py_dir, cores, &data, n_py, reps);
    // The system interpreter, not a version-manager shim (a shell script).
    let py_bin = ["/usr/bin/python3", "python3"]
        .into_iter()
        .find(|p| Command::new(p).arg("--version").output().is_ok())
        .unwrap_or("python3");
    let python = per_process_rate(py_bin, &["-S", "-c"], &py[..n_base.min(py.len())], cores);
    row(
        &format!("batch: {n_py} trivial Python artifacts, {cores} workers"),
        format!("{:.0} /s", py2.rate),
        match python {
            Some(b) => format!(
                "`python3 -S -c` per artifact ×{cores}: {b:.0} /s → {:.1}× · target ≥ 1500 /s",
                py2.rate / b
            ),
            None => "python3 not installed: no baseline".into(),
        },
    );
    row(
        "batch: same, 1 worker",
        format!("{:.0} /s", py1.rate),
        format!("{cores} workers / 1 = {:.2}×", py2.rate / py1.rate),
    );

    // A realistic mix: loops, string work, kernel calls, some failures.
    let mixed_dir = root.join("mixed");
    let _ = std::fs::remove_dir_all(&mixed_dir);
    std::fs::create_dir_all(&mixed_dir).expect("mixed dir");
    let n_mixed = if quick() { 200 } else { 1000 };
    for i in 0..n_mixed {
        let (ext, src) = match i % 10 {
            0 => (
                "js",
                format!(
                    "let s = 0; for (let k = 0; k < 20000; k++) s += k % {m}; console.log(s)",
                    m = i % 7 + 2
                ),
            ),
            1 => (
                "js",
                format!(
                    "const w = 'lorem ipsum dolor {i}'.split(' ').map(x => x.toUpperCase()).join('-'); console.log(w)"
                ),
            ),
            2 => (
                "js",
                format!("kernel.storage.set('k', {i}); console.log(kernel.storage.get('k'))"),
            ),
            3 => ("js", "const o = {}; o.missing.field".to_string()),
            4 => (
                "js",
                format!(
                    "console.log(JSON.stringify(Array.from({{length: 200}}, (_, k) => ({{k, v: k * {i}}}))).length)"
                ),
            ),
            5 => (
                "py",
                format!(
                    "s = sum(k % {m} for k in range(5000))\nprint(s)",
                    m = i % 7 + 2
                ),
            ),
            6 => (
                "py",
                format!(
                    "words = 'lorem ipsum dolor {i}'.split()\nprint('-'.join(w.upper() for w in words))"
                ),
            ),
            7 => (
                "py",
                format!(
                    "from llmos import storage\nstorage.set('k', {i})\nprint(storage.get('k'))"
                ),
            ),
            8 => ("py", "d = {}\nprint(d['missing'])".to_string()),
            _ => (
                "py",
                format!(
                    "import json\nprint(len(json.dumps([{{'k': k, 'v': k * {i}}} for k in range(200)])))"
                ),
            ),
        };
        std::fs::write(mixed_dir.join(format!("m{i:05}.{ext}")), src).expect("mixed artifact");
    }
    let mixed = batch_rate(&mixed_dir, cores, &data, n_mixed, reps);
    row(
        &format!("batch: {n_mixed} mixed artifacts (10% failing), {cores} workers"),
        format!("{:.0} /s", mixed.rate),
        "loops, strings, JSON, kernel storage; half JS, half Python".into(),
    );
    // The same JS corpus through Redis Streams: one `llmos worker` with
    // `cores` processes, on this machine.
    let redis = RedisServer::start();
    let mut worker = llmos_command(
        &["worker", "--redis", &redis.url, "-j", &cores.to_string()],
        &data,
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .expect("spawn llmos worker");
    let runs: Vec<f64> = (0..reps)
        .map(|_| batch_with(&js_dir, &["--redis", &redis.url], &data, n_js).rate)
        .collect();
    let via_redis = median(runs);
    let _ = Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status();
    let _ = worker.wait();
    row(
        &format!("batch --redis: {n_js} trivial JS, 1 worker × {cores} processes"),
        format!("{via_redis:.0} /s"),
        format!(
            "local batch: {:.0} /s → {:.2}×",
            js2.rate,
            via_redis / js2.rate
        ),
    );
    row(
        "peak RSS: coordinator / one worker",
        format!(
            "{} / {}",
            mib(js2.coordinator_rss.max(py2.coordinator_rss)),
            mib(js2.worker_rss.max(py2.worker_rss).max(mixed.worker_rss))
        ),
        "4 sandboxes in flight per worker".into(),
    );
}
