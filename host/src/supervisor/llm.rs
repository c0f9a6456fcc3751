//! The LLM client that proposes fixes for failing artifacts.
//!
//! A [`FixProvider`] turns a [`ChatRequest`] (a system prompt and a
//! conversation) into a [`ChatResponse`] (the model's text, token usage and the
//! raw response body). [`provider`] builds the HTTP implementation from an
//! [`LlmConfig`], which usually comes from the environment
//! ([`LlmConfig::from_env`], see [`HOW_TO_CONFIGURE`]).
//!
//! Two wire protocols are spoken:
//! - OpenAI-compatible chat completions (`POST {base}/chat/completions`): OpenAI
//!   itself, and local servers such as Ollama, llama.cpp, vLLM or LM Studio.
//! - Anthropic Messages (`POST {base}/messages`).
//!
//! Transient failures (429, 500, 502, 503, 504, 529, connection errors and
//! timeouts) are retried up to [`LlmConfig::max_retries`] times, honouring
//! `Retry-After` when the server sends it and backing off exponentially (with
//! jitter) otherwise. Client errors (400, 401, 403, 404...) are never retried.
//!
//! API keys live only in [`Secret`]s and request headers: they are never
//! printed, logged, serialized or quoted in an [`LlmError`]; server text quoted
//! in errors and the `raw` body have any occurrence of the key redacted.
//!
//! The server is a network peer, so nothing it sends is trusted:
//! - **Bounded bodies.** A reply is read chunk by chunk and abandoned with
//!   [`LlmError::ResponseTooLarge`] as soon as it (or its `Content-Length`)
//!   passes [`LlmConfig::max_response_bytes`] (default
//!   [`DEFAULT_MAX_RESPONSE_BYTES`], 8 MiB); an error reply is read to at most
//!   [`MAX_ERROR_BODY`] bytes, the rest dropped unread. No body is ever
//!   buffered whole before its size is known to be within bounds.
//! - **No redirects.** The client follows none (`redirect::Policy::none()`),
//!   and a 3xx ends the call with [`LlmError::Redirect`] naming the target.
//!   A chat endpoint has no reason to redirect a `POST`; following one would
//!   resend the prompt (the user's code) elsewhere, and reqwest strips only
//!   `Authorization` on a cross-origin hop, not Anthropic's `x-api-key`.
//!   Same-origin-only following was rejected as the lesser design: it still
//!   turns `POST` into `GET` on 301/302 and buys nothing a corrected
//!   [`ENV_URL`] does not.
//! - **No keys in clear text.** A configuration with an API key and an
//!   `http://` URL whose host is not loopback (`127.0.0.0/8`, `::1`,
//!   `localhost`) is refused when it is built ([`LlmError::PlaintextKey`]);
//!   plain http to a local server stays allowed.

use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::str::FromStr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Environment variable naming the provider: `openai` or `anthropic`.
pub const ENV_PROVIDER: &str = "LLMOS_LLM_PROVIDER";
/// Environment variable with the API base URL (e.g. `http://127.0.0.1:11434/v1`).
pub const ENV_URL: &str = "LLMOS_LLM_URL";
/// Environment variable naming the model.
pub const ENV_MODEL: &str = "LLMOS_LLM_MODEL";
/// Environment variable with the per-request timeout in seconds.
pub const ENV_TIMEOUT: &str = "LLMOS_LLM_TIMEOUT";
/// The `anthropic-version` header sent to the Messages API.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";
/// Default per-request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
/// Default number of retries after the first attempt.
pub const DEFAULT_MAX_RETRIES: u32 = 3;
/// Default cap on one wait between retries.
pub const DEFAULT_MAX_RETRY_WAIT: Duration = Duration::from_secs(30);
/// Default cap on a successful response body (a long answer is well under 1 MiB).
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 8 << 20;
/// Bytes of an error response body read (and at most quoted, cut to a few
/// hundred characters); the rest is never read.
pub const MAX_ERROR_BODY: usize = 64 << 10;

/// First backoff wait when the server gives no `Retry-After`; doubled per retry.
const BACKOFF_BASE: Duration = Duration::from_millis(500);
/// How many characters of a server body an error quotes.
const QUOTE_CHARS: usize = 300;

/// How to configure the LLM that `--fix` asks for fixes (printed by the CLI).
pub const HOW_TO_CONFIGURE: &str = "\
--fix needs an LLM. Configure one with environment variables (or the matching flags):
  LLMOS_LLM_PROVIDER  openai | anthropic   (--provider; `openai` means any OpenAI-compatible server)
  LLMOS_LLM_URL       API base URL          (--llm-url; default https://api.openai.com/v1 or https://api.anthropic.com/v1)
  LLMOS_LLM_MODEL     model name            (--model; required unless the URL is the official API)
  OPENAI_API_KEY / ANTHROPIC_API_KEY       the API key, by provider (local servers need none)
  LLMOS_LLM_TIMEOUT   seconds per request   (default 120)
Examples:
  Ollama:    LLMOS_LLM_PROVIDER=openai LLMOS_LLM_URL=http://127.0.0.1:11434/v1 LLMOS_LLM_MODEL=qwen2.5-coder:7b
  OpenAI:    LLMOS_LLM_PROVIDER=openai OPENAI_API_KEY=sk-...   (model defaults to gpt-4o-mini)
  Anthropic: LLMOS_LLM_PROVIDER=anthropic ANTHROPIC_API_KEY=sk-ant-...   (model defaults to claude-sonnet-4-5)";

/// Something that can complete a chat: the LLM behind `--fix`.
#[async_trait::async_trait]
pub trait FixProvider: Send + Sync {
    /// The provider's name (`openai` or `anthropic` for the HTTP client).
    fn provider(&self) -> &str;
    /// The model asked.
    fn model(&self) -> &str;
    /// Sends one chat request (retrying transient failures) and returns the reply.
    async fn complete(&self, req: &ChatRequest) -> Result<ChatResponse, LlmError>;
}

/// One chat request: a system prompt and the conversation so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The system prompt (omitted from the request when empty).
    pub system: String,
    /// The conversation, oldest first; normally ends with a user message.
    pub messages: Vec<Message>,
    /// Maximum number of tokens the model may generate.
    pub max_tokens: u32,
    /// Sampling temperature; `None` leaves the provider's default.
    pub temperature: Option<f32>,
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Who wrote it.
    pub role: Role,
    /// Its text.
    pub content: String,
}

impl Message {
    /// A user message.
    pub fn user(content: impl Into<String>) -> Message {
        Message {
            role: Role::User,
            content: content.into(),
        }
    }

    /// An assistant (model) message.
    pub fn assistant(content: impl Into<String>) -> Message {
        Message {
            role: Role::Assistant,
            content: content.into(),
        }
    }
}

/// The author of a [`Message`]; the system prompt is [`ChatRequest::system`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The person (or llmos) asking.
    User,
    /// The model.
    Assistant,
}

impl Role {
    /// The role's name on the wire: `user` or `assistant`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// The model's reply to a [`ChatRequest`].
#[derive(Debug, Clone, Serialize)]
pub struct ChatResponse {
    /// The generated text.
    pub text: String,
    /// Tokens read and written, as the provider reported them (zeros if it did not).
    pub usage: Usage,
    /// The model that answered, as the provider named it (else the configured model).
    pub model: String,
    /// The raw response body.
    pub raw: String,
    /// HTTP requests sent, retries included.
    pub http_attempts: u32,
    /// Wall-clock time of the whole call, retries and waits included, in milliseconds.
    pub duration_ms: f64,
}

/// Token counts of one or more completions.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens (for Anthropic, cache reads and writes included).
    pub input_tokens: u64,
    /// Generated tokens.
    pub output_tokens: u64,
}

impl Usage {
    /// Input plus output tokens.
    pub fn total(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }
}

impl std::ops::Add for Usage {
    type Output = Usage;
    fn add(self, rhs: Usage) -> Usage {
        Usage {
            input_tokens: self.input_tokens + rhs.input_tokens,
            output_tokens: self.output_tokens + rhs.output_tokens,
        }
    }
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, rhs: Usage) {
        *self = *self + rhs;
    }
}

/// The wire protocol (and default endpoint) to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// OpenAI chat completions, or any server compatible with it.
    OpenAi,
    /// The Anthropic Messages API.
    Anthropic,
}

impl ProviderKind {
    /// The provider's name: `openai` or `anthropic`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "openai",
            ProviderKind::Anthropic => "anthropic",
        }
    }

    /// The official API base URL.
    pub fn default_url(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "https://api.openai.com/v1",
            ProviderKind::Anthropic => "https://api.anthropic.com/v1",
        }
    }

    /// The model used with the official API when none is named.
    pub fn default_model(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "gpt-4o-mini",
            ProviderKind::Anthropic => "claude-sonnet-4-5",
        }
    }

    /// The environment variable holding the API key.
    pub fn key_var(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "OPENAI_API_KEY",
            ProviderKind::Anthropic => "ANTHROPIC_API_KEY",
        }
    }

    /// The path appended to the API base URL.
    pub fn endpoint_path(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "/chat/completions",
            ProviderKind::Anthropic => "/messages",
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProviderKind {
    type Err = LlmError;

    /// Parses `openai` or `anthropic`, ignoring case and surrounding spaces.
    fn from_str(s: &str) -> Result<ProviderKind, LlmError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "openai" => Ok(ProviderKind::OpenAi),
            "anthropic" => Ok(ProviderKind::Anthropic),
            _ => Err(LlmError::Config(format!(
                "unknown LLM provider {:?}: expected \"openai\" (any OpenAI-compatible server) or \"anthropic\"",
                s.trim()
            ))),
        }
    }
}

/// A secret (an API key): prints as `[redacted]` and is never serialized.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret value; use it only to build a request header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Secret {
        Secret(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Command-line overrides of the environment; each wins over its variable.
#[derive(Debug, Clone, Default)]
pub struct LlmOverrides {
    /// `--provider`, over `LLMOS_LLM_PROVIDER`.
    pub provider: Option<String>,
    /// `--url`, over `LLMOS_LLM_URL`.
    pub url: Option<String>,
    /// `--model`, over `LLMOS_LLM_MODEL`.
    pub model: Option<String>,
}

/// Everything the HTTP client needs to reach a model.
#[derive(Debug, Clone)]
pub struct LlmConfig {
    /// The wire protocol.
    pub provider: ProviderKind,
    /// API base URL without a trailing slash, e.g. `http://127.0.0.1:11434/v1`.
    pub base_url: String,
    /// The model to ask.
    pub model: String,
    /// The API key, if the server needs one.
    pub api_key: Option<Secret>,
    /// Time limit of one HTTP request (connecting, sending and reading the reply).
    pub timeout: Duration,
    /// Retries after the first attempt for transient failures.
    pub max_retries: u32,
    /// Cap on one wait between retries (also caps `Retry-After`).
    pub max_retry_wait: Duration,
    /// Cap on a successful response body, in bytes; a larger reply fails with
    /// [`LlmError::ResponseTooLarge`] without being read further.
    pub max_response_bytes: usize,
}

impl LlmConfig {
    /// A configuration with the default timeout and retry policy and no key.
    pub fn new(provider: ProviderKind, base_url: &str, model: &str) -> LlmConfig {
        LlmConfig {
            provider,
            base_url: normalize_url(base_url),
            model: model.to_string(),
            api_key: None,
            timeout: DEFAULT_TIMEOUT,
            max_retries: DEFAULT_MAX_RETRIES,
            max_retry_wait: DEFAULT_MAX_RETRY_WAIT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }

    /// Reads the configuration from the process environment, flags winning
    /// over variables (see [`HOW_TO_CONFIGURE`]). `Ok(None)` when no provider
    /// is named at all.
    pub fn from_env(overrides: &LlmOverrides) -> Result<Option<LlmConfig>, LlmError> {
        LlmConfig::from_lookup(overrides, |name| std::env::var(name).ok())
    }

    /// [`LlmConfig::from_env`] with `lookup` standing for the environment;
    /// empty values count as unset.
    pub fn from_lookup(
        overrides: &LlmOverrides,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<LlmConfig>, LlmError> {
        let get = |flag: &Option<String>, var: &str| -> Option<String> {
            flag.as_deref()
                .map(str::to_string)
                .or_else(|| lookup(var))
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let Some(provider) = get(&overrides.provider, ENV_PROVIDER) else {
            return Ok(None);
        };
        let provider: ProviderKind = provider.parse()?;

        let base_url = match get(&overrides.url, ENV_URL) {
            Some(url) => {
                let url = normalize_url(&url);
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(LlmError::Config(format!(
                        "{ENV_URL} (or --url) must be an http:// or https:// URL, got {:?}",
                        redact_url(&url)
                    )));
                }
                url
            }
            None => provider.default_url().to_string(),
        };
        let official = base_url == provider.default_url();

        let model = match get(&overrides.model, ENV_MODEL) {
            Some(model) => model,
            None if official => provider.default_model().to_string(),
            None => {
                return Err(LlmError::Config(format!(
                    "no model named for {} at {}: set {ENV_MODEL} or pass --model \
                     (e.g. {ENV_MODEL}=qwen2.5-coder:7b for Ollama)",
                    provider,
                    redact_url(&base_url)
                )));
            }
        };

        let api_key = lookup(provider.key_var())
            .map(|k| k.trim().to_string())
            .filter(|k| !k.is_empty())
            .map(Secret);
        if official && api_key.is_none() {
            return Err(LlmError::Config(format!(
                "{} needs an API key: set {} (or point {ENV_URL} at a local server)",
                base_url,
                provider.key_var()
            )));
        }

        let timeout = match lookup(ENV_TIMEOUT).map(|v| v.trim().to_string()) {
            Some(v) if !v.is_empty() => v
                .parse::<f64>()
                .ok()
                .filter(|s| *s > 0.0)
                .and_then(|s| Duration::try_from_secs_f64(s).ok())
                .ok_or_else(|| {
                    LlmError::Config(format!(
                        "{ENV_TIMEOUT} must be a positive number of seconds, got {v:?}"
                    ))
                })?,
            _ => DEFAULT_TIMEOUT,
        };

        let config = LlmConfig {
            provider,
            base_url,
            model,
            api_key,
            timeout,
            max_retries: DEFAULT_MAX_RETRIES,
            max_retry_wait: DEFAULT_MAX_RETRY_WAIT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        };
        config.check_transport()?;
        Ok(Some(config))
    }

    /// Refuses to send the API key in clear text: with a key, the URL must
    /// be `https://`, or `http://` to a loopback host (`127.0.0.0/8`, `::1`,
    /// `localhost`). Also refuses a URL that is neither http nor https.
    pub fn check_transport(&self) -> Result<(), LlmError> {
        let url = normalize_url(&self.base_url);
        let parsed = reqwest::Url::parse(&url).map_err(|e| {
            LlmError::Config(format!(
                "the LLM URL {:?} is not a valid URL: {e}",
                redact_url(&url)
            ))
        })?;
        match parsed.scheme() {
            "https" => Ok(()),
            "http" if self.api_key.is_none() || is_loopback_host(&parsed) => Ok(()),
            "http" => Err(LlmError::PlaintextKey {
                url: redact_url(&url),
                key_var: self.provider.key_var(),
            }),
            other => Err(LlmError::Config(format!(
                "the LLM URL {:?} must be http:// or https://, not {other}://",
                redact_url(&url)
            ))),
        }
    }

    /// The full URL requests are posted to.
    pub fn endpoint(&self) -> String {
        format!(
            "{}{}",
            normalize_url(&self.base_url),
            self.provider.endpoint_path()
        )
    }
}

/// Why a completion failed. Messages are meant for a person; none contains an API key.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// No provider was configured.
    #[error("no LLM is configured: set {ENV_PROVIDER} to openai or anthropic (or pass --provider)")]
    NotConfigured,

    /// The configuration is invalid.
    #[error("LLM configuration: {0}")]
    Config(String),

    /// 401 or 403: the key is missing, wrong or not allowed.
    #[error("{status} from {provider}: {message}; check {}", .provider.key_var())]
    Unauthorized {
        /// The provider.
        provider: ProviderKind,
        /// The HTTP status.
        status: u16,
        /// The server's error message.
        message: String,
    },

    /// 404 not about a model: most likely a wrong URL.
    #[error(
        "404 from {provider} at {url} (model {model}): {message}; \
         check {ENV_URL} (the client appends {}) and {ENV_MODEL}",
        .provider.endpoint_path()
    )]
    NotFound {
        /// The provider.
        provider: ProviderKind,
        /// The URL requested.
        url: String,
        /// The model asked.
        model: String,
        /// The server's error message.
        message: String,
    },

    /// The server does not know the model.
    #[error(
        "{status} from {provider} at {url}: {message}; the server does not know model \
         {model:?}: set {ENV_MODEL} (or --model) to a model it offers"
    )]
    ModelNotFound {
        /// The provider.
        provider: ProviderKind,
        /// The HTTP status (400 or 404).
        status: u16,
        /// The URL requested.
        url: String,
        /// The model asked.
        model: String,
        /// The server's error message.
        message: String,
    },

    /// Still rate-limited (429) after every retry.
    #[error("rate limited by {provider} (429) after {}: {message}", plural(*.attempts))]
    RateLimited {
        /// The provider.
        provider: ProviderKind,
        /// HTTP requests sent.
        attempts: u32,
        /// The server's error message.
        message: String,
    },

    /// A server error (5xx, 529...) that persisted through every retry.
    #[error("{status} from {provider} after {}: {message}", plural(*.attempts))]
    Server {
        /// The provider.
        provider: ProviderKind,
        /// The last HTTP status.
        status: u16,
        /// HTTP requests sent.
        attempts: u32,
        /// The server's error message.
        message: String,
    },

    /// No complete reply within the timeout, on every attempt.
    #[error(
        "no reply from {url} within {}s ({}); raise {ENV_TIMEOUT} if the model is slow",
        .after.as_secs_f64(),
        plural(*.attempts)
    )]
    Timeout {
        /// The URL requested.
        url: String,
        /// The per-request timeout.
        after: Duration,
        /// HTTP requests sent.
        attempts: u32,
    },

    /// The server could not be reached, on every attempt.
    #[error("cannot connect to {url}: {message}; is the server running and {ENV_URL} right?")]
    Connect {
        /// The URL requested.
        url: String,
        /// What failed.
        message: String,
    },

    /// The request failed in transit for another reason.
    #[error("request to {url} failed: {message}")]
    Http {
        /// The URL requested.
        url: String,
        /// What failed.
        message: String,
    },

    /// The reply could not be understood.
    #[error("invalid response from the LLM: {0}")]
    InvalidResponse(String),

    /// An API key would have gone over plain http to a host that is not
    /// loopback (refused when the configuration is built).
    #[error(
        "refusing to send {key_var} over plain http to {url}: use an https:// URL, \
         or a loopback address (127.0.0.1, ::1, localhost) for a local server"
    )]
    PlaintextKey {
        /// The configured URL (credentials redacted).
        url: String,
        /// The variable the key came from.
        key_var: &'static str,
    },

    /// The reply body passed the cap; it was abandoned unread past it.
    #[error(
        "the reply from {url} is larger than {limit} bytes{}; refusing to read more",
        .declared.map(|n| format!(" (Content-Length {n})")).unwrap_or_default()
    )]
    ResponseTooLarge {
        /// The URL requested.
        url: String,
        /// The cap, [`LlmConfig::max_response_bytes`].
        limit: usize,
        /// The length the server announced, if it did.
        declared: Option<u64>,
    },

    /// The server answered with a redirect, which is never followed.
    #[error(
        "{status} redirect from {url} to {location}; llmos does not follow redirects \
         (the request carries the API key and your code): set {ENV_URL} to the final URL"
    )]
    Redirect {
        /// The HTTP status (301, 302, 303, 307, 308...).
        status: u16,
        /// The URL requested.
        url: String,
        /// The `Location` it pointed to (credentials redacted, cut short).
        location: String,
    },

    /// Another 4xx: the request was refused.
    #[error("{status} from {provider}: {message}")]
    BadRequest {
        /// The provider.
        provider: ProviderKind,
        /// The HTTP status.
        status: u16,
        /// The server's error message.
        message: String,
    },
}

/// Builds the HTTP client for `config` (one connection pool, reused by every call).
pub fn provider(config: LlmConfig) -> Result<Box<dyn FixProvider>, LlmError> {
    Ok(Box::new(HttpProvider::new(config)?))
}

/// The HTTP implementation of [`FixProvider`] for both wire protocols.
#[derive(Debug)]
pub struct HttpProvider {
    config: LlmConfig,
    client: reqwest::Client,
    endpoint: String,
    headers: HeaderMap,
}

impl HttpProvider {
    /// Builds the client; fails on an unusable key or TLS setup, and when
    /// the key would travel in clear text ([`LlmConfig::check_transport`]).
    pub fn new(mut config: LlmConfig) -> Result<HttpProvider, LlmError> {
        config.base_url = normalize_url(&config.base_url);
        config.check_transport()?;
        let client = reqwest::Client::builder()
            // Never follow a redirect: see the module docs.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(15)))
            .user_agent(concat!("llmos/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                LlmError::Config(format!("cannot build the HTTP client: {}", error_chain(&e)))
            })?;
        let mut headers = HeaderMap::new();
        if let Some(key) = &config.api_key {
            let bad_key = || {
                LlmError::Config(format!(
                    "{} contains characters that cannot go in an HTTP header",
                    config.provider.key_var()
                ))
            };
            let (name, value) = match config.provider {
                ProviderKind::OpenAi => (
                    reqwest::header::AUTHORIZATION,
                    format!("Bearer {}", key.expose()),
                ),
                ProviderKind::Anthropic => (
                    HeaderName::from_static("x-api-key"),
                    key.expose().to_string(),
                ),
            };
            let mut value = HeaderValue::from_str(&value).map_err(|_| bad_key())?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        if config.provider == ProviderKind::Anthropic {
            headers.insert(
                HeaderName::from_static("anthropic-version"),
                HeaderValue::from_static(ANTHROPIC_VERSION),
            );
        }
        let endpoint = config.endpoint();
        Ok(HttpProvider {
            config,
            client,
            endpoint,
            headers,
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &LlmConfig {
        &self.config
    }

    /// The request body for `req`.
    fn body(&self, req: &ChatRequest, tweaks: &Tweaks) -> Value {
        let messages = req
            .messages
            .iter()
            .map(|m| json!({"role": m.role.as_str(), "content": m.content}));
        let mut body = match self.config.provider {
            ProviderKind::OpenAi => {
                let system = (!req.system.is_empty())
                    .then(|| json!({"role": "system", "content": req.system}));
                let messages: Vec<Value> = system.into_iter().chain(messages).collect();
                let max_key = if tweaks.max_completion_tokens {
                    "max_completion_tokens"
                } else {
                    "max_tokens"
                };
                json!({"model": self.config.model, "messages": messages, max_key: req.max_tokens})
            }
            ProviderKind::Anthropic => {
                let mut body = json!({
                    "model": self.config.model,
                    "max_tokens": req.max_tokens,
                    "messages": messages.collect::<Vec<Value>>(),
                });
                if !req.system.is_empty() {
                    body["system"] = json!(req.system);
                }
                body
            }
        };
        if let Some(t) = req.temperature.filter(|_| !tweaks.no_temperature) {
            body["temperature"] = json!(t);
        }
        body
    }

    /// Removes the API key from text quoted from the server.
    fn redact(&self, text: &str) -> String {
        match &self.config.api_key {
            Some(key) if !key.expose().is_empty() => text.replace(key.expose(), "[redacted]"),
            _ => text.to_string(),
        }
    }

    /// The URL as shown in messages (no credentials).
    fn shown_url(&self) -> String {
        redact_url(&self.endpoint)
    }

    /// The error for a 3xx (redirects are never followed).
    fn redirect_error(&self, status: u16, headers: &HeaderMap) -> LlmError {
        let location = headers
            .get(reqwest::header::LOCATION)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .map(|l| self.redact(&prefix(&redact_url(&l))))
            .unwrap_or_else(|| "(no Location header)".to_string());
        LlmError::Redirect {
            status,
            url: self.shown_url(),
            location,
        }
    }

    /// The error for a final non-success status.
    fn status_error(&self, status: u16, body: &str, attempts: u32) -> LlmError {
        let provider = self.config.provider;
        let message = self.redact(&error_message(body));
        let about_model = mentions_missing_model(body, &message, status);
        match status {
            401 | 403 => LlmError::Unauthorized {
                provider,
                status,
                message,
            },
            400 | 404 if about_model => LlmError::ModelNotFound {
                provider,
                status,
                url: self.shown_url(),
                model: self.config.model.clone(),
                message,
            },
            404 => LlmError::NotFound {
                provider,
                url: self.shown_url(),
                model: self.config.model.clone(),
                message,
            },
            429 => LlmError::RateLimited {
                provider,
                attempts,
                message,
            },
            400..=499 => LlmError::BadRequest {
                provider,
                status,
                message,
            },
            _ => LlmError::Server {
                provider,
                status,
                attempts,
                message,
            },
        }
    }

    /// The error for a transport failure; the bool says whether to retry.
    fn transport_error(&self, err: &reqwest::Error, attempts: u32) -> (LlmError, bool) {
        let url = self.shown_url();
        let message = self.redact(&error_chain(err));
        if err.is_timeout() {
            let e = LlmError::Timeout {
                url,
                after: self.config.timeout,
                attempts,
            };
            (e, true)
        } else if err.is_connect() {
            (LlmError::Connect { url, message }, true)
        } else {
            let retry = err.is_request() || err.is_body();
            (LlmError::Http { url, message }, retry)
        }
    }

    /// Parses a successful response body.
    fn parse(&self, raw: &str) -> Result<(String, Usage, String), LlmError> {
        let value: Value = serde_json::from_str(raw).map_err(|e| {
            LlmError::InvalidResponse(format!(
                "{} did not return JSON ({e}); body starts {:?}",
                self.shown_url(),
                self.redact(&prefix(raw))
            ))
        })?;
        let missing = |what: &str| {
            let mut msg = format!("{} returned no {what}", self.shown_url());
            if let Some(err) = value.get("error") {
                msg.push_str(&format!(": error {}", error_message(&err.to_string())));
            }
            msg.push_str(&format!("; body starts {:?}", prefix(raw)));
            LlmError::InvalidResponse(self.redact(&msg))
        };
        let model = value
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or(&self.config.model)
            .to_string();
        let u64_at = |v: &Value, key: &str| v.get(key).and_then(Value::as_u64).unwrap_or(0);
        match self.config.provider {
            ProviderKind::OpenAi => {
                let choice = value
                    .get("choices")
                    .and_then(|c| c.get(0))
                    .ok_or_else(|| missing("choices[0]"))?;
                let message = choice
                    .get("message")
                    .ok_or_else(|| missing("choices[0].message"))?;
                let text = match message.get("content") {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Array(parts)) => parts
                        .iter()
                        .filter_map(|p| match p {
                            Value::String(s) => Some(s.as_str()),
                            p => p.get("text").and_then(Value::as_str),
                        })
                        .collect(),
                    _ => {
                        if let Some(refusal) = message.get("refusal").and_then(Value::as_str) {
                            return Err(LlmError::InvalidResponse(format!(
                                "the model refused: {}",
                                self.redact(&prefix(refusal))
                            )));
                        }
                        return Err(missing("choices[0].message.content"));
                    }
                };
                if choice.get("finish_reason").and_then(Value::as_str) == Some("length") {
                    tracing::warn!(model = %model, "LLM reply cut at max_tokens");
                }
                let usage = value.get("usage").unwrap_or(&Value::Null);
                let usage = Usage {
                    input_tokens: u64_at(usage, "prompt_tokens"),
                    output_tokens: u64_at(usage, "completion_tokens"),
                };
                Ok((text, usage, model))
            }
            ProviderKind::Anthropic => {
                let content = value
                    .get("content")
                    .and_then(Value::as_array)
                    .ok_or_else(|| missing("content array"))?;
                let text: String = content
                    .iter()
                    .filter(|c| c.get("type").and_then(Value::as_str) == Some("text"))
                    .filter_map(|c| c.get("text").and_then(Value::as_str))
                    .collect();
                if value.get("stop_reason").and_then(Value::as_str) == Some("max_tokens") {
                    tracing::warn!(model = %model, "LLM reply cut at max_tokens");
                }
                let usage = value.get("usage").unwrap_or(&Value::Null);
                let usage = Usage {
                    input_tokens: u64_at(usage, "input_tokens")
                        + u64_at(usage, "cache_creation_input_tokens")
                        + u64_at(usage, "cache_read_input_tokens"),
                    output_tokens: u64_at(usage, "output_tokens"),
                };
                Ok((text, usage, model))
            }
        }
    }

    /// The wait before retry number `retry` (1-based), honouring `Retry-After`.
    fn retry_wait(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        let wait = retry_after.unwrap_or_else(|| {
            let full = BACKOFF_BASE.saturating_mul(1u32 << retry.saturating_sub(1).min(16));
            // Equal jitter: half fixed, half random.
            let jitter = RandomState::new().hash_one(retry) % 1000;
            full / 2 + (full / 2).mul_f64(jitter as f64 / 1000.0)
        });
        wait.min(self.config.max_retry_wait)
    }
}

/// Adjustments learned from a 400 (OpenAI reasoning models refuse some parameters).
#[derive(Default)]
struct Tweaks {
    max_completion_tokens: bool,
    no_temperature: bool,
}

#[async_trait::async_trait]
impl FixProvider for HttpProvider {
    fn provider(&self) -> &str {
        self.config.provider.as_str()
    }

    fn model(&self) -> &str {
        &self.config.model
    }

    async fn complete(&self, req: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let started = Instant::now();
        let mut tweaks = Tweaks::default();
        let mut attempts = 0u32;
        let mut retries = 0u32;
        loop {
            attempts += 1;
            let body = self.body(req, &tweaks);
            tracing::debug!(
                provider = self.provider(),
                model = %self.config.model,
                url = %self.shown_url(),
                attempt = attempts,
                "LLM request"
            );
            let sent = self
                .client
                .post(&self.endpoint)
                .headers(self.headers.clone())
                .json(&body)
                .send()
                .await;
            let failure = match sent {
                Ok(mut resp) => {
                    let status = resp.status().as_u16();
                    let retry_after = retry_after(resp.headers());
                    if (300..400).contains(&status) {
                        return Err(self.redirect_error(status, resp.headers()));
                    }
                    let success = (200..300).contains(&status);
                    let cap = if success {
                        self.config.max_response_bytes
                    } else {
                        MAX_ERROR_BODY
                    };
                    let body = match read_capped(&mut resp, cap, success).await {
                        Ok(Capped::Over { declared, .. }) if success => {
                            let err = LlmError::ResponseTooLarge {
                                url: self.shown_url(),
                                limit: cap,
                                declared,
                            };
                            tracing::debug!(attempts, error = %err, "LLM request failed");
                            return Err(err);
                        }
                        // An error body past its cap is quoted from its start.
                        Ok(Capped::Whole(b) | Capped::Over { bytes: b, .. }) => {
                            Ok(String::from_utf8_lossy(&b).into_owned())
                        }
                        Err(e) => Err(e),
                    };
                    drop(resp);
                    match body {
                        Ok(raw) if success => {
                            let raw = self.redact(&raw);
                            let (text, usage, model) = self.parse(&raw)?;
                            let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
                            tracing::debug!(
                                model = %model,
                                attempts,
                                duration_ms,
                                input_tokens = usage.input_tokens,
                                output_tokens = usage.output_tokens,
                                "LLM reply"
                            );
                            return Ok(ChatResponse {
                                text,
                                usage,
                                model,
                                raw,
                                http_attempts: attempts,
                                duration_ms,
                            });
                        }
                        Ok(raw) => {
                            if status == 400 && self.config.provider == ProviderKind::OpenAi {
                                let msg = error_message(&raw);
                                if !tweaks.max_completion_tokens
                                    && msg.contains("max_completion_tokens")
                                {
                                    tracing::debug!("retrying with max_completion_tokens");
                                    tweaks.max_completion_tokens = true;
                                    continue;
                                }
                                if !tweaks.no_temperature
                                    && req.temperature.is_some()
                                    && msg.contains("temperature")
                                {
                                    tracing::debug!("retrying without temperature");
                                    tweaks.no_temperature = true;
                                    continue;
                                }
                            }
                            let retryable = matches!(status, 429 | 500 | 502 | 503 | 504 | 529);
                            let err = self.status_error(status, &raw, attempts);
                            (err, retryable, retry_after, format!("status {status}"))
                        }
                        Err(e) => {
                            let (err, retryable) = self.transport_error(&e, attempts);
                            (err, retryable, None, "reading the reply failed".to_string())
                        }
                    }
                }
                Err(e) => {
                    let (err, retryable) = self.transport_error(&e, attempts);
                    let what = if e.is_timeout() {
                        "timeout"
                    } else if e.is_connect() {
                        "connect error"
                    } else {
                        "transport error"
                    };
                    (err, retryable, None, what.to_string())
                }
            };
            let (err, retryable, retry_after, what) = failure;
            if !retryable || retries >= self.config.max_retries {
                tracing::debug!(attempts, error = %err, "LLM request failed");
                return Err(err);
            }
            retries += 1;
            let wait = self.retry_wait(retries, retry_after);
            tracing::warn!(
                provider = self.provider(),
                reason = %what,
                wait_ms = wait.as_millis() as u64,
                retry = retries,
                max_retries = self.config.max_retries,
                "LLM request failed; retrying"
            );
            tokio::time::sleep(wait).await;
        }
    }
}

/// A response body read up to a cap.
enum Capped {
    /// The whole body, within the cap.
    Whole(Vec<u8>),
    /// The body passed the cap: `bytes` holds its first `cap` bytes (none if
    /// the declared length alone settled it); the rest was not read.
    Over {
        bytes: Vec<u8>,
        declared: Option<u64>,
    },
}

/// Reads `resp`'s body chunk by chunk, never holding more than `cap` bytes.
/// With `strict`, a `Content-Length` above the cap ends it before any read.
async fn read_capped(
    resp: &mut reqwest::Response,
    cap: usize,
    strict: bool,
) -> Result<Capped, reqwest::Error> {
    let declared = resp.content_length();
    if strict && declared.is_some_and(|n| n > cap as u64) {
        return Ok(Capped::Over {
            bytes: Vec::new(),
            declared,
        });
    }
    let hint = declared.map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX));
    let mut bytes = Vec::with_capacity(hint.min(cap).min(1 << 20));
    while let Some(chunk) = resp.chunk().await? {
        let room = cap - bytes.len();
        if chunk.len() > room {
            bytes.extend_from_slice(&chunk[..room]);
            return Ok(Capped::Over { bytes, declared });
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Capped::Whole(bytes))
}

/// Whether the URL's host is a loopback address or `localhost`.
fn is_loopback_host(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => bare.eq_ignore_ascii_case("localhost"),
    }
}

/// Trims spaces and trailing slashes, and drops an endpoint path pasted by mistake.
fn normalize_url(url: &str) -> String {
    let mut url = url.trim().trim_end_matches('/').to_string();
    for suffix in ["/chat/completions", "/messages"] {
        if let Some(base) = url.strip_suffix(suffix) {
            url = base.trim_end_matches('/').to_string();
        }
    }
    url
}

/// `url` without `user:password@` credentials.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://[redacted]@{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

/// The start of `text`, at most [`QUOTE_CHARS`] characters.
fn prefix(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(QUOTE_CHARS) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.to_string(),
    }
}

/// The human message in an error body (`{"error":{"message":..}}`,
/// `{"error":".."}`, `{"message":..}`, `{"detail":..}`), else the body's start.
fn error_message(body: &str) -> String {
    if let Ok(v) = serde_json::from_str::<Value>(body) {
        let candidates = [
            v.get("error").and_then(|e| e.get("message")),
            v.get("error"),
            v.get("message"),
            v.get("detail"),
            v.get("detail").and_then(|d| d.get("message")),
        ];
        if let Some(msg) = candidates.into_iter().flatten().find_map(Value::as_str) {
            return prefix(msg);
        }
    }
    match prefix(body) {
        p if p.is_empty() => "(empty body)".to_string(),
        p => p,
    }
}

/// Whether an error response says the model does not exist.
fn mentions_missing_model(body: &str, message: &str, status: u16) -> bool {
    let code_says = serde_json::from_str::<Value>(body).ok().is_some_and(|v| {
        let code = v.get("error").and_then(|e| e.get("code"));
        code.and_then(Value::as_str) == Some("model_not_found")
    });
    let m = message.to_ascii_lowercase();
    let names_model = m.contains("model");
    let says_missing = [
        "not found",
        "does not exist",
        "not exist",
        "no such model",
        "unknown model",
        "not available",
        "invalid model",
    ]
    .iter()
    .any(|p| m.contains(p));
    // Anthropic answers an unknown model with 404 and the message "model: NAME".
    code_says || (names_model && (says_missing || (status == 404 && m.starts_with("model:"))))
}

/// The error and its sources, joined with `: ` (reqwest's own text is terse).
fn error_chain(err: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current: Option<&dyn std::error::Error> = Some(err);
    while let Some(e) = current {
        let text = e.to_string();
        // hyper-util's "client error (Connect)" adds nothing to its source.
        if !text.starts_with("client error (") && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = e.source();
    }
    // reqwest's top-level text names the URL; ours is shown separately (redacted).
    if parts.len() > 1 {
        parts.remove(0);
    }
    parts.join(": ")
}

/// "1 attempt", "3 attempts".
fn plural(attempts: u32) -> String {
    match attempts {
        1 => "1 attempt".to_string(),
        n => format!("{n} attempts"),
    }
}

/// The wait a response asks for: `retry-after-ms`, or `Retry-After` in
/// seconds or as an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms.min(1e9) / 1000.0));
    }
    let value = get("retry-after")?;
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(1e9)));
    }
    let at = parse_http_date(value)?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// Parses an IMF-fixdate such as `Sun, 06 Nov 1994 08:49:37 GMT`.
fn parse_http_date(s: &str) -> Option<SystemTime> {
    let mut it = s.split_whitespace();
    let _weekday = it.next()?;
    let day: u64 = it.next()?.parse().ok()?;
    let month = match it.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = it.next()?.parse().ok()?;
    let mut hms = it.next()?.split(':').map(|p| p.parse::<u64>().ok());
    let (h, m, sec) = (hms.next()??, hms.next()??, hms.next()??);
    if it.next()? != "GMT" || !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    // Days from 1970-01-01 to year-month-day (proleptic Gregorian).
    let (y, mo) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * mo + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = u64::try_from(days).ok()? * 86_400 + h * 3600 + m * 60 + sec;
    UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_date() {
        let t = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(t, UNIX_EPOCH.checked_add(Duration::from_secs(784_111_777)));
        assert_eq!(
            parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"),
            Some(UNIX_EPOCH)
        );
        assert_eq!(parse_http_date("yesterday"), None);
    }

    #[test]
    fn urls() {
        assert_eq!(normalize_url(" http://h:1/v1/ "), "http://h:1/v1");
        assert_eq!(normalize_url("http://h/v1/chat/completions"), "http://h/v1");
        assert_eq!(normalize_url("https://a/v1/messages/"), "https://a/v1");
        assert_eq!(redact_url("http://u:p@h:1/v1"), "http://[redacted]@h:1/v1");
        assert_eq!(redact_url("http://h/v1?a=b@c"), "http://h/v1?a=b@c");
    }

    #[test]
    fn error_messages() {
        assert_eq!(error_message(r#"{"error":{"message":"nope"}}"#), "nope");
        assert_eq!(
            error_message(r#"{"error":"model x not found"}"#),
            "model x not found"
        );
        assert_eq!(error_message(""), "(empty body)");
        assert_eq!(error_message("<html>"), "<html>");
        let anthropic =
            r#"{"type":"error","error":{"type":"not_found_error","message":"model: foo"}}"#;
        assert!(mentions_missing_model(
            anthropic,
            &error_message(anthropic),
            404
        ));
        assert!(!mentions_missing_model("", "404 page not found", 404));
    }

    #[test]
    fn retry_after_header() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after-ms", HeaderValue::from_static("250"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(250)));
        let mut h = HeaderMap::new();
        h.insert(
            "retry-after",
            HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
    }

    #[test]
    fn plain_http_with_a_key_only_to_loopback() {
        let with_key = |url: &str| {
            let mut c = LlmConfig::new(ProviderKind::OpenAi, url, "m");
            c.api_key = Some(Secret::new("sk-x"));
            c.check_transport()
        };
        for ok in [
            "https://api.example.com/v1",
            "http://127.0.0.1:8080/v1",
            "http://127.1.2.3/v1",
            "http://localhost:11434/v1",
            "http://LOCALHOST/v1",
            "http://[::1]:9/v1",
        ] {
            assert!(with_key(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://api.example.com/v1",
            "http://10.0.0.5:11434/v1",
            "http://localhost.example.com/v1",
            "http://[::ffff:127.0.0.1]/v1",
            "http://0.0.0.0/v1",
        ] {
            let err = with_key(bad).expect_err(bad);
            assert!(matches!(err, LlmError::PlaintextKey { .. }), "{bad}: {err}");
            assert!(err.to_string().contains("OPENAI_API_KEY"), "{err}");
        }
        // Without a key, plain http anywhere is the user's choice.
        let c = LlmConfig::new(ProviderKind::OpenAi, "http://10.0.0.5/v1", "m");
        assert!(c.check_transport().is_ok());
        let c = LlmConfig::new(ProviderKind::OpenAi, "ftp://h/v1", "m");
        assert!(matches!(c.check_transport(), Err(LlmError::Config(_))));
    }

    #[test]
    fn secret_is_redacted() {
        let s = Secret::new("sk-123");
        assert_eq!(format!("{s} {s:?}"), "[redacted] [redacted]");
        let mut c = LlmConfig::new(ProviderKind::OpenAi, "http://h/v1", "m");
        c.api_key = Some(s);
        assert!(!format!("{c:?}").contains("sk-123"));
    }
}
