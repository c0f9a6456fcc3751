//! One job's result line, and the summary of a batch.
//!
//! A result is the `llmos run --json` object of the job's run plus `id`,
//! `worker` and `timings`; `status` is the run's status, or one of the
//! batch's own: `wrong_output` (ran, printed something other than
//! `expect_stdout`; `diff` says how), `not_run` (never started; `reason`
//! says why), `invalid` (the job could not be resolved, e.g. a missing
//! file), `worker_lost` (its worker process died twice while running it).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

/// Status of a job that ran and printed something else than expected.
pub const WRONG_OUTPUT: &str = "wrong_output";
/// Status of a job that never started.
pub const NOT_RUN: &str = "not_run";
/// Status of a job that could not be resolved into an artifact.
pub const INVALID: &str = "invalid";
/// Status of a job whose worker died under it.
pub const WORKER_LOST: &str = "worker_lost";

/// One job's result: a JSON object with at least `id` and `status`.
#[derive(Debug, Clone, PartialEq)]
pub struct JobResult(Map<String, Value>);

impl JobResult {
    /// A result from its JSON object; `None` without a string `id` and
    /// `status`.
    pub fn from_value(v: Value) -> Option<JobResult> {
        match v {
            Value::Object(m)
                if m.get("id").is_some_and(Value::is_string)
                    && m.get("status").is_some_and(Value::is_string) =>
            {
                Some(JobResult(m))
            }
            _ => None,
        }
    }

    /// A result for a job that did not run (`not_run`, `invalid`,
    /// `worker_lost`), with the reason.
    pub fn without_run(id: &str, status: &str, reason: impl Into<String>, worker: &str) -> Self {
        let mut m = Map::new();
        m.insert("id".into(), id.into());
        m.insert("status".into(), status.into());
        m.insert("reason".into(), reason.into().into());
        m.insert("worker".into(), worker.into());
        JobResult(m)
    }

    /// The job's id.
    pub fn id(&self) -> &str {
        self.0.get("id").and_then(Value::as_str).unwrap_or("")
    }

    /// The status (`ok`, `error`, `out_of_fuel`, ..., `wrong_output`,
    /// `not_run`, `invalid`, `worker_lost`).
    pub fn status(&self) -> &str {
        self.0.get("status").and_then(Value::as_str).unwrap_or("")
    }

    /// Whether the job succeeded.
    pub fn is_ok(&self) -> bool {
        self.status() == "ok"
    }

    /// Fuel the run consumed, if metered.
    pub fn fuel(&self) -> Option<u64> {
        self.0.get("fuel_consumed").and_then(Value::as_u64)
    }

    /// The run's own duration, in milliseconds.
    pub fn duration_ms(&self) -> Option<f64> {
        self.0.get("duration_ms").and_then(Value::as_f64)
    }

    /// What kind of failure this is, for grouping: the guest's error class
    /// (`ZeroDivisionError`), else the status.
    pub fn failure_class(&self) -> String {
        self.0
            .get("error")
            .and_then(|e| e.get("class"))
            .and_then(Value::as_str)
            .filter(|c| !c.is_empty())
            .map(|c| c.chars().take(80).collect())
            .unwrap_or_else(|| self.status().to_string())
    }

    /// Set a field.
    pub fn set(&mut self, key: &str, value: impl Into<Value>) {
        self.0.insert(key.into(), value.into());
    }

    /// A field.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    /// The JSON object.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    /// One line of JSON, without the newline.
    pub fn to_line(&self) -> String {
        // Serialising a map of JSON values cannot fail.
        serde_json::to_string(&self.0).unwrap_or_else(|_| "{}".into())
    }
}

/// What a batch did, in numbers.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Results written by this invocation.
    pub jobs: u64,
    /// Ids skipped because the results file had them (`--resume`).
    pub skipped: u64,
    /// Input lines or files refused.
    pub input_problems: u64,
    /// Results per status.
    pub statuses: BTreeMap<String, u64>,
    /// Fuel per metered run: median, 95th percentile, maximum.
    pub fuel: Percentiles,
    /// Total fuel consumed by this invocation's runs.
    pub fuel_total: u64,
    /// The slowest runs (id, milliseconds), slowest first.
    pub slowest: Vec<(String, f64)>,
    /// Failures grouped by error class (or status), biggest group first.
    pub failures: Vec<FailureGroup>,
    /// Wall-clock time of the batch, seconds.
    pub wall_s: f64,
    /// Results per second of wall-clock time.
    pub rate: f64,
}

/// Median, 95th percentile and maximum.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Percentiles {
    /// 50th percentile.
    pub p50: u64,
    /// 95th percentile.
    pub p95: u64,
    /// Largest value.
    pub max: u64,
}

/// Failures of one class.
#[derive(Debug, Clone, Serialize)]
pub struct FailureGroup {
    /// Error class or status.
    pub class: String,
    /// How many.
    pub count: u64,
    /// A few of their ids.
    pub examples: Vec<String>,
}

/// Collects results into a [`Summary`].
#[derive(Debug, Default)]
pub struct SummaryBuilder {
    summary: Summary,
    fuel: Vec<u64>,
    durations: Vec<(f64, String)>,
    failures: BTreeMap<String, (u64, Vec<String>)>,
}

/// Slowest jobs kept in a summary.
const SLOWEST: usize = 5;
/// Example ids kept per failure class.
const EXAMPLES: usize = 3;

impl SummaryBuilder {
    /// Count one result.
    pub fn add(&mut self, r: &JobResult) {
        let s = &mut self.summary;
        s.jobs += 1;
        *s.statuses.entry(r.status().to_string()).or_default() += 1;
        if let Some(f) = r.fuel() {
            self.fuel.push(f);
            s.fuel_total = s.fuel_total.saturating_add(f);
        }
        if let Some(d) = r.duration_ms() {
            self.durations.push((d, r.id().to_string()));
            // Keep the list short: only the slowest few matter.
            if self.durations.len() > 64 * SLOWEST {
                self.durations.sort_by(|a, b| b.0.total_cmp(&a.0));
                self.durations.truncate(SLOWEST);
            }
        }
        if !r.is_ok() {
            let g = self.failures.entry(r.failure_class()).or_default();
            g.0 += 1;
            if g.1.len() < EXAMPLES {
                g.1.push(r.id().to_string());
            }
        }
    }

    /// Record skipped ids and refused inputs.
    pub fn note(&mut self, skipped: u64, input_problems: u64) {
        self.summary.skipped = skipped;
        self.summary.input_problems = input_problems;
    }

    /// The summary, given the batch's wall-clock time.
    pub fn finish(mut self, wall_s: f64) -> Summary {
        let mut s = self.summary;
        self.fuel.sort_unstable();
        let pct = |p: f64| -> u64 {
            if self.fuel.is_empty() {
                return 0;
            }
            let i = ((self.fuel.len() - 1) as f64 * p).round() as usize;
            self.fuel[i.min(self.fuel.len() - 1)]
        };
        s.fuel = Percentiles {
            p50: pct(0.5),
            p95: pct(0.95),
            max: self.fuel.last().copied().unwrap_or(0),
        };
        self.durations.sort_by(|a, b| b.0.total_cmp(&a.0));
        s.slowest = self
            .durations
            .into_iter()
            .take(SLOWEST)
            .map(|(d, id)| (id, d))
            .collect();
        let mut groups: Vec<FailureGroup> = self
            .failures
            .into_iter()
            .map(|(class, (count, examples))| FailureGroup {
                class,
                count,
                examples,
            })
            .collect();
        groups.sort_by(|a, b| b.count.cmp(&a.count).then(a.class.cmp(&b.class)));
        s.failures = groups;
        s.wall_s = wall_s;
        s.rate = if wall_s > 0.0 {
            s.jobs as f64 / wall_s
        } else {
            0.0
        };
        s
    }
}

impl Summary {
    /// Whether every job that produced a result succeeded and no input was
    /// refused.
    pub fn all_ok(&self) -> bool {
        self.input_problems == 0 && self.statuses.iter().all(|(s, _)| s == "ok")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn r(v: Value) -> JobResult {
        JobResult::from_value(v).expect("result")
    }

    #[test]
    fn summary_counts_percentiles_and_groups() {
        let mut b = SummaryBuilder::default();
        for i in 0..100u64 {
            b.add(&r(json!({"id": format!("j{i}"), "status": "ok", "fuel_consumed": i + 1, "duration_ms": i as f64})));
        }
        b.add(&r(
            json!({"id": "e1", "status": "error", "error": {"class": "ZeroDivisionError"}}),
        ));
        b.add(&r(
            json!({"id": "e2", "status": "error", "error": {"class": "ZeroDivisionError"}}),
        ));
        b.add(&r(json!({"id": "f", "status": "out_of_fuel"})));
        let s = b.finish(2.0);
        assert_eq!(s.jobs, 103);
        assert_eq!(s.statuses["ok"], 100);
        assert_eq!(s.statuses["error"], 2);
        assert_eq!(s.fuel.p50, 51);
        assert_eq!(s.fuel.p95, 95);
        assert_eq!(s.fuel.max, 100);
        assert_eq!(s.slowest[0], ("j99".to_string(), 99.0));
        assert_eq!(s.slowest.len(), 5);
        assert_eq!(s.failures[0].class, "ZeroDivisionError");
        assert_eq!(s.failures[0].count, 2);
        assert_eq!(s.failures[1].class, "out_of_fuel");
        assert!(!s.all_ok());
        assert!((s.rate - 51.5).abs() < 1e-9);
    }

    #[test]
    fn results_need_an_id_and_a_status() {
        assert!(JobResult::from_value(json!({"id": "a"})).is_none());
        assert!(JobResult::from_value(json!({"id": 1, "status": "ok"})).is_none());
        assert!(JobResult::from_value(json!([1])).is_none());
        let n = JobResult::without_run("a", NOT_RUN, "budget spent", "local");
        assert_eq!(n.status(), "not_run");
        assert_eq!(n.failure_class(), "not_run");
    }
}
