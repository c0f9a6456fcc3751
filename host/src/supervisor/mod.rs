//! The execution supervisor: run an artifact, and when it fails, ask an LLM
//! for a corrected version and run that, within a budget, keeping every
//! version and showing each step.
//!
//! - [`report`]: the error report of a failed run (what the LLM sees).
//! - [`prompt`]: prompts rendered from templates on the system volume.
//! - [`llm`]: the [`FixProvider`](llm::FixProvider) trait and its OpenAI and
//!   Anthropic clients.
//! - [`extract`]: the corrected code out of an answer, or why not.
//! - [`trace`]: the JSON execution trace.
//!
//! The loop stops at the first version that runs ok, after `max_attempts`
//! repairs, when the fuel or wall-clock budget across all attempts is spent,
//! when the same error comes back on the same line twice in a row (no
//! progress), or when the LLM cannot be reached.
//!
//! Code the LLM wrote is untrusted whatever the original was: every repair
//! runs under [`SupervisorConfig::repair_limits`] (by default the untrusted
//! tier, [`Limits::default`], never looser than the original run's limits,
//! always fuel-metered) and as [`SupervisorConfig::repair_namespace`] (a
//! storage namespace of its own when the original is trusted).

pub mod cassette;
pub mod extract;
pub mod llm;
pub mod prompt;
pub mod report;
pub mod trace;

use std::time::{Duration, Instant};

use similar::TextDiff;

use crate::engine::{RunRequest, Runtime};
use crate::error::HostError;
use crate::limits::Limits;
use crate::outcome::Outcome;
use llm::{ChatRequest, FixProvider, Message, Role, Usage};
use prompt::{AttemptVars, Prompts};
use report::ErrorReport;
use trace::{Attempt, Exchange, Trace, TraceResult};

/// How hard the supervisor tries.
#[derive(Debug, Clone)]
pub struct SupervisorConfig {
    /// Repairs after the first run (default 3).
    pub max_attempts: u32,
    /// Fuel across every run of every version (`None`: no total, each run
    /// keeps its own limit).
    pub budget_fuel: Option<u64>,
    /// Wall-clock time across runs and LLM calls.
    pub budget_time: Duration,
    /// `max_tokens` of each LLM answer.
    pub max_tokens: u32,
    /// The limits every LLM-generated repair runs under. `None` (the
    /// default) derives them from the run's: each limit the smaller of the
    /// run's and [`Limits::default`] (the untrusted tier), so limits a user
    /// loosened for their own code (no fuel, more memory or time) never reach
    /// code the LLM wrote. Given or derived, fuel is always metered (an
    /// unmetered value becomes [`crate::limits::DEFAULT_FUEL`]), and the fuel
    /// budget still caps each run. See [`repair_limits`].
    pub repair_limits: Option<Limits>,
    /// The artifact id, and so the storage namespace, repairs run as. `None`
    /// (the default) keeps the original's. The facade sets a separate
    /// namespace when the original artifact is trusted, so a repair never
    /// reads or writes a trusted artifact's storage.
    pub repair_namespace: Option<String>,
    /// After this many failed patches in a row, the next attempt asks for a
    /// rewrite from the artifact's intent instead of another patch (then
    /// patches again). `0` never rewrites. Default 2: repeated patching
    /// loses most of its effect within 2 to 3 attempts.
    pub rewrite_after: u32,
}

/// How a repair was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// A corrected version of the failing code.
    Patch,
    /// A new program written from the artifact's intent.
    Rewrite,
}

impl Strategy {
    /// `patch` or `rewrite`.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Patch => "patch",
            Strategy::Rewrite => "rewrite",
        }
    }
}

/// The limits a repair of a run under `run` gets: `configured`, or else each
/// limit the minimum of `run`'s and [`Limits::default`]; either way with
/// fuel metered (`None` becomes the default fuel).
pub fn repair_limits(run: &Limits, configured: Option<&Limits>) -> Limits {
    let tier = Limits::default();
    let default_fuel = tier.fuel.unwrap_or(crate::limits::DEFAULT_FUEL);
    let mut limits = match configured {
        Some(l) => l.clone(),
        // Every field named: a new limit must decide how repairs get it.
        None => Limits {
            fuel: Some(run.fuel.map_or(default_fuel, |f| f.min(default_fuel))),
            memory_bytes: run.memory_bytes.min(tier.memory_bytes),
            timeout: run.timeout.min(tier.timeout),
            output_bytes: run.output_bytes.min(tier.output_bytes),
            log_records: run.log_records.min(tier.log_records),
            host_memory_bytes: run.host_memory_bytes.min(tier.host_memory_bytes),
        },
    };
    if limits.fuel.is_none() {
        limits.fuel = Some(default_fuel);
    }
    limits
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        SupervisorConfig {
            max_attempts: 3,
            budget_fuel: Some(crate::limits::DEFAULT_FUEL * 4),
            budget_time: Duration::from_secs(300),
            max_tokens: 4096,
            repair_limits: None,
            repair_namespace: None,
            rewrite_after: 2,
        }
    }
}

/// What happens, as it happens (for a live display).
#[derive(Debug, Clone)]
#[allow(missing_docs)] // variant fields are named for what they hold
pub enum Event<'a> {
    /// Version `attempt` (`code`, under `limits`) ran.
    Ran {
        attempt: u32,
        code: &'a str,
        limits: &'a crate::Limits,
        outcome: &'a Outcome,
        report: Option<&'a ErrorReport>,
    },
    /// Asking the LLM for repair `attempt`, by `strategy`.
    Asking { attempt: u32, strategy: Strategy },
    /// The answer for repair `attempt` was rejected without running.
    Rejected { attempt: u32, reason: String },
    /// The LLM call for repair `attempt` failed.
    LlmFailed { attempt: u32, error: String },
    /// Repair `attempt` changes the previous version like this.
    Diff { attempt: u32, diff: &'a str },
    /// The loop ended.
    Finished { result: &'a TraceResult },
}

/// The result of a supervised run.
#[derive(Debug, Clone)]
pub struct Supervised {
    /// Every attempt, prompt, answer and diff.
    pub trace: Trace,
    /// The last version that ran (the fixed code when the result is `Fixed`).
    pub code: String,
    /// The outcome of that version.
    pub outcome: Outcome,
}

/// Runs artifacts and repairs them.
pub struct Supervisor<'a> {
    runtime: &'a Runtime,
    provider: Option<&'a dyn FixProvider>,
    prompts: Prompts,
    config: SupervisorConfig,
}

/// A unified diff from `old` to `new`.
pub fn unified_diff(old: &str, new: &str, old_name: &str, new_name: &str) -> String {
    TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(old_name, new_name)
        .to_string()
}

impl<'a> Supervisor<'a> {
    /// A supervisor with prompts from the runtime's system volume; without a
    /// provider it only runs the artifact once.
    pub fn new(
        runtime: &'a Runtime,
        provider: Option<&'a dyn FixProvider>,
        config: SupervisorConfig,
    ) -> Result<Self, HostError> {
        let prompts = Prompts::load(&runtime.config().system_volume)?;
        Ok(Supervisor {
            runtime,
            provider,
            prompts,
            config,
        })
    }

    /// Run `req` and repair it until it runs ok or the loop must stop.
    /// `Err` only for host problems (unknown language, missing component).
    pub async fn run(
        &self,
        req: &RunRequest,
        on_event: &(dyn Fn(Event<'_>) + Send + Sync),
    ) -> Result<Supervised, HostError> {
        let start = Instant::now();
        let manifest = self.runtime.languages().by_name(&req.language)?.clone();
        let api_entries = crate::apiref::reference(&manifest, &self.runtime.config().system_volume)
            .unwrap_or_default();
        let mut trace = Trace {
            version: trace::TRACE_VERSION,
            artifact: req.filename.clone(),
            language: manifest.name.clone(),
            provider: self.provider.map(|p| p.provider().to_string()),
            model: self.provider.map(|p| p.model().to_string()),
            max_attempts: self.config.max_attempts,
            budget_fuel: self.config.budget_fuel,
            budget_ms: self.config.budget_time.as_millis() as u64,
            attempts: Vec::new(),
            result: TraceResult::Ok,
            tokens: Usage::default(),
            duration_ms: 0.0,
        };
        let mut fuel_used: u64 = 0;

        // Version 0: the artifact as given (its fuel also counts against the budget).
        let mut first = req.clone();
        if let (Some(limit), Some(budget)) = (first.limits.fuel, self.config.budget_fuel) {
            first.limits.fuel = Some(limit.min(budget.max(1)));
        }
        let (outcome, run_ms) = self.run_version(&first, &req.source, 0).await?;
        let original_inputs = outcome.inputs.clone().filter(|i| i.replayable());
        fuel_used = fuel_used.saturating_add(outcome.fuel_consumed.unwrap_or(0));
        let report = ErrorReport::with_test(&outcome, &req.source, req.test.as_ref());
        on_event(Event::Ran {
            attempt: 0,
            code: &req.source,
            limits: &first.limits,
            outcome: &outcome,
            report: report.as_ref(),
        });
        trace.attempts.push(Attempt {
            number: 0,
            llm: None,
            code: Some(req.source.clone()),
            diff: None,
            outcome: Some(outcome.clone()),
            report: report.clone(),
            run_ms,
            limits: Some(first.limits.clone()),
            strategy: None,
        });
        let mut current = req.source.clone();
        let mut current_outcome = outcome;
        let mut current_report = report;
        let mut failed: Vec<String> = vec![req.source.clone()];
        let mut history: Vec<String> = Vec::new();
        let mut same_error_runs = 0u32;
        // Patches asked for since the last rewrite (all failed, or the loop
        // would have ended).
        let mut patches_since_rewrite = 0u32;

        let result = 'repair: {
            let Some(mut report) = current_report.clone() else {
                break 'repair TraceResult::Ok;
            };
            let Some(provider) = self.provider else {
                break 'repair TraceResult::Failed {
                    reason: "no LLM provider is configured".into(),
                };
            };
            for attempt in 1..=self.config.max_attempts {
                if start.elapsed() >= self.config.budget_time {
                    break 'repair TraceResult::Failed {
                        reason: format!(
                            "the time budget ({} s) is spent",
                            self.config.budget_time.as_secs()
                        ),
                    };
                }
                let remaining_fuel = self.config.budget_fuel.map(|b| b.saturating_sub(fuel_used));
                if remaining_fuel == Some(0) {
                    break 'repair TraceResult::Failed {
                        reason: format!(
                            "the fuel budget ({} units across attempts) is spent",
                            self.config.budget_fuel.unwrap_or(0)
                        ),
                    };
                }

                // Ask.
                let system_prompt = self.prompts.system(
                    manifest.display_name(),
                    manifest.fence_tag(),
                    &manifest.idioms,
                );
                // Only the reference of the interfaces this version uses
                // (or its error names), and one line for the others.
                let api = crate::apiref::relevant(
                    &manifest.name,
                    &api_entries,
                    &current,
                    &format!("{} {}", report.class, report.message),
                );
                // After `rewrite_after` failed patches in a row, one rewrite.
                let strategy = if self.config.rewrite_after > 0
                    && patches_since_rewrite >= self.config.rewrite_after
                {
                    patches_since_rewrite = 0;
                    Strategy::Rewrite
                } else {
                    patches_since_rewrite += 1;
                    Strategy::Patch
                };
                let vars = AttemptVars {
                    language: &manifest.name,
                    fence: manifest.fence_tag(),
                    filename: &req.filename,
                    attempt,
                    max_attempts: self.config.max_attempts,
                    code: &current,
                    report: &report.render(),
                    history: &history,
                    api: &api,
                };
                let prompt = match strategy {
                    Strategy::Patch => self.prompts.attempt(&vars),
                    Strategy::Rewrite => self.prompts.rewrite(&vars),
                };
                on_event(Event::Asking { attempt, strategy });
                let chat = ChatRequest {
                    system: system_prompt.clone(),
                    messages: vec![Message {
                        role: Role::User,
                        content: prompt.clone(),
                    }],
                    max_tokens: self.config.max_tokens,
                    temperature: Some(0.2),
                };
                let asked = Instant::now();
                let remaining_time = self.config.budget_time.saturating_sub(start.elapsed());
                let answer = match tokio::time::timeout(remaining_time, provider.complete(&chat))
                    .await
                {
                    Ok(r) => r.map_err(|e| e.to_string()),
                    Err(_) => Err("the time budget ran out while waiting for the LLM".to_string()),
                };
                let mut exchange = Exchange {
                    system_prompt,
                    prompt,
                    response: None,
                    rejection: None,
                    error: None,
                    usage: Usage::default(),
                    http_attempts: 0,
                    duration_ms: asked.elapsed().as_secs_f64() * 1e3,
                };
                let response = match answer {
                    Ok(r) => r,
                    Err(error) => {
                        on_event(Event::LlmFailed {
                            attempt,
                            error: error.clone(),
                        });
                        exchange.error = Some(error.clone());
                        trace
                            .attempts
                            .push(Attempt::not_run(attempt, exchange).by(strategy));
                        break 'repair TraceResult::Failed {
                            reason: format!("the LLM call failed: {error}"),
                        };
                    }
                };
                exchange.usage = response.usage;
                exchange.http_attempts = response.http_attempts;
                trace.tokens.input_tokens += response.usage.input_tokens;
                trace.tokens.output_tokens += response.usage.output_tokens;
                exchange.response = Some(response.text.clone());

                // Extract.
                let code = match extract::extract(
                    &response.text,
                    &manifest.name,
                    &manifest.fence_tags(),
                    &current,
                    &failed,
                ) {
                    Ok(c) => c,
                    Err(rejection) => {
                        let reason = rejection.to_string();
                        on_event(Event::Rejected {
                            attempt,
                            reason: reason.clone(),
                        });
                        history.push(format!(
                            "- attempt {attempt}: the answer was rejected ({reason})."
                        ));
                        exchange.rejection = Some(reason);
                        trace
                            .attempts
                            .push(Attempt::not_run(attempt, exchange).by(strategy));
                        continue;
                    }
                };
                let diff = unified_diff(
                    &current,
                    &code,
                    &format!("version {}", attempt - 1),
                    &format!("version {attempt}"),
                );
                on_event(Event::Diff {
                    attempt,
                    diff: &diff,
                });

                // Run it as untrusted code (the repair tier's limits and
                // namespace), within what is left of the fuel budget.
                let mut next = req.clone();
                next.source = code.clone();
                // Checked on the inputs that broke the original: its seed,
                // clock readings and storage reads.
                if let Some(inputs) = &original_inputs {
                    next.inputs = Some(crate::inputs::Source::Verify(inputs.clone()));
                }
                next.limits = repair_limits(&req.limits, self.config.repair_limits.as_ref());
                if let Some(ns) = &self.config.repair_namespace {
                    next.artifact_id = ns.clone();
                }
                if let (Some(limit), Some(left)) = (next.limits.fuel, remaining_fuel) {
                    next.limits.fuel = Some(limit.min(left));
                }
                let (outcome, run_ms) = self.run_version(&next, &code, attempt).await?;
                fuel_used = fuel_used.saturating_add(outcome.fuel_consumed.unwrap_or(0));
                let new_report = ErrorReport::with_test(&outcome, &code, req.test.as_ref());
                on_event(Event::Ran {
                    attempt,
                    code: &code,
                    limits: &next.limits,
                    outcome: &outcome,
                    report: new_report.as_ref(),
                });
                trace.attempts.push(Attempt {
                    number: attempt,
                    llm: Some(exchange),
                    code: Some(code.clone()),
                    diff: Some(diff),
                    outcome: Some(outcome.clone()),
                    report: new_report.clone(),
                    run_ms,
                    limits: Some(next.limits.clone()),
                    strategy: Some(strategy),
                });
                let previous_key = report.key();
                current = code.clone();
                current_outcome = outcome;
                current_report = new_report;
                let Some(r) = current_report.clone() else {
                    break 'repair TraceResult::Fixed { attempts: attempt };
                };
                history.push(format!(
                    "- attempt {attempt} failed: {}: {}{}\n```{}\n{}```",
                    r.class,
                    r.message,
                    r.line.map(|l| format!(" (line {l})")).unwrap_or_default(),
                    manifest.fence_tag(),
                    code
                ));
                failed.push(code);
                if r.key() == previous_key {
                    same_error_runs += 1;
                    // No progress: try a rewrite once before giving up.
                    if same_error_runs >= 2
                        && strategy == Strategy::Patch
                        && self.config.rewrite_after > 0
                        && attempt < self.config.max_attempts
                    {
                        patches_since_rewrite = self.config.rewrite_after;
                    } else if same_error_runs >= 2 {
                        break 'repair TraceResult::Failed {
                            reason: format!(
                                "no progress: {} on line {} came back twice in a row",
                                r.class,
                                r.line.map_or("?".to_string(), |l| l.to_string())
                            ),
                        };
                    }
                } else {
                    same_error_runs = 0;
                }
                report = r;
            }
            TraceResult::Failed {
                reason: format!(
                    "{} repair attempts did not fix it",
                    self.config.max_attempts
                ),
            }
        };
        trace.result = result;
        trace.duration_ms = start.elapsed().as_secs_f64() * 1e3;
        on_event(Event::Finished {
            result: &trace.result,
        });
        Ok(Supervised {
            trace,
            code: current,
            outcome: current_outcome,
        })
    }

    async fn run_version(
        &self,
        req: &RunRequest,
        code: &str,
        attempt: u32,
    ) -> Result<(Outcome, f64), HostError> {
        let mut r = req.clone();
        r.source = code.to_string();
        let t = Instant::now();
        let outcome = self.runtime.run(&r).await?;
        // A repair needs to know where a runaway version was.
        let outcome = self.runtime.locate(&r, outcome).await;
        tracing::info!(attempt, status = %outcome.status, "supervised run");
        Ok((outcome, t.elapsed().as_secs_f64() * 1e3))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repairs_never_get_looser_limits_than_the_untrusted_tier() {
        let tier = Limits::default();
        let loose = Limits {
            fuel: None,
            memory_bytes: tier.memory_bytes * 8,
            timeout: tier.timeout * 6,
            output_bytes: tier.output_bytes * 16,
            log_records: tier.log_records * 2,
            host_memory_bytes: tier.host_memory_bytes * 4,
        };
        assert_eq!(repair_limits(&loose, None), tier);

        let tight = Limits {
            fuel: Some(1_000),
            memory_bytes: 1 << 20,
            timeout: Duration::from_millis(5),
            output_bytes: 10,
            log_records: 1,
            host_memory_bytes: 1 << 10,
        };
        assert_eq!(repair_limits(&tight, None), tight);

        // Given limits are used as given, but never unmetered.
        let given = Limits {
            fuel: None,
            ..tight.clone()
        };
        let r = repair_limits(&loose, Some(&given));
        assert_eq!(r.fuel, tier.fuel);
        assert_eq!(r.memory_bytes, 1 << 20);
    }
}
