//! The LLM client against the fake LLM server: both wire protocols, retries,
//! timeouts, error mapping, key hygiene and configuration precedence.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use llmos::supervisor::llm::*;
use llmos_tests::fake_llm::*;
use serde_json::{Value, json};

const KEY: &str = "sk-test-SECRET-0123456789";

/// A client configuration for the fake server at `url`, with the test key.
fn config(kind: ProviderKind, url: &str) -> LlmConfig {
    let mut c = LlmConfig::new(kind, url, "test-model");
    c.api_key = Some(Secret::new(KEY));
    c.timeout = Duration::from_secs(10);
    c.max_retry_wait = Duration::from_secs(5);
    c
}

fn request() -> ChatRequest {
    ChatRequest {
        system: "You fix code.".to_string(),
        messages: vec![
            Message::user("it failed"),
            Message::assistant("print(1)"),
            Message::user("still failing"),
        ],
        max_tokens: 500,
        temperature: Some(0.25),
    }
}

async fn complete(config: LlmConfig) -> Result<ChatResponse, LlmError> {
    let p = provider(config).expect("provider builds");
    p.complete(&request()).await
}

/// Asserts the key is in neither the Display nor the Debug of `err`.
fn assert_no_key(err: &LlmError) {
    let shown = format!("{err} / {err:?}");
    assert!(!shown.contains(KEY), "key leaked: {shown}");
    assert!(!shown.contains("SECRET"), "key leaked: {shown}");
}

#[tokio::test]
async fn openai_text_usage_and_request() {
    let fake = FakeLlm::start(vec![Reply::text("print('fixed')")]);
    let p = provider(config(ProviderKind::OpenAi, &fake.url())).expect("provider");
    assert_eq!(p.provider(), "openai");
    assert_eq!(p.model(), "test-model");
    let r = p.complete(&request()).await.expect("completion");
    assert_eq!(r.text, "print('fixed')");
    assert_eq!(r.usage.input_tokens, FAKE_INPUT_TOKENS);
    assert_eq!(r.usage.output_tokens, FAKE_OUTPUT_TOKENS);
    assert_eq!(r.model, "test-model");
    assert_eq!(r.http_attempts, 1);
    assert!(r.duration_ms > 0.0);
    assert!(r.raw.contains("chat.completion"), "raw: {}", r.raw);
    assert!(!r.raw.contains(KEY));

    let reqs = fake.requests();
    assert_eq!(reqs.len(), 1);
    let q = &reqs[0];
    assert_eq!(q.method, "POST");
    assert_eq!(q.path, "/v1/chat/completions");
    assert_eq!(
        q.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert!(
        q.header("content-type")
            .is_some_and(|v| v.starts_with("application/json"))
    );
    assert_eq!(q.header("x-api-key"), None);
    assert_eq!(q.body["model"], "test-model");
    assert_eq!(q.body["max_tokens"], 500);
    let t = q.body["temperature"].as_f64().expect("temperature");
    assert!((t - 0.25).abs() < 1e-6);
    let messages = q.body["messages"].as_array().expect("messages");
    let pairs: Vec<(&str, &str)> = messages
        .iter()
        .map(|m| {
            let role = m["role"].as_str().expect("role");
            (role, m["content"].as_str().expect("content"))
        })
        .collect();
    assert_eq!(
        pairs,
        [
            ("system", "You fix code."),
            ("user", "it failed"),
            ("assistant", "print(1)"),
            ("user", "still failing"),
        ]
    );
}

#[tokio::test]
async fn anthropic_text_usage_and_request() {
    let fake = FakeLlm::start(vec![Reply::text_with_usage("console.log(1)", 1234, 56)]);
    let p = provider(config(ProviderKind::Anthropic, &fake.url())).expect("provider");
    assert_eq!(p.provider(), "anthropic");
    let r = p.complete(&request()).await.expect("completion");
    assert_eq!(r.text, "console.log(1)");
    assert_eq!(r.usage.input_tokens, 1234);
    assert_eq!(r.usage.output_tokens, 56);
    assert_eq!(r.usage.total(), 1290);
    assert_eq!(r.http_attempts, 1);

    let reqs = fake.requests();
    assert_eq!(reqs.len(), 1);
    let q = &reqs[0];
    assert_eq!(q.method, "POST");
    assert_eq!(q.path, "/v1/messages");
    assert_eq!(q.header("x-api-key"), Some(KEY));
    assert_eq!(q.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(q.header("authorization"), None);
    assert_eq!(q.body["model"], "test-model");
    assert_eq!(q.body["system"], "You fix code.");
    assert_eq!(q.body["max_tokens"], 500);
    assert_eq!(
        q.body["messages"],
        json!([
            {"role": "user", "content": "it failed"},
            {"role": "assistant", "content": "print(1)"},
            {"role": "user", "content": "still failing"},
        ])
    );
}

#[tokio::test]
async fn anthropic_concatenates_text_blocks() {
    let body = json!({
        "model": "m",
        "content": [
            {"type": "thinking", "thinking": "hmm"},
            {"type": "text", "text": "a"},
            {"type": "text", "text": "b"},
        ],
        "usage": {"input_tokens": 3, "output_tokens": 4},
    });
    let fake = FakeLlm::start(vec![Reply::raw(body.to_string())]);
    let r = complete(config(ProviderKind::Anthropic, &fake.url()))
        .await
        .expect("completion");
    assert_eq!(r.text, "ab");
    assert_eq!(
        r.usage,
        Usage {
            input_tokens: 3,
            output_tokens: 4
        }
    );
    assert_eq!(r.model, "m");
}

#[tokio::test]
async fn openai_content_parts_and_missing_usage() {
    let body = json!({
        "choices": [{"message": {"role": "assistant", "content": [
            {"type": "text", "text": "x = "}, {"type": "text", "text": "1"}
        ]}}],
    });
    let fake = FakeLlm::start(vec![Reply::raw(body.to_string())]);
    let r = complete(config(ProviderKind::OpenAi, &fake.url()))
        .await
        .expect("completion");
    assert_eq!(r.text, "x = 1");
    assert_eq!(r.usage, Usage::default());
    assert_eq!(r.model, "test-model");
}

#[tokio::test]
async fn no_key_sends_no_auth_header() {
    let fake = FakeLlm::start(vec![Reply::text("ok")]);
    let mut c = config(ProviderKind::OpenAi, &format!("{}/", fake.url()));
    c.api_key = None;
    let r = complete(c).await.expect("completion");
    assert_eq!(r.text, "ok");
    let reqs = fake.requests();
    assert_eq!(reqs[0].path, "/v1/chat/completions");
    assert_eq!(reqs[0].header("authorization"), None);
}

#[tokio::test]
async fn server_error_then_success() {
    let fake = FakeLlm::start(vec![Reply::error(500, "boom"), Reply::text("ok")]);
    let r = complete(config(ProviderKind::OpenAi, &fake.url()))
        .await
        .expect("completion after a retry");
    assert_eq!(r.text, "ok");
    assert_eq!(r.http_attempts, 2);
    assert_eq!(fake.requests().len(), 2);
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let fake = FakeLlm::start(vec![
        Reply::status_with_header(
            429,
            "Retry-After",
            "1",
            r#"{"error":{"message":"slow down"}}"#,
        ),
        Reply::text("ok"),
    ]);
    let started = Instant::now();
    let r = complete(config(ProviderKind::Anthropic, &fake.url()))
        .await
        .expect("completion after 429");
    let elapsed = started.elapsed();
    assert_eq!(r.text, "ok");
    assert_eq!(r.http_attempts, 2);
    assert!(
        elapsed >= Duration::from_millis(950),
        "waited only {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(10), "waited {elapsed:?}");
    assert!(r.duration_ms >= 950.0);
}

#[tokio::test]
async fn retry_after_is_capped() {
    let fake = FakeLlm::start(vec![
        Reply::status_with_header(503, "Retry-After", "3600", "overloaded"),
        Reply::text("ok"),
    ]);
    let mut c = config(ProviderKind::OpenAi, &fake.url());
    c.max_retry_wait = Duration::from_millis(100);
    let started = Instant::now();
    let r = complete(c).await.expect("completion");
    assert_eq!(r.http_attempts, 2);
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[tokio::test]
async fn retries_run_out() {
    let fake = FakeLlm::start(vec![Reply::error(503, "down"); 3]);
    let mut c = config(ProviderKind::OpenAi, &fake.url());
    c.max_retries = 2;
    c.max_retry_wait = Duration::from_millis(20);
    let err = complete(c).await.expect_err("503s");
    assert!(
        matches!(
            err,
            LlmError::Server {
                status: 503,
                attempts: 3,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("down"), "{err}");
    assert_eq!(fake.requests().len(), 3);

    let fake = FakeLlm::start(vec![Reply::error(429, "quota"); 2]);
    let mut c = config(ProviderKind::Anthropic, &fake.url());
    c.max_retries = 1;
    c.max_retry_wait = Duration::from_millis(20);
    let err = complete(c).await.expect_err("429s");
    assert!(
        matches!(err, LlmError::RateLimited { attempts: 2, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("quota"), "{err}");
}

#[tokio::test]
async fn hanging_server_times_out() {
    let fake = FakeLlm::start(vec![Reply::hang(Duration::from_secs(10))]);
    let mut c = config(ProviderKind::OpenAi, &fake.url());
    c.timeout = Duration::from_secs(1);
    c.max_retries = 0;
    let started = Instant::now();
    let err = complete(c).await.expect_err("timeout");
    let elapsed = started.elapsed();
    assert!(
        matches!(err, LlmError::Timeout { attempts: 1, .. }),
        "{err:?}"
    );
    assert!(elapsed >= Duration::from_millis(900), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(9), "{elapsed:?}");
    assert!(err.to_string().contains("LLMOS_LLM_TIMEOUT"), "{err}");
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn timeout_is_retried() {
    let fake = FakeLlm::start(vec![
        Reply::hang(Duration::from_secs(10)),
        Reply::text("ok"),
    ]);
    let mut c = config(ProviderKind::Anthropic, &fake.url());
    c.timeout = Duration::from_secs(1);
    c.max_retries = 1;
    let r = complete(c).await.expect("completion after a timeout");
    assert_eq!(r.text, "ok");
    assert_eq!(r.http_attempts, 2);
}

#[tokio::test]
async fn unauthorized_is_not_retried() {
    let fake = FakeLlm::start(vec![
        Reply::error(401, "Incorrect API key provided"),
        Reply::text("never"),
    ]);
    let err = complete(config(ProviderKind::OpenAi, &fake.url()))
        .await
        .expect_err("401");
    assert!(
        matches!(err, LlmError::Unauthorized { status: 401, .. }),
        "{err:?}"
    );
    let shown = err.to_string();
    assert!(shown.contains("401 from openai"), "{shown}");
    assert!(shown.contains("Incorrect API key provided"), "{shown}");
    assert!(shown.contains("OPENAI_API_KEY"), "{shown}");
    assert_eq!(fake.requests().len(), 1);
    assert_no_key(&err);

    let fake = FakeLlm::start(vec![Reply::error(403, "forbidden")]);
    let err = complete(config(ProviderKind::Anthropic, &fake.url()))
        .await
        .expect_err("403");
    assert!(err.to_string().contains("ANTHROPIC_API_KEY"), "{err}");
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn bad_request_is_not_retried() {
    let fake = FakeLlm::start(vec![
        Reply::error(400, "messages: too long"),
        Reply::text("x"),
    ]);
    let err = complete(config(ProviderKind::Anthropic, &fake.url()))
        .await
        .expect_err("400");
    assert!(
        matches!(err, LlmError::BadRequest { status: 400, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("messages: too long"), "{err}");
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn malformed_json_is_invalid_response() {
    let fake = FakeLlm::start(vec![Reply::raw("{\"choices\": [oops")]);
    let err = complete(config(ProviderKind::OpenAi, &fake.url()))
        .await
        .expect_err("malformed");
    assert!(matches!(err, LlmError::InvalidResponse(_)), "{err:?}");
    assert!(err.to_string().contains("oops"), "{err}");
    assert_eq!(fake.requests().len(), 1);

    let fake = FakeLlm::start(vec![Reply::raw(r#"{"id":"x"}"#)]);
    let err = complete(config(ProviderKind::Anthropic, &fake.url()))
        .await
        .expect_err("no content");
    assert!(matches!(err, LlmError::InvalidResponse(_)), "{err:?}");
    assert!(err.to_string().contains("content"), "{err}");
}

#[tokio::test]
async fn not_found_names_url_and_model() {
    let fake = FakeLlm::start(vec![Reply::status(404, "404 page not found")]);
    let err = complete(config(ProviderKind::OpenAi, &fake.url()))
        .await
        .expect_err("404");
    assert!(matches!(err, LlmError::NotFound { .. }), "{err:?}");
    let shown = err.to_string();
    assert!(shown.contains("test-model"), "{shown}");
    assert!(
        shown.contains(&format!("{}/chat/completions", fake.url())),
        "{shown}"
    );
    assert!(shown.contains("LLMOS_LLM_URL"), "{shown}");
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn unknown_model_is_model_not_found() {
    // Ollama's answer, and Anthropic's.
    let fake = FakeLlm::start(vec![Reply::status(
        404,
        r#"{"error":"model \"test-model\" not found, try pulling it first"}"#,
    )]);
    let err = complete(config(ProviderKind::OpenAi, &fake.url()))
        .await
        .expect_err("404");
    assert!(
        matches!(err, LlmError::ModelNotFound { status: 404, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("LLMOS_LLM_MODEL"), "{err}");

    let body =
        r#"{"type":"error","error":{"type":"not_found_error","message":"model: test-model"}}"#;
    let fake = FakeLlm::start(vec![Reply::status(404, body)]);
    let err = complete(config(ProviderKind::Anthropic, &fake.url()))
        .await
        .expect_err("404");
    assert!(matches!(err, LlmError::ModelNotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("\"test-model\""), "{err}");

    let body =
        r#"{"error":{"message":"The model `test-model` does not exist","code":"model_not_found"}}"#;
    let fake = FakeLlm::start(vec![Reply::status(400, body)]);
    let err = complete(config(ProviderKind::OpenAi, &fake.url()))
        .await
        .expect_err("400");
    assert!(
        matches!(err, LlmError::ModelNotFound { status: 400, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn connection_refused_is_connect() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let url = format!("http://127.0.0.1:{port}/v1");
    let mut c = config(ProviderKind::OpenAi, &url);
    c.max_retries = 1;
    c.max_retry_wait = Duration::from_millis(20);
    let err = complete(c).await.expect_err("refused");
    assert!(matches!(err, LlmError::Connect { .. }), "{err:?}");
    let shown = err.to_string();
    assert!(shown.contains(&url), "{shown}");
    assert_no_key(&err);
}

#[tokio::test]
async fn key_never_leaks_into_errors_or_raw() {
    let echo = format!(r#"{{"error":{{"message":"bad key {KEY}"}}}}"#);
    let replies = [
        Reply::status(401, echo.clone()),
        Reply::status(400, echo.clone()),
        Reply::status(404, echo.clone()),
        Reply::status(500, echo.clone()),
        Reply::raw(format!("not json {KEY}")),
    ];
    for reply in replies {
        let fake = FakeLlm::start(vec![reply]);
        let mut c = config(ProviderKind::OpenAi, &fake.url());
        c.max_retries = 0;
        let err = complete(c).await.expect_err("error");
        assert_no_key(&err);
        let reqs = fake.requests();
        assert_eq!(
            reqs[0].header("authorization"),
            Some(format!("Bearer {KEY}").as_str())
        );
    }
    // A reply echoing the key: redacted from `raw`.
    let body = json!({"choices": [{"message": {"content": "hi"}}], "note": KEY});
    let fake = FakeLlm::start(vec![Reply::raw(body.to_string())]);
    let r = complete(config(ProviderKind::OpenAi, &fake.url()))
        .await
        .expect("completion");
    assert!(!r.raw.contains(KEY), "{}", r.raw);
    let c = config(ProviderKind::Anthropic, &fake.url());
    assert!(!format!("{c:?}").contains(KEY));
    let p = HttpProvider::new(c).expect("provider");
    assert!(!format!("{p:?}").contains(KEY));
    assert_eq!(p.model(), "test-model");
}

#[tokio::test]
async fn max_completion_tokens_fallback() {
    let fake = FakeLlm::start(vec![
        Reply::error(
            400,
            "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.",
        ),
        Reply::text("ok"),
    ]);
    let r = complete(config(ProviderKind::OpenAi, &fake.url()))
        .await
        .expect("completion");
    assert_eq!(r.http_attempts, 2);
    let reqs = fake.requests();
    assert_eq!(reqs[1].body["max_completion_tokens"], 500);
    assert_eq!(reqs[1].body.get("max_tokens"), None);
}

#[tokio::test]
async fn script_exhausted_says_so() {
    let fake = FakeLlm::start(vec![]);
    let mut c = config(ProviderKind::OpenAi, &fake.url());
    c.max_retries = 0;
    let err = complete(c).await.expect_err("500");
    assert!(err.to_string().contains("script exhausted"), "{err}");
}

/// `from_lookup` with `env` standing for the environment.
fn from_map(overrides: &LlmOverrides, env: &[(&str, &str)]) -> Result<Option<LlmConfig>, LlmError> {
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    LlmConfig::from_lookup(overrides, |name| env.get(name).cloned())
}

#[test]
fn config_from_lookup() {
    let none = LlmOverrides::default();
    // Nothing configured.
    assert!(from_map(&none, &[]).expect("ok").is_none());
    assert!(
        from_map(&none, &[("OPENAI_API_KEY", "k")])
            .expect("ok")
            .is_none()
    );

    // Official OpenAI: default URL and model, key from OPENAI_API_KEY.
    let c = from_map(
        &none,
        &[
            ("LLMOS_LLM_PROVIDER", "OpenAI"),
            ("OPENAI_API_KEY", "sk-1"),
            ("ANTHROPIC_API_KEY", "a"),
        ],
    )
    .expect("ok")
    .expect("configured");
    assert_eq!(c.provider, ProviderKind::OpenAi);
    assert_eq!(c.base_url, "https://api.openai.com/v1");
    assert_eq!(c.endpoint(), "https://api.openai.com/v1/chat/completions");
    assert_eq!(c.model, "gpt-4o-mini");
    assert_eq!(c.api_key.as_ref().map(Secret::expose), Some("sk-1"));
    assert_eq!(c.timeout, Duration::from_secs(120));
    assert_eq!(c.max_retries, 3);
    assert_eq!(c.max_retry_wait, Duration::from_secs(30));

    // Official Anthropic needs a key.
    let err = from_map(&none, &[("LLMOS_LLM_PROVIDER", "anthropic")]).expect_err("no key");
    assert!(err.to_string().contains("ANTHROPIC_API_KEY"), "{err}");
    let c = from_map(
        &none,
        &[
            ("LLMOS_LLM_PROVIDER", "anthropic"),
            ("ANTHROPIC_API_KEY", "a"),
        ],
    )
    .expect("ok")
    .expect("configured");
    assert_eq!(c.model, "claude-sonnet-4-5");
    assert_eq!(c.endpoint(), "https://api.anthropic.com/v1/messages");

    // A local server: no key needed, but a model is.
    let local = [
        ("LLMOS_LLM_PROVIDER", "openai"),
        ("LLMOS_LLM_URL", "http://127.0.0.1:11434/v1/"),
        ("LLMOS_LLM_TIMEOUT", "7.5"),
    ];
    let err = from_map(&none, &local).expect_err("no model");
    assert!(err.to_string().contains("LLMOS_LLM_MODEL"), "{err}");
    assert!(err.to_string().contains("--model"), "{err}");
    let mut with_model = local.to_vec();
    with_model.push(("LLMOS_LLM_MODEL", "qwen2.5-coder:7b"));
    let c = from_map(&none, &with_model)
        .expect("ok")
        .expect("configured");
    assert_eq!(c.base_url, "http://127.0.0.1:11434/v1");
    assert_eq!(c.endpoint(), "http://127.0.0.1:11434/v1/chat/completions");
    assert_eq!(c.model, "qwen2.5-coder:7b");
    assert!(c.api_key.is_none());
    assert_eq!(c.timeout, Duration::from_millis(7500));

    // Flags win over the environment.
    let flags = LlmOverrides {
        provider: Some("anthropic".to_string()),
        url: Some("http://localhost:9/v1".to_string()),
        model: Some("flag-model".to_string()),
    };
    let c = from_map(&flags, &with_model)
        .expect("ok")
        .expect("configured");
    assert_eq!(c.provider, ProviderKind::Anthropic);
    assert_eq!(c.base_url, "http://localhost:9/v1");
    assert_eq!(c.model, "flag-model");
    let only_flag = LlmOverrides {
        provider: Some("openai".to_string()),
        ..LlmOverrides::default()
    };
    let c = from_map(&only_flag, &[("OPENAI_API_KEY", "k")])
        .expect("ok")
        .expect("configured");
    assert_eq!(c.provider, ProviderKind::OpenAi);

    // Errors a person can act on.
    let err = from_map(&none, &[("LLMOS_LLM_PROVIDER", "gemini")]).expect_err("unknown");
    assert!(err.to_string().contains("\"gemini\""), "{err}");
    assert!(err.to_string().contains("anthropic"), "{err}");
    let bad = [
        ("LLMOS_LLM_PROVIDER", "openai"),
        ("LLMOS_LLM_URL", "http://127.0.0.1:11434/v1"),
        ("LLMOS_LLM_MODEL", "m"),
        ("LLMOS_LLM_TIMEOUT", "soon"),
    ];
    let err = from_map(&none, &bad).expect_err("bad timeout");
    assert!(err.to_string().contains("LLMOS_LLM_TIMEOUT"), "{err}");
    let err = from_map(&flags_with_url("127.0.0.1:11434/v1"), &[]).expect_err("no scheme");
    assert!(err.to_string().contains("http://"), "{err}");
    assert!(!HOW_TO_CONFIGURE.is_empty());
    assert!(
        LlmError::NotConfigured
            .to_string()
            .contains("LLMOS_LLM_PROVIDER")
    );
}

fn flags_with_url(url: &str) -> LlmOverrides {
    LlmOverrides {
        provider: Some("openai".to_string()),
        url: Some(url.to_string()),
        model: Some("m".to_string()),
    }
}

#[test]
fn provider_kind_parses() {
    assert_eq!(
        "openai".parse::<ProviderKind>().ok(),
        Some(ProviderKind::OpenAi)
    );
    assert_eq!(
        " ANTHROPIC ".parse::<ProviderKind>().ok(),
        Some(ProviderKind::Anthropic)
    );
    assert!("".parse::<ProviderKind>().is_err());
    assert_eq!(ProviderKind::Anthropic.to_string(), "anthropic");
    let v: Value = serde_json::to_value(Usage {
        input_tokens: 1,
        output_tokens: 2,
    })
    .expect("json");
    assert_eq!(v, json!({"input_tokens": 1, "output_tokens": 2}));
}

// --- Hostile servers: bounded bodies, no redirects, no keys in clear text ---

/// Waits (yielding to the runtime, which must close the dropped connection)
/// up to 10 s for the fake's streamed reply to end.
async fn wait_streamed(fake: &FakeLlm) -> Streamed {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = fake.streamed();
        if s.finished || Instant::now() >= deadline {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A client for `url` with a small body cap and no retries.
fn capped(kind: ProviderKind, url: &str, cap: usize) -> LlmConfig {
    let mut c = config(kind, url);
    c.max_response_bytes = cap;
    c.max_retries = 0;
    c
}

#[test]
fn the_default_body_cap_is_8_mib() {
    assert_eq!(DEFAULT_MAX_RESPONSE_BYTES, 8 << 20);
    let c = LlmConfig::new(ProviderKind::OpenAi, "http://127.0.0.1:1/v1", "m");
    assert_eq!(c.max_response_bytes, 8 << 20);
}

#[tokio::test]
async fn an_endless_body_is_abandoned_at_the_cap() {
    const CAP: usize = 1 << 20;
    let fake = FakeLlm::start(vec![Reply::stream(200, None, None)]);
    let mut c = capped(ProviderKind::OpenAi, &fake.url(), CAP);
    c.max_retries = 3;
    let err = complete(c).await.expect_err("too large");
    assert!(
        matches!(
            err,
            LlmError::ResponseTooLarge {
                limit: CAP,
                declared: None,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("larger than 1048576 bytes"),
        "{err}"
    );
    assert_no_key(&err);
    // Not retried, and the client hung up: the server's writes failed and the
    // endless stream ended.
    assert_eq!(fake.requests().len(), 1);
    let s = wait_streamed(&fake).await;
    assert!(s.finished && s.client_hung_up, "{s:?}");
}

#[tokio::test]
async fn a_body_of_exactly_the_cap_is_read_and_one_byte_more_is_not() {
    const CAP: usize = 256 << 10;
    // Exactly CAP bytes (not JSON): read whole, then refused as invalid.
    let fake = FakeLlm::start(vec![Reply::stream(200, None, Some(CAP as u64))]);
    let err = complete(capped(ProviderKind::Anthropic, &fake.url(), CAP))
        .await
        .expect_err("not json");
    assert!(matches!(err, LlmError::InvalidResponse(_)), "{err:?}");
    // The quote of the unparsable body is short.
    assert!(err.to_string().len() < 1000, "{}", err.to_string().len());

    let fake = FakeLlm::start(vec![Reply::stream(200, None, Some(CAP as u64 + 1))]);
    let err = complete(capped(ProviderKind::Anthropic, &fake.url(), CAP))
        .await
        .expect_err("too large");
    assert!(
        matches!(err, LlmError::ResponseTooLarge { limit: CAP, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_declared_huge_length_is_refused_before_reading() {
    let fake = FakeLlm::start(vec![Reply::stream(200, Some(1 << 40), None)]);
    let started = Instant::now();
    let err = complete(capped(ProviderKind::OpenAi, &fake.url(), 1 << 20))
        .await
        .expect_err("too large");
    assert!(
        matches!(
            err,
            LlmError::ResponseTooLarge {
                declared: Some(n),
                ..
            } if n == 1 << 40
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("Content-Length 1099511627776"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    let s = wait_streamed(&fake).await;
    assert!(s.finished && s.client_hung_up, "{s:?}");
}

#[tokio::test]
async fn an_endless_error_body_is_cut_and_quoted_short() {
    let fake = FakeLlm::start(vec![Reply::stream(500, None, None)]);
    let err = complete(capped(ProviderKind::OpenAi, &fake.url(), 8 << 20))
        .await
        .expect_err("server error");
    let LlmError::Server {
        status: 500,
        ref message,
        ..
    } = err
    else {
        panic!("{err:?}");
    };
    // At most QUOTE_CHARS (300) characters and an ellipsis.
    assert!(message.len() <= 303, "{}", message.len());
    assert!(message.starts_with("xxxx"), "{message}");
    let s = wait_streamed(&fake).await;
    assert!(s.finished && s.client_hung_up, "{s:?}");
}

#[tokio::test]
async fn redirects_are_not_followed_and_the_key_never_arrives() {
    for kind in [ProviderKind::OpenAi, ProviderKind::Anthropic] {
        for status in [301, 302, 303, 307, 308] {
            // The recorder on another loopback port: it would answer.
            let target = FakeLlm::start(vec![Reply::text("stolen")]);
            let location = format!("{}{}", target.url(), kind.endpoint_path());
            let origin = FakeLlm::start(vec![Reply::redirect(status, &location)]);
            let mut c = config(kind, &origin.url());
            c.max_retries = 2;
            let err = complete(c).await.expect_err("redirect");
            match &err {
                LlmError::Redirect {
                    status: s,
                    location: l,
                    ..
                } => {
                    assert_eq!(*s, status);
                    assert_eq!(l, &location);
                }
                other => panic!("{kind} {status}: {other:?}"),
            }
            assert!(err.to_string().contains("LLMOS_LLM_URL"), "{err}");
            assert_no_key(&err);
            // The configured server got the key; the redirect target got nothing.
            assert_eq!(origin.requests().len(), 1, "not retried");
            assert!(origin.received_credentials());
            assert!(target.requests().is_empty(), "{kind} {status}: followed");
            assert!(!target.received_credentials());
        }
    }
}

#[tokio::test]
async fn the_recorder_notices_a_key_sent_to_it() {
    // The redirect test's negative is meaningful: a key sent straight to the
    // recorder is recorded.
    for kind in [ProviderKind::OpenAi, ProviderKind::Anthropic] {
        let target = FakeLlm::start(vec![Reply::text("ok")]);
        complete(config(kind, &target.url())).await.expect("ok");
        assert!(target.received_credentials(), "{kind}");
    }
}

#[tokio::test]
async fn a_key_over_plain_http_to_a_remote_host_is_refused_at_configuration() {
    for url in ["http://llm.example.com/v1", "http://192.0.2.7:11434/v1"] {
        let err = provider(config(ProviderKind::OpenAi, url))
            .err()
            .expect("refused");
        assert!(
            matches!(&err, LlmError::PlaintextKey { url: u, key_var: "OPENAI_API_KEY" } if u == url),
            "{err:?}"
        );
        assert!(err.to_string().contains(url), "{err}");
        assert!(err.to_string().contains("https://"), "{err}");
        assert_no_key(&err);

        // The same from the environment.
        let env = [
            ("LLMOS_LLM_PROVIDER", "anthropic"),
            ("LLMOS_LLM_URL", url),
            ("LLMOS_LLM_MODEL", "m"),
            ("ANTHROPIC_API_KEY", KEY),
        ];
        let err = from_map(&LlmOverrides::default(), &env).expect_err("refused");
        assert!(
            matches!(
                err,
                LlmError::PlaintextKey {
                    key_var: "ANTHROPIC_API_KEY",
                    ..
                }
            ),
            "{err:?}"
        );
        // Without a key it is allowed (nothing secret to leak).
        let no_key = &env[..3];
        assert!(from_map(&LlmOverrides::default(), no_key).is_ok());
    }
    // https anywhere and http to loopback are fine with a key.
    assert!(provider(config(ProviderKind::OpenAi, "https://llm.example.com/v1")).is_ok());
    for url in [
        "http://127.0.0.1:9/v1",
        "http://localhost:9/v1",
        "http://[::1]:9/v1",
    ] {
        assert!(
            provider(config(ProviderKind::Anthropic, url)).is_ok(),
            "{url}"
        );
    }
}
