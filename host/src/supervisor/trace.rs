//! The execution trace of a supervised run (`llmos run --fix --trace FILE`):
//! every attempt with its code, outcome, error report, prompt, the raw LLM
//! answer, the extracted code, the diff, durations and token counts.
//! Serialised as JSON (schema in the README); `llmos trace show` renders it.

use serde::{Deserialize, Serialize};

use super::llm::Usage;
use super::report::ErrorReport;
use crate::outcome::Outcome;

/// Version of the trace schema.
pub const TRACE_VERSION: u32 = 1;

/// The JSON execution trace of a supervised run (`--trace FILE`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Trace {
    /// Schema version.
    pub version: u32,
    /// The artifact's file name.
    pub artifact: String,
    /// Its language.
    pub language: String,
    /// `openai` / `anthropic`, when a provider was configured.
    pub provider: Option<String>,
    /// The model asked.
    pub model: Option<String>,
    /// Repairs allowed.
    pub max_attempts: u32,
    /// Fuel across all attempts.
    pub budget_fuel: Option<u64>,
    /// Wall-clock budget across all attempts, ms.
    pub budget_ms: u64,
    /// Version 0 is the artifact as given; each repair adds one.
    pub attempts: Vec<Attempt>,
    /// How it ended.
    pub result: TraceResult,
    /// Tokens over all LLM calls.
    pub tokens: Usage,
    /// Total time.
    pub duration_ms: f64,
}

/// One version of the artifact: how it was obtained and how it ran.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attempt {
    /// 0 for the original, then 1, 2, ... for repairs.
    pub number: u32,
    /// The LLM exchange that produced this version (none for the original).
    pub llm: Option<Exchange>,
    /// The code that ran (none when the answer was rejected).
    pub code: Option<String>,
    /// Unified diff against the previous version that ran.
    pub diff: Option<String>,
    /// Its outcome, when it ran.
    pub outcome: Option<Outcome>,
    /// Its error report, when it failed.
    pub report: Option<ErrorReport>,
    /// Its run time.
    pub run_ms: f64,
    /// The limits it ran under (for `llmos replay`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<crate::limits::Limits>,
    /// How the repair was asked for (none for the original).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<super::Strategy>,
}

impl Attempt {
    /// A repair whose answer never ran (the call failed or was rejected).
    pub fn not_run(number: u32, llm: Exchange) -> Attempt {
        Attempt {
            number,
            llm: Some(llm),
            code: None,
            diff: None,
            outcome: None,
            report: None,
            run_ms: 0.0,
            limits: None,
            strategy: None,
        }
    }

    /// This attempt, asked for by `strategy`.
    pub fn by(mut self, strategy: super::Strategy) -> Attempt {
        self.strategy = Some(strategy);
        self
    }
}

/// A request to the LLM and what came back.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Exchange {
    /// The system prompt sent.
    pub system_prompt: String,
    /// The user prompt sent.
    pub prompt: String,
    /// The answer's text as received (none when the call failed).
    pub response: Option<String>,
    /// Why the answer was not run, if it was not.
    pub rejection: Option<String>,
    /// The LLM call's error, if it failed.
    pub error: Option<String>,
    /// Tokens of this call.
    pub usage: Usage,
    /// HTTP requests, retries included.
    pub http_attempts: u32,
    /// Time of this call, retries included.
    pub duration_ms: f64,
}

/// How the supervised run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
#[allow(missing_docs)] // variant fields are named for what they hold
pub enum TraceResult {
    /// The artifact ran ok as given.
    Ok,
    /// A repair ran ok after `attempts` repairs.
    Fixed { attempts: u32 },
    /// No version ran ok; `reason` says why the loop stopped.
    Failed { reason: String },
}

impl Trace {
    /// The trace rendered for a terminal.
    pub fn render(&self) -> String {
        let mut s = format!(
            "trace of {} ({}), {} via {}\n",
            self.artifact,
            self.language,
            self.model.as_deref().unwrap_or("no model"),
            self.provider.as_deref().unwrap_or("no provider"),
        );
        for a in &self.attempts {
            s.push_str(&format!(
                "\n── version {}{} ",
                a.number,
                a.strategy
                    .map(|s| format!(" ({})", s.as_str()))
                    .unwrap_or_default()
            ));
            s.push_str(&"─".repeat(40));
            s.push('\n');
            if let Some(x) = &a.llm {
                s.push_str(&format!(
                    "LLM: {:.0} ms, {} in / {} out tokens, {} HTTP attempt(s)\n",
                    x.duration_ms, x.usage.input_tokens, x.usage.output_tokens, x.http_attempts
                ));
                if let Some(e) = &x.error {
                    s.push_str(&format!("LLM error: {e}\n"));
                }
                if let Some(r) = &x.rejection {
                    s.push_str(&format!("rejected: {r}\n"));
                }
            }
            if let Some(d) = &a.diff {
                s.push_str(d);
                if !d.ends_with('\n') {
                    s.push('\n');
                }
            } else if a.number == 0
                && let Some(c) = &a.code
            {
                s.push_str(&format!("{} lines of code\n", c.lines().count()));
            }
            match (&a.outcome, &a.report) {
                (Some(o), None) => s.push_str(&format!("✓ {} in {:.1} ms\n", o.status, a.run_ms)),
                (Some(_), Some(r)) => {
                    s.push_str(&format!("✗ {}\n", r.status));
                    for l in r.render().lines() {
                        s.push_str(&format!("  {l}\n"));
                    }
                }
                _ => {}
            }
        }
        s.push_str(&format!(
            "\nresult: {}  ({} tokens in, {} out, {:.1} s)\n",
            match &self.result {
                TraceResult::Ok => "ok as given".to_string(),
                TraceResult::Fixed { attempts } => format!("fixed after {attempts} repair(s)"),
                TraceResult::Failed { reason } => format!("not fixed: {reason}"),
            },
            self.tokens.input_tokens,
            self.tokens.output_tokens,
            self.duration_ms / 1000.0
        ));
        s
    }
}
