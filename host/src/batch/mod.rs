//! Batch execution: many artifacts, each in a fresh sandbox under its
//! limits, with a fuel budget across the batch.
//!
//! - [`Inputs`] turns files, directories and JSONL manifests into [`Job`]s.
//! - [`submit`] dispatches jobs to an [`Executor`] ([`Local`] or a
//!   [`ProcessPool`] of workers) and streams their [`JobResult`]s as they
//!   finish; [`Batch::cancel`] stops it from starting more.
//! - [`FuelBudget`] is the batch-wide fuel budget: before a job starts it
//!   reserves the job's fuel (the job then runs with at most what it got),
//!   and what the job did not use goes back. Once nothing is left, jobs end
//!   as `not_run`.
//! - [`ResultLog`] writes results durably and resumes a batch; the
//!   [`SummaryBuilder`] counts them.

mod exec;
mod job;
mod log;
#[cfg(feature = "redis")]
pub mod redis;
mod result;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use tokio::sync::mpsc;

#[cfg(feature = "supervisor")]
pub use exec::Repair;
pub use exec::{
    Executor, HOST_ERROR, JobContext, Local, ProcessPool, WorkerRequest, WorkerResponse, execute,
    safe_name, serve_stdio, stdout_diff,
};
pub use job::{InputProblem, Inputs, Job, JobLimits};
pub use log::ResultLog;
pub use result::{
    FailureGroup, INVALID, JobResult, NOT_RUN, Percentiles, Summary, SummaryBuilder, WORKER_LOST,
    WRONG_OUTPUT,
};

use crate::limits;

/// The `reason` of a job that was not run because the batch was cancelled.
pub const CANCELLED: &str = "the batch was cancelled";

/// A fuel budget shared by every job of a batch (and, for a distributed
/// batch, every worker).
#[async_trait]
pub trait FuelBudget: Send + Sync {
    /// Take up to `want` fuel; returns what was granted (0: spent).
    async fn reserve(&self, want: u64) -> u64;
    /// Settle a reservation that granted fuel: give back what the job did
    /// not use (called once per grant above zero).
    async fn refund(&self, unused: u64);
}

/// A budget in this process.
///
/// Fuel a job reserved but did not use comes back, so "spent" means used:
/// while reservations are outstanding, a job that cannot get all it asks
/// for waits for them to settle instead of being refused, and only when
/// nothing is outstanding does it get the remainder (or, at zero, nothing).
#[derive(Debug)]
pub struct LocalBudget {
    state: std::sync::Mutex<BudgetState>,
    settled: tokio::sync::Notify,
}

#[derive(Debug)]
struct BudgetState {
    remaining: u64,
    outstanding: u64,
}

impl LocalBudget {
    /// A budget of `total` fuel.
    pub fn new(total: u64) -> LocalBudget {
        LocalBudget {
            state: std::sync::Mutex::new(BudgetState {
                remaining: total,
                outstanding: 0,
            }),
            settled: tokio::sync::Notify::new(),
        }
    }

    /// Fuel not yet reserved.
    pub fn remaining(&self) -> u64 {
        self.lock().remaining
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BudgetState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl FuelBudget for LocalBudget {
    async fn reserve(&self, want: u64) -> u64 {
        loop {
            // Registered before the check, so a refund in between wakes it.
            let settled = self.settled.notified();
            {
                let mut s = self.lock();
                if s.remaining >= want || s.outstanding == 0 {
                    let granted = want.min(s.remaining);
                    s.remaining -= granted;
                    if granted > 0 {
                        s.outstanding += 1;
                    }
                    return granted;
                }
            }
            settled.await;
        }
    }

    async fn refund(&self, unused: u64) {
        {
            let mut s = self.lock();
            s.remaining = s.remaining.saturating_add(unused);
            s.outstanding = s.outstanding.saturating_sub(1);
        }
        self.settled.notify_waiters();
    }
}

/// How a batch runs its jobs.
#[derive(Clone, Default)]
pub struct BatchOptions {
    /// Limits for jobs that do not set their own (each field separately).
    pub limits: JobLimits,
    /// Fuel across the whole batch.
    pub budget: Option<Arc<dyn FuelBudget>>,
    /// A snapshot for jobs that name none: each starts from it.
    pub from: Option<std::path::PathBuf>,
}

/// A running batch: results as they finish, and a way to stop it.
pub struct Batch {
    results: mpsc::Receiver<JobResult>,
    cancelled: Arc<AtomicBool>,
}

impl Batch {
    /// The next result; `None` once every job has one.
    pub async fn next(&mut self) -> Option<JobResult> {
        self.results.recv().await
    }

    /// Start no more jobs: each job not yet started gets a `not_run`
    /// result; jobs in flight finish (their limits bound them).
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
    }

    /// A handle that cancels this batch from elsewhere (e.g. a signal).
    pub fn canceller(&self) -> impl Fn() + Send + Sync + 'static {
        let c = self.cancelled.clone();
        move || c.store(true, Ordering::Release)
    }
}

/// Start running `jobs` on `executor`; results arrive in the order jobs
/// finish. Must be called inside a tokio runtime.
pub fn submit(executor: Arc<dyn Executor>, jobs: Vec<Job>, opts: BatchOptions) -> Batch {
    let lanes = executor.concurrency().max(1);
    let (tx, rx) = mpsc::channel(lanes * 4);
    let cancelled = Arc::new(AtomicBool::new(false));
    let queue = Arc::new(std::sync::Mutex::new(VecDeque::from(jobs)));
    let opts = Arc::new(opts);
    for slot in 0..lanes {
        let (executor, queue, tx, cancelled, opts) = (
            executor.clone(),
            queue.clone(),
            tx.clone(),
            cancelled.clone(),
            opts.clone(),
        );
        tokio::spawn(async move {
            loop {
                let next = queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
                let Some(mut job) = next else { break };
                let result = run_one(&*executor, slot, &mut job, &opts, &cancelled).await;
                if tx.send(result).await.is_err() {
                    // Nobody listens any more: stop.
                    cancelled.store(true, Ordering::Release);
                }
            }
        });
    }
    Batch {
        results: rx,
        cancelled,
    }
}

async fn run_one(
    executor: &dyn Executor,
    slot: usize,
    job: &mut Job,
    opts: &BatchOptions,
    cancelled: &AtomicBool,
) -> JobResult {
    if cancelled.load(Ordering::Acquire) {
        return JobResult::without_run(&job.id, NOT_RUN, CANCELLED, "");
    }
    fill(&mut job.limits, &opts.limits);
    if job.from.is_none() {
        job.from.clone_from(&opts.from);
    }
    let Some(budget) = &opts.budget else {
        return executor.execute(slot, job.clone(), None).await;
    };
    let want = fuel_wanted(job);
    let granted = budget.reserve(want).await;
    if granted == 0 {
        return JobResult::without_run(&job.id, NOT_RUN, "the batch's fuel budget is spent", "");
    }
    let mut r = executor.execute(slot, job.clone(), Some(granted)).await;
    let used = r.fuel().unwrap_or(0).min(granted);
    budget.refund(granted - used).await;
    if granted < want {
        r.set("fuel_granted", granted);
    }
    r
}

/// What a job asks of a fuel budget: its own fuel limit (batch limits
/// filled in), or the default when it sets none or asks for no limit.
fn fuel_wanted(job: &Job) -> u64 {
    match job.limits.overrides() {
        Ok(o) => o.fuel.flatten().unwrap_or(limits::DEFAULT_FUEL),
        Err(_) => limits::DEFAULT_FUEL,
    }
}

/// `job`'s limits, with `defaults` where it sets none.
fn fill(job: &mut JobLimits, defaults: &JobLimits) {
    if job.fuel.is_none() {
        job.fuel.clone_from(&defaults.fuel);
    }
    if job.memory.is_none() {
        job.memory.clone_from(&defaults.memory);
    }
    if job.timeout.is_none() {
        job.timeout.clone_from(&defaults.timeout);
    }
    if job.output_limit.is_none() {
        job.output_limit.clone_from(&defaults.output_limit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs nothing: each job "uses" the fuel its id names.
    struct Fake;

    #[async_trait]
    impl Executor for Fake {
        async fn execute(&self, _slot: usize, job: Job, cap: Option<u64>) -> JobResult {
            let want: u64 = job.id.parse().unwrap_or(0);
            let used = want.min(cap.unwrap_or(u64::MAX));
            let status = if used < want { "out_of_fuel" } else { "ok" };
            JobResult::from_value(serde_json::json!({
                "id": job.id, "status": status, "fuel_consumed": used,
            }))
            .unwrap_or_else(|| JobResult::without_run("?", "?", "", ""))
        }
        fn concurrency(&self) -> usize {
            3
        }
    }

    #[tokio::test]
    async fn the_budget_holds_and_unstarted_jobs_are_not_run() {
        let budget = Arc::new(LocalBudget::new(1000));
        let jobs: Vec<Job> = (0..20)
            .map(|_| Job::inline("100", "js", "1"))
            .enumerate()
            .map(|(i, mut j)| {
                j.limits.fuel = Some(150.into());
                // The id names the fuel the fake run uses: 100 or 101 (ids need
                // not be unique for the dispatcher).
                j.id = format!("{}", 100 + i % 2);
                j
            })
            .collect();
        let mut b = submit(
            Arc::new(Fake),
            jobs,
            BatchOptions {
                budget: Some(budget.clone()),
                ..Default::default()
            },
        );
        let (mut used, mut not_run, mut n) = (0, 0, 0);
        while let Some(r) = b.next().await {
            n += 1;
            used += r.fuel().unwrap_or(0);
            if r.status() == NOT_RUN {
                not_run += 1;
            }
        }
        assert_eq!(n, 20);
        assert!(used <= 1000, "{used}");
        assert!(not_run >= 10, "{not_run}");
        assert_eq!(budget.remaining(), 1000 - used);
    }

    #[tokio::test]
    async fn cancel_stops_new_jobs() {
        let jobs: Vec<Job> = (0..50)
            .map(|i| Job::inline(i.to_string(), "js", "1"))
            .collect();
        let mut b = submit(Arc::new(Fake), jobs, BatchOptions::default());
        b.cancel();
        let mut not_run = 0;
        while let Some(r) = b.next().await {
            not_run += usize::from(r.status() == NOT_RUN);
        }
        assert!(not_run >= 40, "{not_run}");
    }
}
