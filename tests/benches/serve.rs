//! `make bench`: `llmos serve` under load, against the same runs through
//! the library directly.
//!
//! A real server on 127.0.0.1 gets 200 concurrent clients, each posting
//! trivial runs (JavaScript and Python, alternating) back to back, while 20
//! subscribers read the event stream, for 60 s (`LLMOS_BENCH_SERVE_SECS`;
//! 10 s with `LLMOS_BENCH_QUICK`). Reported: requests, any not answered
//! 200 with an `ok` outcome (there must be none), latency p50/p99, events
//! each subscriber received, and the server's RSS sampled every second
//! (first vs last 10 s: memory must stay flat). The baseline is the same
//! mix through `Llmos::run` in-process at the same concurrency.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use llmos_tests::LlmosServer;
use llmos_tests::bench::median;

const CLIENTS: usize = 200;
const SUBSCRIBERS: usize = 20;

fn body(i: usize) -> serde_json::Value {
    if i.is_multiple_of(2) {
        serde_json::json!({"language": "javascript", "source": format!("{i} + 1")})
    } else {
        serde_json::json!({"language": "python", "source": format!("{i} + 1")})
    }
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let secs: u64 = std::env::var("LLMOS_BENCH_SERVE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if std::env::var_os("LLMOS_BENCH_QUICK").is_some() {
            10
        } else {
            60
        });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let server = LlmosServer::start("bench-serve", &["--max-runs-per-client", "1000"], &[]);
    let pid = server.pid();
    let url = server.url.clone();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(CLIENTS)
        .timeout(Duration::from_secs(120))
        .build()
        .expect("client");

    let stop = Arc::new(AtomicBool::new(false));
    // Subscribers.
    let events: Vec<Arc<AtomicU64>> = (0..SUBSCRIBERS)
        .map(|_| Arc::new(AtomicU64::new(0)))
        .collect();
    let missed: Vec<Arc<AtomicU64>> = (0..SUBSCRIBERS)
        .map(|_| Arc::new(AtomicU64::new(0)))
        .collect();
    for (counter, missed) in events.iter().zip(&missed) {
        let (http, url, counter, missed, stop) = (
            http.clone(),
            url.clone(),
            counter.clone(),
            missed.clone(),
            stop.clone(),
        );
        rt.spawn(async move {
            let Ok(mut r) = http.get(format!("{url}/v1/events")).send().await else {
                return;
            };
            let mut buf = String::new();
            let mut lagged = false;
            while !stop.load(Ordering::Relaxed) {
                let Ok(Some(c)) = r.chunk().await else { return };
                buf.push_str(&String::from_utf8_lossy(&c));
                while let Some(nl) = buf.find('\n') {
                    let line: String = buf.drain(..=nl).collect();
                    if let Some(kind) = line.strip_prefix("event: ") {
                        counter.fetch_add(1, Ordering::Relaxed);
                        lagged = kind.trim() == "lagged";
                    } else if let Some(data) = line.strip_prefix("data: ")
                        && lagged
                    {
                        let n = serde_json::from_str::<serde_json::Value>(data.trim())
                            .ok()
                            .and_then(|v| v["missed"].as_u64())
                            .unwrap_or(0);
                        missed.fetch_add(n, Ordering::Relaxed);
                    }
                }
            }
        });
    }
    // RSS sampler.
    let rss = Arc::new(std::sync::Mutex::new(Vec::<u64>::new()));
    {
        let (rss, stop) = (rss.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Ok(mut v) = rss.lock() {
                    v.push(rss_kib(pid));
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(secs);
    let lost = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let handles: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (http, url, lost) = (http.clone(), url.clone(), lost.clone());
            rt.spawn(async move {
                let mut lat = Vec::new();
                let mut i = c;
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let r = http
                        .post(format!("{url}/v1/runs"))
                        .json(&body(i))
                        .send()
                        .await;
                    let ok = match r {
                        Ok(r) if r.status() == 200 => {
                            r.json::<serde_json::Value>().await.is_ok_and(|v| {
                                v["status"] == "ok"
                                    && v["value"].as_str().and_then(|s| s.parse::<usize>().ok())
                                        == Some(i + 1)
                            })
                        }
                        _ => false,
                    };
                    if ok {
                        lat.push(t.elapsed().as_secs_f64() * 1e3);
                    } else {
                        lost.fetch_add(1, Ordering::Relaxed);
                    }
                    i += CLIENTS;
                }
                lat
            })
        })
        .collect();
    let mut lat: Vec<f64> = Vec::new();
    for h in handles {
        lat.extend(rt.block_on(h).unwrap_or_default());
    }
    let wall = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(300));
    let served = lat.len();
    let p50 = percentile(&mut lat, 0.5);
    let p99 = percentile(&mut lat, 0.99);
    let samples = rss.lock().map(|v| v.clone()).unwrap_or_default();
    let window = samples.len().clamp(1, 10);
    let first = median(
        samples
            .iter()
            .skip(2)
            .take(window)
            .map(|&k| k as f64)
            .collect(),
    );
    let last = median(
        samples
            .iter()
            .rev()
            .take(window)
            .map(|&k| k as f64)
            .collect(),
    );
    let ev: Vec<u64> = events.iter().map(|e| e.load(Ordering::Relaxed)).collect();
    let miss: Vec<u64> = missed.iter().map(|e| e.load(Ordering::Relaxed)).collect();
    drop(server);

    // Baseline: the same mix through the library, same concurrency.
    let cfg = llmos_tests::test_config();
    let llmos = Arc::new(
        rt.block_on(llmos::Llmos::boot(
            &llmos::BootOptions {
                components_dir: Some(cfg.components_dir.clone()),
                system_volume: Some(cfg.system_volume.clone()),
                cache_dir: Some(cfg.cache_dir.clone()),
                data_dir: Some(cfg.data_dir.join("bench-serve-lib")),
                ..Default::default()
            },
            &|_| {},
        ))
        .expect("boot"),
    );
    let lib_secs = secs.min(20);
    let deadline = Instant::now() + Duration::from_secs(lib_secs);
    let sem = Arc::new(tokio::sync::Semaphore::new(
        2 * std::thread::available_parallelism().map_or(2, |n| n.get()),
    ));
    let handles: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (llmos, sem) = (llmos.clone(), sem.clone());
            rt.spawn(async move {
                let mut lat = Vec::new();
                let mut i = c;
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let b = body(i);
                    let _slot = sem.acquire().await;
                    let a = llmos.artifact(
                        llmos::ArtifactSource::Inline {
                            language: b["language"].as_str().unwrap_or("python").into(),
                            source: b["source"].as_str().unwrap_or("").into(),
                            name: None,
                        },
                        &llmos::ArtifactOptions {
                            untrusted: true,
                            ..Default::default()
                        },
                    );
                    if let Ok(a) = a
                        && let Ok(o) = llmos.run(&a, &llmos::RunOptions::default()).await
                        && o.is_ok()
                    {
                        lat.push(t.elapsed().as_secs_f64() * 1e3);
                    }
                    i += CLIENTS;
                }
                lat
            })
        })
        .collect();
    let mut lib: Vec<f64> = Vec::new();
    for h in handles {
        lib.extend(rt.block_on(h).unwrap_or_default());
    }
    let lib_p50 = percentile(&mut lib, 0.5);
    let lib_p99 = percentile(&mut lib, 0.99);

    println!();
    println!(
        "llmos serve under load: {CLIENTS} concurrent clients + {SUBSCRIBERS} SSE subscribers, {wall:.0} s"
    );
    println!("| | requests | lost | rate | p50 | p99 |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| HTTP (`POST /v1/runs`, JS/Python) | {served} | {} | {:.0}/s | {p50:.1} ms | {p99:.1} ms |",
        lost.load(Ordering::Relaxed),
        served as f64 / wall
    );
    println!(
        "| library (`Llmos::run`, same mix, {lib_secs} s) | {} | – | {:.0}/s | {lib_p50:.1} ms ({:.2}×) | {lib_p99:.1} ms ({:.2}×) |",
        lib.len(),
        lib.len() as f64 / lib_secs as f64,
        p50 / lib_p50,
        p99 / lib_p99,
    );
    println!(
        "events per subscriber: received min {} max {}, announced as missed (`lagged`, a slow reader) min {} max {}; server RSS: {:.0} MiB after warm-up, {:.0} MiB at the end ({:+.1} %)",
        ev.iter().min().unwrap_or(&0),
        ev.iter().max().unwrap_or(&0),
        miss.iter().min().unwrap_or(&0),
        miss.iter().max().unwrap_or(&0),
        first / 1024.0,
        last / 1024.0,
        (last - first) / first * 100.0
    );
    assert_eq!(lost.load(Ordering::Relaxed), 0, "requests were lost");
}
