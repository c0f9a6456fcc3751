//! Running one job: on this process's kernel ([`Local`]) or on a pool of
//! worker processes ([`ProcessPool`]) that each run [`serve_stdio`].
//!
//! Why processes: sandboxes are cheap to create, and most of that cost is
//! mapping and tearing down instance memory. In one process, threads doing
//! it at once contend on the address space (copy-on-write faults and TLB
//! shootdowns across CPUs), so one single-threaded worker process per core
//! scales better than threads, and a worker that dies takes only its own
//! jobs with it (they are retried once on a fresh worker).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{Mutex, oneshot};

use super::job::Job;
use super::result::{INVALID, JobResult, WORKER_LOST};
use crate::facade::{ArtifactOptions, ArtifactSource, Llmos, RunOptions};

/// Status of a job the host failed to run (e.g. its component is missing).
pub const HOST_ERROR: &str = "host_error";

/// Runs jobs. `slot` is the dispatcher's lane (`0..concurrency()`), so an
/// executor can pin lanes to workers.
#[async_trait]
pub trait Executor: Send + Sync {
    /// Run `job` with at most `fuel_cap` fuel (the batch budget's share).
    async fn execute(&self, slot: usize, job: Job, fuel_cap: Option<u64>) -> JobResult;
    /// Jobs run at once.
    fn concurrency(&self) -> usize;
}

/// The repair loop for failing jobs.
#[cfg(feature = "supervisor")]
pub struct Repair {
    /// Attempts and budgets per job.
    pub options: crate::facade::FixOptions,
    /// The LLM.
    pub provider: Box<dyn crate::supervisor::llm::FixProvider>,
}

/// How a worker runs jobs besides their own settings.
#[derive(Default)]
pub struct JobContext {
    /// Name of the worker, in each result.
    pub worker: String,
    /// Save each job's outputs under `<dir>/<job id>`.
    pub outputs_dir: Option<PathBuf>,
    /// Repair failing jobs.
    #[cfg(feature = "supervisor")]
    pub repair: Option<Repair>,
}

/// Run one job on `llmos`. Never fails: every problem is a result.
pub async fn execute(
    llmos: &Llmos,
    ctx: &JobContext,
    job: &Job,
    fuel_cap: Option<u64>,
) -> JobResult {
    let start = Instant::now();
    let invalid = |status: &str, reason: String| {
        let mut r = JobResult::without_run(&job.id, status, reason, &ctx.worker);
        r.set("timings", serde_json::json!({ "total_ms": ms(start) }));
        r
    };
    if let Err(m) = job.check() {
        return invalid(INVALID, m);
    }
    let limits = match job.limits.overrides() {
        Ok(l) => l,
        Err(e) => return invalid(INVALID, e.to_string()),
    };
    let (source, untrusted) = match (&job.path, &job.source, &job.language) {
        (Some(p), _, _) => (
            ArtifactSource::Named(p.to_string_lossy().into_owned()),
            false,
        ),
        (None, Some(s), Some(l)) => (
            ArtifactSource::Inline {
                language: l.clone(),
                source: s.clone(),
                name: None,
            },
            true,
        ),
        _ => return invalid(INVALID, "give `path`, or `source` and `language`".into()),
    };
    let artifact = match llmos.artifact(
        source,
        &ArtifactOptions {
            language: job.language.clone(),
            id: Some(job.id.clone()),
            untrusted,
        },
    ) {
        Ok(a) => a,
        Err(e) => return invalid(INVALID, e.to_string()),
    };
    let opts = RunOptions {
        limits,
        seed: job.seed,
        expect_stdout: job.expect_stdout.clone(),
        test: match job.test_program() {
            Ok(t) => t,
            Err(e) => return invalid(INVALID, e),
        },
        live: None,
    };
    let mut req = match llmos.request(&artifact, &opts) {
        Ok(r) => r,
        Err(e) => return invalid(INVALID, e.to_string()),
    };
    if let Some(cap) = fuel_cap {
        req.limits.fuel = Some(req.limits.fuel.map_or(cap, |f| f.min(cap)));
    }
    let resolved = ms(start);

    #[cfg(feature = "supervisor")]
    let (outcome, supervisor) = match &ctx.repair {
        Some(repair) => {
            let mut fix = repair.options.clone();
            if let Some(cap) = fuel_cap {
                fix.budget_fuel = Some(fix.budget_fuel.map_or(cap, |b| b.min(cap)));
            }
            let mut o = opts.clone();
            o.limits.fuel = req.limits.fuel.map(Some);
            match llmos
                .fix(&artifact, &o, &fix, Some(repair.provider.as_ref()), &|_| {})
                .await
            {
                Ok(s) => {
                    let repairs = s.trace.attempts.len().saturating_sub(1);
                    let fixed = matches!(
                        s.trace.result,
                        crate::supervisor::trace::TraceResult::Fixed { .. }
                    );
                    let summary = serde_json::json!({
                        "result": s.trace.result,
                        "repairs": repairs,
                        "model": s.trace.model,
                        "tokens": s.trace.tokens,
                        "code": fixed.then(|| s.code.clone()),
                    });
                    (Ok(s.outcome), Some(summary))
                }
                Err(e) => (Err(e), None),
            }
        }
        None => (run_job(llmos, &artifact, &opts, &req, job).await, None),
    };
    #[cfg(not(feature = "supervisor"))]
    let (outcome, supervisor): (_, Option<Value>) =
        (run_job(llmos, &artifact, &opts, &req, job).await, None);

    let mut outcome = match outcome {
        Ok(o) => o,
        Err(e) => return invalid(HOST_ERROR, e.to_string()),
    };
    if let Some(dir) = &ctx.outputs_dir
        && !outcome.outputs.is_empty()
    {
        let dir = dir.join(safe_name(&job.id));
        if let Err(e) = llmos.save_outputs(&mut outcome, &artifact, Some(&dir)) {
            tracing::warn!(job = %job.id, "cannot write the outputs: {e}");
        }
    }
    let value = serde_json::to_value(&outcome).unwrap_or(Value::Null);
    let Some(mut r) = JobResult::from_value(merge_id(value, &job.id)) else {
        return invalid(HOST_ERROR, "cannot serialise the outcome".into());
    };
    if let Some(p) = &artifact.path {
        r.set("file", p.display().to_string());
    }
    r.set("tier", artifact.tier.as_str());
    r.set("worker", ctx.worker.as_str());
    if let Some(s) = supervisor {
        r.set("supervisor", s);
    }
    r.set(
        "timings",
        serde_json::json!({ "resolve_ms": resolved, "total_ms": ms(start) }),
    );
    r
}

/// One run of a job: in a fresh sandbox, or from its snapshot.
async fn run_job(
    llmos: &Llmos,
    artifact: &crate::Artifact,
    opts: &RunOptions,
    req: &crate::RunRequest,
    job: &Job,
) -> Result<crate::Outcome, crate::HostError> {
    let Some(from) = &job.from else {
        return llmos.runtime().run(req).await;
    };
    if req.test.is_some() {
        return Err(crate::HostError::Usage(
            "a job that starts from a snapshot cannot have a test program".into(),
        ));
    }
    let snapshot = crate::session::Journal::read(from)?;
    let mut opts = opts.clone();
    opts.limits.fuel = req.limits.fuel.map(Some);
    let mut outcome = llmos.run_from(snapshot, artifact, &opts).await?;
    crate::engine::check_stdout(&mut outcome, req.expect_stdout.as_deref());
    Ok(outcome)
}

fn merge_id(mut v: Value, id: &str) -> Value {
    if let Value::Object(m) = &mut v {
        // `id` first in the line reads best.
        let mut out = serde_json::Map::new();
        out.insert("id".into(), id.into());
        out.append(m);
        return Value::Object(out);
    }
    v
}

fn ms(start: Instant) -> f64 {
    (start.elapsed().as_secs_f64() * 1e6).round() / 1e3
}

pub use crate::outcome::stdout_diff;

/// A file name for a job id: readable and unique per id.
pub fn safe_name(id: &str) -> String {
    let readable: String = id
        .chars()
        .rev()
        .take(60)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "{}-{:016x}",
        readable.trim_start_matches('.'),
        xxhash_rust::xxh3::xxh3_64(id.as_bytes())
    )
}

/// Jobs on this process's kernel, `concurrency` at a time.
pub struct Local {
    llmos: Arc<Llmos>,
    ctx: JobContext,
    concurrency: usize,
}

impl Local {
    /// An executor running up to `concurrency` jobs at once on `llmos`.
    pub fn new(llmos: Arc<Llmos>, ctx: JobContext, concurrency: usize) -> Local {
        Local {
            llmos,
            ctx,
            concurrency: concurrency.max(1),
        }
    }
}

#[async_trait]
impl Executor for Local {
    async fn execute(&self, _slot: usize, job: Job, fuel_cap: Option<u64>) -> JobResult {
        execute(&self.llmos, &self.ctx, &job, fuel_cap).await
    }

    fn concurrency(&self) -> usize {
        self.concurrency
    }
}

/// A job as a coordinator sends it to a worker process.
#[derive(Debug, Serialize, Deserialize)]
pub struct WorkerRequest {
    /// Matches the answer to the request.
    pub seq: u64,
    /// The job.
    pub job: Job,
    /// Fuel the batch budget granted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel_cap: Option<u64>,
}

/// A worker process's answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct WorkerResponse {
    /// The request's `seq`.
    pub seq: u64,
    /// The result object.
    pub result: Value,
}

/// Serve jobs read as [`WorkerRequest`] lines on stdin, answering each with
/// a [`WorkerResponse`] line on stdout as soon as it finishes (jobs run
/// concurrently; the coordinator bounds how many are in flight). Returns at
/// the end of stdin, after the jobs in flight.
pub async fn serve_stdio(llmos: Arc<Llmos>, ctx: Arc<JobContext>) -> std::io::Result<()> {
    let stdout = Arc::new(Mutex::new(stdout_pipe()));
    let mut lines = BufReader::new(stdin_pipe()).lines();
    let mut tasks = tokio::task::JoinSet::new();
    while let Some(line) = lines.next_line().await? {
        let req: WorkerRequest = match serde_json::from_str(&line) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("worker: a request is not valid JSON: {e}");
                continue;
            }
        };
        let (llmos, ctx, stdout) = (llmos.clone(), ctx.clone(), stdout.clone());
        tasks.spawn(async move {
            let result = execute(&llmos, &ctx, &req.job, req.fuel_cap).await;
            let answer = WorkerResponse {
                seq: req.seq,
                result: Value::Object(result.as_map().clone()),
            };
            let mut line = serde_json::to_string(&answer).unwrap_or_default();
            line.push('\n');
            let mut out = stdout.lock().await;
            // A closed stdout means the coordinator is gone: nothing to do.
            let _ = out.write_all(line.as_bytes()).await;
            let _ = out.flush().await;
        });
        // Reap finished tasks as we go.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// Standard input, read on the runtime's own thread when it is a pipe.
///
/// tokio's `stdin()` reads on a blocking-pool thread, so every line wakes a
/// second thread of the worker, and once two threads of the process have
/// run on two CPUs, every unmap of a sandbox's memory costs a cross-CPU TLB
/// shootdown. A pipe read through epoll keeps the worker on one thread.
fn stdin_pipe() -> Box<dyn tokio::io::AsyncRead + Unpin + Send> {
    use std::os::fd::AsFd;
    let pipe = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map(std::fs::File::from)
        .and_then(tokio::net::unix::pipe::Receiver::from_file);
    match pipe {
        Ok(p) => Box::new(p),
        Err(_) => Box::new(tokio::io::stdin()),
    }
}

/// Standard output, written on the runtime's own thread when it is a pipe
/// (see [`stdin_pipe`]).
fn stdout_pipe() -> Box<dyn tokio::io::AsyncWrite + Unpin + Send> {
    use std::os::fd::AsFd;
    let pipe = std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .map(std::fs::File::from)
        .and_then(tokio::net::unix::pipe::Sender::from_file);
    match pipe {
        Ok(p) => Box::new(p),
        Err(_) => Box::new(tokio::io::stdout()),
    }
}

/// Worker processes, each running [`serve_stdio`], `per_worker` jobs in
/// flight on each.
pub struct ProcessPool {
    program: PathBuf,
    args: Vec<String>,
    workers: Vec<Mutex<Option<Arc<WorkerProc>>>>,
    per_worker: usize,
    seq: AtomicU64,
}

struct WorkerProc {
    name: String,
    /// Cleared when its stdout closes (it exited or is exiting).
    alive: Arc<std::sync::atomic::AtomicBool>,
    stdin: Mutex<ChildStdin>,
    pending: Arc<std::sync::Mutex<HashMap<u64, oneshot::Sender<Value>>>>,
    child: Mutex<Child>,
}

impl ProcessPool {
    /// A pool of `workers` processes started as `program args...` on first
    /// use, each with `per_worker` jobs in flight.
    pub fn new(
        program: &Path,
        args: Vec<String>,
        workers: usize,
        per_worker: usize,
    ) -> ProcessPool {
        ProcessPool {
            program: program.to_path_buf(),
            args,
            workers: (0..workers.max(1)).map(|_| Mutex::new(None)).collect(),
            per_worker: per_worker.max(1),
            seq: AtomicU64::new(0),
        }
    }

    /// Processes in the pool.
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    async fn worker(&self, index: usize) -> std::io::Result<Arc<WorkerProc>> {
        let mut slot = self.workers[index].lock().await;
        if let Some(w) = slot.as_ref()
            && w.alive.load(Ordering::Acquire)
        {
            return Ok(w.clone());
        }
        let w = Arc::new(self.spawn(index)?);
        *slot = Some(w.clone());
        Ok(w)
    }

    fn spawn(&self, index: usize) -> std::io::Result<WorkerProc> {
        let mut child = Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let name = format!("{}#{index}", child.id().unwrap_or(0));
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| std::io::Error::other("no stdin"))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("no stdout"))?;
        let pending: Arc<std::sync::Mutex<HashMap<u64, oneshot::Sender<Value>>>> = Arc::default();
        let p = pending.clone();
        let alive = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let a = alive.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                match serde_json::from_str::<WorkerResponse>(&line) {
                    Ok(resp) => {
                        let tx = p
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .remove(&resp.seq);
                        if let Some(tx) = tx {
                            let _ = tx.send(resp.result);
                        }
                    }
                    Err(e) => tracing::warn!("a worker wrote a line that is not an answer: {e}"),
                }
            }
            // The worker is gone: every job still pending on it is lost.
            a.store(false, Ordering::Release);
            p.lock().unwrap_or_else(|e| e.into_inner()).clear();
        });
        Ok(WorkerProc {
            name,
            alive,
            stdin: Mutex::new(stdin),
            pending,
            child: Mutex::new(child),
        })
    }

    async fn try_once(
        &self,
        index: usize,
        job: &Job,
        fuel_cap: Option<u64>,
    ) -> Result<Value, String> {
        let w = self
            .worker(index)
            .await
            .map_err(|e| format!("cannot start a worker: {e}"))?;
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        w.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(seq, tx);
        let req = WorkerRequest {
            seq,
            job: job.clone(),
            fuel_cap,
        };
        let mut line = serde_json::to_string(&req).map_err(|e| e.to_string())?;
        line.push('\n');
        {
            let mut stdin = w.stdin.lock().await;
            if let Err(e) = stdin.write_all(line.as_bytes()).await {
                w.pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&seq);
                return Err(format!("worker {} is gone: {e}", w.name));
            }
        }
        rx.await
            .map_err(|_| format!("worker {} died while running the job", w.name))
    }

    /// Stop every worker: close their stdin and wait for them to finish the
    /// jobs in flight.
    pub async fn shutdown(&self) {
        for slot in &self.workers {
            if let Some(w) = slot.lock().await.take() {
                drop(w.stdin.lock().await);
                if let Ok(w) = Arc::try_unwrap(w) {
                    drop(w.stdin);
                    let _ = w.child.lock().await.wait().await;
                }
            }
        }
    }
}

#[async_trait]
impl Executor for ProcessPool {
    async fn execute(&self, slot: usize, job: Job, fuel_cap: Option<u64>) -> JobResult {
        let index = slot % self.workers.len();
        let mut last = String::new();
        // A worker that dies under a job is replaced, and the job tried once
        // more; twice means the job itself kills workers.
        for _ in 0..2 {
            match self.try_once(index, &job, fuel_cap).await {
                Ok(v) => {
                    return JobResult::from_value(v).unwrap_or_else(|| {
                        JobResult::without_run(
                            &job.id,
                            HOST_ERROR,
                            "a worker answered nonsense",
                            "",
                        )
                    });
                }
                Err(e) => last = e,
            }
        }
        JobResult::without_run(&job.id, WORKER_LOST, last, "")
    }

    fn concurrency(&self) -> usize {
        self.workers.len() * self.per_worker
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_names_are_unique_and_tame() {
        let a = safe_name("../../etc/passwd");
        assert!(!a.contains('/') && !a.starts_with('.'), "{a}");
        assert_ne!(safe_name("a/b"), safe_name("a_b"));
    }

    #[test]
    fn diffs_show_both_sides() {
        let d = stdout_diff("1\n2\n3\n", "1\n5\n3\n");
        assert!(d.contains("-2") && d.contains("+5"), "{d}");
    }
}
