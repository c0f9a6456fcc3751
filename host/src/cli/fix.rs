//! `llmos run --fix`: the supervised run with a live display, and
//! `llmos trace show`.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Mutex;

use std::path::PathBuf;

use clap::Args;

use super::terminal;
use llmos::supervisor::llm::{self, LlmOverrides};
use llmos::supervisor::trace::{Trace, TraceResult};
use llmos::supervisor::{Event, Supervised};
use llmos::{Artifact, FixOptions, HostError, Llmos, RunOptions};

/// The `--fix` flags of `llmos run`.
#[derive(Debug, Args)]
pub struct FixArgs {
    /// When the artifact fails, ask an LLM for a fix and retry (see
    /// LLMOS_LLM_PROVIDER, LLMOS_LLM_URL, LLMOS_LLM_MODEL).
    #[arg(long)]
    pub fix: bool,
    /// Repairs to try after the first run.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub max_attempts: u32,
    #[command(flatten)]
    pub llm: LlmArgs,
    /// Fuel across every attempt (default 4 × the per-run fuel).
    #[arg(long, value_name = "N")]
    pub budget_fuel: Option<u64>,
    /// Wall-clock time across every attempt and LLM call, e.g. 5m.
    #[arg(long, value_name = "DURATION")]
    pub budget_time: Option<String>,
    /// Write the fixed code here when a repair succeeds.
    #[arg(long, value_name = "PATH")]
    pub write_fixed: Option<PathBuf>,
    /// Write the execution trace (every attempt, prompt, answer, diff) as JSON.
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
}

/// Which LLM repairs artifacts (`llmos run --fix`, `llmos batch --fix`).
#[derive(Debug, Clone, Args)]
pub struct LlmArgs {
    /// LLM provider: openai (any OpenAI-compatible server) or anthropic.
    #[arg(long)]
    pub provider: Option<String>,
    /// LLM model name.
    #[arg(long)]
    pub model: Option<String>,
    /// LLM API base URL, e.g. http://127.0.0.1:11434/v1.
    #[arg(long, value_name = "URL")]
    pub llm_url: Option<String>,
}

impl LlmArgs {
    /// The overrides these flags ask for.
    pub fn overrides(&self) -> LlmOverrides {
        LlmOverrides {
            provider: self.provider.clone(),
            url: self.llm_url.clone(),
            model: self.model.clone(),
        }
    }

    /// The flags again, for a child process.
    pub fn to_args(&self) -> Vec<String> {
        let mut a = Vec::new();
        for (flag, v) in [
            ("--provider", &self.provider),
            ("--model", &self.model),
            ("--llm-url", &self.llm_url),
        ] {
            if let Some(v) = v {
                a.extend([flag.to_string(), v.clone()]);
            }
        }
        a
    }
}

/// Run the artifact under the supervisor (repairing it if `--fix` and a
/// provider is configured), showing each step on stderr, and write
/// `--write-fixed` and `--trace` files.
pub async fn supervise(
    args: &FixArgs,
    live: bool,
    llmos: &Llmos,
    artifact: &Artifact,
    opts: &RunOptions,
) -> Result<Supervised, HostError> {
    let provider = if args.fix {
        let p = llmos.llm_provider(&args.llm.overrides())?;
        if p.is_none() {
            errln!(
                "llmos: --fix needs an LLM provider; running the artifact once without repair.\n{}",
                llm::HOW_TO_CONFIGURE
            );
        }
        p
    } else {
        None
    };
    let fix = FixOptions {
        max_attempts: args.max_attempts,
        budget_fuel: args.budget_fuel,
        budget_time: args
            .budget_time
            .as_deref()
            .map(llmos::limits::parse_duration)
            .transpose()?,
    };
    let display = Display::new(live, provider.as_ref().map(|p| p.model().to_string()));
    let supervised = llmos
        .fix(artifact, opts, &fix, provider.as_deref(), &|e| {
            display.event(e)
        })
        .await?;

    if let (TraceResult::Fixed { .. }, Some(path)) = (&supervised.trace.result, &args.write_fixed) {
        std::fs::write(path, &supervised.code).map_err(|e| HostError::io(path, e))?;
        if live {
            errln!("llmos: wrote the fixed code to {}", path.display());
        }
    }
    if let Some(path) = &args.trace {
        let json =
            serde_json::to_string_pretty(&supervised.trace).map_err(|e| HostError::System {
                what: "cannot serialise the trace",
                source: std::io::Error::other(e),
            })?;
        std::fs::write(path, json).map_err(|e| HostError::io(path, e))?;
        if live {
            errln!("llmos: wrote the execution trace to {}", path.display());
        }
    }
    Ok(supervised)
}

/// The `supervisor` member of `llmos run --fix --json`.
pub fn summary_json(s: &Supervised, args: &FixArgs) -> serde_json::Value {
    let repairs = s.trace.attempts.len().saturating_sub(1);
    serde_json::json!({
        "result": s.trace.result,
        "repairs": repairs,
        "provider": s.trace.provider,
        "model": s.trace.model,
        "tokens": s.trace.tokens,
        "duration_ms": s.trace.duration_ms,
        "code": matches!(s.trace.result, TraceResult::Fixed { .. }).then(|| s.code.clone()),
        "trace": args.trace.as_ref().map(|p| p.display().to_string()),
        "write_fixed": args.write_fixed.as_ref().map(|p| p.display().to_string()),
    })
}

/// The live display of a supervised run on stderr.
struct Display {
    live: bool,
    tty: bool,
    model: Option<String>,
    spinner: Mutex<Option<indicatif::ProgressBar>>,
}

impl Display {
    fn new(live: bool, model: Option<String>) -> Self {
        Display {
            live,
            tty: std::io::stderr().is_terminal(),
            model,
            spinner: Mutex::new(None),
        }
    }

    fn stop_spinner(&self) {
        if let Some(bar) = self
            .spinner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            bar.finish_and_clear();
        }
    }

    fn event(&self, e: Event<'_>) {
        if !self.live {
            return;
        }
        self.stop_spinner();
        match e {
            Event::Ran {
                attempt,
                outcome,
                report,
                ..
            } => {
                let who = if attempt == 0 {
                    "the artifact".to_string()
                } else {
                    format!("repair {attempt}")
                };
                match report {
                    None => errln!("✓ {who} ran ok ({:.1} ms)", outcome.duration_ms),
                    Some(r) => {
                        let at = r.line.map(|l| format!(" (line {l})")).unwrap_or_default();
                        errln!(
                            "✗ {who}: {}: {}{at}",
                            terminal::line(&r.class),
                            terminal::line(first_line(&r.message))
                        );
                        if let Some(x) = &r.explanation {
                            errln!("  {}", terminal::clean(x));
                        }
                    }
                }
            }
            Event::Asking { attempt, strategy } => {
                let what = match strategy {
                    llmos::supervisor::Strategy::Patch => "a fix",
                    llmos::supervisor::Strategy::Rewrite => {
                        "a rewrite from the artifact's intent (patches kept failing)"
                    }
                };
                let msg = format!(
                    "asking {} for {what} (repair {attempt})",
                    self.model.as_deref().unwrap_or("the LLM")
                );
                if self.tty {
                    let bar = indicatif::ProgressBar::new_spinner().with_message(msg);
                    bar.enable_steady_tick(std::time::Duration::from_millis(100));
                    *self.spinner.lock().unwrap_or_else(|p| p.into_inner()) = Some(bar);
                } else {
                    errln!("… {msg}");
                }
            }
            Event::Rejected { attempt, reason } => {
                errln!("✗ repair {attempt} not run: {}", terminal::line(&reason));
            }
            Event::LlmFailed { attempt, error } => {
                errln!(
                    "✗ repair {attempt}: the LLM call failed: {}",
                    terminal::line(&error)
                );
            }
            Event::Diff { diff, .. } => {
                let diff = terminal::clean(diff);
                for line in diff.lines() {
                    if self.tty {
                        let colour = match line.chars().next() {
                            Some('+') if !line.starts_with("+++") => "\x1b[32m",
                            Some('-') if !line.starts_with("---") => "\x1b[31m",
                            Some('@') => "\x1b[36m",
                            _ => "",
                        };
                        if colour.is_empty() {
                            errln!("  {line}");
                        } else {
                            errln!("  {colour}{line}\x1b[0m");
                        }
                    } else {
                        errln!("  {line}");
                    }
                }
            }
            Event::Finished { result } => match result {
                TraceResult::Ok => {}
                TraceResult::Fixed { attempts } => {
                    errln!("✓ fixed after {attempts} repair(s)")
                }
                TraceResult::Failed { reason } => errln!("✗ not fixed: {reason}"),
            },
        }
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

/// `llmos trace show FILE`.
pub fn show(path: &Path, json: bool) -> Result<ExitCode, HostError> {
    let text = std::fs::read_to_string(path).map_err(|e| HostError::io(path, e))?;
    let trace: Trace = serde_json::from_str(&text)
        .map_err(|e| HostError::Usage(format!("{} is not an llmos trace: {e}", path.display())))?;
    if json {
        outln!("{text}");
    } else {
        out!("{}", trace.render());
    }
    Ok(ExitCode::SUCCESS)
}

/// `llmos replay TRACE [--attempt N]`: run a recorded attempt again on its
/// recorded inputs and say whether it ended the same way.
pub fn replay(
    path: &Path,
    attempt: Option<u32>,
    json: bool,
    verbose: bool,
    config: Option<PathBuf>,
) -> Result<ExitCode, HostError> {
    let text = std::fs::read_to_string(path).map_err(|e| HostError::io(path, e))?;
    let trace: Trace = serde_json::from_str(&text)
        .map_err(|e| HostError::Usage(format!("{} is not an llmos trace: {e}", path.display())))?;
    let number = attempt.unwrap_or(0);
    let rt = super::async_runtime()?;
    let llmos = rt.block_on(super::boot_lazy(config, verbose, !json))?;
    let replayed = rt.block_on(llmos.replay(&trace, number))?;
    let recorded = trace
        .attempts
        .iter()
        .find(|a| a.number == number)
        .and_then(|a| a.outcome.clone());
    let mut differences = Vec::new();
    if let Some(r) = &recorded {
        if r.status != replayed.status {
            differences.push(format!(
                "status {} (recorded {})",
                replayed.status, r.status
            ));
        }
        if r.fuel_consumed != replayed.fuel_consumed {
            differences.push(format!(
                "fuel {} (recorded {})",
                replayed.fuel_consumed.unwrap_or(0),
                r.fuel_consumed.unwrap_or(0)
            ));
        }
        for (what, a, b) in [
            ("value", &replayed.value, &r.value),
            (
                "stdout",
                &Some(replayed.stdout.clone()),
                &Some(r.stdout.clone()),
            ),
            (
                "stderr",
                &Some(replayed.stderr.clone()),
                &Some(r.stderr.clone()),
            ),
        ] {
            if a != b {
                differences.push(format!("{what} differs"));
            }
        }
    }
    if let Some(why) = &replayed.replay_diverged {
        differences.push(format!("diverged: {why}"));
    }
    let reproduced = differences.is_empty();
    if json {
        outln!(
            "{}",
            serde_json::json!({
                "attempt": number,
                "reproduced": reproduced,
                "differences": differences,
                "outcome": replayed,
            })
        );
    } else {
        let fuel = replayed
            .fuel_consumed
            .map(|f| format!(" at fuel {f}"))
            .unwrap_or_default();
        if reproduced {
            errln!(
                "✓ attempt {number} reproduced: {}{fuel}",
                terminal::line(&replayed.summary())
            );
        } else {
            errln!(
                "✗ attempt {number} did not reproduce: {}",
                differences.join("; ")
            );
        }
    }
    Ok(if reproduced {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(super::EXIT_ARTIFACT_FAILED)
    })
}
