//! `llmos batch --redis` with `llmos worker`s on a real `redis-server`
//! (started here on 127.0.0.1): a worker SIGKILLed mid-batch loses no job
//! and duplicates none, the fuel budget holds across workers, and workers
//! drain and exit cleanly on SIGTERM.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use llmos_tests::{RedisServer, llmos_command, scratch_data_dir};
use serde_json::Value;

fn scratch(name: &str) -> PathBuf {
    let d = scratch_data_dir(&format!("redis-{name}"));
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

fn worker(redis: &RedisServer, name: &str, data: &Path) -> Child {
    let log = std::fs::File::create(data.join(format!("{name}.log"))).expect("log");
    llmos_command(
        &[
            "worker",
            "--redis",
            &redis.url,
            "-j",
            "1",
            "--per-worker",
            "2",
            "--reclaim-after",
            "1s",
            "--name",
            name,
        ],
        data,
    )
    .stdout(Stdio::null())
    .stderr(log)
    .spawn()
    .expect("spawn worker")
}

fn manifest(path: &Path, lines: &[Value]) {
    let mut s = String::new();
    for l in lines {
        let _ = writeln!(s, "{l}");
    }
    std::fs::write(path, s).expect("manifest");
}

fn lines(path: &Path) -> usize {
    std::fs::read(path).map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count())
}

fn wait(child: &mut Child, limit: Duration) -> Option<i32> {
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().expect("wait") {
            return st.code();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn results(path: &Path) -> HashMap<String, Value> {
    let text = std::fs::read_to_string(path).expect("results");
    let mut m = HashMap::new();
    for l in text.lines() {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line ({e}): {l}"));
        let id = v["id"].as_str().expect("id").to_string();
        assert!(m.insert(id.clone(), v).is_none(), "{id} has two results");
    }
    m
}

#[test]
fn a_sigkilled_worker_loses_no_job_and_duplicates_none() {
    let redis = RedisServer::start();
    let d = scratch("failover");
    let n = 300;
    let jobs: Vec<Value> = (0..n)
        .map(|i| {
            serde_json::json!({
                "id": format!("job-{i}"),
                "language": "javascript",
                // ~10 ms of work each, so jobs are in flight when a worker dies.
                "source": format!("let s = 0; for (let k = 0; k < 300000; k++) s += k; console.log({i})"),
            })
        })
        .collect();
    let m = d.join("jobs.jsonl");
    manifest(&m, &jobs);
    let mut a = worker(&redis, "worker-a", &d);
    let mut b = worker(&redis, "worker-b", &d);
    let out = d.join("r.jsonl");
    let mut submit = llmos_command(
        &[
            "batch",
            "--redis",
            &redis.url,
            m.to_str().expect("utf-8"),
            "--out",
            out.to_str().expect("utf-8"),
            "--json",
        ],
        &d,
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .expect("spawn batch");
    let start = Instant::now();
    while lines(&out) < 60 {
        assert!(start.elapsed() < Duration::from_secs(60), "no progress");
        std::thread::sleep(Duration::from_millis(5));
    }
    a.kill().expect("SIGKILL worker a");
    let _ = a.wait();

    assert_eq!(wait(&mut submit, Duration::from_secs(120)), Some(0));
    let rs = results(&out);
    assert_eq!(rs.len(), n, "every job has exactly one result");
    for (id, r) in &rs {
        let i = id.trim_start_matches("job-");
        assert_eq!(r["status"], "ok", "{id}: {r}");
        assert_eq!(r["stdout"], format!("{i}\n"), "{id}");
    }

    // The dead worker's jobs were taken over (it always holds jobs: each
    // takes ~10 ms and it asks for the next as soon as one finishes).
    let log = std::fs::read_to_string(d.join("worker-b.log")).expect("log");
    assert!(log.contains("taking over a job"), "{log}");

    // The survivor drains and stops on SIGTERM.
    let pid = b.id().to_string();
    let st = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(st.success());
    assert_eq!(wait(&mut b, Duration::from_secs(15)), Some(0));
}

#[test]
fn the_fuel_budget_holds_across_workers() {
    let redis = RedisServer::start();
    let d = scratch("budget");
    let mut a = worker(&redis, "worker-a", &d);
    let mut b = worker(&redis, "worker-b", &d);
    super::batch::assert_budget_holds(&d, &["--redis", &redis.url]);
    for w in [&mut a, &mut b] {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &w.id().to_string()])
            .status();
        assert_eq!(wait(w, Duration::from_secs(15)), Some(0));
    }
}

#[test]
fn sigterm_lets_the_jobs_in_flight_finish() {
    let redis = RedisServer::start();
    let d = scratch("drain");
    let m = d.join("jobs.jsonl");
    manifest(
        &m,
        &[serde_json::json!({
            "id": "slow",
            "language": "python",
            "source": "import time\ntime.sleep(1.0)\nprint('finished')",
            "limits": {"timeout": "10s"},
        })],
    );
    let mut w = worker(&redis, "worker-drain", &d);
    let out = d.join("r.jsonl");
    let (ms, os) = (m.display().to_string(), out.display().to_string());
    let mut submit = llmos_command(&["batch", "--redis", &redis.url, &ms, "--out", &os], &d)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn batch");
    // Let the worker take the job, then ask it to stop.
    std::thread::sleep(Duration::from_millis(500));
    let stopped = Instant::now();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &w.id().to_string()])
        .status();
    assert_eq!(wait(&mut w, Duration::from_secs(15)), Some(0));
    assert!(
        stopped.elapsed() >= Duration::from_millis(300),
        "the worker left before its job finished"
    );
    assert_eq!(wait(&mut submit, Duration::from_secs(30)), Some(0));
    let rs = results(&out);
    assert_eq!(rs["slow"]["status"], "ok", "{}", rs["slow"]);
    assert_eq!(rs["slow"]["stdout"], "finished\n");
}
