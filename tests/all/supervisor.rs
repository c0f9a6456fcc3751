//! The repair loop against a real HTTP server on 127.0.0.1 (the fake LLM)
//! speaking both APIs: fixes, rejections, retries, failures and budgets.

use std::time::Duration;

use llmos::supervisor::llm::{self, LlmConfig, ProviderKind, Secret};
use llmos::supervisor::trace::TraceResult;
use llmos::supervisor::{Supervised, Supervisor, SupervisorConfig};
use llmos::{RunRequest, Status};
use llmos_tests::fake_llm::{FakeLlm, Reply};
use llmos_tests::{block_on, runtime};

const BROKEN_JS: &str = "const total = [1, 2, 3].reduce((a, b) => a + b, 0);\nconsole.log(totl);\n";
const FIXED_JS: &str = "const total = [1, 2, 3].reduce((a, b) => a + b, 0);\nconsole.log(total);\n";
const KEY: &str = "sk-test-SECRET-4242";

fn fenced(tag: &str, code: &str) -> String {
    format!(
        "Here is the corrected program:\n\n```{tag}\n{code}```\n\nThe variable name was misspelt."
    )
}

fn config(kind: ProviderKind, fake: &FakeLlm) -> LlmConfig {
    let mut c = LlmConfig::new(kind, &fake.url(), "test-model");
    c.api_key = Some(Secret::new(KEY));
    c.timeout = Duration::from_secs(5);
    c.max_retries = 2;
    c
}

fn supervise_with(
    kind: ProviderKind,
    fake: &FakeLlm,
    lang: &str,
    source: &str,
    adjust: impl FnOnce(&mut LlmConfig, &mut SupervisorConfig),
) -> Supervised {
    let mut llm_config = config(kind, fake);
    let mut sup_config = SupervisorConfig::default();
    adjust(&mut llm_config, &mut sup_config);
    let provider = llm::provider(llm_config).expect("provider");
    let sup = Supervisor::new(runtime(), Some(provider.as_ref()), sup_config).expect("supervisor");
    let mut req = RunRequest::new(lang, source);
    req.filename = if lang == "python" {
        "app.py".into()
    } else {
        "app.js".into()
    };
    block_on(sup.run(&req, &|_| {})).expect("supervised run")
}

/// The supervisor with default settings on `req`, over OpenAI's API.
fn supervise_req(fake: &FakeLlm, req: &RunRequest) -> Supervised {
    let provider = llm::provider(config(ProviderKind::OpenAi, fake)).expect("provider");
    let sup = Supervisor::new(
        runtime(),
        Some(provider.as_ref()),
        SupervisorConfig::default(),
    )
    .expect("supervisor");
    block_on(sup.run(req, &|_| {})).expect("supervised run")
}

fn supervise(kind: ProviderKind, fake: &FakeLlm, lang: &str, source: &str) -> Supervised {
    supervise_with(kind, fake, lang, source, |_, _| {})
}

fn prompt_of(fake: &FakeLlm, i: usize) -> String {
    let r = &fake.requests()[i];
    let body = &r.body;
    // OpenAI: messages[1] (after the system message); Anthropic: messages[0].
    let msgs = body["messages"].as_array().expect("messages");
    msgs.iter()
        .filter(|m| m["role"] == "user")
        .filter_map(|m| m["content"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn fixed_on_the_first_try_with_a_diff_and_a_precise_prompt() {
    let fake = FakeLlm::start(vec![Reply::text(fenced("js", FIXED_JS))]);
    let s = supervise(ProviderKind::OpenAi, &fake, "javascript", BROKEN_JS);
    assert_eq!(s.trace.result, TraceResult::Fixed { attempts: 1 });
    assert_eq!(s.outcome.status, Status::Ok);
    assert_eq!(s.outcome.stdout, "6\n");
    assert_eq!(s.code, FIXED_JS);
    let diff = s.trace.attempts[1].diff.clone().expect("diff");
    assert!(
        diff.contains("-console.log(totl);") && diff.contains("+console.log(total);"),
        "{diff}"
    );
    let prompt = prompt_of(&fake, 0);
    assert!(prompt.contains("ReferenceError"), "{prompt}");
    assert!(prompt.contains("line 2"), "{prompt}");
    assert!(
        prompt.contains("> 2 | console.log(totl);"),
        "excerpt with marker: {prompt}"
    );
    assert!(
        prompt.contains("total: number = 6"),
        "top-level variables: {prompt}"
    );
    // The artifact uses no kernel interface: a one-line index, not the
    // whole reference.
    assert!(
        prompt.contains("Other kernel interfaces (not used by this artifact): ")
            && prompt.contains("storage (get, set, has"),
        "API index: {prompt}"
    );
    assert!(!prompt.contains("## kernel.storage.get"), "{prompt}");
    let req = &fake.requests()[0];
    assert_eq!(req.path, "/v1/chat/completions");
    assert_eq!(req.body["model"], "test-model");
    assert_eq!(s.trace.tokens.input_tokens, 100);
}

#[test]
fn fixed_on_the_third_try_over_the_anthropic_api_with_history() {
    let broken_py = "values = [3, 1, 2]\nprint(sorted(valus))\n";
    let fake = FakeLlm::start(vec![
        Reply::text(fenced(
            "python",
            "values = [3, 1, 2]\nprint(sorted(value))\n",
        )),
        Reply::text(fenced(
            "python",
            "values = [3, 1, 2]\nprint(sorted(values)[5])\n",
        )),
        Reply::text(fenced(
            "python",
            "values = [3, 1, 2]\nprint(sorted(values))\n",
        )),
    ]);
    let s = supervise(ProviderKind::Anthropic, &fake, "python", broken_py);
    assert_eq!(
        s.trace.result,
        TraceResult::Fixed { attempts: 3 },
        "{}",
        s.trace.render()
    );
    assert_eq!(s.outcome.stdout, "[1, 2, 3]\n");
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 3);
    assert_eq!(reqs[0].path, "/v1/messages");
    assert_eq!(reqs[0].header("x-api-key"), Some(KEY));
    let third = prompt_of(&fake, 2);
    assert!(third.contains("Earlier attempts"), "{third}");
    assert!(
        third.contains("sorted(value))"),
        "history shows attempt 1's code: {third}"
    );
    assert!(third.contains("IndexError"), "the current error: {third}");
    assert!(third.contains("attempt 3 of 3"), "{third}");
}

#[test]
fn repeated_missing_and_wrong_language_answers_are_rejected_without_running() {
    let fake = FakeLlm::start(vec![
        Reply::text(fenced("js", BROKEN_JS)),
        Reply::text("I think the problem is the variable name."),
        Reply::text(fenced("python", "print(6)\n")),
    ]);
    let s = supervise(ProviderKind::OpenAi, &fake, "javascript", BROKEN_JS);
    let rejections: Vec<Option<String>> = s.trace.attempts[1..]
        .iter()
        .map(|a| a.llm.as_ref().and_then(|x| x.rejection.clone()))
        .collect();
    assert_eq!(rejections.len(), 3);
    assert!(
        rejections[0]
            .as_deref()
            .is_some_and(|r| r.contains("unchanged")),
        "{rejections:?}"
    );
    assert!(
        rejections[1]
            .as_deref()
            .is_some_and(|r| r.contains("no fenced code block"))
    );
    assert!(
        rejections[2]
            .as_deref()
            .is_some_and(|r| r.contains("another language"))
    );
    assert!(
        s.trace.attempts[1..].iter().all(|a| a.outcome.is_none()),
        "nothing ran"
    );
    assert!(matches!(s.trace.result, TraceResult::Failed { .. }));
}

#[test]
fn a_server_error_then_success_and_a_429_with_retry_after() {
    let fake = FakeLlm::start(vec![
        Reply::status(500, r#"{"error":{"message":"overloaded"}}"#),
        Reply::text(fenced("js", FIXED_JS)),
    ]);
    let s = supervise(ProviderKind::OpenAi, &fake, "javascript", BROKEN_JS);
    assert_eq!(s.trace.result, TraceResult::Fixed { attempts: 1 });
    assert_eq!(
        s.trace.attempts[1].llm.as_ref().map(|x| x.http_attempts),
        Some(2)
    );

    let fake = FakeLlm::start(vec![
        Reply::status_with_header(
            429,
            "retry-after",
            "1",
            r#"{"error":{"message":"slow down"}}"#,
        ),
        Reply::text(fenced("js", FIXED_JS)),
    ]);
    let t = std::time::Instant::now();
    let s = supervise(ProviderKind::Anthropic, &fake, "javascript", BROKEN_JS);
    assert_eq!(s.trace.result, TraceResult::Fixed { attempts: 1 });
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "Retry-After honoured"
    );
}

#[test]
fn a_hanging_server_a_401_and_malformed_json_end_the_loop_with_the_reason() {
    let fake = FakeLlm::start(vec![Reply::hang(Duration::from_secs(30))]);
    let s = supervise_with(
        ProviderKind::OpenAi,
        &fake,
        "javascript",
        BROKEN_JS,
        |c, _| {
            c.timeout = Duration::from_secs(1);
            c.max_retries = 0;
        },
    );
    let TraceResult::Failed { reason } = &s.trace.result else {
        panic!("{:?}", s.trace.result)
    };
    assert!(
        reason.contains("LLM call failed") && reason.to_lowercase().contains("time"),
        "{reason}"
    );

    let fake = FakeLlm::start(vec![Reply::status(
        401,
        r#"{"error":{"message":"Incorrect API key"}}"#,
    )]);
    let s = supervise(ProviderKind::OpenAi, &fake, "javascript", BROKEN_JS);
    let TraceResult::Failed { reason } = &s.trace.result else {
        panic!()
    };
    assert!(
        reason.contains("401") && reason.contains("OPENAI_API_KEY"),
        "{reason}"
    );
    assert_eq!(fake.requests().len(), 1, "401 is not retried");

    let fake = FakeLlm::start(vec![Reply::raw("{not json")]);
    let s = supervise(ProviderKind::Anthropic, &fake, "javascript", BROKEN_JS);
    assert!(
        matches!(&s.trace.result, TraceResult::Failed { reason } if reason.contains("LLM call failed"))
    );
}

#[test]
fn the_fuel_budget_stops_a_loop_of_runaway_fixes() {
    let spin = |n: u32| format!("let i = {n};\nwhile (true) {{ i++; }}\n");
    let fake = FakeLlm::start(
        (1..=5)
            .map(|n| Reply::text(fenced("js", &spin(n))))
            .collect(),
    );
    let s = supervise_with(
        ProviderKind::OpenAi,
        &fake,
        "javascript",
        &spin(0),
        |_, c| {
            c.max_attempts = 5;
            c.budget_fuel = Some(1_500_000_000);
        },
    );
    let TraceResult::Failed { reason } = &s.trace.result else {
        panic!()
    };
    assert!(reason.contains("fuel budget"), "{reason}");
    let total: u64 = s
        .trace
        .attempts
        .iter()
        .filter_map(|a| a.outcome.as_ref()?.fuel_consumed)
        .sum();
    assert!(total <= 1_500_000_000 + 10_000_000, "spent {total}");
    assert!(s.trace.attempts.len() < 6, "stopped before max attempts");
    assert!(
        s.trace.attempts[0]
            .report
            .as_ref()
            .and_then(|r| r.explanation.clone())
            .is_some_and(|e| e.contains("loop"))
    );
}

#[test]
fn the_same_error_on_the_same_line_twice_in_a_row_stops_early() {
    let fake = FakeLlm::start(vec![
        Reply::text(fenced("js", "const total = 6;\nconsole.log(totall);\n")),
        Reply::text(fenced("js", "const total = 6;\nconsole.log(totalll);\n")),
        Reply::text(fenced("js", FIXED_JS)),
    ]);
    // Without rewrites: two patches with the same error, and it gives up.
    let s = supervise_with(
        ProviderKind::OpenAi,
        &fake,
        "javascript",
        BROKEN_JS,
        |_, c| {
            c.rewrite_after = 0;
        },
    );
    let TraceResult::Failed { reason } = &s.trace.result else {
        panic!("{:?}", s.trace.result)
    };
    assert!(reason.contains("no progress"), "{reason}");
    assert_eq!(fake.requests().len(), 2);
}

#[test]
fn after_failed_patches_one_attempt_asks_for_a_rewrite_from_the_intent() {
    let fake = FakeLlm::start(vec![
        Reply::text(fenced("js", "const total = 6;\nconsole.log(totall);\n")),
        Reply::text(fenced("js", "const total = 6;\nconsole.log(totalll);\n")),
        Reply::text(fenced("js", FIXED_JS)),
    ]);
    // Default: after two failed patches the third attempt is a rewrite.
    let s = supervise(ProviderKind::OpenAi, &fake, "javascript", BROKEN_JS);
    assert_eq!(s.trace.result, TraceResult::Fixed { attempts: 3 });
    let strategies: Vec<_> = s.trace.attempts.iter().map(|a| a.strategy).collect();
    use llmos::supervisor::Strategy::{Patch, Rewrite};
    assert_eq!(strategies, [None, Some(Patch), Some(Patch), Some(Rewrite)]);
    let third = prompt_of(&fake, 2);
    assert!(
        third.contains("do not patch it: write the program again from its intent"),
        "{third}"
    );
    assert!(
        third.contains("## Earlier attempts"),
        "the earlier errors: {third}"
    );
    assert!(!prompt_of(&fake, 0).contains("write the program again"));
    assert!(s.trace.render().contains("version 3 (rewrite)"));
}

#[test]
fn secrets_never_appear_in_the_trace() {
    let fake = FakeLlm::start(vec![Reply::text(fenced("js", FIXED_JS))]);
    let s = supervise(ProviderKind::OpenAi, &fake, "javascript", BROKEN_JS);
    assert_eq!(
        fake.requests()[0].header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    let json = serde_json::to_string(&s.trace).expect("json");
    assert!(!json.contains(KEY));
    assert!(!format!("{:?}", s.trace).contains(KEY));
}

fn llmos_cli(fake: Option<&FakeLlm>) -> std::process::Command {
    let cfg = llmos_tests::test_config();
    let mut c = std::process::Command::new(llmos_tests::llmos_bin());
    c.env("LLMOS_COMPONENTS", &cfg.components_dir)
        .env("LLMOS_CACHE_DIR", &cfg.cache_dir)
        .env("LLMOS_SYSTEM_VOLUME", &cfg.system_volume)
        .env("LLMOS_DATA_DIR", &cfg.data_dir)
        .env_remove("LLMOS_LLM_PROVIDER")
        .env_remove("LLMOS_LLM_URL")
        .env_remove("LLMOS_LLM_MODEL")
        .env_remove("OPENAI_API_KEY")
        .env_remove("ANTHROPIC_API_KEY");
    if let Some(f) = fake {
        c.env("LLMOS_LLM_PROVIDER", "openai")
            .env("LLMOS_LLM_URL", f.url())
            .env("LLMOS_LLM_MODEL", "test-model")
            .env("OPENAI_API_KEY", KEY);
    }
    c
}

#[test]
fn cli_fix_writes_the_fixed_code_and_a_trace_that_trace_show_renders() {
    let dir = tempfile::tempdir().expect("tempdir");
    let art = dir.path().join("app.js");
    std::fs::write(&art, BROKEN_JS).expect("write");
    let fixed = dir.path().join("fixed.js");
    let trace = dir.path().join("trace.json");
    let fake = FakeLlm::start(vec![Reply::text(fenced("js", FIXED_JS))]);
    let out = llmos_cli(Some(&fake))
        .args(["run", &art.display().to_string(), "--fix", "--write-fixed"])
        .arg(&fixed)
        .arg("--trace")
        .arg(&trace)
        .output()
        .expect("spawn");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "6\n");
    assert!(err.contains("✗ the artifact: ReferenceError"), "{err}");
    assert!(
        err.contains("+console.log(total);"),
        "the diff is shown: {err}"
    );
    assert!(err.contains("✓ fixed after 1 repair(s)"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&fixed).expect("fixed file"),
        FIXED_JS
    );
    let text = std::fs::read_to_string(&trace).expect("trace file");
    assert!(!text.contains(KEY), "no secret in the trace");
    let v: serde_json::Value = serde_json::from_str(&text).expect("trace json");
    assert_eq!(v["result"]["status"], "fixed");
    assert_eq!(v["attempts"].as_array().map(Vec::len), Some(2));
    for field in ["code", "diff", "outcome", "report", "llm"] {
        assert!(
            v["attempts"][1].get(field).is_some(),
            "attempt field {field}"
        );
    }
    let show = llmos_cli(None)
        .args(["trace", "show"])
        .arg(&trace)
        .output()
        .expect("spawn");
    assert_eq!(show.status.code(), Some(0));
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(
        text.contains("fixed after 1 repair(s)") && text.contains("+console.log(total);"),
        "{text}"
    );
}

#[test]
fn cli_fix_without_a_provider_explains_and_runs_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let art = dir.path().join("app.js");
    std::fs::write(&art, BROKEN_JS).expect("write");
    let out = llmos_cli(None)
        .args(["run", &art.display().to_string(), "--fix", "--json"])
        .output()
        .expect("spawn");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("LLMOS_LLM_PROVIDER"), "{err}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["status"], "error");
    assert_eq!(v["supervisor"]["repairs"], 0);
}

#[test]
fn cli_fix_reads_the_provider_from_the_config_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let art = dir.path().join("app.js");
    std::fs::write(&art, BROKEN_JS).expect("write");
    let fake = FakeLlm::start(vec![Reply::text(fenced("js", FIXED_JS))]);
    let config = dir.path().join("llmos.toml");
    std::fs::write(
        &config,
        format!(
            "[llm]\nprovider = \"openai\"\nurl = \"{}\"\nmodel = \"from-config\"\n",
            fake.url()
        ),
    )
    .expect("write");
    let out = llmos_cli(None)
        .env("LLMOS_CONFIG", &config)
        .args(["run", &art.display().to_string(), "--fix", "--json"])
        .output()
        .expect("spawn");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["supervisor"]["model"], "from-config");
    assert_eq!(fake.requests()[0].body["model"], "from-config");
}

/// Supervises `req` against `fake` (OpenAI API) with `sup_config`.
fn supervise_request(fake: &FakeLlm, req: &RunRequest, sup_config: SupervisorConfig) -> Supervised {
    let provider = llm::provider(config(ProviderKind::OpenAi, fake)).expect("provider");
    let sup = Supervisor::new(runtime(), Some(provider.as_ref()), sup_config).expect("supervisor");
    block_on(sup.run(req, &|_| {})).expect("supervised run")
}

#[test]
fn repairs_of_an_unmetered_large_limit_run_run_metered_under_default_limits() {
    let tier = llmos::Limits::default();
    // The user's own code may use 16 MiB of output, 1 GiB of memory and no fuel...
    let broken = "console.log('y'.repeat(2 * 1024 * 1024));\nconsole.log(totl);\n";
    let mut req = RunRequest::new("javascript", broken);
    req.filename = "app.js".into();
    req.limits = llmos::Limits {
        fuel: None,
        memory_bytes: 1 << 30,
        output_bytes: 16 << 20,
        ..tier.clone()
    };
    // ...but code the LLM wrote gets the untrusted tier: 128 MiB, 1 MiB, metered.
    let memory_fix =
        "const big = new Uint8Array(200 * 1024 * 1024); big[7] = 1;\nconsole.log(big[7]);\n";
    let output_fix = "console.log('y'.repeat(2 * 1024 * 1024));\nconsole.log(1);\n";
    let fake = FakeLlm::start(vec![
        Reply::text(fenced("js", memory_fix)),
        Reply::text(fenced("js", output_fix)),
    ]);
    let s = supervise_request(
        &fake,
        &req,
        SupervisorConfig {
            max_attempts: 2,
            budget_fuel: None,
            ..SupervisorConfig::default()
        },
    );
    let outcome = |i: usize| s.trace.attempts[i].outcome.clone().expect("ran");

    // The original ran as configured: unmetered, 2 MiB of output fine.
    let original = outcome(0);
    assert_eq!(original.status, Status::Error, "{:?}", original.error);
    assert_eq!(original.fuel_consumed, None);
    assert!(original.truncated.is_empty(), "{:?}", original.truncated);
    assert!(original.stdout.len() > 2 << 20);

    // Repair 1 hits the default memory limit (not the run's 1 GiB), metered.
    let first = outcome(1);
    assert_eq!(first.status, Status::MemoryLimit, "{:?}", first.error);
    assert!(first.fuel_consumed.is_some());
    assert!(
        first.memory_peak_bytes <= tier.memory_bytes,
        "{}",
        first.memory_peak_bytes
    );

    // Repair 2 hits the default output limit (not the run's 16 MiB), metered.
    let second = outcome(2);
    assert_eq!(second.status, Status::OutputLimit, "{:?}", second.error);
    assert!(second.fuel_consumed.is_some());
    assert_eq!(second.truncated, vec!["stdout".to_string()]);
    assert!(second.stdout.len() < (tier.output_bytes + 1024));
    assert!(matches!(s.trace.result, TraceResult::Failed { .. }));
}

#[test]
fn explicit_repair_limits_are_used_and_still_metered() {
    let mut req = RunRequest::new("javascript", BROKEN_JS);
    req.filename = "app.js".into();
    req.limits.fuel = None;
    let fake = FakeLlm::start(vec![Reply::text(fenced(
        "js",
        "console.log('z'.repeat(100));\n",
    ))]);
    let s = supervise_request(
        &fake,
        &req,
        SupervisorConfig {
            max_attempts: 1,
            repair_limits: Some(llmos::Limits {
                fuel: None,
                output_bytes: 10,
                ..llmos::Limits::default()
            }),
            ..SupervisorConfig::default()
        },
    );
    let o = s.trace.attempts[1].outcome.clone().expect("ran");
    assert_eq!(o.status, Status::OutputLimit, "{:?}", o.error);
    assert!(o.fuel_consumed.is_some());
}

#[test]
fn repairs_run_in_the_repair_namespace() {
    let trusted = format!("trusted-{}", std::process::id());
    let repair = format!("repair-{}", std::process::id());
    // The original (trusted) artifact keeps a secret in its storage, then fails.
    let broken = "kernel.storage.set('secret', 'hunter2');\nconsole.log(totl);\n";
    // The repair tries to read it and leaves a mark where it ran.
    let fix =
        "console.log(String(kernel.storage.get('secret')));\nkernel.storage.set('mark', 1);\n";
    let run_req = |id: &str| {
        let mut req = RunRequest::new("javascript", broken);
        req.filename = "app.js".into();
        req.artifact_id = id.to_string();
        req
    };

    let fake = FakeLlm::start(vec![Reply::text(fenced("js", fix))]);
    let s = supervise_request(
        &fake,
        &run_req(&trusted),
        SupervisorConfig {
            max_attempts: 1,
            repair_namespace: Some(repair.clone()),
            ..SupervisorConfig::default()
        },
    );
    assert_eq!(s.trace.result, TraceResult::Fixed { attempts: 1 });
    // The repair could not see the trusted artifact's storage...
    assert!(
        !s.outcome.stdout.contains("hunter2"),
        "{}",
        s.outcome.stdout
    );
    assert_eq!(s.outcome.stdout, "null\n");
    // ...and wrote to its own namespace, not the trusted one.
    let mark = "kernel.storage.get('mark')";
    let o = llmos_tests::run_as("js", &repair, mark);
    assert_eq!(o.value.as_deref(), Some("1"), "{o:?}");
    let o = llmos_tests::run_as("js", &trusted, mark);
    assert_eq!(o.value.as_deref(), Some("null"), "{o:?}");

    // Without a repair namespace, repairs keep the original's (the default).
    let plain = format!("plain-{}", std::process::id());
    let fake = FakeLlm::start(vec![Reply::text(fenced("js", fix))]);
    let s = supervise_request(
        &fake,
        &run_req(&plain),
        SupervisorConfig {
            max_attempts: 1,
            ..SupervisorConfig::default()
        },
    );
    assert_eq!(s.outcome.stdout, "hunter2\n");
}

#[test]
fn a_repair_is_verified_on_the_inputs_that_broke_the_original() {
    // The original reads randomness, the clock and storage, then fails; the
    // candidate prints what it sees. It must see what the original saw.
    let probe = "const seen = [Math.random(), Date.now(), kernel.storage.get('verify-probe')];\n";
    let broken = format!(
        "{probe}kernel.storage.set('verify-probe', 'changed');\nconsole.log(JSON.stringify(seen));\nthrow new Error('boom');\n"
    );
    let fixed = format!("{probe}console.log(JSON.stringify(seen));\n");
    let fake = FakeLlm::start(vec![Reply::text(fenced("javascript", &fixed))]);
    let s = supervise_with(
        ProviderKind::OpenAi,
        &fake,
        "javascript",
        &broken,
        |_, sup| {
            sup.repair_namespace = Some("verify-repair".into());
        },
    );
    assert_eq!(s.trace.result, TraceResult::Fixed { attempts: 1 });
    let first = s.trace.attempts[0]
        .outcome
        .as_ref()
        .expect("original outcome");
    let repair = s.trace.attempts[1]
        .outcome
        .as_ref()
        .expect("repair outcome");
    assert_eq!(repair.status, Status::Ok);
    // Same random draw, same clock reading, and the storage read answered as
    // it was for the original (before its own write), though the repair runs
    // in another namespace.
    assert_eq!(first.stdout, repair.stdout, "{first:?}\n{repair:?}");
    let seen: serde_json::Value = serde_json::from_str(first.stdout.trim()).expect("json");
    assert!(seen[1].as_f64().is_some_and(|t| t > 1.7e12), "{seen}");
    assert_eq!(
        first.inputs.as_ref().map(|i| i.seed),
        repair.inputs.as_ref().map(|i| i.seed)
    );
}

#[test]
fn a_lua_artifact_is_repaired_through_the_loop_with_lua_prompts() {
    let broken = "local totals = { a = 1, b = 2 }\nlocal sum = 0\nfor _, v in ipairs(totals.values) do sum = sum + v end\nprint(sum)\n";
    let fixed = "local totals = { a = 1, b = 2 }\nlocal sum = 0\nfor _, v in pairs(totals) do sum = sum + v end\nprint(sum)\n";
    let fake = FakeLlm::start(vec![Reply::text(fenced("lua", fixed))]);
    let mut req = RunRequest::new("lua", broken);
    req.filename = "app.lua".into();
    let s = supervise_req(&fake, &req);
    assert_eq!(s.trace.result, TraceResult::Fixed { attempts: 1 });
    assert_eq!(s.outcome.stdout, "3\n");
    let first = s.trace.attempts[0].outcome.as_ref().expect("outcome");
    let e = first.error.as_ref().expect("error");
    assert_eq!(e.line, Some(3));
    let body = &fake.requests()[0].body;
    let system = body["messages"][0]["content"].as_str().expect("system");
    assert!(system.contains("Lua programs"), "{system}");
    assert!(
        system.contains("1-based"),
        "the manifest's idioms: {system}"
    );
    assert!(system.contains("`lua`"), "the fence tag: {system}");
    let prompt = prompt_of(&fake, 0);
    assert!(prompt.contains("```lua"), "{prompt}");
    assert!(
        prompt.contains("storage (get, set, has"),
        "the Lua API index: {prompt}"
    );
}

#[test]
fn a_wrong_output_is_repaired_against_the_expected_stdout() {
    let broken = "def mean(v):\n    return sum(v) / (len(v) + 1)\n\nprint(mean([1, 2, 3]))\n";
    let fixed = "def mean(v):\n    return sum(v) / len(v)\n\nprint(mean([1, 2, 3]))\n";
    let fake = FakeLlm::start(vec![Reply::text(fenced("python", fixed))]);
    let mut req = RunRequest::new("python", broken);
    req.filename = "mean.py".into();
    req.expect_stdout = Some("2.0\n".into());
    let s = supervise_req(&fake, &req);
    let first = s.trace.attempts[0].outcome.as_ref().expect("outcome");
    assert_eq!(first.status, Status::WrongOutput);
    assert!(
        first
            .diff
            .as_deref()
            .is_some_and(|d| d.contains("-2.0") && d.contains("+1.5"))
    );
    assert_eq!(s.trace.result, TraceResult::Fixed { attempts: 1 });
    assert_eq!(s.outcome.stdout, "2.0\n");
    let prompt = prompt_of(&fake, 0);
    assert!(prompt.contains("wrong_output"), "{prompt}");
    assert!(
        prompt.contains("-2.0") && prompt.contains("+1.5"),
        "the diff: {prompt}"
    );
}

#[test]
fn a_failing_test_is_repaired_and_the_prompt_shows_the_test() {
    let broken = "function median(v) {\n  const s = [...v].sort();\n  return s[Math.floor(s.length / 2)];\n}\nconsole.log(median([3, 1, 2]));\n";
    let fixed = "function median(v) {\n  const s = [...v].sort((a, b) => a - b);\n  return s[Math.floor(s.length / 2)];\n}\nconsole.log(median([3, 1, 2]));\n";
    let test = "const got = median([10, 9, 100]);\nif (got !== 10) throw new Error(`median([10, 9, 100]) should be 10, got ${got}`);\n";
    let fake = FakeLlm::start(vec![Reply::text(fenced("js", fixed))]);
    let mut req = RunRequest::new("javascript", broken);
    req.filename = "median.js".into();
    req.test = Some(llmos::engine::TestProgram {
        source: test.into(),
        filename: "median.test.js".into(),
    });
    let s = supervise_req(&fake, &req);
    let first = s.trace.attempts[0].outcome.as_ref().expect("outcome");
    assert_eq!(first.status, Status::TestFailed, "{first:?}");
    let t = first
        .test
        .as_ref()
        .and_then(|t| t.error.as_ref())
        .expect("test error");
    assert!(t.message.contains("got 100"), "{t:?}");
    assert_eq!(s.trace.result, TraceResult::Fixed { attempts: 1 });
    let prompt = prompt_of(&fake, 0);
    assert!(prompt.contains("median.test.js"), "{prompt}");
    assert!(prompt.contains("should be 10, got 100"), "{prompt}");
    assert!(
        prompt.contains("if (got !== 10)"),
        "the test program: {prompt}"
    );
}

/// The repair prompt of every artifact of the buggy corpus, with the whole
/// kernel API reference (as before) and with only what the artifact uses:
/// the median must shrink to at most 40 %.
#[test]
fn lean_prompts_are_at_most_40_percent_of_the_full_reference_prompts() {
    use llmos::supervisor::prompt::{AttemptVars, Prompts};
    use llmos::supervisor::report::ErrorReport;
    let rt = runtime();
    let volume = &rt.config().system_volume;
    let prompts = Prompts::load(volume).expect("prompts");
    let (mut full, mut lean) = (Vec::new(), Vec::new());
    for (dir, lang) in [("js", "javascript"), ("python", "python")] {
        let manifest = rt.languages().by_name(lang).expect("language").clone();
        let entries = llmos::apiref::reference(&manifest, volume).expect("reference");
        let all = llmos::apiref::markdown(&manifest.name, &entries);
        let root = llmos_tests::repo().join("tests/fixtures/buggy").join(dir);
        let mut files: Vec<_> = std::fs::read_dir(&root)
            .expect("corpus")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "js" || x == "py"))
            .collect();
        files.sort();
        for f in files {
            let source = std::fs::read_to_string(&f).expect("read");
            let mut req = RunRequest::new(lang, source.clone());
            req.filename = f.file_name().expect("name").to_string_lossy().into_owned();
            req.artifact_id = format!("lean-{}", req.filename);
            let outcome = block_on(rt.run(&req)).expect("run");
            let Some(report) = ErrorReport::new(&outcome, &source) else {
                continue;
            };
            let rendered = report.render();
            fn vars<'a>(
                m: &'a llmos::language::Manifest,
                filename: &'a str,
                code: &'a str,
                report: &'a str,
                api: &'a str,
            ) -> AttemptVars<'a> {
                AttemptVars {
                    language: &m.name,
                    fence: m.fence_tag(),
                    filename,
                    attempt: 1,
                    max_attempts: 3,
                    code,
                    report,
                    history: &[],
                    api,
                }
            }
            let relevant = llmos::apiref::relevant(
                &manifest.name,
                &entries,
                &source,
                &format!("{} {}", report.class, report.message),
            );
            full.push(
                prompts
                    .attempt(&vars(&manifest, &req.filename, &source, &rendered, &all))
                    .len(),
            );
            lean.push(
                prompts
                    .attempt(&vars(
                        &manifest,
                        &req.filename,
                        &source,
                        &rendered,
                        &relevant,
                    ))
                    .len(),
            );
            // What an artifact uses is always there in full.
            for iface in ["storage", "viz", "dom", "quantum"] {
                if source.contains(&format!("kernel.{iface}."))
                    || source.contains(&format!("llmos.{iface}"))
                {
                    assert!(
                        relevant.contains(&format!(".{iface}.")),
                        "{}: {iface} missing",
                        req.filename
                    );
                }
            }
        }
    }
    assert!(full.len() >= 60, "{} prompts", full.len());
    let median = |v: &mut Vec<usize>| {
        v.sort_unstable();
        v[v.len() / 2]
    };
    let (f, l) = (median(&mut full), median(&mut lean));
    eprintln!(
        "repair prompt, median over {} buggy artifacts: full reference {f} bytes, lean {l} bytes ({:.0} %)",
        full.len(),
        100.0 * l as f64 / f as f64
    );
    assert!(l * 100 <= f * 40, "lean {l} vs full {f}");
}
