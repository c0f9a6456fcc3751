//! The conformance suite: does a guest keep the contract of
//! `guests/README.md`?
//!
//! The checks are the same for every language and live here, one [`Rule`]
//! each, each naming the part of the contract it checks. The programs are
//! the language's own: `conformance/<language>/cases.toml` on the system
//! volume holds one table per rule id with a program (or cells) in that
//! language and what it must produce. A rule without a program fails
//! ("no program for this rule"), so a new language cannot pass by omission;
//! rules of a capability the manifest does not declare are skipped.
//!
//! The rule decides the limits and the outcome class it requires (a fuel
//! bomb must end `out_of_fuel` under a small fuel limit, whatever the
//! language); the case adds what is specific to the language (the error
//! class, the line, the displayed value).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::engine::RunRequest;
use crate::error::HostError;
use crate::language::Capability;
use crate::limits::Limits;
use crate::outcome::{ErrorKind, Outcome, Status};
use crate::session::{Cell, Journal};
use crate::{Llmos, Tier};

/// Where the suite's programs live, relative to the system volume.
pub const CASES_DIR: &str = "conformance";

/// One rule of the contract.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// Its id: the table name in `cases.toml`.
    pub id: &'static str,
    /// The part of `guests/README.md` it checks.
    pub contract: &'static str,
    /// What the host requires.
    pub requires: &'static str,
    /// Only for guests declaring this capability.
    pub capability: Option<Capability>,
}

const fn rule(id: &'static str, contract: &'static str, requires: &'static str) -> Rule {
    Rule {
        id,
        contract,
        requires,
        capability: None,
    }
}

/// Every rule, in the order they run.
pub const RULES: &[Rule] = &[
    rule(
        "value",
        "7: value",
        "ends ok with the expected display of the last value",
    ),
    rule(
        "stdout",
        "4: output",
        "ends ok with exactly the expected stdout",
    ),
    rule("stderr", "4: output", "writes exactly the expected stderr"),
    rule(
        "runtime-error",
        "3: typed errors, 2: positions",
        "an error of kind runtime with the class, message, line and column, and at least the expected frames in nested functions, innermost at the error's line",
    ),
    rule(
        "syntax-error",
        "3: typed errors, 2: positions",
        "an error of kind syntax at the expected line (and column)",
    ),
    rule(
        "exit",
        "3: typed errors",
        "an error of kind exit with the exit code",
    ),
    rule(
        "limit-fuel",
        "limits",
        "ends out_of_fuel under 50 000 000 fuel",
    ),
    rule(
        "limit-memory",
        "5: never abort, limits",
        "ends memory_limit under 64 MiB",
    ),
    rule(
        "limit-stack",
        "5: never abort",
        "deep recursion ends error or stack_overflow, never anything else",
    ),
    rule(
        "limit-timeout",
        "limits",
        "ends timeout under a 500 ms wall clock",
    ),
    rule(
        "limit-output",
        "4: output, limits",
        "ends output_limit under 64 KiB of output",
    ),
    rule(
        "no-files",
        "no capabilities",
        "a file access fails inside the artifact (expected value)",
    ),
    rule(
        "no-env",
        "no capabilities",
        "the environment is empty (expected value)",
    ),
    rule(
        "no-network",
        "no capabilities",
        "a network access fails inside the artifact (expected value)",
    ),
    rule("kernel-log", "kernel API", "a log record reaches the host"),
    rule(
        "kernel-storage",
        "kernel API",
        "a storage round trip (expected value)",
    ),
    rule(
        "kernel-storage-error",
        "kernel API, 3: typed errors",
        "a typed storage error is catchable, with its code (expected value)",
    ),
    rule(
        "kernel-viz",
        "kernel API",
        "a chart reaches the host as an output",
    ),
    rule(
        "kernel-dom",
        "kernel API",
        "a document reaches the host as an output (expected value)",
    ),
    rule(
        "kernel-quantum",
        "kernel API",
        "a circuit runs (expected value)",
    ),
    rule(
        "determinism",
        "6: randomness from WASI",
        "two runs with one seed end identically; two without differ",
    ),
    rule(
        "fresh-state",
        "1: fresh state per run",
        "a global set by one run is absent in the next (expected value)",
    ),
    rule(
        "well-formed",
        "8: well-formed text",
        "an error whose message holds a lone surrogate is reported (U+FFFD), not a trap",
    ),
    Rule {
        id: "session",
        contract: "1: sessions",
        requires: "cells share globals; a raising cell keeps what it did (expected values)",
        capability: Some(Capability::Sessions),
    },
    Rule {
        id: "preinit",
        contract: "pre-initialisation",
        requires: "the component exports `init`, and its runs start fresh (checked by fresh-state)",
        capability: Some(Capability::Preinit),
    },
];

/// One program and what it must produce.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// The program.
    pub source: Option<String>,
    /// `fresh-state`: the run that sets a global.
    pub set: Option<String>,
    /// `fresh-state`: the run that looks for it.
    pub check: Option<String>,
    /// `session`: the cells, in order.
    #[serde(default)]
    pub cells: Vec<String>,
    /// `session`: a cell that changes state, then raises.
    pub raise: Option<String>,
    /// `session`: a cell run after `raise`.
    pub after: Option<String>,
    /// `session`: `after`'s value.
    pub after_value: Option<String>,
    /// The displayed value.
    pub value: Option<String>,
    /// The exact stdout.
    pub stdout: Option<String>,
    /// The exact stderr.
    pub stderr: Option<String>,
    /// The error class.
    pub class: Option<String>,
    /// Text the error message contains.
    pub message: Option<String>,
    /// The error line.
    pub line: Option<u32>,
    /// The error column.
    pub column: Option<u32>,
    /// At least this many stack frames.
    pub min_frames: Option<usize>,
    /// The exit code.
    pub exit_code: Option<i32>,
}

/// How one rule went.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// The rule's id.
    pub rule: &'static str,
    /// The part of the contract.
    pub contract: &'static str,
    /// `pass`, `fail` or `skip`.
    pub result: &'static str,
    /// Why it failed, or was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Time taken.
    pub ms: f64,
}

/// The suite's result for one language.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The language.
    pub language: String,
    /// Rules passed.
    pub passed: usize,
    /// Rules failed.
    pub failed: usize,
    /// Rules skipped (capability not declared).
    pub skipped: usize,
    /// Every rule.
    pub checks: Vec<Check>,
}

/// Run the suite for `language`.
pub async fn run(llmos: &Llmos, language: &str) -> Result<Report, HostError> {
    let manifest = llmos.languages().by_name(language)?.clone();
    let path = llmos
        .system()
        .root()
        .join(CASES_DIR)
        .join(&manifest.name)
        .join("cases.toml");
    let text = std::fs::read_to_string(&path).map_err(|e| HostError::io(&path, e))?;
    let cases: BTreeMap<String, Case> = toml::from_str(&text).map_err(|e| HostError::Manifest {
        path: path.clone(),
        reason: e.message().to_string(),
    })?;
    if let Some(unknown) = cases
        .keys()
        .find(|k| !RULES.iter().any(|r| r.id == k.as_str()))
    {
        return Err(HostError::Manifest {
            path,
            reason: format!("`{unknown}` is not a rule of the suite"),
        });
    }
    // Load (and, the first time, compile) before any timed rule.
    llmos.runtime().prepare_async(&manifest.name, true).await?;
    let mut checks = Vec::new();
    for rule in RULES {
        let start = Instant::now();
        let (result, detail) = match rule.capability {
            Some(c) if !manifest.has(c) => (
                "skip",
                Some(format!("the manifest does not declare `{}`", c.as_str())),
            ),
            _ => match cases.get(rule.id) {
                None if rule.id == "preinit" => ("pass", None),
                None => (
                    "fail",
                    Some("no program for this rule in cases.toml".into()),
                ),
                Some(case) => match check(llmos, &manifest.name, rule, case).await {
                    Ok(()) => ("pass", None),
                    Err(why) => ("fail", Some(why)),
                },
            },
        };
        checks.push(Check {
            rule: rule.id,
            contract: rule.contract,
            result,
            detail,
            ms: start.elapsed().as_secs_f64() * 1e3,
        });
    }
    let count = |r: &str| checks.iter().filter(|c| c.result == r).count();
    Ok(Report {
        language: manifest.name.clone(),
        passed: count("pass"),
        failed: count("fail"),
        skipped: count("skip"),
        checks,
    })
}

type Verdict = Result<(), String>;

fn limits_for(rule: &str) -> Limits {
    let base = Limits::default();
    match rule {
        "limit-fuel" => Limits {
            fuel: Some(50_000_000),
            ..base
        },
        "limit-memory" => Limits {
            memory_bytes: 64 << 20,
            ..base
        },
        "limit-timeout" => Limits {
            fuel: Some(1 << 50),
            timeout: Duration::from_millis(500),
            ..base
        },
        "limit-output" => Limits {
            output_bytes: 64 << 10,
            ..base
        },
        _ => base,
    }
}

async fn run_one(
    llmos: &Llmos,
    language: &str,
    rule: &str,
    source: &str,
    seed: Option<u64>,
) -> Result<Outcome, String> {
    let mut req = RunRequest::new(language, source);
    req.limits = limits_for(rule);
    req.seed = seed;
    req.artifact_id = format!("conformance:{language}:{rule}");
    llmos
        .runtime()
        .run(&req)
        .await
        .map_err(|e| format!("host error: {e}"))
}

fn need<'a>(what: &str, v: &'a Option<String>) -> Result<&'a str, String> {
    v.as_deref()
        .ok_or_else(|| format!("the case has no `{what}`"))
}

async fn check(llmos: &Llmos, language: &str, rule: &Rule, case: &Case) -> Verdict {
    match rule.id {
        "fresh-state" => {
            let set = need("set", &case.set)?;
            let probe = need("check", &case.check)?;
            let first = run_one(llmos, language, rule.id, set, None).await?;
            expect_status(&first, &[Status::Ok])?;
            let o = run_one(llmos, language, rule.id, probe, None).await?;
            return expect(&o, case, &[Status::Ok]);
        }
        "session" => return check_session(llmos, language, case).await,
        "preinit" => return Ok(()),
        _ => {}
    }
    let source = need("source", &case.source)?;
    if rule.id == "determinism" {
        let a = run_one(llmos, language, rule.id, source, Some(7)).await?;
        let b = run_one(llmos, language, rule.id, source, Some(7)).await?;
        let strip = |o: &Outcome| {
            let mut v = serde_json::to_value(o).unwrap_or_default();
            if let Some(m) = v.as_object_mut() {
                m.remove("duration_ms");
            }
            v
        };
        if strip(&a) != strip(&b) {
            return Err("two runs with seed 7 ended differently".into());
        }
        expect_status(&a, &[Status::Ok])?;
        let c = run_one(llmos, language, rule.id, source, None).await?;
        let d = run_one(llmos, language, rule.id, source, None).await?;
        if c.stdout == d.stdout && c.value == d.value {
            return Err(
                "two unseeded runs printed the same thing: randomness is not drawn per run".into(),
            );
        }
        return Ok(());
    }
    let o = run_one(llmos, language, rule.id, source, None).await?;
    let allowed: &[Status] = match rule.id {
        "limit-fuel" => &[Status::OutOfFuel],
        "limit-memory" => &[Status::MemoryLimit],
        "limit-stack" => &[Status::Error, Status::StackOverflow],
        "limit-timeout" => &[Status::Timeout],
        "limit-output" => &[Status::OutputLimit],
        "runtime-error" | "syntax-error" | "exit" | "well-formed" => &[Status::Error],
        "stderr" => &[Status::Ok, Status::Error],
        _ => &[Status::Ok],
    };
    expect(&o, case, allowed)?;
    let error = o.error.as_ref();
    match rule.id {
        "runtime-error" | "syntax-error" | "exit" => {
            let kind = match rule.id {
                "runtime-error" => ErrorKind::Runtime,
                "syntax-error" => ErrorKind::Syntax,
                _ => ErrorKind::Exit,
            };
            let e = error.ok_or("no error record")?;
            if e.kind != kind {
                return Err(format!("error kind {:?}, not {kind:?}", e.kind));
            }
            if rule.id == "runtime-error" {
                let inner = e.stack.last().ok_or("an empty stack")?;
                if Some(inner.line) != e.line {
                    return Err(format!(
                        "the innermost frame is at line {}, the error at {:?}",
                        inner.line, e.line
                    ));
                }
            }
        }
        "kernel-log" if o.logs.is_empty() => return Err("no log record reached the host".into()),
        "kernel-viz" | "kernel-dom" if o.outputs.is_empty() => {
            return Err("no output reached the host".into());
        }
        _ => {}
    }
    Ok(())
}

async fn check_session(llmos: &Llmos, language: &str, case: &Case) -> Verdict {
    if case.cells.is_empty() {
        return Err("the case has no `cells`".into());
    }
    let journal = Journal::new(language, "conformance:session", Tier::Sandboxed);
    let (mut session, _) = llmos
        .open_session(journal)
        .await
        .map_err(|e| format!("host error: {e}"))?;
    let mut last = None;
    let cell = |source| Cell {
        source,
        filename: "",
        limits: Limits::default(),
        seed: None,
    };
    for source in &case.cells {
        let c = session
            .run_cell(cell(source))
            .await
            .map_err(|e| format!("host error: {e}"))?;
        expect_status(&c.outcome, &[Status::Ok])?;
        last = Some(c.outcome);
    }
    if let Some(o) = &last {
        expect(o, case, &[Status::Ok])?;
    }
    if let (Some(raise), Some(after)) = (&case.raise, &case.after) {
        let c = session
            .run_cell(cell(raise))
            .await
            .map_err(|e| format!("host error: {e}"))?;
        expect_status(&c.outcome, &[Status::Error])?;
        let c = session
            .run_cell(cell(after))
            .await
            .map_err(|e| format!("host error: {e}"))?;
        expect_status(&c.outcome, &[Status::Ok])?;
        if c.outcome.value != case.after_value {
            return Err(format!(
                "after a raising cell: value {:?}, expected {:?}",
                c.outcome.value, case.after_value
            ));
        }
    }
    Ok(())
}

fn expect_status(o: &Outcome, allowed: &[Status]) -> Verdict {
    if allowed.contains(&o.status) {
        Ok(())
    } else {
        let wanted: Vec<&str> = allowed.iter().map(|s| s.as_str()).collect();
        Err(format!(
            "ended `{}` ({}), expected {}",
            o.status,
            o.summary(),
            wanted.join(" or ")
        ))
    }
}

fn expect(o: &Outcome, case: &Case, allowed: &[Status]) -> Verdict {
    expect_status(o, allowed)?;
    let same = |what: &str, got: Option<&str>, want: &Option<String>| -> Verdict {
        match want {
            Some(w) if got != Some(w.as_str()) => Err(format!("{what} {got:?}, expected {w:?}")),
            _ => Ok(()),
        }
    };
    same("value", o.value.as_deref(), &case.value)?;
    same("stdout", Some(&o.stdout), &case.stdout)?;
    same("stderr", Some(&o.stderr), &case.stderr)?;
    let e = o.error.as_ref();
    same("error class", e.map(|e| e.class.as_str()), &case.class)?;
    if let Some(m) = &case.message
        && !e.is_some_and(|e| e.message.contains(m.as_str()))
    {
        return Err(format!(
            "error message {:?} does not contain {m:?}",
            e.map(|e| &e.message)
        ));
    }
    let num = |what: &str, got: Option<i64>, want: Option<i64>| -> Verdict {
        match want {
            Some(w) if got != Some(w) => Err(format!("{what} {got:?}, expected {w}")),
            _ => Ok(()),
        }
    };
    num(
        "line",
        e.and_then(|e| e.line).map(i64::from),
        case.line.map(i64::from),
    )?;
    num(
        "column",
        e.and_then(|e| e.column).map(i64::from),
        case.column.map(i64::from),
    )?;
    num(
        "exit code",
        e.and_then(|e| e.exit_code).map(i64::from),
        case.exit_code.map(i64::from),
    )?;
    if let Some(n) = case.min_frames {
        let got = e.map_or(0, |e| e.stack.len());
        if got < n {
            return Err(format!("{got} stack frames, expected at least {n}"));
        }
    }
    Ok(())
}
