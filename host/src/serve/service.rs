//! The kernel as a long-lived service: what the HTTP API ([`super::http`])
//! and the MCP tools ([`super::mcp`]) both call. It holds the booted
//! [`Llmos`], the live sessions, the recent runs, fixes and batches, and
//! the event bus; every policy (limits, tiers, providers) stays the
//! facade's. Everything a network client sends is untrusted: sources run
//! in the untrusted tier, names are validated, and no request can name a
//! file on the server.
//!
//! Runs are spawned, never run on the request's own task: a client that
//! disconnects does not cancel its run, and the finished record (and its
//! line in `<data dir>/serve/results.jsonl`, written before anyone is told)
//! outlives the request.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, broadcast, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::batch::{self, Job, JobLimits, JobResult};
use crate::boot::{BootEvent, BootOptions};
use crate::outcome::Outcome;
use crate::supervisor::llm::{FixProvider, LlmOverrides};
use crate::{
    ArtifactOptions, ArtifactSource, Cell, HostError, LimitOverrides, LiveUsage, Llmos, RunOptions,
    Session,
};

/// Bounds on what clients can make the server hold or do.
#[derive(Debug, Clone)]
pub struct ServeLimits {
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Runs (and fixes, cells) one client may have in flight, queued or
    /// running; more are refused with 429.
    pub max_runs_per_client: usize,
    /// Runs executing at once, over all clients (the rest wait their turn).
    pub max_running: usize,
    /// Event-stream subscribers at once; more are refused with 503.
    pub max_subscribers: usize,
    /// Finished runs kept in memory for `GET /v1/runs/{id}` (oldest go).
    pub history_runs: usize,
    /// Output bytes kept in memory across that history.
    pub history_output_bytes: usize,
    /// Live sessions (each holds an interpreter instance).
    pub max_sessions: usize,
    /// Jobs in one batch.
    pub max_batch_jobs: usize,
    /// How long shutdown waits for runs in flight before cancelling them.
    pub grace: Duration,
}

impl Default for ServeLimits {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        ServeLimits {
            max_body_bytes: 4 << 20,
            max_runs_per_client: 256,
            max_running: cores * 2,
            max_subscribers: 64,
            history_runs: 2_000,
            history_output_bytes: 256 << 20,
            max_sessions: 64,
            max_batch_jobs: 100_000,
            grace: Duration::from_secs(10),
        }
    }
}

/// A typed failure of a service call; the HTTP layer maps each to a status.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request is malformed or asks for something impossible (400).
    #[error("{0}")]
    BadRequest(String),
    /// No such run, fix, session or batch (404).
    #[error("{0}")]
    NotFound(String),
    /// The name is taken (409).
    #[error("{0}")]
    Conflict(String),
    /// Too many requests in flight for this client (429).
    #[error("{0}")]
    TooMany(String),
    /// The kernel is still booting, failed to boot or is shutting down (503).
    #[error("{0}")]
    Unavailable(String),
    /// A host problem (500).
    #[error("{0}")]
    Host(String),
}

impl ServiceError {
    /// A short machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ServiceError::BadRequest(_) => "bad_request",
            ServiceError::NotFound(_) => "not_found",
            ServiceError::Conflict(_) => "conflict",
            ServiceError::TooMany(_) => "too_many_requests",
            ServiceError::Unavailable(_) => "unavailable",
            ServiceError::Host(_) => "host_error",
        }
    }
}

impl From<HostError> for ServiceError {
    fn from(e: HostError) -> Self {
        match e {
            HostError::UnknownLanguage { .. }
            | HostError::UndetectedLanguage { .. }
            | HostError::InvalidLimit(_)
            | HostError::Usage(_)
            | HostError::Session(_) => ServiceError::BadRequest(e.to_string()),
            HostError::Busy(_) => ServiceError::TooMany(e.to_string()),
            other => ServiceError::Host(other.to_string()),
        }
    }
}

type Result<T> = std::result::Result<T, ServiceError>;

/// Limits a client asks for, in the CLI's textual forms.
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsBody {
    /// Fuel, e.g. `"2e9"` or `"1_000_000"` (never `none`: network
    /// artifacts are always metered).
    pub fuel: Option<String>,
    /// Memory, e.g. `"64MiB"`.
    pub memory: Option<String>,
    /// Wall clock, e.g. `"5s"`.
    pub timeout: Option<String>,
    /// Captured stdout, stderr and logs, each, e.g. `"1MiB"`.
    pub output_limit: Option<String>,
}

impl LimitsBody {
    fn overrides(&self) -> Result<LimitOverrides> {
        Ok(LimitOverrides::parse(
            self.fuel.as_deref(),
            self.memory.as_deref(),
            self.timeout.as_deref(),
            self.output_limit.as_deref(),
        )?)
    }
}

/// `POST /v1/runs`: one artifact to run.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunBody {
    /// Language name or alias (`python`, `js`, `lua`...).
    pub language: String,
    /// The program.
    pub source: String,
    /// Its file name in stack traces.
    pub name: Option<String>,
    /// Limits (tightened by the untrusted tier's policy, never loosened).
    #[serde(default)]
    pub limits: Option<LimitsBody>,
    /// Seed: deterministic randomness and clocks.
    pub seed: Option<u64>,
    /// What the program must print (else `wrong_output`).
    pub expect_stdout: Option<String>,
    /// A snapshot (by name) the program runs after, as its next cell.
    pub from: Option<String>,
    /// Wait for the outcome (default) or answer at once with the run's id.
    #[serde(default = "yes")]
    pub wait: bool,
}

fn yes() -> bool {
    true
}

/// `POST /v1/fixes`: an artifact to run and repair.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FixBody {
    /// Language name or alias.
    pub language: String,
    /// The program.
    pub source: String,
    /// Its file name in stack traces.
    pub name: Option<String>,
    /// Limits of each attempt.
    #[serde(default)]
    pub limits: Option<LimitsBody>,
    /// Seed of every attempt.
    pub seed: Option<u64>,
    /// What the program must print (a run that prints anything else is
    /// repaired too).
    pub expect_stdout: Option<String>,
    /// Repairs after the first run (default 3, at most 10).
    pub max_attempts: Option<u32>,
    /// Wait for the end (the trace's result) instead of answering at once.
    #[serde(default)]
    pub wait: bool,
}

/// `POST /v1/sessions`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionBody {
    /// The session's name (default: a new unique one).
    pub name: Option<String>,
    /// Its language (default python).
    pub language: Option<String>,
    /// Start from this snapshot (by name).
    pub from: Option<String>,
    /// Fuel across every cell.
    pub budget_fuel: Option<u64>,
}

/// `POST /v1/sessions/{name}/cells`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CellBody {
    /// The cell's source.
    pub source: String,
    /// Its limits.
    #[serde(default)]
    pub limits: Option<LimitsBody>,
    /// Seed: deterministic randomness and clocks for this cell.
    pub seed: Option<u64>,
}

/// `POST /v1/snapshots`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SnapshotBody {
    /// The session to freeze.
    pub session: String,
    /// The snapshot's name (default: the session's).
    pub name: Option<String>,
}

/// One job of `POST /v1/batches`: inline source only.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchJobBody {
    /// Unique within the batch.
    pub id: String,
    /// Language name or alias.
    pub language: String,
    /// The program.
    pub source: String,
    /// Limits of this job.
    #[serde(default)]
    pub limits: Option<LimitsBody>,
    /// Seed.
    pub seed: Option<u64>,
    /// What the program must print.
    pub expect_stdout: Option<String>,
    /// A test program run after it.
    pub test: Option<String>,
}

/// `POST /v1/batches`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchBody {
    /// The jobs.
    pub jobs: Vec<BatchJobBody>,
    /// Fuel across the whole batch.
    pub budget_fuel: Option<u64>,
    /// Jobs at once (default: the server's run slots).
    pub concurrency: Option<usize>,
}

/// An event on the bus: its type and its JSON.
#[derive(Debug, Clone)]
pub struct Event {
    /// `boot`, `run.started`, `run.progress`, `run.finished`, `fix.step`,
    /// `batch.progress`, `batch.finished`, `session.cell`.
    pub kind: &'static str,
    /// Its data.
    pub data: Value,
}

/// How far the kernel has booted.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BootInfo {
    /// `booting`, `ready` or `failed`.
    pub state: &'static str,
    /// Stages done, in order.
    #[schema(value_type = Vec<Object>)]
    pub stages: Vec<Value>,
    /// Total boot time when ready.
    pub boot_ms: Option<f64>,
    /// Why boot failed.
    pub error: Option<String>,
    /// llmos's version.
    pub version: &'static str,
}

/// `running`, `finished` (an outcome, whatever its status) or `failed` (a
/// host error: no outcome).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Queued or running.
    Running,
    /// It has an outcome.
    Finished,
    /// The host could not run it.
    Failed,
}

/// A run the server knows about.
#[derive(Debug, Clone)]
pub struct RunRecord {
    /// Its id.
    pub id: String,
    /// `run`, `fix` (an attempt of a fix) or `cell`.
    pub kind: &'static str,
    /// Language.
    pub language: String,
    /// File name.
    pub name: String,
    /// Source.
    pub source: String,
    /// State.
    pub state: RunState,
    /// When it started (Unix ms).
    pub started_ms: u64,
    /// Its outcome (with the output bytes, served by id).
    pub outcome: Option<Outcome>,
    /// The host error, for `failed`.
    pub error: Option<String>,
    /// Live usage while it runs.
    pub live: Option<Arc<LiveUsage>>,
    /// Its limits (fuel, memory bytes, timeout ms) for live display.
    pub limits: Value,
}

impl RunRecord {
    /// The record as the API shows it (outputs with URLs).
    pub fn to_json(&self, with_source: bool) -> Value {
        let mut v = json!({
            "id": self.id,
            "kind": self.kind,
            "language": self.language,
            "name": self.name,
            "state": self.state,
            "started_ms": self.started_ms,
            "limits": self.limits,
            "status": self.outcome.as_ref().map(|o| o.status.as_str()),
            "duration_ms": self.outcome.as_ref().map(|o| o.duration_ms),
            "fuel_consumed": self.outcome.as_ref().and_then(|o| o.fuel_consumed),
            "memory_peak_bytes": self.outcome.as_ref().map(|o| o.memory_peak_bytes),
            "summary": self.outcome.as_ref().filter(|o| !o.is_ok()).map(|o| o.summary()),
            "error": self.error,
        });
        if with_source && let Some(obj) = v.as_object_mut() {
            obj.insert("source".into(), self.source.clone().into());
            obj.insert(
                "outcome".into(),
                self.outcome
                    .as_ref()
                    .map_or(Value::Null, |o| outcome_json(&self.id, o)),
            );
        }
        v
    }
}

/// The `llmos run --json` object of `o` plus `id`, each output item with
/// the URL its bytes are served at.
pub fn outcome_json(id: &str, o: &Outcome) -> Value {
    let mut v = serde_json::to_value(o).unwrap_or(Value::Null);
    if let Some(obj) = v.as_object_mut() {
        obj.insert("id".into(), id.into());
        if let Some(Value::Array(outputs)) = obj.get_mut("outputs") {
            for out in outputs.iter_mut() {
                let index = out.get("index").and_then(Value::as_u64).unwrap_or(0);
                if let Some(Value::Array(items)) = out.get_mut("items") {
                    for item in items.iter_mut() {
                        if let Some(item) = item.as_object_mut() {
                            item.remove("file");
                            let ext = item
                                .get("mime")
                                .and_then(Value::as_str)
                                .and_then(ext_of_mime)
                                .unwrap_or("bin");
                            item.insert(
                                "url".into(),
                                format!("/v1/runs/{id}/outputs/{index}/{ext}").into(),
                            );
                        }
                    }
                }
            }
        }
    }
    v
}

/// The short name an output's MIME type is served under.
pub fn ext_of_mime(mime: &str) -> Option<&'static str> {
    Some(match mime {
        crate::outputs::MIME_SVG => "svg",
        crate::outputs::MIME_PNG => "png",
        crate::outputs::MIME_SCENE => "scene",
        "text/html" => "html",
        "text/plain" => "txt",
        _ => return None,
    })
}

/// A fix the server runs.
#[derive(Debug, Clone)]
pub struct FixRecord {
    /// Its id.
    pub id: String,
    /// Language.
    pub language: String,
    /// The source as given.
    pub source: String,
    /// `running`, `finished`, `failed`.
    pub state: RunState,
    /// Its steps so far.
    pub steps: Vec<Value>,
    /// The loop's result (`ok`, `fixed`, `failed`).
    pub result: Option<Value>,
    /// The last version that ran.
    pub code: Option<String>,
    /// Its outcome's run id.
    pub run_id: Option<String>,
    /// The whole trace.
    pub trace: Option<Value>,
    /// A host error.
    pub error: Option<String>,
}

impl FixRecord {
    fn to_json(&self, outcome: Option<Value>) -> Value {
        json!({
            "id": self.id,
            "language": self.language,
            "source": self.source,
            "state": self.state,
            "steps": self.steps,
            "result": self.result,
            "code": self.code,
            "run_id": self.run_id,
            "outcome": outcome,
            "error": self.error,
        })
    }
}

/// A batch the server runs.
struct BatchRecord {
    id: String,
    state: &'static str,
    total: usize,
    results: Vec<Value>,
    counts: HashMap<String, u64>,
    summary: Option<Value>,
    cancel: Option<Box<dyn Fn() + Send + Sync>>,
}

impl BatchRecord {
    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "state": self.state,
            "total": self.total,
            "done": self.results.len(),
            "counts": self.counts,
            "summary": self.summary,
        })
    }
}

/// A live session: its instance, and the outcomes of the cells run here.
struct LiveSession {
    session: Session,
    cells: Vec<(u32, String, Option<String>)>,
}

/// Records in arrival order, bounded: the oldest finished ones go first.
struct History<T> {
    order: VecDeque<String>,
    map: HashMap<String, T>,
}

impl<T> History<T> {
    fn new() -> Self {
        History {
            order: VecDeque::new(),
            map: HashMap::new(),
        }
    }
    fn insert(&mut self, id: String, t: T) {
        self.order.push_back(id.clone());
        self.map.insert(id, t);
    }
}

/// Write a session's journal under its lock, on a blocking thread (the
/// lock waits for a CLI command holding it).
async fn persist(
    dir: crate::session::SessionDir,
    name: String,
    journal: crate::Journal,
) -> Result<()> {
    tokio::task::spawn_blocking(move || {
        let lock_file = dir.lock(&name)?;
        journal.write(lock_file.path())
    })
    .await
    .map_err(|e| ServiceError::Host(format!("saving the session failed: {e}")))?
    .map_err(ServiceError::from)
}

/// The service.
pub struct Service {
    llmos: OnceLock<Arc<Llmos>>,
    boot: Mutex<BootInfo>,
    events: broadcast::Sender<Arc<Event>>,
    runs: Mutex<History<RunRecord>>,
    run_waiters: Mutex<HashMap<String, watch::Sender<bool>>>,
    fixes: Mutex<History<FixRecord>>,
    batches: Mutex<History<BatchRecord>>,
    sessions: tokio::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<LiveSession>>>>,
    provider: OnceLock<Option<Arc<dyn FixProvider>>>,
    running: Arc<Semaphore>,
    clients: Mutex<HashMap<String, Arc<Semaphore>>>,
    subscribers: Arc<Semaphore>,
    results: Mutex<Option<batch::ResultLog>>,
    limits: ServeLimits,
    counter: AtomicU64,
    tasks: TaskTracker,
    draining: std::sync::atomic::AtomicBool,
    stop: CancellationToken,
}

/// A held right to one run in flight for one client.
pub struct Ticket(#[allow(dead_code)] tokio::sync::OwnedSemaphorePermit);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Service {
    /// A service that has not booted yet (see [`Service::boot`]).
    pub fn new(limits: ServeLimits) -> Arc<Service> {
        let (events, _) = broadcast::channel(4096);
        Arc::new(Service {
            llmos: OnceLock::new(),
            boot: Mutex::new(BootInfo {
                state: "booting",
                stages: Vec::new(),
                boot_ms: None,
                error: None,
                version: env!("CARGO_PKG_VERSION"),
            }),
            events,
            runs: Mutex::new(History::new()),
            run_waiters: Mutex::new(HashMap::new()),
            fixes: Mutex::new(History::new()),
            batches: Mutex::new(History::new()),
            sessions: tokio::sync::Mutex::new(HashMap::new()),
            provider: OnceLock::new(),
            running: Arc::new(Semaphore::new(limits.max_running.max(1))),
            clients: Mutex::new(HashMap::new()),
            subscribers: Arc::new(Semaphore::new(limits.max_subscribers)),
            results: Mutex::new(None),
            limits,
            counter: AtomicU64::new(0),
            tasks: TaskTracker::new(),
            draining: std::sync::atomic::AtomicBool::new(false),
            stop: CancellationToken::new(),
        })
    }

    /// The service's bounds.
    pub fn limits(&self) -> &ServeLimits {
        &self.limits
    }

    /// Boot the kernel, publishing every stage; runs are refused with
    /// `unavailable` until it is ready.
    pub async fn boot(self: &Arc<Self>, opts: &BootOptions) -> std::result::Result<(), HostError> {
        let me = self.clone();
        let on_event = move |e: &BootEvent| me.boot_event(e);
        match Llmos::boot(opts, &on_event).await {
            Ok(llmos) => {
                let provider = match llmos.llm_provider(&LlmOverrides::default()) {
                    Ok(p) => p.map(Arc::from),
                    Err(e) => {
                        tracing::warn!("no LLM for fixes: {e}");
                        None
                    }
                };
                let _ = self.provider.set(provider);
                let dir = llmos.data_dir().join("serve");
                let log = std::fs::create_dir_all(&dir)
                    .map_err(|e| HostError::io(&dir, e))
                    .and_then(|()| batch::ResultLog::open(&dir.join("results.jsonl"), true));
                match log {
                    Ok(log) => *lock(&self.results) = Some(log),
                    Err(e) => tracing::warn!("finished runs will not be kept on disk: {e}"),
                }
                let boot_ms = llmos.boot_ms();
                let _ = self.llmos.set(Arc::new(llmos));
                let mut b = lock(&self.boot);
                b.state = "ready";
                b.boot_ms = Some(boot_ms);
                drop(b);
                self.publish("boot", json!({"state": "ready", "boot_ms": boot_ms}));
                Ok(())
            }
            Err(e) => {
                let mut b = lock(&self.boot);
                b.state = "failed";
                b.error = Some(e.to_string());
                drop(b);
                self.publish("boot", json!({"state": "failed", "error": e.to_string()}));
                Err(e)
            }
        }
    }

    fn boot_event(&self, e: &BootEvent) {
        if let BootEvent::Done { stage, ms, detail } = e {
            let v = json!({"stage": stage.title(), "ms": ms, "detail": detail});
            lock(&self.boot).stages.push(v.clone());
            let mut data = v;
            if let Some(o) = data.as_object_mut() {
                o.insert("state".into(), "booting".into());
            }
            self.publish("boot", data);
        }
    }

    /// How far boot got.
    pub fn boot_info(&self) -> BootInfo {
        lock(&self.boot).clone()
    }

    /// The booted kernel.
    pub fn llmos(&self) -> Result<&Arc<Llmos>> {
        if self.draining.load(Ordering::Relaxed) {
            return Err(ServiceError::Unavailable(
                "the server is shutting down".into(),
            ));
        }
        self.llmos.get().ok_or_else(|| {
            let b = lock(&self.boot);
            match &b.error {
                Some(e) => ServiceError::Unavailable(format!("the kernel failed to boot: {e}")),
                None => ServiceError::Unavailable("the kernel is still booting".into()),
            }
        })
    }

    /// Publish an event to every subscriber (none listening is fine).
    pub fn publish(&self, kind: &'static str, data: Value) {
        let _ = self.events.send(Arc::new(Event { kind, data }));
    }

    /// A subscription to the bus, and the permit that bounds subscribers.
    pub fn subscribe(
        &self,
    ) -> Result<(
        broadcast::Receiver<Arc<Event>>,
        tokio::sync::OwnedSemaphorePermit,
    )> {
        let permit = self.subscribers.clone().try_acquire_owned().map_err(|_| {
            ServiceError::Unavailable(format!(
                "too many event subscribers (at most {})",
                self.limits.max_subscribers
            ))
        })?;
        Ok((self.events.subscribe(), permit))
    }

    /// Cancelled when the server shuts down.
    pub fn stopping(&self) -> &CancellationToken {
        &self.stop
    }

    /// A right to one more run in flight for `client`, or 429.
    pub fn ticket(&self, client: &str) -> Result<Ticket> {
        let mut clients = lock(&self.clients);
        // Forget idle clients, so the table stays as small as the clients
        // with runs in flight.
        if clients.len() > 1024 {
            let max = self.limits.max_runs_per_client;
            clients.retain(|_, s| s.available_permits() < max);
        }
        let sem = clients
            .entry(client.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(self.limits.max_runs_per_client)))
            .clone();
        drop(clients);
        sem.try_acquire_owned().map(Ticket).map_err(|_| {
            ServiceError::TooMany(format!(
                "at most {} runs in flight per client",
                self.limits.max_runs_per_client
            ))
        })
    }

    /// A new id: unguessable (96 random bits), because a run's output
    /// URLs are capabilities (served without the token, see
    /// [`super::http`]) and ids must stay unique across restarts.
    fn next_id(&self, kind: char) -> String {
        self.counter.fetch_add(1, Ordering::Relaxed);
        let (a, b): (u64, u32) = (rand::random(), rand::random());
        format!("{kind}-{a:016x}{b:08x}")
    }

    fn artifact(
        &self,
        language: &str,
        source: &str,
        name: Option<&str>,
    ) -> Result<crate::Artifact> {
        let llmos = self.llmos()?;
        if let Some(n) = name
            && (n.len() > 200 || n.contains(['/', '\\', '\0']))
        {
            return Err(ServiceError::BadRequest(
                "`name` is a file name: at most 200 bytes, no slashes".into(),
            ));
        }
        Ok(llmos.artifact(
            ArtifactSource::Inline {
                language: language.into(),
                source: source.into(),
                name: name.map(str::to_string),
            },
            &ArtifactOptions {
                untrusted: true,
                ..Default::default()
            },
        )?)
    }

    fn run_options(
        limits: Option<&LimitsBody>,
        seed: Option<u64>,
        expect_stdout: Option<String>,
    ) -> Result<RunOptions> {
        let limits = limits
            .map(LimitsBody::overrides)
            .transpose()?
            .unwrap_or_default();
        Ok(RunOptions {
            limits,
            seed,
            expect_stdout,
            ..Default::default()
        })
    }

    fn limits_json(l: &crate::Limits) -> Value {
        json!({
            "fuel": l.fuel,
            "memory_bytes": l.memory_bytes,
            "timeout_ms": l.timeout.as_millis() as u64,
        })
    }

    /// Start a run; its id at once (the run goes on without the caller).
    pub fn start_run(self: &Arc<Self>, body: RunBody, ticket: Ticket) -> Result<String> {
        let llmos = self.llmos()?.clone();
        let artifact = self.artifact(&body.language, &body.source, body.name.as_deref())?;
        let snapshot = match &body.from {
            Some(name) => Some(self.snapshot(name)?),
            None => None,
        };
        let mut opts = Self::run_options(body.limits.as_ref(), body.seed, body.expect_stdout)?;
        let req = llmos.request(&artifact, &opts)?;
        let live = Arc::new(LiveUsage::default());
        opts.live = Some(live.clone());
        let id = self.next_id('r');
        self.begin_run(
            &id,
            "run",
            &req.language,
            &artifact.filename,
            &artifact.source,
            &req.limits,
            Some(live),
        );
        let me = self.clone();
        let run_id = id.clone();
        self.tasks.spawn(async move {
            let _ticket = ticket;
            let _slot = me.running.clone().acquire_owned().await;
            let result = tokio::select! {
                r = async {
                    match snapshot {
                        Some(s) => llmos.run_from(s, &artifact, &opts).await,
                        None => llmos.run(&artifact, &opts).await,
                    }
                } => r.map_err(|e| e.to_string()),
                () = me.stop.cancelled() => Err("cancelled: the server shut down".into()),
            };
            me.end_run(&run_id, result);
        });
        Ok(id)
    }

    #[allow(clippy::too_many_arguments)]
    fn begin_run(
        &self,
        id: &str,
        kind: &'static str,
        language: &str,
        name: &str,
        source: &str,
        limits: &crate::Limits,
        live: Option<Arc<LiveUsage>>,
    ) {
        let rec = RunRecord {
            id: id.to_string(),
            kind,
            language: language.to_string(),
            name: name.to_string(),
            source: source.to_string(),
            state: RunState::Running,
            started_ms: now_ms(),
            outcome: None,
            error: None,
            live,
            limits: Self::limits_json(limits),
        };
        self.publish(
            "run.started",
            json!({"id": id, "kind": kind, "language": language, "name": name, "limits": rec.limits}),
        );
        lock(&self.run_waiters).insert(id.to_string(), watch::channel(false).0);
        let mut runs = lock(&self.runs);
        runs.insert(id.to_string(), rec);
        self.evict(&mut runs);
    }

    /// Keep the history within its bounds: drop the oldest finished runs.
    fn evict(&self, runs: &mut History<RunRecord>) {
        let bytes = |r: &RunRecord| -> usize {
            r.outcome.as_ref().map_or(0, |o| {
                o.outputs
                    .iter()
                    .flat_map(|out| out.items.iter())
                    .map(|i| i.data.len())
                    .sum::<usize>()
                    + o.stdout.len()
                    + o.stderr.len()
            }) + r.source.len()
        };
        let mut total: usize = runs.map.values().map(bytes).sum();
        let mut keep = VecDeque::with_capacity(runs.order.len());
        let excess = runs.order.len().saturating_sub(self.limits.history_runs);
        let mut dropped = 0;
        while let Some(id) = runs.order.pop_front() {
            let finished = runs
                .map
                .get(&id)
                .is_some_and(|r| r.state != RunState::Running);
            let over = dropped < excess || total > self.limits.history_output_bytes;
            if finished && over {
                if let Some(r) = runs.map.remove(&id) {
                    total = total.saturating_sub(bytes(&r));
                }
                dropped += 1;
            } else {
                keep.push_back(id);
            }
        }
        runs.order = keep;
    }

    fn end_run(&self, id: &str, result: std::result::Result<Outcome, String>) {
        let event = match &result {
            Ok(o) => {
                let v = outcome_json(id, o);
                json!({
                    "id": id,
                    "status": o.status.as_str(),
                    "duration_ms": o.duration_ms,
                    "fuel_consumed": o.fuel_consumed,
                    "memory_peak_bytes": o.memory_peak_bytes,
                    "summary": (!o.is_ok()).then(|| o.summary()),
                    "outputs": v.get("outputs").cloned().unwrap_or(Value::Null),
                })
            }
            Err(e) => json!({"id": id, "status": null, "error": e}),
        };
        // Durable first: a result the client is told about is on disk.
        if let Some(log) = lock(&self.results).as_mut() {
            let line = match &result {
                Ok(o) => outcome_json(id, o),
                Err(e) => json!({"id": id, "status": "host_error", "error": e}),
            };
            if let Some(r) = JobResult::from_value(line)
                && let Err(e) = log.append(&r).and_then(|_| log.sync())
            {
                tracing::warn!("cannot record run {id}: {e}");
            }
        }
        let kind = {
            let mut runs = lock(&self.runs);
            match runs.map.get_mut(id) {
                Some(rec) => {
                    match result {
                        Ok(o) => {
                            rec.state = RunState::Finished;
                            rec.outcome = Some(o);
                        }
                        Err(e) => {
                            rec.state = RunState::Failed;
                            rec.error = Some(e);
                        }
                    }
                    rec.live = None;
                    rec.kind
                }
                None => "run",
            }
        };
        let mut event = event;
        if let Some(o) = event.as_object_mut() {
            o.insert("kind".into(), kind.into());
        }
        self.publish("run.finished", event);
        if let Some(w) = lock(&self.run_waiters).remove(id) {
            let _ = w.send(true);
        }
    }

    /// Wait until run `id` has ended (or the server stops).
    pub async fn wait_run(&self, id: &str) {
        let rx = lock(&self.run_waiters)
            .get(id)
            .map(watch::Sender::subscribe);
        if let Some(mut rx) = rx {
            tokio::select! {
                _ = rx.wait_for(|done| *done) => {}
                () = self.stop.cancelled() => {}
            }
        }
    }

    /// Run and wait for the outcome.
    pub async fn run(self: &Arc<Self>, body: RunBody, ticket: Ticket) -> Result<Value> {
        let id = self.start_run(body, ticket)?;
        self.wait_run(&id).await;
        self.run_json(&id, false)
    }

    /// A run's outcome (`with_record`: the record around it).
    pub fn run_json(&self, id: &str, with_record: bool) -> Result<Value> {
        let runs = lock(&self.runs);
        let rec = runs.map.get(id).ok_or_else(|| {
            ServiceError::NotFound(format!("no run `{}`", crate::outcome::clip(id, 80)))
        })?;
        if with_record {
            return Ok(rec.to_json(true));
        }
        match (&rec.outcome, &rec.error, rec.state) {
            (Some(o), _, _) => Ok(outcome_json(id, o)),
            (None, Some(e), _) => Err(ServiceError::Host(e.clone())),
            (None, None, _) => Ok(json!({"id": id, "state": "running"})),
        }
    }

    /// Recent runs, newest first.
    pub fn runs(&self, limit: usize) -> Vec<Value> {
        let runs = lock(&self.runs);
        runs.order
            .iter()
            .rev()
            .take(limit)
            .filter_map(|id| runs.map.get(id))
            .map(|r| r.to_json(false))
            .collect()
    }

    /// One output's bytes and MIME type.
    pub fn output(&self, id: &str, index: u32, ext: &str) -> Result<(String, Vec<u8>)> {
        let runs = lock(&self.runs);
        let missing = || ServiceError::NotFound(format!("run has no output {index} as `{ext}`"));
        let rec = runs
            .map
            .get(id)
            .ok_or_else(|| ServiceError::NotFound("no such run".into()))?;
        let out = rec
            .outcome
            .as_ref()
            .and_then(|o| o.outputs.iter().find(|out| out.index == index))
            .ok_or_else(missing)?;
        let item = out
            .items
            .iter()
            .find(|i| ext_of_mime(&i.mime) == Some(ext))
            .ok_or_else(missing)?;
        Ok((item.mime.clone(), item.data.clone()))
    }

    /// Samples of every run in flight, published as `run.progress`.
    pub fn publish_progress(&self) {
        let now = now_ms();
        let samples: Vec<Value> = lock(&self.runs)
            .map
            .values()
            .filter(|r| r.state == RunState::Running)
            .filter_map(|r| {
                r.live.as_ref().map(|l| {
                    json!({
                        "id": r.id,
                        "fuel_consumed": l.fuel_used(),
                        "memory_bytes": l.memory_bytes(),
                        "elapsed_ms": now.saturating_sub(r.started_ms),
                    })
                })
            })
            .collect();
        for s in samples {
            self.publish("run.progress", s);
        }
    }

    // ----- fixes -----

    /// Start a fix; its id at once.
    pub fn start_fix(self: &Arc<Self>, body: FixBody, ticket: Ticket) -> Result<String> {
        let llmos = self.llmos()?.clone();
        let artifact = self.artifact(&body.language, &body.source, body.name.as_deref())?;
        let opts = Self::run_options(body.limits.as_ref(), body.seed, body.expect_stdout)?;
        let max_attempts = body.max_attempts.unwrap_or(3);
        if max_attempts > 10 {
            return Err(ServiceError::BadRequest(
                "`max_attempts` is at most 10".into(),
            ));
        }
        // Checked now, so a bad request fails here and not in the task.
        llmos.request(&artifact, &opts)?;
        let provider = self.provider.get().cloned().flatten();
        let id = self.next_id('f');
        lock(&self.fixes).insert(
            id.clone(),
            FixRecord {
                id: id.clone(),
                language: artifact.language.clone(),
                source: artifact.source.clone(),
                state: RunState::Running,
                steps: Vec::new(),
                result: None,
                code: None,
                run_id: None,
                trace: None,
                error: None,
            },
        );
        self.publish(
            "fix.started",
            json!({"id": id, "language": artifact.language}),
        );
        let me = self.clone();
        let fix_id = id.clone();
        self.tasks.spawn(async move {
            let _ticket = ticket;
            let _slot = me.running.clone().acquire_owned().await;
            let fix = crate::FixOptions {
                max_attempts,
                ..Default::default()
            };
            let step_me = me.clone();
            let step_id = fix_id.clone();
            let on_event = move |e: crate::supervisor::Event<'_>| step_me.fix_step(&step_id, e);
            let result = tokio::select! {
                r = llmos.fix(&artifact, &opts, &fix, provider.as_deref(), &on_event) => r.map_err(|e| e.to_string()),
                () = me.stop.cancelled() => Err("cancelled: the server shut down".into()),
            };
            me.end_fix(&fix_id, result);
        });
        Ok(id)
    }

    fn fix_step(&self, id: &str, e: crate::supervisor::Event<'_>) {
        use crate::supervisor::Event as E;
        let step = match e {
            E::Ran {
                attempt,
                code,
                limits,
                outcome,
                ..
            } => {
                // Each attempt is a run of its own, with its outputs.
                let run_id = self.next_id('r');
                let name = format!("attempt {attempt}");
                self.begin_run(&run_id, "fix", &outcome.language, &name, code, limits, None);
                self.end_run(&run_id, Ok(outcome.clone()));
                json!({
                    "attempt": attempt, "step": "ran", "status": outcome.status.as_str(),
                    "summary": (!outcome.is_ok()).then(|| outcome.summary()), "run_id": run_id,
                })
            }
            E::Asking { attempt, strategy } => {
                json!({"attempt": attempt, "step": "asking", "strategy": strategy.as_str()})
            }
            E::Rejected { attempt, reason } => {
                json!({"attempt": attempt, "step": "rejected", "reason": reason})
            }
            E::LlmFailed { attempt, error } => {
                json!({"attempt": attempt, "step": "llm_failed", "error": error})
            }
            E::Diff { attempt, diff } => json!({"attempt": attempt, "step": "diff", "diff": diff}),
            E::Finished { result } => {
                json!({"step": "finished", "result": result})
            }
        };
        if let Some(f) = lock(&self.fixes).map.get_mut(id) {
            f.steps.push(step.clone());
        }
        let mut data = step;
        if let Some(o) = data.as_object_mut() {
            o.insert("id".into(), id.into());
        }
        self.publish("fix.step", data);
    }

    fn end_fix(
        &self,
        id: &str,
        result: std::result::Result<crate::supervisor::Supervised, String>,
    ) {
        let mut fixes = lock(&self.fixes);
        let Some(f) = fixes.map.get_mut(id) else {
            return;
        };
        match result {
            Ok(s) => {
                f.state = RunState::Finished;
                f.result = serde_json::to_value(&s.trace.result).ok();
                f.code = Some(s.code.clone());
                f.trace = serde_json::to_value(&s.trace).ok();
                // The last attempt's run id: the last `ran` step.
                f.run_id = f
                    .steps
                    .iter()
                    .rev()
                    .find_map(|s| s.get("run_id").and_then(Value::as_str).map(str::to_string));
            }
            Err(e) => {
                f.state = RunState::Failed;
                f.error = Some(e);
            }
        }
        let data = json!({"id": id, "state": f.state, "result": f.result});
        drop(fixes);
        self.publish("fix.finished", data);
    }

    /// Wait until fix `id` ends.
    pub async fn wait_fix(&self, id: &str) {
        let mut rx = self.events.subscribe();
        loop {
            if lock(&self.fixes)
                .map
                .get(id)
                .is_none_or(|f| f.state != RunState::Running)
            {
                return;
            }
            tokio::select! {
                r = rx.recv() => if matches!(r, Err(broadcast::error::RecvError::Closed)) { return },
                () = self.stop.cancelled() => return,
                () = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
        }
    }

    /// A fix as the API shows it.
    pub fn fix_json(&self, id: &str) -> Result<Value> {
        let f = lock(&self.fixes)
            .map
            .get(id)
            .cloned()
            .ok_or_else(|| ServiceError::NotFound("no such fix".into()))?;
        let outcome = f
            .run_id
            .as_deref()
            .and_then(|r| self.run_json(r, false).ok());
        Ok(f.to_json(outcome))
    }

    /// A fix's whole trace.
    pub fn fix_trace(&self, id: &str) -> Result<Value> {
        let fixes = lock(&self.fixes);
        let f = fixes
            .map
            .get(id)
            .ok_or_else(|| ServiceError::NotFound("no such fix".into()))?;
        f.trace
            .clone()
            .ok_or_else(|| ServiceError::NotFound("the fix has no trace yet".into()))
    }

    /// Recent fixes, newest first.
    pub fn fixes(&self) -> Vec<Value> {
        let fixes = lock(&self.fixes);
        fixes
            .order
            .iter()
            .rev()
            .take(200)
            .filter_map(|id| fixes.map.get(id))
            .map(|f| json!({"id": f.id, "language": f.language, "state": f.state, "result": f.result}))
            .collect()
    }

    // ----- sessions -----

    /// Start a session.
    pub async fn new_session(self: &Arc<Self>, body: SessionBody) -> Result<Value> {
        let llmos = self.llmos()?.clone();
        let name = match body.name {
            Some(n) => n,
            None => self.next_id('s'),
        };
        crate::session::check_name(&name).map_err(ServiceError::from)?;
        let mut sessions = self.sessions.lock().await;
        if sessions.len() >= self.limits.max_sessions {
            return Err(ServiceError::TooMany(format!(
                "at most {} live sessions: drop one first",
                self.limits.max_sessions
            )));
        }
        let dir = llmos.sessions();
        if sessions.contains_key(&name) || dir.exists(&name)? {
            return Err(ServiceError::Conflict(format!("session `{name}` exists")));
        }
        let mut journal = match &body.from {
            Some(s) => {
                let mut j = self.snapshot(s)?;
                j.artifact_id = crate::session::namespace(&name);
                j
            }
            None => llmos.new_session(body.language.as_deref(), &name, true)?,
        };
        journal.budget_fuel = body.budget_fuel;
        let (session, _) = llmos.open_session(journal).await?;
        persist(dir, name.clone(), session.journal().clone()).await?;
        let language = session.journal().language.clone();
        sessions.insert(
            name.clone(),
            Arc::new(tokio::sync::Mutex::new(LiveSession {
                session,
                cells: Vec::new(),
            })),
        );
        Ok(json!({"name": name, "language": language, "cells": []}))
    }

    async fn live_session(
        self: &Arc<Self>,
        name: &str,
    ) -> Result<Arc<tokio::sync::Mutex<LiveSession>>> {
        let llmos = self.llmos()?.clone();
        crate::session::check_name(name)
            .map_err(|_| ServiceError::NotFound("no such session".into()))?;
        let mut sessions = self.sessions.lock().await;
        if let Some(s) = sessions.get(name) {
            return Ok(s.clone());
        }
        // A session saved by the CLI (or before a restart): open it.
        let dir = llmos.sessions();
        if !dir.exists(name)? {
            return Err(ServiceError::NotFound(format!("no session `{name}`")));
        }
        if sessions.len() >= self.limits.max_sessions {
            return Err(ServiceError::TooMany("too many live sessions".into()));
        }
        let journal = {
            let name = name.to_string();
            tokio::task::spawn_blocking(move || {
                let lock_file = dir.lock(&name)?;
                dir.load(&lock_file, &name)
            })
            .await
            .map_err(|e| ServiceError::Host(format!("loading the session failed: {e}")))??
        };
        let cells = journal
            .cells
            .iter()
            .map(|c| (c.cell, c.source.clone(), None))
            .collect();
        let (session, _) = llmos.open_session(journal).await?;
        let s = Arc::new(tokio::sync::Mutex::new(LiveSession { session, cells }));
        sessions.insert(name.to_string(), s.clone());
        Ok(s)
    }

    /// Run one cell.
    pub async fn run_cell(
        self: &Arc<Self>,
        name: &str,
        body: CellBody,
        ticket: Ticket,
    ) -> Result<Value> {
        let llmos = self.llmos()?.clone();
        let live = self.live_session(name).await?;
        let me = self.clone();
        let name = name.to_string();
        // Spawned: the cell finishes (and is journaled) even if the client goes.
        let task = self.tasks.spawn(async move {
            let _ticket = ticket;
            let mut s = live.lock().await;
            let journal = s.session.journal();
            let limits = llmos.cell_limits(
                journal.tier,
                &journal.language.clone(),
                &body.limits.as_ref().map(LimitsBody::overrides).transpose()?.unwrap_or_default(),
            )?;
            let language = journal.language.clone();
            let run_id = me.next_id('r');
            let cell_name = format!("{name} cell {}", journal.cells_run + 1);
            me.begin_run(&run_id, "cell", &language, &cell_name, &body.source, &limits, None);
            let _slot = me.running.clone().acquire_owned().await;
            let r = s
                .session
                .run_cell(Cell {
                    source: &body.source,
                    filename: "",
                    limits,
                    seed: body.seed,
                })
                .await;
            let cell = match r {
                Ok(c) => c,
                Err(e) => {
                    me.end_run(&run_id, Err(e.to_string()));
                    return Err(ServiceError::from(e));
                }
            };
            me.end_run(&run_id, Ok(cell.outcome.clone()));
            s.cells.push((cell.cell, body.source.clone(), Some(run_id.clone())));
            let dir = llmos.sessions();
            persist(dir, name.clone(), s.session.journal().clone()).await?;
            me.publish(
                "session.cell",
                json!({"session": name, "cell": cell.cell, "status": cell.outcome.status.as_str(), "run_id": run_id}),
            );
            Ok(json!({
                "session": name,
                "cell": cell.cell,
                "restored": cell.restored,
                "journaled": cell.journaled,
                "outcome": outcome_json(&run_id, &cell.outcome),
            }))
        });
        task.await
            .map_err(|e| ServiceError::Host(format!("the cell's task failed: {e}")))?
    }

    /// A session and its cells.
    pub async fn session_json(self: &Arc<Self>, name: &str) -> Result<Value> {
        let live = self.live_session(name).await?;
        let s = live.lock().await;
        let cells: Vec<Value> = s
            .cells
            .iter()
            .map(|(n, source, run)| {
                json!({
                    "cell": n,
                    "source": source,
                    "run_id": run,
                    "outcome": run.as_deref().and_then(|r| self.run_json(r, false).ok()),
                })
            })
            .collect();
        Ok(json!({"name": name, "language": s.session.journal().language, "cells": cells}))
    }

    /// Every session on disk.
    pub fn sessions(&self) -> Result<Vec<Value>> {
        let llmos = self.llmos()?;
        Ok(llmos
            .sessions()
            .list()?
            .into_iter()
            .map(|i| serde_json::to_value(i).unwrap_or(Value::Null))
            .collect())
    }

    /// Drop a session (live and on disk).
    pub async fn drop_session(&self, name: &str) -> Result<()> {
        let llmos = self.llmos()?;
        crate::session::check_name(name)
            .map_err(|_| ServiceError::NotFound("no such session".into()))?;
        let live = self.sessions.lock().await.remove(name);
        if let Some(l) = live {
            // Wait for a cell in flight to finish.
            drop(l.lock().await);
        }
        if !llmos.sessions().drop_session(name)? {
            return Err(ServiceError::NotFound(format!("no session `{name}`")));
        }
        Ok(())
    }

    // ----- snapshots -----

    /// Named snapshots: journals kept like sessions' (same names, files and
    /// listing) in `<data dir>/snapshots`.
    fn snapshot_store(&self) -> Result<crate::session::SessionDir> {
        Ok(crate::session::SessionDir::new(
            self.llmos()?.data_dir().join("snapshots"),
        ))
    }

    fn snapshot(&self, name: &str) -> Result<crate::Journal> {
        let store = self.snapshot_store()?;
        if !store.exists(name).map_err(ServiceError::from)? {
            return Err(ServiceError::NotFound(format!("no snapshot `{name}`")));
        }
        Ok(crate::Journal::read(&store.path(name)?)?)
    }

    /// Freeze a live session into a named snapshot.
    pub async fn create_snapshot(self: &Arc<Self>, body: SnapshotBody) -> Result<Value> {
        let name = body.name.clone().unwrap_or_else(|| body.session.clone());
        let store = self.snapshot_store()?;
        let path = store.path(&name).map_err(ServiceError::from)?;
        let live = self.live_session(&body.session).await?;
        let s = live.lock().await;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| ServiceError::Host(e.to_string()))?;
        }
        let journal = s.session.journal();
        journal.write(&path)?;
        Ok(
            json!({"name": name, "session": body.session, "language": journal.language, "cells": journal.cells.len()}),
        )
    }

    /// Every snapshot.
    pub fn snapshots(&self) -> Result<Vec<Value>> {
        Ok(self
            .snapshot_store()?
            .list()?
            .into_iter()
            .map(|i| json!({"name": i.name, "language": i.language, "cells": i.cells}))
            .collect())
    }

    // ----- batches -----

    /// Submit a batch; its id at once.
    pub fn submit_batch(self: &Arc<Self>, body: BatchBody) -> Result<String> {
        let llmos = self.llmos()?.clone();
        if body.jobs.is_empty() {
            return Err(ServiceError::BadRequest(
                "a batch needs at least one job".into(),
            ));
        }
        if body.jobs.len() > self.limits.max_batch_jobs {
            return Err(ServiceError::BadRequest(format!(
                "at most {} jobs in a batch",
                self.limits.max_batch_jobs
            )));
        }
        let mut seen = std::collections::HashSet::new();
        let mut jobs = Vec::with_capacity(body.jobs.len());
        for j in body.jobs {
            if !seen.insert(j.id.clone()) {
                return Err(ServiceError::BadRequest(format!(
                    "duplicate job id `{}`",
                    crate::outcome::clip(&j.id, 80)
                )));
            }
            let mut job = Job::inline(j.id, j.language, j.source);
            if let Some(l) = &j.limits {
                job.limits = JobLimits {
                    fuel: l.fuel.clone().map(Value::String),
                    memory: l.memory.clone().map(Value::String),
                    timeout: l.timeout.clone().map(Value::String),
                    output_limit: l.output_limit.clone().map(Value::String),
                };
            }
            job.seed = j.seed;
            job.expect_stdout = j.expect_stdout;
            job.test = j.test;
            job.check().map_err(ServiceError::BadRequest)?;
            jobs.push(job);
        }
        let total = jobs.len();
        let lanes = body
            .concurrency
            .unwrap_or(self.limits.max_running)
            .clamp(1, self.limits.max_running.max(1));
        let executor = Arc::new(batch::Local::new(
            llmos,
            batch::JobContext {
                worker: "serve".into(),
                outputs_dir: None,
                repair: None,
            },
            lanes,
        ));
        let opts = batch::BatchOptions {
            limits: JobLimits::default(),
            budget: body
                .budget_fuel
                .map(|b| Arc::new(batch::LocalBudget::new(b)) as Arc<dyn batch::FuelBudget>),
            from: None,
        };
        let mut running = batch::submit(executor, jobs, opts);
        let id = self.next_id('b');
        lock(&self.batches).insert(
            id.clone(),
            BatchRecord {
                id: id.clone(),
                state: "running",
                total,
                results: Vec::new(),
                counts: HashMap::new(),
                summary: None,
                cancel: Some(Box::new(running.canceller())),
            },
        );
        self.publish(
            "batch.progress",
            json!({"id": id, "done": 0, "total": total, "counts": {}}),
        );
        let me = self.clone();
        let batch_id = id.clone();
        self.tasks.spawn(async move {
            let start = Instant::now();
            let mut summary = batch::SummaryBuilder::default();
            let mut last = Instant::now();
            loop {
                let next = tokio::select! {
                    r = running.next() => r,
                    () = me.stop.cancelled() => { running.cancel(); running.next().await }
                };
                let Some(r) = next else { break };
                summary.add(&r);
                let progress = {
                    let mut batches = lock(&me.batches);
                    let Some(b) = batches.map.get_mut(&batch_id) else { continue };
                    *b.counts.entry(r.status().to_string()).or_default() += 1;
                    b.results.push(Value::Object(r.as_map().clone()));
                    json!({"id": batch_id, "done": b.results.len(), "total": b.total, "counts": b.counts})
                };
                if last.elapsed() >= Duration::from_millis(100) {
                    last = Instant::now();
                    me.publish("batch.progress", progress);
                }
            }
            let s = serde_json::to_value(summary.finish(start.elapsed().as_secs_f64()))
                .unwrap_or(Value::Null);
            let progress = {
                let mut batches = lock(&me.batches);
                batches.map.get_mut(&batch_id).map(|b| {
                    b.state = if b.results.len() < b.total { "cancelled" } else { "finished" };
                    b.summary = Some(s.clone());
                    b.cancel = None;
                    json!({"id": batch_id, "done": b.results.len(), "total": b.total, "counts": b.counts})
                })
            };
            if let Some(p) = progress {
                me.publish("batch.progress", p);
            }
            me.publish("batch.finished", json!({"id": batch_id, "summary": s}));
        });
        Ok(id)
    }

    /// A batch's status.
    pub fn batch_json(&self, id: &str) -> Result<Value> {
        lock(&self.batches)
            .map
            .get(id)
            .map(BatchRecord::to_json)
            .ok_or_else(|| ServiceError::NotFound("no such batch".into()))
    }

    /// A batch's results so far, from `from` on.
    pub fn batch_results(&self, id: &str, from: usize) -> Result<Vec<Value>> {
        lock(&self.batches)
            .map
            .get(id)
            .map(|b| b.results.iter().skip(from).cloned().collect())
            .ok_or_else(|| ServiceError::NotFound("no such batch".into()))
    }

    /// Every batch, newest first.
    pub fn batches(&self) -> Vec<Value> {
        let b = lock(&self.batches);
        b.order
            .iter()
            .rev()
            .filter_map(|id| b.map.get(id))
            .map(BatchRecord::to_json)
            .collect()
    }

    /// Stop starting a batch's jobs.
    pub fn cancel_batch(&self, id: &str) -> Result<()> {
        let batches = lock(&self.batches);
        let b = batches
            .map
            .get(id)
            .ok_or_else(|| ServiceError::NotFound("no such batch".into()))?;
        if let Some(c) = &b.cancel {
            c();
        }
        Ok(())
    }

    // ----- shutdown -----

    /// Stop: refuse new work, give runs in flight `grace` to finish, then
    /// cancel the rest (each gets a `failed` record). Results already
    /// computed are on disk.
    pub async fn shutdown(&self) {
        self.draining.store(true, Ordering::Relaxed);
        self.tasks.close();
        if tokio::time::timeout(self.limits.grace, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("cancelling {} runs in flight", self.tasks.len());
            self.stop.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(5), self.tasks.wait()).await;
        }
        self.stop.cancel();
        if let Some(log) = lock(&self.results).as_mut() {
            let _ = log.sync();
        }
    }
}
