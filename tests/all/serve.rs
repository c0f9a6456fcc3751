//! `llmos serve` over real HTTP on 127.0.0.1, and `llmos mcp` over stdio:
//! runs, outputs, fixes against the loopback fake LLM, sessions,
//! snapshots, batches, events, MCP, the token, bounds, bad input and a
//! graceful shutdown that loses nothing.

use std::io::{BufRead, BufReader, Read, Write};
use std::time::{Duration, Instant};

use llmos_tests::LlmosServer;
use llmos_tests::fake_llm::{FakeLlm, Reply};
use serde_json::{Value, json};

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

fn post(s: &LlmosServer, path: &str, body: Value) -> (u16, Value) {
    let r = client()
        .post(format!("{}{path}", s.url))
        .json(&body)
        .send()
        .expect("request");
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

fn get(s: &LlmosServer, path: &str) -> (u16, Value) {
    let r = client()
        .get(format!("{}{path}", s.url))
        .send()
        .expect("request");
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

fn error_code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

#[test]
fn runs_answer_the_run_json_object_with_outputs_served_by_id() {
    let s = LlmosServer::start("serve-runs", &[], &[]);
    let (status, v) = post(
        &s,
        "/v1/runs",
        json!({"language": "python", "source": "from llmos import viz\nviz.plot([1, 4, 9])\nprint('hi')\n6*7"}),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["status"], "ok", "{v}");
    assert_eq!(v["value"], "42");
    assert_eq!(v["stdout"], "hi\n");
    assert!(
        v["fuel_consumed"].as_u64().is_some_and(|f| f > 0),
        "untrusted runs are metered: {v}"
    );
    let id = v["id"].as_str().expect("id").to_string();
    let png = v["outputs"][0]["items"]
        .as_array()
        .and_then(|items| items.iter().find(|i| i["mime"] == "image/png"))
        .and_then(|i| i["url"].as_str())
        .expect("a png url")
        .to_string();
    let r = client().get(format!("{}{png}", s.url)).send().expect("png");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/png");
    let bytes = r.bytes().expect("bytes");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");

    // An HTML document is served under its own sandboxing policy.
    let (_, doc) = post(
        &s,
        "/v1/runs",
        json!({"language": "js", "source": "kernel.dom.root.appendChild(kernel.dom.createElement('h2', { text: 'Report' })); 1"}),
    );
    let url = doc["outputs"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|o| o["items"].as_array().into_iter().flatten())
        .find(|i| i["mime"] == "text/html")
        .and_then(|i| i["url"].as_str())
        .unwrap_or_else(|| panic!("no HTML document: {doc}"));
    let r = client()
        .get(format!("{}{url}", s.url))
        .send()
        .expect("html");
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_string();
    assert!(csp.starts_with("sandbox"), "{csp}");
    assert!(csp.contains("connect-src 'none'"), "{csp}");
    assert!(r.text().expect("text").contains("Report"));

    // Async: 202 and an id to poll.
    let (status, v) = post(
        &s,
        "/v1/runs",
        json!({"language": "js", "source": "let s = 0; for (let i = 0; i < 1e5; i++) s += i; s", "wait": false}),
    );
    assert_eq!(status, 202, "{v}");
    let async_id = v["id"].as_str().expect("id").to_string();
    let start = Instant::now();
    let run = loop {
        let (_, r) = get(&s, &format!("/v1/runs/{async_id}"));
        if r["state"] == "finished" {
            break r;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "never finished: {r}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(run["outcome"]["value"], "4999950000", "{run}");
    assert_eq!(run["kind"], "run");

    // A runaway ends with its limit's status, and the server carries on.
    let (status, v) = post(
        &s,
        "/v1/runs",
        json!({"language": "js", "source": "while (true) {}", "limits": {"timeout": "300ms", "fuel": "1000000000000"}}),
    );
    assert_eq!(status, 200);
    assert!(
        ["timeout", "out_of_fuel"].contains(&v["status"].as_str().unwrap_or("")),
        "{v}"
    );
    let (_, list) = get(&s, "/v1/runs");
    let ids: Vec<&str> = list
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert!(
        ids.contains(&id.as_str()) && ids.contains(&async_id.as_str()),
        "{ids:?}"
    );
}

#[test]
fn bad_requests_get_clear_4xx_and_nothing_crashes() {
    let s = LlmosServer::start("serve-bad", &["--max-body", "64KiB"], &[]);
    let c = client();
    let raw = |path: &str, ct: &str, body: Vec<u8>| {
        let r = c
            .post(format!("{}{path}", s.url))
            .header("content-type", ct)
            .body(body)
            .send()
            .expect("request");
        (
            r.status().as_u16(),
            r.json::<Value>().unwrap_or(Value::Null),
        )
    };
    let (st, v) = raw("/v1/runs", "application/json", b"{not json".to_vec());
    assert_eq!((st, error_code(&v)), (400, "bad_request"), "{v}");
    let (st, v) = raw(
        "/v1/runs",
        "application/json",
        br#"{"language": "python"}"#.to_vec(),
    );
    assert_eq!(st, 400, "missing source: {v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("source"),
        "{v}"
    );
    let (st, v) = raw(
        "/v1/runs",
        "application/json",
        br#"{"language": "python", "source": "1", "path": "/etc/passwd"}"#.to_vec(),
    );
    assert_eq!(st, 400, "unknown fields are refused: {v}");
    let (st, v) = raw(
        "/v1/runs",
        "text/plain",
        br#"{"language": "python", "source": "1"}"#.to_vec(),
    );
    assert_eq!((st, error_code(&v)), (415, "not_json"), "{v}");
    let big = format!(
        r#"{{"language": "python", "source": "{}"}}"#,
        "x".repeat(100 << 10)
    );
    let (st, v) = raw("/v1/runs", "application/json", big.into_bytes());
    assert_eq!((st, error_code(&v)), (413, "body_too_large"), "{v}");
    let (st, v) = post(&s, "/v1/runs", json!({"language": "cobol", "source": "1"}));
    assert_eq!(st, 400, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("cobol"),
        "{v}"
    );
    let (st, v) = post(
        &s,
        "/v1/runs",
        json!({"language": "python", "source": "1", "limits": {"memory": "lots"}}),
    );
    assert_eq!(st, 400, "{v}");
    let (st, v) = post(
        &s,
        "/v1/runs",
        json!({"language": "python", "source": "1", "name": "../x.py"}),
    );
    assert_eq!(st, 400, "{v}");
    let (st, v) = post(
        &s,
        "/v1/runs",
        json!({"language": "python", "source": "1", "from": "../../etc"}),
    );
    assert_eq!(st, 400, "{v}");
    for path in [
        "/v1/runs/nope",
        "/v1/runs/nope/outputs/0/png",
        "/v1/fixes/nope",
        "/v1/fixes/nope/trace",
        "/v1/sessions/nope",
        "/v1/batches/nope",
        "/v1/nothing-here",
    ] {
        let (st, v) = get(&s, path);
        assert_eq!((st, error_code(&v)), (404, "not_found"), "{path}: {v}");
    }
    let (st, v) = post(&s, "/v1/batches", json!({"jobs": []}));
    assert_eq!(st, 400, "{v}");
    let (st, v) = post(
        &s,
        "/v1/batches",
        json!({"jobs": [{"id": "a", "language": "python", "source": "1"}, {"id": "a", "language": "python", "source": "2"}]}),
    );
    assert_eq!(st, 400, "duplicate ids: {v}");
    let (st, _) = post(&s, "/v1/sessions", json!({"name": "../escape"}));
    assert_eq!(st, 400);
    // Still serving.
    let (st, v) = post(
        &s,
        "/v1/runs",
        json!({"language": "python", "source": "1 + 1"}),
    );
    assert_eq!((st, v["value"].as_str()), (200, Some("2")), "{v}");
}

#[test]
fn a_token_guards_the_api_and_mcp_and_is_required_off_loopback() {
    // Off loopback without a token: refused before anything listens.
    let data = llmos_tests::scratch_data_dir("serve-notoken");
    let out = llmos_tests::llmos_command(&["serve", "--bind", "0.0.0.0:0"], &data)
        .output()
        .expect("llmos serve");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--token-file"), "{err}");

    let dir = tempfile::tempdir().expect("tempdir");
    let short = dir.path().join("short");
    std::fs::write(&short, "abc\n").expect("write");
    let out = llmos_tests::llmos_command(
        &[
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--token-file",
            &short.to_string_lossy(),
        ],
        &data,
    )
    .output()
    .expect("llmos serve");
    assert_eq!(out.status.code(), Some(2), "a short token is refused");

    let token = "s3cret-token-for-the-test-0123456789";
    let file = dir.path().join("token");
    std::fs::write(&file, format!("{token}\n")).expect("write");
    let s = LlmosServer::start(
        "serve-token",
        &["--token-file", &file.to_string_lossy()],
        &[],
    );
    let c = client();
    let r = c.get(format!("{}/v1/runs", s.url)).send().expect("get");
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let r = c
        .get(format!("{}/v1/runs", s.url))
        .bearer_auth("s3cret-token-for-the-test-012345678X")
        .send()
        .expect("get");
    assert_eq!(r.status(), 401, "a wrong token");
    let r = c
        .post(format!("{}/mcp", s.url))
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .expect("mcp");
    assert_eq!(r.status(), 401, "/mcp is guarded too");
    let start = Instant::now();
    loop {
        let r = c
            .post(format!("{}/v1/runs", s.url))
            .bearer_auth(token)
            .json(&json!({"language": "python", "source": "6*7"}))
            .send()
            .expect("post");
        if r.status() == 503 && start.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        assert_eq!(r.status(), 200);
        assert_eq!(r.json::<Value>().expect("json")["value"], "42");
        break;
    }
    // A run's output URLs are capabilities: no token needed, the run
    // itself still guarded.
    let v: Value = c
        .post(format!("{}/v1/runs", s.url))
        .bearer_auth(token)
        .json(&json!({"language": "python", "source": "from llmos import viz\nviz.plot([1, 2])"}))
        .send()
        .expect("post")
        .json()
        .expect("json");
    let id = v["id"].as_str().expect("id");
    assert!(id.len() >= 24, "ids are unguessable: {id}");
    let r = c
        .get(format!("{}/v1/runs/{id}/outputs/0/svg", s.url))
        .send()
        .expect("svg");
    assert_eq!(r.status(), 200);
    let r = c
        .get(format!("{}/v1/runs/{id}", s.url))
        .send()
        .expect("run");
    assert_eq!(r.status(), 401);
    // The dashboard itself is public (it asks for the token).
    let r = c.get(format!("{}/", s.url)).send().expect("dashboard");
    assert_eq!(r.status(), 200);
}

/// Read server-sent events until `until` says stop (or 30 s pass).
fn read_events(
    resp: reqwest::blocking::Response,
    mut until: impl FnMut(&str, &Value) -> bool,
) -> Vec<(String, Value)> {
    let mut reader = BufReader::new(resp);
    let mut events = Vec::new();
    let mut kind = String::new();
    let start = Instant::now();
    let mut line = String::new();
    while start.elapsed() < Duration::from_secs(30) {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        let l = line.trim_end();
        if let Some(k) = l.strip_prefix("event: ") {
            kind = k.to_string();
        } else if let Some(d) = l.strip_prefix("data: ") {
            let v: Value = serde_json::from_str(d).unwrap_or(Value::Null);
            let stop = until(&kind, &v);
            events.push((kind.clone(), v));
            if stop {
                break;
            }
        }
    }
    events
}

#[test]
fn events_stream_a_run_with_live_fuel_and_memory() {
    let s = LlmosServer::start("serve-events", &["--max-subscribers", "2"], &[]);
    let c = client();
    let sub = c
        .get(format!("{}/v1/events", s.url))
        .send()
        .expect("events");
    assert_eq!(sub.status(), 200);
    assert!(
        sub.headers()["content-type"]
            .to_str()
            .unwrap_or("")
            .starts_with("text/event-stream")
    );
    let second = c
        .get(format!("{}/v1/events", s.url))
        .send()
        .expect("events");
    assert_eq!(second.status(), 200);
    let third = c
        .get(format!("{}/v1/events", s.url))
        .send()
        .expect("events");
    assert_eq!(third.status(), 503, "subscribers are bounded");
    drop(second);
    let (st, v) = post(
        &s,
        "/v1/runs",
        json!({"language": "js", "wait": false,
               "source": "let a = []; for (let i = 0; i < 4e6; i++) { a.push(i); } a.length",
               "limits": {"timeout": "20s"}}),
    );
    assert_eq!(st, 202, "{v}");
    let id = v["id"].as_str().expect("id").to_string();
    let events = read_events(sub, |k, v| k == "run.finished" && v["id"] == id.as_str());
    let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"hello"), "{kinds:?}");
    assert!(kinds.contains(&"run.started"), "{kinds:?}");
    let progress: Vec<&Value> = events
        .iter()
        .filter(|(k, v)| k == "run.progress" && v["id"] == id.as_str())
        .map(|(_, v)| v)
        .collect();
    assert!(!progress.is_empty(), "no live progress: {kinds:?}");
    let fuel: Vec<u64> = progress
        .iter()
        .filter_map(|p| p["fuel_consumed"].as_u64())
        .collect();
    assert!(
        fuel.windows(2).all(|w| w[0] <= w[1]),
        "fuel only grows: {fuel:?}"
    );
    assert!(fuel.iter().any(|f| *f > 0), "{fuel:?}");
    assert!(
        progress
            .iter()
            .any(|p| p["memory_bytes"].as_u64().is_some_and(|m| m > 1 << 20))
    );
    let (_, finished) = events.last().expect("finished");
    assert_eq!(finished["status"], "ok", "{finished}");
    assert!(finished["fuel_consumed"].as_u64() >= fuel.last().copied());
}

#[test]
fn a_fix_over_http_streams_its_steps_and_keeps_its_trace() {
    let fake = FakeLlm::start(vec![Reply::text("```python\nprint('fixed')\n```")]);
    let env = [
        ("LLMOS_LLM_PROVIDER", "openai".to_string()),
        ("LLMOS_LLM_URL", fake.url()),
        ("LLMOS_LLM_MODEL", "test-model".to_string()),
        ("OPENAI_API_KEY", "test-key".to_string()),
    ];
    let s = LlmosServer::start("serve-fix", &[], &env);
    let c = client();
    let sub = c
        .get(format!("{}/v1/events", s.url))
        .send()
        .expect("events");
    let (st, v) = post(
        &s,
        "/v1/fixes",
        json!({"language": "python", "source": "print(undefined_name)\n"}),
    );
    assert_eq!(st, 202, "{v}");
    let id = v["id"].as_str().expect("id").to_string();
    let events = read_events(sub, |k, v| k == "fix.finished" && v["id"] == id.as_str());
    let steps: Vec<&str> = events
        .iter()
        .filter(|(k, v)| k == "fix.step" && v["id"] == id.as_str())
        .filter_map(|(_, v)| v["step"].as_str())
        .collect();
    assert_eq!(
        steps,
        ["ran", "asking", "diff", "ran", "finished"],
        "{events:?}"
    );
    let (_, fix) = get(&s, &format!("/v1/fixes/{id}"));
    assert_eq!(fix["state"], "finished", "{fix}");
    assert_eq!(fix["result"]["status"], "fixed", "{fix}");
    assert_eq!(fix["code"], "print('fixed')\n");
    assert_eq!(fix["outcome"]["stdout"], "fixed\n", "{fix}");
    let diff = fix["steps"][2]["diff"].as_str().expect("diff");
    assert!(
        diff.contains("-print(undefined_name)") && diff.contains("+print('fixed')"),
        "{diff}"
    );
    let first_run = fix["steps"][0]["run_id"].as_str().expect("run id");
    let (_, run) = get(&s, &format!("/v1/runs/{first_run}"));
    assert_eq!(run["outcome"]["status"], "error", "{run}");
    assert_eq!(run["source"], "print(undefined_name)\n", "{run}");
    assert!(run["limits"]["fuel"].as_u64().is_some(), "{run}");
    let (st, trace) = get(&s, &format!("/v1/fixes/{id}/trace"));
    assert_eq!(st, 200);
    assert_eq!(
        trace["attempts"].as_array().map(Vec::len),
        Some(2),
        "{trace}"
    );
    assert!(
        !trace.to_string().contains("test-key"),
        "no secret in the trace"
    );

    // Waiting for the end in one request.
    let fake_gone = post(
        &s,
        "/v1/fixes",
        json!({"language": "python", "source": "print(1)\n", "wait": true}),
    );
    assert_eq!(fake_gone.0, 200);
    assert_eq!(fake_gone.1["result"]["status"], "ok", "{}", fake_gone.1);
}

#[test]
fn sessions_snapshots_and_batches_over_http() {
    let s = LlmosServer::start("serve-sessions", &[], &[]);
    let (st, v) = post(
        &s,
        "/v1/sessions",
        json!({"name": "nb", "language": "python"}),
    );
    assert_eq!(st, 201, "{v}");
    let (st, _) = post(&s, "/v1/sessions", json!({"name": "nb"}));
    assert_eq!(st, 409, "the name is taken");
    let (st, c1) = post(
        &s,
        "/v1/sessions/nb/cells",
        json!({"source": "x = 41\ndef f(): return x + 1"}),
    );
    assert_eq!((st, c1["cell"].as_u64()), (200, Some(1)), "{c1}");
    let (_, c2) = post(&s, "/v1/sessions/nb/cells", json!({"source": "f()"}));
    assert_eq!(c2["outcome"]["value"], "42", "{c2}");
    let (_, c3) = post(
        &s,
        "/v1/sessions/nb/cells",
        json!({"source": "raise ValueError('nope')"}),
    );
    assert_eq!(c3["outcome"]["status"], "error", "{c3}");
    let (_, nb) = get(&s, "/v1/sessions/nb");
    let cells = nb["cells"].as_array().expect("cells");
    assert_eq!(cells.len(), 3, "{nb}");
    assert_eq!(cells[1]["outcome"]["value"], "42");
    let (_, list) = get(&s, "/v1/sessions");
    assert!(list.to_string().contains("\"nb\""), "{list}");

    let (st, snap) = post(
        &s,
        "/v1/snapshots",
        json!({"session": "nb", "name": "nb-snap"}),
    );
    assert_eq!(st, 201, "{snap}");
    let (st, list) = get(&s, "/v1/snapshots");
    assert_eq!(st, 200, "{list}");
    let listed = list.as_array().map(|a| {
        a.iter().any(|e| {
            e["name"] == "nb-snap" && e["language"] == "python" && e["cells"] == snap["cells"]
        })
    });
    assert_eq!(listed, Some(true), "{list}");
    let (st, v) = post(
        &s,
        "/v1/runs",
        json!({"language": "python", "source": "f() * 2", "from": "nb-snap"}),
    );
    assert_eq!((st, v["value"].as_str()), (200, Some("84")), "{v}");
    let (st, v) = post(
        &s,
        "/v1/sessions",
        json!({"name": "fork", "from": "nb-snap"}),
    );
    assert_eq!(st, 201, "{v}");
    let (_, v) = post(&s, "/v1/sessions/fork/cells", json!({"source": "x"}));
    assert_eq!(v["outcome"]["value"], "41", "{v}");

    let r = client()
        .delete(format!("{}/v1/sessions/nb", s.url))
        .send()
        .expect("delete");
    assert_eq!(r.status(), 204);
    let (st, _) = get(&s, "/v1/sessions/nb");
    assert_eq!(st, 404);

    // A batch: every job gets one result; a failure is counted, not fatal.
    let mut jobs: Vec<Value> = (0..20)
        .map(|i| json!({"id": format!("j{i}"), "language": "js", "source": format!("{i} * 2")}))
        .collect();
    jobs.push(json!({"id": "bad", "language": "python", "source": "1/0"}));
    jobs.push(
        json!({"id": "wrong", "language": "python", "source": "print(1)", "expect_stdout": "2\n"}),
    );
    let (st, v) = post(&s, "/v1/batches", json!({"jobs": jobs}));
    assert_eq!(st, 202, "{v}");
    let id = v["id"].as_str().expect("id").to_string();
    let start = Instant::now();
    let b = loop {
        let (_, b) = get(&s, &format!("/v1/batches/{id}"));
        if b["state"] != "running" {
            break b;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{b}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(b["state"], "finished", "{b}");
    assert_eq!(b["done"], 22);
    assert_eq!(b["counts"]["ok"], 20, "{b}");
    assert_eq!(b["counts"]["error"], 1, "{b}");
    assert_eq!(b["counts"]["wrong_output"], 1, "{b}");
    assert_eq!(b["summary"]["jobs"], 22, "{b}");
    let text = client()
        .get(format!("{}/v1/batches/{id}/results", s.url))
        .send()
        .expect("results")
        .text()
        .expect("text");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 22);
    let j7 = lines.iter().find(|l| l["id"] == "j7").expect("j7");
    assert_eq!(j7["value"], "14", "{j7}");
}

#[test]
fn runs_in_flight_are_bounded_per_client() {
    let s = LlmosServer::start("serve-bounds", &["--max-runs-per-client", "2"], &[]);
    let slow = json!({"language": "python", "wait": false,
                      "source": "import time\ntime.sleep(1.5)", "limits": {"timeout": "5s"}});
    let codes: Vec<u16> = (0..4)
        .map(|_| post(&s, "/v1/runs", slow.clone()).0)
        .collect();
    assert_eq!(codes, [202, 202, 429, 429], "{codes:?}");
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(post(&s, "/v1/runs", slow).0, 202, "slots come back");
}

#[test]
fn shutdown_finishes_runs_in_flight_and_keeps_every_result() {
    let mut s = LlmosServer::start("serve-shutdown", &["--grace", "20s"], &[]);
    let (st, v) = post(
        &s,
        "/v1/runs",
        json!({"language": "python", "wait": false,
               "source": "import time\ntime.sleep(1)\nprint('done')", "limits": {"timeout": "10s"}}),
    );
    assert_eq!(st, 202);
    let id = v["id"].as_str().expect("id").to_string();
    let started = Instant::now();
    let status = s.stop().expect("exit status");
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(700),
        "it waited for the run"
    );
    let log = std::fs::read_to_string(s.data.join("serve/results.jsonl")).expect("results");
    let line: Value = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["id"] == id.as_str())
        .expect("the run's result is on disk");
    assert_eq!(line["status"], "ok", "{line}");
    assert_eq!(line["stdout"], "done\n");
}

#[test]
fn the_openapi_document_is_generated_and_covers_the_api() {
    let s = LlmosServer::start("serve-openapi", &[], &[]);
    let (st, doc) = get(&s, "/openapi.json");
    assert_eq!(st, 200);
    assert_eq!(
        doc["openapi"].as_str().map(|v| v.starts_with("3.")),
        Some(true)
    );
    for (path, method) in [
        ("/v1/boot", "get"),
        ("/v1/languages", "get"),
        ("/v1/languages/{name}/api", "get"),
        ("/v1/runs", "post"),
        ("/v1/runs", "get"),
        ("/v1/runs/{id}", "get"),
        ("/v1/runs/{id}/outputs/{index}/{format}", "get"),
        ("/v1/fixes", "post"),
        ("/v1/fixes/{id}", "get"),
        ("/v1/fixes/{id}/trace", "get"),
        ("/v1/sessions", "post"),
        ("/v1/sessions/{name}", "delete"),
        ("/v1/sessions/{name}/cells", "post"),
        ("/v1/snapshots", "post"),
        ("/v1/batches", "post"),
        ("/v1/batches/{id}", "delete"),
        ("/v1/batches/{id}/results", "get"),
        ("/v1/events", "get"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} missing"
        );
    }
    assert!(doc["components"]["schemas"]["RunBody"].is_object());
    assert!(doc["components"]["schemas"]["Outcome"].is_object());
    let (_, langs) = get(&s, "/v1/languages");
    let names: Vec<&str> = langs
        .as_array()
        .expect("languages")
        .iter()
        .filter_map(|l| l["name"].as_str())
        .collect();
    assert!(
        names.contains(&"python") && names.contains(&"javascript"),
        "{names:?}"
    );
    let (st, api) = get(&s, "/v1/languages/python/api");
    assert_eq!(st, 200);
    assert!(api.to_string().contains("viz"), "{api}");
}

/// Read JSON-RPC responses (one per line) until the one with `id`.
fn rpc_response(reader: &mut impl BufRead, id: u64) -> Value {
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            reader.read_line(&mut line).expect("read") > 0,
            "llmos mcp closed stdout"
        );
        let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        if v["id"] == id {
            return v;
        }
    }
}

#[test]
fn mcp_tools_over_stdio_and_streamable_http() {
    let data = llmos_tests::scratch_data_dir("mcp-stdio");
    let mut child = llmos_tests::llmos_command(&["mcp"], &data)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("llmos mcp");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut send = |v: Value| {
        writeln!(stdin, "{v}").expect("write");
        stdin.flush().expect("flush");
    };
    send(
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-03-26", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}}}),
    );
    let init = rpc_response(&mut out, 1);
    assert_eq!(init["result"]["serverInfo"]["name"], "llmos", "{init}");
    send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}));
    let tools = rpc_response(&mut out, 2);
    let names: Vec<&str> = tools["result"]["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    for t in [
        "run_code",
        "fix_code",
        "session_new",
        "session_run_cell",
        "read_output",
        "api_reference",
    ] {
        assert!(names.contains(&t), "{t} missing: {names:?}");
    }
    send(
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
        "name": "run_code", "arguments": {"language": "python",
            "code": "from llmos import viz\nviz.plot([3, 1, 2])\nprint('from mcp')\n2 ** 10"}}}),
    );
    let r = rpc_response(&mut out, 3);
    let result = &r["result"];
    assert_eq!(result["isError"], false, "{r}");
    assert_eq!(result["structuredContent"]["value"], "1024", "{r}");
    let content = result["content"].as_array().expect("content");
    assert!(
        content[0]["text"]
            .as_str()
            .unwrap_or("")
            .contains("from mcp"),
        "{r}"
    );
    assert!(
        content
            .iter()
            .any(|c| c["type"] == "image" && c["mimeType"] == "image/png"),
        "the chart comes back as an image: {r}"
    );
    send(
        json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {
        "name": "session_new", "arguments": {"language": "python", "name": "mcp-nb"}}}),
    );
    assert_eq!(rpc_response(&mut out, 4)["result"]["isError"], false);
    // Calls are concurrent: a client sends a session's cells one at a time.
    let mut r6 = Value::Null;
    for (id, code) in [(5, "n = 20"), (6, "n + 1")] {
        send(
            json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
            "name": "session_run_cell", "arguments": {"session": "mcp-nb", "code": code}}}),
        );
        r6 = rpc_response(&mut out, id);
    }
    assert_eq!(
        r6["result"]["structuredContent"]["outcome"]["value"], "21",
        "{r6}"
    );
    // A bad call is a tool error the model can read, not a crash.
    send(
        json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
        "name": "run_code", "arguments": {"language": "python"}}}),
    );
    let r7 = rpc_response(&mut out, 7);
    assert_eq!(r7["result"]["isError"], true, "{r7}");
    drop(stdin);
    let status = child.wait().expect("wait");
    assert!(
        status.success(),
        "llmos mcp exits when its client closes stdin: {status:?}"
    );

    // The same tools over streamable HTTP on the server.
    let s = LlmosServer::start("mcp-http", &[], &[]);
    let c = client();
    let call = |session: Option<&str>, body: Value| {
        let mut req = c
            .post(format!("{}/mcp", s.url))
            .header("accept", "application/json, text/event-stream")
            .json(&body);
        if let Some(sid) = session {
            req = req.header("mcp-session-id", sid);
        }
        let r = req.send().expect("mcp");
        let sid = r
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut text = String::new();
        let _ = r.take(1 << 20).read_to_string(&mut text);
        let msg = text
            .lines()
            .filter_map(|l| l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:")))
            .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
            .find(|v| v.get("id").is_some())
            .or_else(|| serde_json::from_str(&text).ok())
            .unwrap_or(Value::Null);
        (sid, msg)
    };
    let (sid, init) = call(
        None,
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-03-26", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}}}),
    );
    assert_eq!(init["result"]["serverInfo"]["name"], "llmos", "{init}");
    let sid = sid.expect("a session id");
    let _ = c
        .post(format!("{}/mcp", s.url))
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &sid)
        .json(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .send();
    let (_, r) = call(
        Some(&sid),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
        "name": "run_code", "arguments": {"language": "javascript", "code": "[1, 2, 3].map(x => x * x).join(',')"}}}),
    );
    assert_eq!(r["result"]["structuredContent"]["value"], "'1,4,9'", "{r}");
}
