//! `llmos batch INPUT...`: read the inputs, run every job on a pool of
//! worker processes (`llmos batch-worker`, one per core by default), write
//! each result as it finishes, and print a summary. The work itself is the
//! library's ([`llmos::batch`]); this file parses flags and prints.
//!
//! Exit codes: 0 when every job is ok, 1 when any job failed or an input
//! was refused, 2 for host errors.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::Args;

use super::{EXIT_ARTIFACT_FAILED, terminal};
use llmos::batch::{
    self, BatchOptions, Inputs, JobContext, JobLimits, JobResult, LocalBudget, ProcessPool,
    ResultLog, Summary, SummaryBuilder,
};
use llmos::{HostError, parse_fuel};

/// Flags of `llmos batch`.
#[derive(Debug, Args)]
pub struct BatchArgs {
    /// Artifact files, directories (searched recursively by the languages'
    /// extensions) and JSONL manifests (`*.jsonl`, one job a line).
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,
    /// Worker processes (default: one per core).
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<usize>,
    /// Jobs in flight per worker process.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub per_worker: usize,
    /// Limits of each job that does not set its own.
    #[command(flatten)]
    pub limits: super::run::LimitArgs,
    /// Fuel across the whole batch: once spent, no job starts and the rest
    /// end as `not_run`.
    #[arg(long, value_name = "TOTAL")]
    pub budget_fuel: Option<String>,
    /// Results file (JSONL, one line per job); default: standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Start every job (that names no snapshot of its own) from this
    /// snapshot (`llmos snapshot create`): each runs as its next cell.
    #[arg(long, value_name = "SNAPSHOT", conflicts_with = "fix")]
    pub from: Option<PathBuf>,
    /// Continue the batch in `--out`: skip ids that already have a result.
    #[arg(long, requires = "out")]
    pub resume: bool,
    /// Save each job's pictures and documents under DIR/<job id>.
    #[arg(long, value_name = "DIR")]
    pub outputs: Option<PathBuf>,
    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Run the jobs on `llmos worker`s through Redis Streams at this URL
    /// (e.g. redis://10.0.0.5:6379) instead of local worker processes.
    #[arg(long, value_name = "URL")]
    pub redis: Option<String>,
    /// With --redis: the batch's id (default: a new random id). The same id
    /// again continues that batch: jobs with a result in Redis are not run
    /// again.
    #[arg(long, value_name = "ID", requires = "redis")]
    pub batch_id: Option<String>,
    /// With --redis: prefix of every key.
    #[arg(long, value_name = "PREFIX", default_value = batch::redis::DEFAULT_PREFIX)]
    pub redis_prefix: String,
    #[command(flatten)]
    pub repair: RepairArgs,
}

/// Flags of `llmos worker`.
#[derive(Debug, Args)]
pub struct RedisWorkerArgs {
    /// Redis URL, e.g. redis://10.0.0.5:6379.
    #[arg(long, value_name = "URL")]
    pub redis: String,
    /// Key prefix (as given to `llmos batch --redis-prefix`).
    #[arg(long, value_name = "PREFIX", default_value = batch::redis::DEFAULT_PREFIX)]
    pub redis_prefix: String,
    /// Worker processes on this machine (default: one per core).
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<usize>,
    /// Jobs in flight per worker process.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub per_worker: usize,
    /// Take over a job another worker has held this long without a result;
    /// keep it above the jobs' timeouts.
    #[arg(long, value_name = "DURATION", default_value = "60s")]
    pub reclaim_after: String,
    /// Name in the consumer group (default: host:pid).
    #[arg(long)]
    pub name: Option<String>,
    /// Save each job's pictures and documents under DIR/<job id>.
    #[arg(long, value_name = "DIR")]
    pub outputs: Option<PathBuf>,
    #[command(flatten)]
    pub repair: RepairArgs,
}

/// The repair flags of `llmos batch` (and of its workers).
#[derive(Debug, Clone, Args)]
pub struct RepairArgs {
    /// Ask an LLM to fix failing jobs (see LLMOS_LLM_PROVIDER, LLMOS_LLM_URL,
    /// LLMOS_LLM_MODEL).
    #[arg(long)]
    pub fix: bool,
    /// Repairs per failing job.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub max_attempts: u32,
    #[command(flatten)]
    pub llm: super::fix::LlmArgs,
    /// Wall-clock time per job across its attempts and LLM calls, e.g. 2m.
    #[arg(long, value_name = "DURATION")]
    pub fix_budget_time: Option<String>,
}

impl RepairArgs {
    fn to_args(&self) -> Vec<String> {
        let mut a = Vec::new();
        if self.fix {
            a.push("--fix".into());
        }
        a.extend(["--max-attempts".into(), self.max_attempts.to_string()]);
        a.extend(self.llm.to_args());
        if let Some(t) = &self.fix_budget_time {
            a.extend(["--fix-budget-time".into(), t.clone()]);
        }
        a
    }
}

/// Flags of the hidden `llmos batch-worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Jobs the coordinator keeps in flight here: sizes the instance pool.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub per_worker: usize,
    /// Save outputs under DIR/<job id>.
    #[arg(long, value_name = "DIR")]
    pub outputs: Option<PathBuf>,
    #[command(flatten)]
    pub repair: RepairArgs,
}

/// `llmos batch`.
pub fn run(args: BatchArgs, verbose: bool, config: Option<PathBuf>) -> Result<ExitCode, HostError> {
    let rt = super::async_runtime()?;
    rt.block_on(run_async(args, verbose, config))
}

async fn run_async(
    args: BatchArgs,
    verbose: bool,
    config: Option<PathBuf>,
) -> Result<ExitCode, HostError> {
    let start = Instant::now();
    // Check every flag before any work.
    args.limits.overrides()?;
    let l = &args.limits;
    let limits = JobLimits {
        fuel: l.fuel.clone().map(Into::into),
        memory: l.memory.clone().map(Into::into),
        timeout: l.timeout.clone().map(Into::into),
        output_limit: l.output_limit.clone().map(Into::into),
    };
    // `--budget-fuel none` is no budget.
    let budget_total = match &args.budget_fuel {
        Some(b) => parse_fuel(b)?,
        None => None,
    };
    if let Some(t) = &args.repair.fix_budget_time {
        llmos::limits::parse_duration(t)?;
    }

    let llmos = super::boot_lazy(config.clone(), verbose, !args.json).await?;
    let mut repair = args.repair.clone();
    if repair.fix && llmos.llm_provider(&repair.llm.overrides())?.is_none() {
        errln!(
            "llmos: --fix needs an LLM provider; failing jobs are not repaired.\n{}",
            llmos::supervisor::llm::HOW_TO_CONFIGURE
        );
        repair.fix = false;
    }
    let inputs = Inputs::read(&args.inputs, llmos.languages())?;
    for p in &inputs.problems {
        errln!("llmos: skipped {}", terminal::line(&p.to_string()));
    }
    let mut log = match &args.out {
        Some(path) => ResultLog::open(path, args.resume)?,
        None => ResultLog::stdout(),
    };
    let total = inputs.jobs.len();
    let jobs: Vec<_> = inputs
        .jobs
        .into_iter()
        .filter(|j| !log.done().contains(&j.id))
        .collect();
    let skipped = (total - jobs.len()) as u64;
    if skipped > 0 {
        errln!("llmos: resuming: {skipped} of {total} jobs already have results");
    }

    let from = match &args.from {
        Some(p) => {
            // Checked once here, before any job runs; workers read it by path.
            llmos::Journal::read(p)?;
            Some(std::path::absolute(p).map_err(|e| HostError::io(p, e))?)
        }
        None => None,
    };
    let options = BatchOptions {
        limits,
        budget: None,
        from,
    };
    let (mut running, pool) = match &args.redis {
        Some(url) => {
            if repair.fix {
                return Err(HostError::Usage(
                    "with --redis, repairs are the workers' job: pass --fix to `llmos worker`"
                        .into(),
                ));
            }
            let target = batch::redis::RedisTarget {
                url: url.clone(),
                prefix: args.redis_prefix.clone(),
            };
            let id = args
                .batch_id
                .clone()
                .unwrap_or_else(|| format!("{:016x}", rand::random::<u64>()));
            errln!("llmos: batch {id}: {} jobs submitted to {url}", jobs.len());
            let b = batch::redis::submit(&target, &id, jobs, &options, budget_total).await?;
            (b, None)
        }
        None => {
            let pool = Arc::new(worker_pool(
                config.as_deref(),
                args.jobs,
                args.per_worker,
                args.outputs.as_deref(),
                &repair,
            )?);
            let options = BatchOptions {
                budget: budget_total
                    .map(|t| Arc::new(LocalBudget::new(t)) as Arc<dyn batch::FuelBudget>),
                ..options
            };
            (batch::submit(pool.clone(), jobs, options), Some(pool))
        }
    };
    let cancel = running.canceller();
    let cancelled = Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let cancelled = cancelled.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                errln!("\nllmos: interrupted: finishing the jobs in flight (resume with --resume)");
                cancelled.store(true, std::sync::atomic::Ordering::Release);
                cancel();
            }
        });
    }

    let bar = progress(total as u64 - skipped, !args.json || verbose);
    let mut summary = SummaryBuilder::default();
    summary.note(skipped, inputs.problems.len() as u64);
    let mut counts = std::collections::BTreeMap::<String, u64>::new();
    let mut host_error = None;
    while let Some(r) = running.next().await {
        if cancelled.load(std::sync::atomic::Ordering::Acquire) && was_cancelled(&r) {
            // Left for --resume: no result is written for it.
            continue;
        }
        match log.append(&r) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                // The results cannot be kept: stop starting jobs.
                running.cancel();
                host_error.get_or_insert(e);
                continue;
            }
        }
        summary.add(&r);
        *counts.entry(r.status().to_string()).or_default() += 1;
        if let Some(bar) = &bar {
            bar.inc(1);
            bar.set_message(
                counts
                    .iter()
                    .map(|(s, n)| format!("{s} {n}"))
                    .collect::<Vec<_>>()
                    .join(" · "),
            );
        }
    }
    log.sync()?;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    if let Some(pool) = pool {
        pool.shutdown().await;
    }
    if let Some(e) = host_error {
        return Err(e);
    }
    let summary = summary.finish(start.elapsed().as_secs_f64());
    if args.json {
        let v = serde_json::to_value(&summary).unwrap_or_default();
        outln!("{}", serde_json::json!({ "summary": v }));
    } else if args.out.is_some() {
        print_summary(&summary, &mut std::io::stdout());
    } else {
        print_summary(&summary, &mut std::io::stderr());
    }
    Ok(if summary.all_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_ARTIFACT_FAILED)
    })
}

fn was_cancelled(r: &JobResult) -> bool {
    r.status() == batch::NOT_RUN
        && r.get("reason").and_then(|v| v.as_str()) == Some(batch::CANCELLED)
}

fn progress(len: u64, show: bool) -> Option<indicatif::ProgressBar> {
    if !show || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(len);
    let style = indicatif::ProgressStyle::with_template(
        "{bar:30} {pos}/{len} jobs · {per_sec} · ETA {eta} · {msg}",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    Some(bar)
}

fn print_summary(s: &Summary, w: &mut dyn std::io::Write) {
    let mut lines = Vec::new();
    lines.push(format!(
        "{} jobs in {:.2} s ({:.0} jobs/s){}{}",
        s.jobs,
        s.wall_s,
        s.rate,
        if s.skipped > 0 {
            format!(", {} already done", s.skipped)
        } else {
            String::new()
        },
        if s.input_problems > 0 {
            format!(", {} inputs skipped", s.input_problems)
        } else {
            String::new()
        },
    ));
    let statuses: Vec<String> = s.statuses.iter().map(|(k, v)| format!("{k} {v}")).collect();
    lines.push(format!("  status: {}", statuses.join(" · ")));
    if s.fuel.max > 0 {
        lines.push(format!(
            "  fuel:   p50 {} · p95 {} · max {} · total {}",
            s.fuel.p50, s.fuel.p95, s.fuel.max, s.fuel_total
        ));
    }
    if !s.slowest.is_empty() {
        lines.push("  slowest:".into());
        for (id, ms) in &s.slowest {
            lines.push(format!("    {ms:>9.1} ms  {}", terminal::line(id)));
        }
    }
    if !s.failures.is_empty() {
        lines.push("  failures:".into());
        for g in s.failures.iter().take(10) {
            let ex: Vec<String> = g.examples.iter().map(|e| terminal::line(e)).collect();
            lines.push(format!(
                "    {:>6}  {}  e.g. {}",
                g.count,
                terminal::line(&g.class),
                ex.join(", ")
            ));
        }
    }
    let _ = writeln!(w, "{}", lines.join("\n"));
}

/// `llmos batch-worker`: serve jobs on stdin/stdout for a coordinator.
pub fn worker(args: WorkerArgs, config: Option<PathBuf>) -> Result<ExitCode, HostError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| HostError::System {
            what: "cannot start the async runtime",
            source,
        })?;
    rt.block_on(async move {
        // Ctrl-C in a terminal signals the whole process group, and service
        // managers often SIGTERM every process of a service: the coordinator
        // decides when to stop, and a worker stops when its stdin closes,
        // after the jobs in flight. So both signals are ignored here.
        tokio::spawn(async {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) else {
                return;
            };
            loop {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
        });
        // Jobs in flight are bounded, so sandboxes come from a pool: reset
        // in place instead of mapped and unmapped per job (twice the jobs,
        // so a job on each engine always finds a slot).
        let sandboxes = u32::try_from(args.per_worker.clamp(1, 1024) * 2).unwrap_or(8);
        let opts = llmos::BootOptions {
            instance_pool: Some(llmos::engine::InstancePool { sandboxes }),
            ..Default::default()
        };
        let llmos = Arc::new(super::boot_lazy_with(opts, config, false, false).await?);
        let repair = if args.repair.fix {
            match llmos.llm_provider(&args.repair.llm.overrides())? {
                Some(provider) => Some(batch::Repair {
                    options: llmos::FixOptions {
                        max_attempts: args.repair.max_attempts,
                        budget_fuel: None,
                        budget_time: args
                            .repair
                            .fix_budget_time
                            .as_deref()
                            .map(llmos::limits::parse_duration)
                            .transpose()?,
                    },
                    provider,
                }),
                None => {
                    errln!(
                        "llmos: --fix needs an LLM provider; failing jobs are not repaired.\n{}",
                        llmos::supervisor::llm::HOW_TO_CONFIGURE
                    );
                    None
                }
            }
        } else {
            None
        };
        let ctx = JobContext {
            worker: format!("{}:{}", hostname(), std::process::id()),
            outputs_dir: args.outputs,
            repair,
        };
        batch::serve_stdio(llmos, Arc::new(ctx))
            .await
            .map_err(|source| HostError::System {
                what: "the worker's stdin or stdout failed",
                source,
            })?;
        Ok(ExitCode::SUCCESS)
    })
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// A pool of `llmos batch-worker` processes (one per core by default).
fn worker_pool(
    config: Option<&std::path::Path>,
    jobs: Option<usize>,
    per_worker: usize,
    outputs: Option<&std::path::Path>,
    repair: &RepairArgs,
) -> Result<ProcessPool, HostError> {
    let workers = jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .clamp(1, 256);
    let exe = std::env::current_exe().map_err(|source| HostError::System {
        what: "cannot find the llmos executable to start workers",
        source,
    })?;
    let mut args = Vec::new();
    if let Some(c) = config {
        args.extend(["--config".to_string(), c.display().to_string()]);
    }
    args.extend([
        "batch-worker".into(),
        "--per-worker".into(),
        per_worker.to_string(),
    ]);
    if let Some(o) = outputs {
        args.extend(["--outputs".to_string(), o.display().to_string()]);
    }
    args.extend(repair.to_args());
    Ok(ProcessPool::new(&exe, args, workers, per_worker))
}

/// `llmos worker --redis URL`: run jobs from Redis until SIGTERM or
/// Ctrl-C, then finish the jobs in flight and exit.
pub fn redis_worker(args: RedisWorkerArgs, config: Option<PathBuf>) -> Result<ExitCode, HostError> {
    let reclaim_after = llmos::limits::parse_duration(&args.reclaim_after)?;
    let rt = super::async_runtime()?;
    rt.block_on(async move {
        let pool = Arc::new(worker_pool(
            config.as_deref(),
            args.jobs,
            args.per_worker,
            args.outputs.as_deref(),
            &args.repair,
        )?);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        {
            let stop = stop.clone();
            tokio::spawn(async move {
                use tokio::signal::unix::{SignalKind, signal};
                let Ok(mut term) = signal(SignalKind::terminate()) else {
                    return;
                };
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
                errln!("llmos: worker stopping: finishing the jobs in flight");
                stop.store(true, std::sync::atomic::Ordering::Release);
            });
        }
        let target = batch::redis::RedisTarget {
            url: args.redis.clone(),
            prefix: args.redis_prefix.clone(),
        };
        let opts = batch::redis::WorkerOptions {
            consumer: args
                .name
                .clone()
                .unwrap_or_else(|| format!("{}:{}", hostname(), std::process::id())),
            reclaim_after,
        };
        errln!(
            "llmos: worker {} consuming jobs from {} ({} processes × {} jobs)",
            opts.consumer,
            args.redis,
            pool.workers(),
            args.per_worker
        );
        let result = batch::redis::run_worker(&target, pool.clone(), opts, stop).await;
        pool.shutdown().await;
        result?;
        Ok(ExitCode::SUCCESS)
    })
}
