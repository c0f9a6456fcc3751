//! `llmos batch` end to end: directories and manifests, malformed input,
//! expected output, the batch fuel budget, resume after SIGKILL, and a
//! hostile mix that must not disturb its neighbours.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use llmos_tests::{Measured, fixture_path, llmos_command, measure_llmos, scratch_data_dir};
use serde_json::Value;

fn scratch(name: &str) -> PathBuf {
    let d = scratch_data_dir(&format!("batch-{name}"));
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

fn batch(args: &[&str], data: &Path) -> Measured {
    let mut a = vec!["batch"];
    a.extend_from_slice(args);
    let m = measure_llmos(&a, data);
    eprintln!(
        "batch {args:?}: exit {:?}, wall {:?}, rss {} MiB\nstderr: {}",
        m.code,
        m.wall,
        m.max_rss_bytes >> 20,
        String::from_utf8_lossy(&m.stderr[..m.stderr.len().min(4000)])
    );
    m
}

/// `llmos batch INPUT --out OUT EXTRA...`.
fn batch_into(input: &Path, out: &Path, extra: &[&str], data: &Path) -> Measured {
    let (input, out) = (input.display().to_string(), out.display().to_string());
    let mut args = vec![input.as_str(), "--out", out.as_str()];
    args.extend_from_slice(extra);
    batch(&args, data)
}

/// Every line of a results file, parsed (panics on a torn or bad line).
fn results(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("results file");
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line ({e}): {l:.300}")))
        .collect()
}

fn by_id(rs: &[Value]) -> HashMap<String, Value> {
    let mut m = HashMap::new();
    for r in rs {
        let id = r["id"].as_str().expect("id").to_string();
        assert!(m.insert(id.clone(), r.clone()).is_none(), "id {id} twice");
    }
    m
}

fn summary(m: &Measured) -> Value {
    let line = String::from_utf8_lossy(&m.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("summary ({e}): {line}"));
    v["summary"].clone()
}

fn jsonl(path: &Path, lines: &[Value]) {
    let mut s = String::new();
    for l in lines {
        let _ = writeln!(s, "{l}");
    }
    std::fs::write(path, s).expect("write manifest");
}

#[test]
fn a_directory_batch_writes_one_result_per_artifact_and_a_summary() {
    let d = scratch("dir");
    let corpus = d.join("corpus");
    std::fs::create_dir_all(corpus.join("nested/deeper")).expect("dirs");
    for i in 0..30 {
        std::fs::write(
            corpus.join(format!("j{i}.js")),
            format!("console.log({i} * 2)"),
        )
        .expect("js");
    }
    for i in 0..20 {
        std::fs::write(
            corpus.join(format!("nested/p{i}.py")),
            format!("print({i} * 3)"),
        )
        .expect("py");
    }
    std::fs::write(corpus.join("nested/deeper/bad.py"), "1 / 0\n").expect("bad");
    std::fs::write(corpus.join("README.txt"), "not an artifact").expect("txt");
    let out = d.join("results.jsonl");
    let m = batch_into(&corpus, &out, &["-j", "2", "--json"], &d);
    assert_eq!(m.code, Some(1), "one job failed");
    let rs = by_id(&results(&out));
    assert_eq!(rs.len(), 51);
    let j7 = &rs[&corpus.join("j7.js").display().to_string()];
    assert_eq!(j7["status"], "ok");
    assert_eq!(j7["stdout"], "14\n");
    assert!(j7["worker"].as_str().is_some_and(|w| !w.is_empty()), "{j7}");
    assert!(j7["timings"]["total_ms"].as_f64().is_some(), "{j7}");
    assert!(j7["fuel_consumed"].as_u64().is_some_and(|f| f > 0), "{j7}");
    let bad = &rs[&corpus.join("nested/deeper/bad.py").display().to_string()];
    assert_eq!(bad["status"], "error");
    assert_eq!(bad["error"]["class"], "ZeroDivisionError");

    let s = summary(&m);
    assert_eq!(s["jobs"], 51);
    assert_eq!(s["statuses"]["ok"], 50);
    assert_eq!(s["statuses"]["error"], 1);
    assert_eq!(s["failures"][0]["class"], "ZeroDivisionError");
    assert!(s["fuel"]["p50"].as_u64().is_some_and(|f| f > 0));
    assert!(s["fuel"]["p95"].as_u64() <= s["fuel"]["max"].as_u64());
    assert_eq!(s["slowest"].as_array().map(Vec::len), Some(5));

    // The human summary names the counts and the failure.
    let out2 = d.join("results2.jsonl");
    let m = batch_into(&corpus, &out2, &[], &d);
    let text = String::from_utf8_lossy(&m.stdout);
    assert!(text.contains("51 jobs"), "{text}");
    assert!(text.contains("ZeroDivisionError"), "{text}");

    // Results are never overwritten without --resume.
    let m = batch_into(&corpus, &out, &[], &d);
    assert_eq!(m.code, Some(2));
    assert!(String::from_utf8_lossy(&m.stderr).contains("--resume"));
}

#[test]
fn malformed_lines_are_reported_with_their_line_and_skipped() {
    let d = scratch("malformed");
    let manifest = d.join("jobs.jsonl");
    let good = fixture_path("python/hello.py");
    let text = [
        r#"{"id": "a", "source": "print(6 * 7)", "language": "python", "expect_stdout": "42\n"}"#.to_string(),
        r#"{"id": "b", "source": "#.to_string(),
        r#"{"id": "c", "source": "console.log('hi')", "language": "javascript", "expect_stdout": "bye\n"}"#.to_string(),
        r#"{"id": "d", "sorce": "1", "language": "python"}"#.to_string(),
        r#"{"id": "e", "source": "1"}"#.to_string(),
        String::new(),
        r#"{"id": "a", "source": "2", "language": "python"}"#.to_string(),
        format!(r#"{{"id": "f", "path": "{}"}}"#, good.display()),
        r#"{"id": "g", "source": "for(;;){}", "language": "js", "limits": {"fuel": 1000000}}"#.to_string(),
        r#"{"id": "h", "path": "missing.py"}"#.to_string(),
        r#"{"id": "i", "source": "1", "language": "cobol"}"#.to_string(),
        r#"{"id": "j", "source": "1", "language": "python", "limits": {"memory": "lots"}}"#.to_string(),
        "[1, 2, 3]".to_string(),
    ]
    .join("\n");
    std::fs::write(&manifest, text).expect("manifest");
    let out = d.join("r.jsonl");
    let m = batch_into(&manifest, &out, &["--json"], &d);
    assert_eq!(m.code, Some(1));
    let err = String::from_utf8_lossy(&m.stderr);
    for line in [2, 4, 5, 7, 12, 13] {
        assert!(
            err.contains(&format!("jobs.jsonl:{line}:")),
            "line {line} not reported: {err}"
        );
    }
    assert!(err.contains("duplicate id `a`"), "{err}");
    let rs = by_id(&results(&out));
    let ids: HashSet<&str> = rs.keys().map(String::as_str).collect();
    assert_eq!(ids, HashSet::from(["a", "c", "f", "g", "h", "i"]));
    assert_eq!(rs["a"]["status"], "ok");
    assert_eq!(rs["c"]["status"], "wrong_output");
    let diff = rs["c"]["diff"].as_str().expect("diff");
    assert!(diff.contains("-bye") && diff.contains("+hi"), "{diff}");
    assert_eq!(rs["f"]["status"], "ok");
    assert_eq!(rs["g"]["status"], "out_of_fuel");
    assert_eq!(rs["h"]["status"], "invalid");
    assert!(
        rs["h"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("missing.py")),
        "{}",
        rs["h"]
    );
    assert_eq!(rs["i"]["status"], "invalid");
    let s = summary(&m);
    assert_eq!(s["input_problems"], 6);
}

#[test]
fn the_fuel_budget_holds_across_the_batch() {
    assert_budget_holds(&scratch("budget"), &[]);
}

/// 40 jobs of a few million fuel each against a budget of about ten and a
/// half runs, with `extra` flags (`--redis URL` runs it on Redis workers):
/// consumption stays within the budget, about ten jobs run, the rest are
/// `not_run` with the reason.
pub(crate) fn assert_budget_holds(d: &Path, extra: &[&str]) {
    let manifest = d.join("jobs.jsonl");
    let lines: Vec<Value> = (0..40)
        .map(|i| {
            serde_json::json!({
                "id": format!("j{i}"),
                "language": "javascript",
                "source": "let s = 0; for (let i = 0; i < 200000; i++) s += i; s",
            })
        })
        .collect();
    jsonl(&manifest, &lines);
    let probe = d.join("probe.jsonl");
    jsonl(&probe, &lines[..1]);
    let out = d.join("probe-r.jsonl");
    let m = batch_into(&probe, &out, extra, d);
    assert_eq!(m.code, Some(0), "the probe runs");
    let one = results(&out)[0]["fuel_consumed"].as_u64().expect("fuel");
    let budget = one * 10 + one / 2;

    let out = d.join("r.jsonl");
    let (budget_s, fuel_s) = (budget.to_string(), (one * 2).to_string());
    let mut args = vec!["--budget-fuel", &budget_s, "--fuel", &fuel_s, "--json"];
    args.extend_from_slice(extra);
    let m = batch_into(&manifest, &out, &args, d);
    assert_eq!(m.code, Some(1), "not_run jobs are failures");
    let rs = results(&out);
    assert_eq!(rs.len(), 40, "every job has a result");
    let used: u64 = rs.iter().filter_map(|r| r["fuel_consumed"].as_u64()).sum();
    assert!(used <= budget, "used {used} of {budget}");
    let ok = rs.iter().filter(|r| r["status"] == "ok").count();
    let not_run: Vec<&Value> = rs.iter().filter(|r| r["status"] == "not_run").collect();
    assert!(
        (9..=11).contains(&ok),
        "{ok} ran ok with a budget of ~10.5 runs"
    );
    assert!(not_run.len() >= 28, "{}", not_run.len());
    assert!(
        not_run[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("budget"))
    );
    assert_eq!(summary(&m)["statuses"]["not_run"], not_run.len());
}

#[test]
fn a_sigkilled_batch_resumes_without_losing_or_repeating_a_job() {
    let d = scratch("resume");
    let corpus = d.join("corpus");
    std::fs::create_dir_all(&corpus).expect("corpus");
    let n = 3000;
    for i in 0..n {
        std::fs::write(
            corpus.join(format!("a{i:05}.js")),
            format!("console.log({i})"),
        )
        .expect("js");
    }
    let out = d.join("r.jsonl");
    let args = [
        "batch",
        corpus.to_str().expect("utf-8"),
        "--out",
        out.to_str().expect("utf-8"),
        "-j",
        "2",
    ];
    let mut child = llmos_command(&args, &d)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let start = Instant::now();
    loop {
        let lines = std::fs::read(&out)
            .map(|b| b.iter().filter(|&&c| c == b'\n').count())
            .unwrap_or(0);
        if lines >= 300 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "no progress");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let bytes = std::fs::read(&out).expect("results");
    let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let before: Vec<Value> = String::from_utf8_lossy(&bytes[..complete])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("torn line ({e}): {l}")))
        .collect();
    assert!(
        before.len() >= 300 && before.len() < n,
        "{} results before the kill",
        before.len()
    );

    let m = batch_into(&corpus, &out, &["--resume", "--json"], &d);
    assert_eq!(m.code, Some(0));
    let rs = by_id(&results(&out));
    assert_eq!(rs.len(), n);
    for (id, r) in &rs {
        let i: usize = id
            .rsplit('a')
            .next()
            .and_then(|s| s.trim_end_matches(".js").parse().ok())
            .expect("index");
        assert_eq!(r["stdout"], format!("{i}\n"), "{id}");
    }
    let s = summary(&m);
    assert_eq!(s["skipped"].as_u64(), Some(before.len() as u64));
    assert_eq!(s["jobs"].as_u64(), Some((n - before.len()) as u64));
}

/// A bomb, the limits it runs with, and the statuses it may end with.
fn bombs() -> Vec<(&'static str, Value, &'static [&'static str])> {
    use serde_json::json;
    vec![
        (
            "memory_bomb.js",
            json!({"memory": "64MiB"}),
            &["memory_limit"],
        ),
        (
            "memory_bomb.py",
            json!({"memory": "64MiB"}),
            &["memory_limit"],
        ),
        (
            "infinite_loop.js",
            json!({"fuel": 50_000_000}),
            &["out_of_fuel"],
        ),
        (
            "infinite_loop.py",
            json!({"fuel": 50_000_000}),
            &["out_of_fuel"],
        ),
        (
            "infinite_loop.js",
            json!({"fuel": "none", "timeout": "300ms"}),
            &["timeout"],
        ),
        ("deep_recursion.js", json!({}), &["stack_overflow", "error"]),
        ("deep_recursion.py", json!({}), &["error"]),
        (
            "stdout_flood.js",
            json!({"output_limit": "64KiB"}),
            &["output_limit"],
        ),
        (
            "stdout_flood.py",
            json!({"output_limit": "64KiB"}),
            &["output_limit"],
        ),
        ("sleep.py", json!({"timeout": "300ms"}), &["timeout"]),
        (
            "host_storage_flood.js",
            json!({"fuel": 200_000_000, "timeout": "2s"}),
            &["out_of_fuel", "timeout"],
        ),
        (
            "host_plot_flood.py",
            json!({"fuel": 500_000_000, "timeout": "2s"}),
            &["out_of_fuel", "timeout"],
        ),
        (
            "host_canvas_flood.js",
            json!({"timeout": "1s"}),
            &["out_of_fuel", "timeout"],
        ),
    ]
}

#[test]
fn a_hundred_bombs_never_disturb_a_thousand_good_jobs() {
    let d = scratch("hostile");
    let manifest = d.join("jobs.jsonl");
    let kinds = bombs();
    let mut lines = Vec::new();
    let mut expect: HashMap<String, (&[&str], Option<String>)> = HashMap::new();
    let mut b = 0;
    for i in 0..1000u64 {
        let (id, language, source) = if i % 5 == 0 {
            (
                format!("good-py-{i}"),
                "python",
                format!("x = {i}\nprint(x * x)"),
            )
        } else {
            (
                format!("good-js-{i}"),
                "javascript",
                format!("const x = {i}; console.log(x * x)"),
            )
        };
        let out = format!("{}\n", i * i);
        lines.push(serde_json::json!({"id": id, "language": language, "source": source, "expect_stdout": out}));
        expect.insert(id, (&["ok"], Some(out)));
        // A bomb after every tenth good job, interleaved.
        if i % 10 == 9 {
            let (file, limits, statuses) = &kinds[b % kinds.len()];
            let id = format!("bomb-{b}-{file}");
            lines.push(serde_json::json!({
                "id": id,
                "path": fixture_path(&format!("hostile/{file}")),
                "limits": limits,
            }));
            expect.insert(id, (statuses, None));
            b += 1;
        }
    }
    assert_eq!(b, 100);
    jsonl(&manifest, &lines);
    let out = d.join("r.jsonl");
    let m = batch_into(&manifest, &out, &["-j", "2", "--json"], &d);
    assert_eq!(m.code, Some(1), "the bombs failed");
    assert!(m.wall < Duration::from_secs(240), "took {:?}", m.wall);
    assert!(
        m.max_rss_bytes < 300 << 20,
        "coordinator rss {} MiB",
        m.max_rss_bytes >> 20
    );
    let rs = by_id(&results(&out));
    assert_eq!(rs.len(), 1100);
    for (id, (statuses, stdout)) in &expect {
        let r = &rs[id];
        let status = r["status"].as_str().unwrap_or("?");
        assert!(
            statuses.contains(&status),
            "{id}: {status} not in {statuses:?}: {:.600}",
            r.to_string()
        );
        if let Some(s) = stdout {
            assert_eq!(r["stdout"].as_str(), Some(s.as_str()), "{id}");
        }
    }
    let s = summary(&m);
    assert_eq!(s["statuses"]["ok"], 1000);
}

#[test]
fn fix_repairs_failing_jobs_through_the_llm() {
    use llmos_tests::fake_llm::{FakeLlm, Reply};
    const BROKEN: &str =
        "const total = [1, 2, 3].reduce((a, b) => a + b, 0);\nconsole.log(totl);\n";
    const FIXED: &str =
        "const total = [1, 2, 3].reduce((a, b) => a + b, 0);\nconsole.log(total);\n";
    let answer = || Reply::text(format!("The name was misspelt:\n\n```js\n{FIXED}```\n"));
    let fake = FakeLlm::start(vec![answer(), answer()]);
    let d = scratch("fix");
    let manifest = d.join("jobs.jsonl");
    let mut lines: Vec<Value> = (0..3)
        .map(|i| serde_json::json!({"id": format!("good{i}"), "language": "js", "source": format!("console.log({i})")}))
        .collect();
    for i in 0..2 {
        lines.push(serde_json::json!({"id": format!("broken{i}"), "language": "js", "source": BROKEN, "expect_stdout": "6\n"}));
    }
    jsonl(&manifest, &lines);
    let out = d.join("r.jsonl");
    let (m, o) = (manifest.display().to_string(), out.display().to_string());
    let run = llmos_command(
        &[
            "batch",
            &m,
            "--out",
            &o,
            "--json",
            "-j",
            "1",
            "--per-worker",
            "1",
            "--fix",
        ],
        &d,
    )
    .env("LLMOS_LLM_PROVIDER", "openai")
    .env("LLMOS_LLM_URL", fake.url())
    .env("LLMOS_LLM_MODEL", "test-model")
    .env("OPENAI_API_KEY", "sk-test-batch")
    .output()
    .expect("batch");
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let rs = by_id(&results(&out));
    for i in 0..2 {
        let r = &rs[&format!("broken{i}")];
        assert_eq!(r["status"], "ok", "{r}");
        assert_eq!(r["stdout"], "6\n", "{r}");
        assert_eq!(r["supervisor"]["repairs"], 1, "{r}");
        let code = r["supervisor"]["code"].as_str().expect("fixed code");
        assert!(code.contains("console.log(total)"), "{code}");
    }
    for i in 0..3 {
        let r = &rs[&format!("good{i}")];
        assert_eq!(r["status"], "ok");
        assert_eq!(r["supervisor"]["repairs"], 0, "{r}");
    }
    assert_eq!(fake.requests().len(), 2, "one repair per broken job");
}

#[test]
fn ctrl_c_finishes_the_jobs_in_flight_and_leaves_the_rest_for_resume() {
    use std::os::unix::process::CommandExt;
    let d = scratch("interrupt");
    let manifest = d.join("jobs.jsonl");
    let mut lines = vec![serde_json::json!({
        "id": "slow",
        "language": "python",
        "source": "import time\ntime.sleep(1.0)\nprint('finished')",
        "limits": {"timeout": "10s"},
    })];
    // Queued behind the slow job on the only lane.
    lines.extend((0..20).map(
        |i| serde_json::json!({"id": format!("q{i}"), "language": "js", "source": format!("{i}")}),
    ));
    jsonl(&manifest, &lines);
    let out = d.join("r.jsonl");
    let (m, o) = (manifest.display().to_string(), out.display().to_string());
    // Its own process group, as a shell job in a terminal would be.
    let mut child = llmos_command(
        &["batch", &m, "--out", &o, "-j", "1", "--per-worker", "1"],
        &d,
    )
    .process_group(0)
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .expect("spawn");
    std::thread::sleep(Duration::from_millis(500));
    let workers: Vec<String> = std::fs::read_dir(format!("/proc/{}/task", child.id()))
        .expect("tasks")
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|c| c.split_whitespace().map(String::from).collect::<Vec<_>>())
        .collect();
    assert_eq!(workers.len(), 1, "one worker process");
    // Ctrl-C: SIGINT to the whole group, workers included.
    let group = format!("-{}", child.id());
    let st = std::process::Command::new("kill")
        .args(["-INT", "--", &group])
        .status()
        .expect("kill");
    assert!(st.success());
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(0), "the slow job finished ok");
    let rs = by_id(&results(&out));
    assert_eq!(rs["slow"]["status"], "ok", "{}", rs["slow"]);
    assert_eq!(rs["slow"]["stdout"], "finished\n");
    let ran_on = rs["slow"]["worker"].as_str().expect("worker");
    assert!(
        ran_on.ends_with(&format!(":{}", workers[0])),
        "the job finished on the worker that had it ({ran_on}, {workers:?}), not a replacement"
    );
    assert!(rs.len() < 21, "the queued jobs were not run");
    assert!(
        rs.values().all(|r| r["status"] != "not_run"),
        "nothing is written for them"
    );

    let m2 = batch_into(&manifest, &out, &["--resume", "--json"], &d);
    assert_eq!(m2.code, Some(0));
    assert_eq!(by_id(&results(&out)).len(), 21);
}
