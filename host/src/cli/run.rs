//! `llmos run FILE`: run one artifact under limits and report its outcome.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::EXIT_ARTIFACT_FAILED;
use crate::engine::RunRequest;
use crate::error::HostError;
use crate::limits::{self, Limits};
use crate::outcome::{ErrorKind, Outcome};
use crate::volume::{self, Location};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The artifact to run (.js, .mjs, .py).
    pub file: PathBuf,
    /// Language (js, python, ...); by default from the file extension.
    #[arg(long)]
    pub lang: Option<String>,
    /// Fuel budget (deterministic CPU units), or `none` for an un-metered run.
    #[arg(long, value_name = "N")]
    pub fuel: Option<String>,
    /// Memory limit, e.g. 128MiB.
    #[arg(long, value_name = "SIZE")]
    pub memory: Option<String>,
    /// Wall-clock limit, e.g. 10s or 500ms.
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
    /// Limit on captured stdout, stderr and log bytes (each), e.g. 1MiB.
    #[arg(long, value_name = "SIZE")]
    pub output_limit: Option<String>,
    /// Artifact id: names its storage namespace and appears in logs
    /// (default: the artifact's canonical path).
    #[arg(long)]
    pub id: Option<String>,
    /// Directory for the run's outputs (charts, canvases, documents...);
    /// default: <data dir>/outputs/<artifact>.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Seed the guest's randomness (reproducible runs).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Print one JSON object on stdout instead of human output.
    #[arg(long)]
    pub json: bool,
    /// Treat the artifact as untrusted (as if an LLM had just written it):
    /// strict default limits, fuel-metered, whatever its location.
    #[arg(long)]
    pub untrusted: bool,
    /// When the artifact fails, ask an LLM for a fix and retry (see
    /// LLMOS_LLM_PROVIDER, LLMOS_LLM_URL, LLMOS_LLM_MODEL).
    #[arg(long)]
    pub fix: bool,
    /// Repairs to try after the first run.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub max_attempts: u32,
    /// LLM provider: openai (any OpenAI-compatible server) or anthropic.
    #[arg(long)]
    pub provider: Option<String>,
    /// LLM model name.
    #[arg(long)]
    pub model: Option<String>,
    /// LLM API base URL, e.g. http://127.0.0.1:11434/v1.
    #[arg(long, value_name = "URL")]
    pub llm_url: Option<String>,
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

impl RunArgs {
    /// `base` with the limit flags applied.
    fn apply(&self, mut l: Limits) -> Result<Limits, HostError> {
        if let Some(f) = &self.fuel {
            l.fuel = match f.trim().to_ascii_lowercase().as_str() {
                "none" | "unlimited" | "off" => None,
                n => Some(n.replace('_', "").parse().map_err(|_| {
                    HostError::InvalidLimit(format!("--fuel `{f}` is not a number (or `none`)"))
                })?),
            };
        }
        if let Some(m) = &self.memory {
            l.memory_bytes = limits::parse_size(m)?;
        }
        if let Some(t) = &self.timeout {
            l.timeout = limits::parse_duration(t)?;
        }
        if let Some(o) = &self.output_limit {
            l.output_bytes = usize::try_from(limits::parse_size(o)?).map_err(|_| {
                HostError::InvalidLimit(format!("--output-limit `{o}` is too large"))
            })?;
        }
        l.validate()?;
        Ok(l)
    }

    /// The strict limits `base`, where flags may only tighten them (an
    /// untrusted artifact never runs un-metered or with more than `base`).
    fn tighten(&self, base: Limits) -> Result<Limits, HostError> {
        let asked = self.apply(base.clone())?;
        let l = Limits {
            fuel: match (asked.fuel, base.fuel) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (_, b) => b,
            },
            memory_bytes: asked.memory_bytes.min(base.memory_bytes),
            timeout: asked.timeout.min(base.timeout),
            output_bytes: asked.output_bytes.min(base.output_bytes),
            log_records: asked.log_records.min(base.log_records),
            host_memory_bytes: asked.host_memory_bytes.min(base.host_memory_bytes),
        };
        l.validate()?;
        Ok(l)
    }
}

/// How far an artifact is trusted, from where it comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// LLM-generated or `--untrusted`: strict limits, fuel-metered,
    /// eligible for refinement.
    Untrusted,
    /// A user's file: sandboxed, fuel-metered, the user's limits.
    Sandboxed,
    /// A hash-verified file of the system volume: the un-metered engine
    /// (epoch deadline only) with larger limits.
    Trusted,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Untrusted => "untrusted",
            Tier::Sandboxed => "sandboxed",
            Tier::Trusted => "trusted",
        }
    }
}

pub fn run(args: RunArgs, verbose: bool, config: Option<PathBuf>) -> Result<ExitCode, HostError> {
    let show_progress = !args.json || verbose;
    let progress: crate::boot::RuntimeSink =
        std::sync::Arc::new(super::compile_progress(show_progress));
    let kernel = super::boot_quietly(
        crate::boot::BootOptions {
            config,
            languages: Some(Vec::new()), // loaded on first use
            runtime_events: Some(progress),
            ..Default::default()
        },
        verbose,
    )?;
    let runtime = &kernel.runtime;
    let name = args.file.to_string_lossy().into_owned();
    let location = volume::resolve(&name, kernel.system.root(), &kernel.data_dir)?;
    let path = location.path().to_path_buf();
    let source = std::fs::read(&path).map_err(|e| HostError::io(&path, e))?;
    let source = String::from_utf8(source).map_err(|_| {
        HostError::io(
            &path,
            std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"),
        )
    })?;
    // The tier comes from where the artifact is and whether the system
    // volume vouches for its content, never from the artifact itself.
    let tier = if args.untrusted {
        Tier::Untrusted
    } else if kernel.system.verifies(&path, source.as_bytes()) {
        Tier::Trusted
    } else {
        Tier::Sandboxed
    };
    if matches!(location, Location::System(_)) && tier != Tier::Trusted && !args.untrusted {
        return Err(HostError::Volume {
            file: path,
            reason: "not a verified file of the system volume".into(),
        });
    }
    let limits = match tier {
        Tier::Trusted => limits::trusted(),
        Tier::Untrusted => args.tighten(limits::Limits::default())?,
        Tier::Sandboxed => args.apply(kernel.config.limits(limits::Limits::default())?)?,
    };
    let language = match &args.lang {
        Some(l) => runtime.languages().by_name(l)?.name.clone(),
        None => runtime.languages().for_path(&path)?.name.clone(),
    };
    let filename = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| "artifact".into());
    let artifact_id = match &args.id {
        Some(id) if !id.trim().is_empty() => id.clone(),
        Some(_) => return Err(HostError::Usage("--id must not be empty".into())),
        None => std::fs::canonicalize(&path)
            .unwrap_or_else(|_| path.clone())
            .display()
            .to_string(),
    };
    let out_dir = match &args.out {
        Some(dir) => dir.clone(),
        None => kernel
            .data_dir
            .join("outputs")
            .join(output_dir_name(&artifact_id)),
    };
    let req = RunRequest {
        language,
        source,
        artifact_id,
        filename,
        limits,
        seed: args.seed,
    };
    let rt = crate::engine::async_runtime()?;
    let (mut outcome, supervised) = if args.fix || args.trace.is_some() {
        let s = super::fix::supervise(&args, &kernel.config, runtime, &req, &rt)?;
        (s.outcome.clone(), Some(s))
    } else {
        (rt.block_on(runtime.run(&req))?, None)
    };
    if !outcome.outputs.is_empty() {
        // Our own default directory is cleaned of earlier runs' outputs; a
        // directory the user named is only added to.
        // A directory that cannot be written costs the files, never the
        // outcome: it is still reported (outputs then have no `file`).
        if let Err(e) =
            crate::outputs::write_files(&mut outcome.outputs, &out_dir, args.out.is_none())
        {
            eprintln!(
                "llmos: warning: cannot write the outputs to {}: {e}",
                out_dir.display()
            );
        }
    }

    if args.json {
        let mut v = serde_json::to_value(&outcome).map_err(|e| HostError::System {
            what: "cannot serialise the outcome",
            source: std::io::Error::other(e),
        })?;
        if let Some(obj) = v.as_object_mut() {
            obj.insert("file".into(), args.file.display().to_string().into());
            obj.insert("tier".into(), tier.as_str().into());
            if let Some(s) = &supervised {
                obj.insert("supervisor".into(), super::fix::summary_json(s, &args));
            }
        }
        println!("{v}");
    } else {
        let mut shown = req.clone();
        if let Some(s) = &supervised {
            shown.source = s.code.clone();
        }
        print_human(&outcome, &shown, tier);
    }
    Ok(if outcome.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_ARTIFACT_FAILED)
    })
}

fn print_human(o: &Outcome, req: &RunRequest, tier: Tier) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(o.stdout.as_bytes());
    let _ = out.flush();
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(o.stderr.as_bytes());
    let fuel = o
        .fuel_consumed
        .map(|f| format!(", fuel {f}"))
        .unwrap_or_default();
    let facts = format!(
        "{}, {}, {:.1} ms{fuel}, peak memory {:.1} MiB",
        o.language,
        tier.as_str(),
        o.duration_ms,
        o.memory_peak_bytes as f64 / (1 << 20) as f64
    );
    for out in &o.outputs {
        let files: Vec<String> = out
            .items
            .iter()
            .filter_map(|i| i.file.as_ref().map(|f| f.display().to_string()))
            .collect();
        let _ = writeln!(
            err,
            "[output {}] {}{}{}",
            out.index,
            out.summary,
            if files.is_empty() { "" } else { " → " },
            files.join(", ")
        );
    }
    for log in &o.logs {
        let fields: Vec<_> = log.fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(
            err,
            "[{:?}] {} {}",
            log.level,
            log.message,
            fields.join(" ")
        );
    }
    if o.is_ok() {
        if let Some(v) = &o.value {
            let _ = writeln!(err, "=> {v}");
        }
        let _ = writeln!(err, "✓ ok ({facts})");
        return;
    }
    let _ = writeln!(err, "✗ {} ({facts})", o.status);
    let _ = writeln!(err, "  {}", o.summary());
    if let Some(e) = &o.error
        && e.kind != ErrorKind::Exit
    {
        if let (Some(line), col) = (e.line, e.column.unwrap_or(1))
            && let Some(text) = req.source.lines().nth(line.saturating_sub(1) as usize)
        {
            let _ = writeln!(err, "  {line:>4} | {text}");
            let pad = " ".repeat(col.saturating_sub(1) as usize);
            let _ = writeln!(err, "       | {pad}^");
        }
        for f in e.stack.iter().rev() {
            let _ = writeln!(
                err,
                "    at {} ({}:{}:{})",
                f.function, f.file, f.line, f.column
            );
        }
    }
}

/// Directory name for an artifact's outputs: readable, unique per id.
fn output_dir_name(artifact_id: &str) -> String {
    let stem = std::path::Path::new(artifact_id)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    let hash = xxhash_rust::xxh3::xxh3_64(artifact_id.as_bytes());
    format!(
        "{}-{:08x}",
        if stem.is_empty() { "artifact" } else { &stem },
        hash as u32
    )
}
