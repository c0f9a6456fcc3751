//! The `llmos` command line.
//!
//! Exit codes: 0 when the artifact ran ok, 1 when the artifact failed (error,
//! limit or trap), 2 for usage and host errors (bad flag, missing file,
//! unknown language, missing component).

/// `println!` that never panics: a closed stdout (`llmos run --json | head`)
/// drops the rest of the output instead of aborting the process.
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

/// `print!` that never panics (see [`outln!`]).
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($t)*);
    }};
}

/// `eprintln!` that never panics on a closed stderr.
macro_rules! errln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($t)*);
    }};
}

mod batch;
mod boot;
mod fix;
mod run;
mod serve;
mod session;
mod terminal;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use llmos::{BootOptions, HostError, Llmos, RuntimeEvent};

/// Exit code for a failed artifact.
pub const EXIT_ARTIFACT_FAILED: u8 = 1;
/// Exit code for usage or host errors.
pub const EXIT_HOST_ERROR: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "llmos",
    version,
    about = "A self-correcting kernel for running code that language models write"
)]
pub struct Cli {
    /// Show boot stages, progress and kernel logs on stderr.
    #[arg(long, short, global = true)]
    pub verbose: bool,
    /// Configuration file (default: $LLMOS_CONFIG, else ~/.config/llmos/llmos.toml).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run an artifact in a fresh sandbox (FILE, system:/path or user:/path).
    Run(Box<run::RunArgs>),
    /// Run many artifacts, each in a fresh sandbox under its limits, on a
    /// pool of worker processes; results as JSON lines, then a summary.
    Batch(Box<batch::BatchArgs>),
    /// Run batch jobs from Redis Streams (submitted by `llmos batch --redis`)
    /// on this machine's cores, until SIGTERM.
    Worker(Box<batch::RedisWorkerArgs>),
    /// Serve batch jobs on stdin/stdout (started by `llmos batch`).
    #[command(hide = true)]
    BatchWorker(batch::WorkerArgs),
    /// Run a recorded attempt of a trace (`llmos run --trace FILE`) again on
    /// its recorded inputs (seed, clocks, storage replies) and check that it
    /// ends the same way, at the same fuel.
    Replay {
        /// The trace file.
        trace: PathBuf,
        /// The attempt (0: the artifact as given).
        #[arg(long)]
        attempt: Option<u32>,
        /// One JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Notebook sessions: cells that share an interpreter's globals.
    Session {
        #[command(subcommand)]
        command: session::SessionCommand,
    },
    /// Snapshots of sessions, for runs and sessions to start from.
    Snapshot {
        #[command(subcommand)]
        command: session::SnapshotCommand,
    },
    /// Serve the kernel over HTTP: the API under /v1, live events, MCP at
    /// /mcp, and the dashboard at / (open the printed URL).
    Serve(Box<serve::ServeArgs>),
    /// Serve the kernel's tools over MCP on stdin/stdout (for assistants
    /// and agent frameworks that start their tools).
    Mcp,
    /// Boot the kernel and show each stage (config, volumes, runtime, stdlib).
    Boot {
        /// One JSON event per line on stdout.
        #[arg(long)]
        json: bool,
        /// Run every language check, even those that passed on an
        /// identical system (same executable, volume and components).
        #[arg(long)]
        recheck: bool,
    },
    /// Load every language (compiling components on first use) and report readiness.
    Check {
        /// One JSON object per language on stdout.
        #[arg(long)]
        json: bool,
        /// Prepare the un-metered engine instead of the fuel-metered one.
        #[arg(long)]
        unmetered: bool,
    },
    /// Inspect execution traces written by `llmos run --fix --trace FILE`.
    Trace {
        #[command(subcommand)]
        command: TraceCommand,
    },
    /// Print the kernel API reference for a language (from its stdlib's docs).
    Api {
        /// Language name or alias (javascript, python, ...).
        language: String,
        /// One JSON array of {signature, doc} on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Check that a guest language keeps the contract (guests/README.md):
    /// values, streams, errors, every limit, no capabilities, each kernel
    /// API, determinism, fresh state, sessions.
    Conformance {
        /// Language name or alias.
        language: String,
        /// One JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// The `llmos:kernel` WIT package: what component artifacts may import.
    Wit {
        /// Write the package's files into this directory (e.g.
        /// wit/deps/llmos-kernel) instead of listing them.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// List the guest languages this kernel knows.
    Languages {
        /// One JSON array on stdout.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum TraceCommand {
    /// Render a trace: every version, its diff, outcome and LLM exchange.
    Show {
        file: PathBuf,
        /// Print the trace's JSON as is.
        #[arg(long)]
        json: bool,
    },
}

/// Entry point of the binary: parse arguments, run, map to an exit code.
pub fn main() -> ExitCode {
    // Arguments are parsed before anything else; `main` never panics on them.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_HOST_ERROR } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    init_tracing(cli.verbose);
    let result = match cli.command {
        Command::Run(args) => run::run(*args, cli.verbose, cli.config),
        Command::Batch(args) => batch::run(*args, cli.verbose, cli.config),
        Command::BatchWorker(args) => batch::worker(args, cli.config),
        Command::Worker(args) => batch::redis_worker(*args, cli.config),
        Command::Replay {
            trace,
            attempt,
            json,
        } => fix::replay(&trace, attempt, json, cli.verbose, cli.config),
        Command::Session { command } => session::session(command, cli.verbose, cli.config),
        Command::Snapshot { command } => session::snapshot(command, cli.verbose, cli.config),
        Command::Boot { json, recheck } => boot::show(json, recheck, cli.config),
        Command::Serve(args) => serve::serve(*args, cli.config),
        Command::Mcp => serve::mcp(cli.config),
        Command::Conformance { language, json } => {
            conformance(&language, json, cli.config, cli.verbose)
        }
        Command::Wit { out } => wit(out),
        Command::Languages { json } => languages(json, cli.config, cli.verbose),
        Command::Api { language, json } => api(&language, json, cli.config, cli.verbose),
        Command::Trace {
            command: TraceCommand::Show { file, json },
        } => fix::show(&file, json),
        Command::Check { json, unmetered } => check(json, !unmetered, cli.config, cli.verbose),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            errln!("llmos: error: {e}");
            ExitCode::from(EXIT_HOST_ERROR)
        }
    }
}

/// Leave `kernel` (a booted [`Llmos`], the tokio runtime) to the process's
/// exit instead of tearing it down: a one-shot command ends right after,
/// and the OS reclaims its memory and mappings at once. Dropping them first
/// freed every loaded component's metadata (thousands of allocations for
/// Python's), unmapped its code and joined the runtime's threads: ~0.3 ms of
/// a warm `llmos run` (12.57 → 12.27 ms, medians of 200 interleaved runs).
/// Only for what holds no unwritten data and no work in flight: storage
/// commits each transaction, nothing is left spawned, and the command has
/// written its outcome, outputs and traces before this.
pub(crate) fn leave<T>(kernel: T) {
    std::mem::forget(kernel);
}

/// The CLI's tokio runtime: the library itself never blocks on one.
pub(crate) fn async_runtime() -> Result<tokio::runtime::Runtime, HostError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|source| HostError::System {
            what: "cannot start the async runtime",
            source,
        })
}

/// Boot without a screen and with no language loaded yet (commands load
/// what they need); with `--verbose`, one line per finished stage, and a
/// compile spinner when `progress`.
pub(crate) async fn boot_lazy(
    config: Option<PathBuf>,
    verbose: bool,
    progress: bool,
) -> Result<Llmos, HostError> {
    boot_lazy_with(BootOptions::default(), config, verbose, progress).await
}

/// [`boot_lazy`] from `opts` (for the settings a front end adds).
pub(crate) async fn boot_lazy_with(
    opts: BootOptions,
    config: Option<PathBuf>,
    verbose: bool,
    progress: bool,
) -> Result<Llmos, HostError> {
    use llmos::boot::BootEvent;
    let opts = BootOptions {
        config,
        languages: Some(Vec::new()),
        runtime_events: Some(std::sync::Arc::new(compile_progress(progress))),
        ..opts
    };
    Llmos::boot(&opts, &move |e: &BootEvent| {
        if let (true, BootEvent::Done { stage, ms, detail }) = (verbose, e) {
            errln!("llmos: {} ({ms:.1} ms): {detail}", stage.title());
        }
    })
    .await
}

fn init_tracing(verbose: bool) {
    // usvg reports shapes it skips (e.g. zero-height bars) as warnings;
    // they are expected, not the user's concern.
    let default = if verbose {
        "info,usvg=error"
    } else {
        "warn,usvg=error"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("LLMOS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

fn languages(json: bool, config: Option<PathBuf>, verbose: bool) -> Result<ExitCode, HostError> {
    let rt = async_runtime()?;
    let llmos = rt.block_on(boot_lazy(config, verbose, true))?;
    let names: Vec<String> = llmos.languages().iter().map(|m| m.name.clone()).collect();
    let mut list = Vec::new();
    for name in names {
        list.push(rt.block_on(llmos.language_status(&name))?);
    }
    if json {
        outln!("{}", serde_json::to_value(&list).unwrap_or_default());
    } else {
        for l in &list {
            let exts: Vec<_> = l.extensions.iter().map(|e| format!(".{e}")).collect();
            outln!(
                "{:<12} {:<18} {:<38} {:<18} {}",
                l.name,
                l.status,
                l.version.as_deref().unwrap_or("-"),
                exts.join(" "),
                l.capabilities.join(",")
            );
            if let Some(r) = &l.reason {
                outln!("             {r}");
            }
        }
    }
    Ok(if list.iter().all(|l| l.status == "ready") {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_ARTIFACT_FAILED)
    })
}

fn wit(out: Option<PathBuf>) -> Result<ExitCode, HostError> {
    match out {
        None => {
            for (name, text) in llmos::component::WIT {
                outln!("// ---- {name}");
                out!("{text}");
            }
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir).map_err(|e| HostError::io(&dir, e))?;
            for (name, text) in llmos::component::WIT {
                let path = dir.join(name);
                std::fs::write(&path, text).map_err(|e| HostError::io(&path, e))?;
            }
            errln!(
                "llmos: wrote the llmos:kernel WIT package ({} files) to {}",
                llmos::component::WIT.len(),
                dir.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn conformance(
    language: &str,
    json: bool,
    config: Option<PathBuf>,
    verbose: bool,
) -> Result<ExitCode, HostError> {
    let rt = async_runtime()?;
    let llmos = rt.block_on(boot_lazy(config, verbose, true))?;
    let report = rt.block_on(llmos::conformance::run(&llmos, language))?;
    if json {
        outln!("{}", serde_json::to_value(&report).unwrap_or_default());
    } else {
        for c in &report.checks {
            let mark = match c.result {
                "pass" => "✓",
                "skip" => "-",
                _ => "✗",
            };
            outln!("{mark} {:<22} {:>9.1} ms  ({})", c.rule, c.ms, c.contract);
            if let Some(d) = &c.detail {
                outln!("    {}", terminal::line(d));
            }
        }
        outln!(
            "{}: {} passed, {} failed, {} skipped",
            report.language,
            report.passed,
            report.failed,
            report.skipped
        );
    }
    Ok(if report.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_ARTIFACT_FAILED)
    })
}

fn api(
    language: &str,
    json: bool,
    config: Option<PathBuf>,
    verbose: bool,
) -> Result<ExitCode, HostError> {
    let llmos = async_runtime()?.block_on(boot_lazy(config, verbose, true))?;
    let manifest = llmos.languages().by_name(language)?;
    let entries = llmos.api_reference(language)?;
    if json {
        let v = serde_json::to_string_pretty(&entries).map_err(|e| HostError::System {
            what: "cannot serialise the reference",
            source: std::io::Error::other(e),
        })?;
        outln!("{v}");
    } else {
        out!("{}", llmos::apiref::markdown(&manifest.name, &entries));
    }
    Ok(ExitCode::SUCCESS)
}

fn check(
    json: bool,
    metered: bool,
    config: Option<PathBuf>,
    verbose: bool,
) -> Result<ExitCode, HostError> {
    let start = std::time::Instant::now();
    let rt = async_runtime()?;
    let llmos = rt.block_on(boot_lazy(config, verbose, true))?;
    let runtime = llmos.runtime();
    let names: Vec<String> = runtime.languages().iter().map(|m| m.name.clone()).collect();
    for name in names {
        let p = rt.block_on(runtime.prepare_async(&name, metered))?;
        let cache = match &p.cache {
            llmos::cache::CacheStatus::Hit => "cached".to_string(),
            llmos::cache::CacheStatus::Compiled(r) => format!("compiled ({r:?})").to_lowercase(),
        };
        if json {
            outln!(
                "{}",
                serde_json::json!({"language": name, "cache": cache, "load_ms": p.load_ms})
            );
        } else {
            outln!("{name:<12} ready  {cache:<24} {:>8.2} ms", p.load_ms);
        }
    }
    if !json {
        outln!(
            "all languages ready in {:.2} ms",
            start.elapsed().as_secs_f64() * 1e3
        );
    }
    leave(llmos);
    leave(rt);
    Ok(ExitCode::SUCCESS)
}

/// Progress on stderr while a component compiles (first run, or after an
/// upgrade): a spinner on a terminal, one line per step otherwise.
pub(crate) fn compile_progress(show: bool) -> impl Fn(&RuntimeEvent) + Send + Sync + 'static {
    use std::io::IsTerminal;
    let spinner: std::sync::Mutex<Option<indicatif::ProgressBar>> = std::sync::Mutex::new(None);
    let tty = std::io::stderr().is_terminal();
    move |event| {
        if !show {
            return;
        }
        let mut slot = spinner.lock().unwrap_or_else(|p| p.into_inner());
        match event {
            RuntimeEvent::Compiling { language, .. } => {
                let msg =
                    format!("compiling the {language} component (first run; cached afterwards)");
                if tty {
                    let bar = indicatif::ProgressBar::new_spinner().with_message(msg);
                    bar.enable_steady_tick(std::time::Duration::from_millis(100));
                    *slot = Some(bar);
                } else {
                    errln!("llmos: {msg}…");
                }
            }
            RuntimeEvent::Compiled { language, millis } => {
                let msg = format!("compiled the {language} component in {:.1} s", millis / 1e3);
                match slot.take() {
                    Some(bar) => bar.finish_with_message(msg),
                    None => errln!("llmos: {msg}"),
                }
            }
        }
    }
}
