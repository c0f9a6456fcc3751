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
        quotas: Default::default(),
        instance_pool: None,
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

/// A finished `llmos` process with what it cost the host.
#[derive(Debug)]
pub struct Measured {
    /// Exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Wall time from spawn to exit.
    pub wall: std::time::Duration,
    /// Peak resident set of the process, in bytes (its `VmHWM`, polled).
    pub max_rss_bytes: u64,
    /// User plus system CPU time of the process.
    pub cpu: std::time::Duration,
}

impl Measured {
    /// stdout parsed as the JSON object of `llmos run --json`.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {}\nstderr: {}",
                String::from_utf8_lossy(&self.stdout[..self.stdout.len().min(4096)]),
                String::from_utf8_lossy(&self.stderr[..self.stderr.len().min(4096)])
            )
        })
    }
}

/// Run the `llmos` binary with `args` on the test configuration (its own
/// data directory under `data`), and measure its wall time and CPU time
/// (`wait4`) and peak RSS (`/proc/PID/status`). stdout and stderr are drained concurrently, so a
/// flood cannot block the child; what they hold is counted, not limited.
pub fn measure_llmos(args: &[&str], data: &Path) -> Measured {
    use std::io::Read;
    use std::os::unix::process::ExitStatusExt;
    let start = std::time::Instant::now();
    let mut child = llmos_command(args, data)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn llmos: {e}"));
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let pid = child.id() as libc::pid_t;
    // Peak RSS from the kernel's high-water mark of the child's own address
    // space (`VmHWM`), polled until it exits. `wait4`'s `ru_maxrss` cannot be
    // used: Linux carries the forking process's high-water mark across
    // `exec`, so every child of a big test process would report the test
    // process's size.
    let hwm = std::thread::spawn(move || {
        let path = format!("/proc/{pid}/status");
        let mut peak = 0u64;
        while let Ok(text) = std::fs::read_to_string(&path) {
            let Some(kb) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            else {
                break; // a zombie: its memory is gone
            };
            peak = peak.max(kb * 1024);
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        peak
    });
    let mut status: libc::c_int = 0;
    // SAFETY: `rusage` is plain data that wait4 fills in; `pid` is our child,
    // which has not been waited for (std's `Child` is dropped unwaited).
    #[allow(unsafe_code)]
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        let r = libc::wait4(pid, &mut status, 0, &mut usage);
        assert_eq!(r, pid, "wait4: {}", std::io::Error::last_os_error());
        usage
    };
    let wall = start.elapsed();
    std::mem::forget(child);
    let exit = std::process::ExitStatus::from_raw(status);
    let tv = |t: libc::timeval| {
        std::time::Duration::from_secs(t.tv_sec as u64)
            + std::time::Duration::from_micros(t.tv_usec as u64)
    };
    Measured {
        code: exit.code(),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        wall,
        max_rss_bytes: hwm.join().unwrap_or(0),
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
    }
}

/// A `llmos` command on the test configuration with its data directory at
/// `data`, for tests that drive the process themselves (signals, stdin).
pub fn llmos_command(args: &[&str], data: &Path) -> std::process::Command {
    let cfg = test_config();
    let mut c = std::process::Command::new(llmos_bin());
    c.args(args)
        .env("LLMOS_COMPONENTS", &cfg.components_dir)
        .env("LLMOS_CACHE_DIR", &cfg.cache_dir)
        .env("LLMOS_SYSTEM_VOLUME", &cfg.system_volume)
        .env("LLMOS_DATA_DIR", data)
        .env_remove("LLMOS_CONFIG")
        .env_remove("LLMOS_LLM_PROVIDER")
        .current_dir(repo());
    c
}

/// A fresh data directory for one measured process, under `target/test-data`.
pub fn scratch_data_dir(name: &str) -> PathBuf {
    let d = test_data_dir().join("scratch").join(name);
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// A `redis-server` of our own on 127.0.0.1 (a free port, no persistence),
/// stopped when dropped.
pub struct RedisServer {
    child: std::process::Child,
    /// `redis://127.0.0.1:PORT`.
    pub url: String,
    /// Its port.
    pub port: u16,
}

impl RedisServer {
    /// Start one and wait until it answers.
    pub fn start() -> RedisServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("no free port: {e}"));
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("redis-server (make test installs it): {e}"));
        let server = RedisServer {
            child,
            url: format!("redis://127.0.0.1:{port}"),
            port,
        };
        let start = std::time::Instant::now();
        loop {
            use std::io::{Read, Write};
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                let mut buf = [0u8; 16];
                if s.write_all(b"PING\r\n").is_ok()
                    && s.read(&mut buf)
                        .is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
                {
                    return server;
                }
            }
            assert!(start.elapsed().as_secs() < 10, "redis-server did not start");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Helpers shared by the benchmarks (`make bench`).
pub mod bench {
    use std::time::Instant;

    /// `full` iterations, or a fifth (at least 3) with `LLMOS_BENCH_QUICK`.
    pub fn iterations(full: usize) -> usize {
        if std::env::var_os("LLMOS_BENCH_QUICK").is_some() {
            (full / 5).max(3)
        } else {
            full
        }
    }

    /// The median of `v` (NaN when empty).
    pub fn median(mut v: Vec<f64>) -> f64 {
        v.sort_by(|a, b| a.total_cmp(b));
        let n = v.len();
        if n == 0 {
            return f64::NAN;
        }
        if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        }
    }

    /// The median wall time of `n` calls of `f`, in milliseconds, after one
    /// warm-up call.
    pub fn time_ms(n: usize, mut f: impl FnMut()) -> f64 {
        f();
        median(
            (0..n)
                .map(|_| {
                    let t = Instant::now();
                    f();
                    t.elapsed().as_secs_f64() * 1e3
                })
                .collect(),
        )
    }
}

/// A `llmos serve` process on 127.0.0.1 (a free port) with the test
/// configuration, ready (booted) when [`LlmosServer::start`] returns;
/// SIGTERM and wait when dropped.
pub struct LlmosServer {
    child: Option<std::process::Child>,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The data directory.
    pub data: PathBuf,
}

impl LlmosServer {
    /// Start `llmos serve --bind 127.0.0.1:0 EXTRA...` with `env` set, and
    /// wait until the kernel has booted.
    pub fn start(name: &str, extra: &[&str], env: &[(&str, String)]) -> LlmosServer {
        use std::io::BufRead;
        // Compile every language into the test cache once, before servers
        // boot in parallel (each would otherwise compile them itself).
        static WARM: std::sync::Once = std::sync::Once::new();
        WARM.call_once(|| {
            let _ = llmos_command(&["check"], &scratch_data_dir("serve-warm-cache")).output();
        });
        let data = scratch_data_dir(name);
        let mut args = vec!["serve", "--bind", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let mut cmd = llmos_command(&args, &data);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("llmos serve: {e}"));
        let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap_or_else(|e| panic!("reading llmos serve's address: {e}"));
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .map(|u| u.trim_end_matches('/').to_string())
            .unwrap_or_else(|| panic!("llmos serve printed no address: {line:?}"));
        let server = LlmosServer {
            child: Some(child),
            url,
            data,
        };
        server.wait_ready(extra.contains(&"--token-file"));
        server
    }

    fn wait_ready(&self, token: bool) {
        let start = std::time::Instant::now();
        loop {
            // /v1/boot needs the token when one is set: readiness is then
            // judged by the public dashboard answering and a 401.
            if let Ok(r) = reqwest::blocking::get(format!("{}/v1/boot", self.url)) {
                if token && r.status() == 401 {
                    std::thread::sleep(std::time::Duration::from_millis(2000));
                    return;
                }
                if let Ok(v) = r.json::<serde_json::Value>() {
                    match v["state"].as_str() {
                        Some("ready") => return,
                        Some("failed") => panic!("llmos serve failed to boot: {v}"),
                        _ => {}
                    }
                }
            }
            assert!(
                start.elapsed().as_secs() < 120,
                "llmos serve did not boot in 120 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, std::process::Child::id)
    }

    /// SIGTERM it and wait for its exit status.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        // SAFETY: kill(2) on our own child's pid.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        child.wait().ok()
    }
}

impl Drop for LlmosServer {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}
