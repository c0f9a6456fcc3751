//! `llmos run FILE`: parse the flags, hand the artifact to the facade, print
//! the outcome. No policy lives here: limits, tiers and providers are the
//! facade's.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::{EXIT_ARTIFACT_FAILED, terminal};
use llmos::outcome::{ErrorKind, Outcome};
use llmos::{ArtifactOptions, ArtifactSource, HostError, LimitOverrides, RunOptions, Tier};

/// The limit flags of `llmos run` and `llmos batch` (per run, per job).
#[derive(Debug, Clone, Args)]
pub struct LimitArgs {
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
}

impl LimitArgs {
    /// The overrides these flags ask for (checked).
    pub fn overrides(&self) -> Result<LimitOverrides, HostError> {
        LimitOverrides::parse(
            self.fuel.as_deref(),
            self.memory.as_deref(),
            self.timeout.as_deref(),
            self.output_limit.as_deref(),
        )
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The artifact to run: a file, system:/path, user:/path, or `-` for
    /// source on stdin (untrusted; needs --lang).
    pub file: PathBuf,
    /// Language (js, python, ...); by default from the file extension.
    #[arg(long)]
    pub lang: Option<String>,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Artifact id: names its storage namespace and appears in logs
    /// (default: the artifact's canonical path).
    #[arg(long)]
    pub id: Option<String>,
    /// Directory for the run's outputs (charts, canvases, documents...);
    /// default: <data dir>/outputs/<artifact>.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Seed the guest's randomness and clocks: the run is deterministic
    /// (same outcome, same fuel, every time).
    #[arg(long)]
    pub seed: Option<u64>,
    /// A file with the exact stdout the artifact must print; a run that
    /// prints anything else is `wrong_output` (with a diff), and `--fix`
    /// repairs it.
    #[arg(long, value_name = "FILE")]
    pub expect_stdout: Option<PathBuf>,
    /// A test program in the artifact's language, run after the artifact in
    /// the same interpreter state; if it fails the run is `test_failed`,
    /// and `--fix` repairs the artifact (never the test).
    #[arg(long, value_name = "FILE")]
    pub test: Option<PathBuf>,
    /// Start from a snapshot (`llmos snapshot create`): the artifact runs as
    /// the next cell of the snapshot's session.
    #[arg(long, value_name = "SNAPSHOT", conflicts_with_all = ["fix", "trace"])]
    pub from: Option<PathBuf>,
    /// Print one JSON object on stdout instead of human output.
    #[arg(long)]
    pub json: bool,
    /// Treat the artifact as untrusted (as if an LLM had just written it):
    /// strict default limits, fuel-metered, whatever its location.
    #[arg(long)]
    pub untrusted: bool,
    /// Self-correction (`--fix` and its options).
    #[command(flatten)]
    pub repair: super::fix::FixArgs,
}

impl RunArgs {
    fn run_options(&self) -> Result<RunOptions, HostError> {
        let limits = self.limits.overrides()?;
        let read = |p: &PathBuf| std::fs::read_to_string(p).map_err(|e| HostError::io(p, e));
        Ok(RunOptions {
            limits,
            seed: self.seed,
            expect_stdout: self.expect_stdout.as_ref().map(read).transpose()?,
            test: match &self.test {
                Some(p) => Some(llmos::engine::TestProgram {
                    source: read(p)?,
                    filename: p
                        .file_name()
                        .map(|f| f.to_string_lossy().into_owned())
                        .unwrap_or_else(|| "test".into()),
                }),
                None => None,
            },
            live: None,
        })
    }
}

pub fn run(args: RunArgs, verbose: bool, config: Option<PathBuf>) -> Result<ExitCode, HostError> {
    let rt = super::async_runtime()?;
    let code = rt.block_on(run_async(args, verbose, config));
    super::leave(rt);
    code
}

async fn run_async(
    args: RunArgs,
    verbose: bool,
    config: Option<PathBuf>,
) -> Result<ExitCode, HostError> {
    let show_progress = !args.json || verbose;
    let llmos = super::boot_lazy(config, verbose, show_progress).await?;
    let source = if args.file.as_os_str() == "-" {
        let Some(language) = args.lang.clone() else {
            return Err(HostError::Usage(
                "`llmos run -` reads source from stdin and needs --lang".into(),
            ));
        };
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .map_err(|e| HostError::io("<stdin>", e))?;
        ArtifactSource::Inline {
            language,
            source: text,
            name: None,
        }
    } else {
        ArtifactSource::Named(args.file.to_string_lossy().into_owned())
    };
    let artifact = llmos.artifact(
        source,
        &ArtifactOptions {
            language: args.lang.clone(),
            id: args.id.clone(),
            untrusted: args.untrusted,
        },
    )?;
    let opts = args.run_options()?;
    let (mut outcome, supervised) = if let Some(from) = &args.from {
        let snapshot = llmos::Journal::read(from)?;
        (llmos.run_from(snapshot, &artifact, &opts).await?, None)
    } else if args.repair.fix || args.repair.trace.is_some() {
        let s = super::fix::supervise(&args.repair, !args.json, &llmos, &artifact, &opts).await?;
        (s.outcome.clone(), Some(s))
    } else {
        (llmos.run(&artifact, &opts).await?, None)
    };
    // A directory that cannot be written costs the files, never the outcome:
    // it is still reported (outputs then have no `file`).
    if let Err(e) = llmos.save_outputs(&mut outcome, &artifact, args.out.as_deref()) {
        errln!("llmos: warning: cannot write the outputs: {e}");
    }

    if args.json {
        let mut v = serde_json::to_value(&outcome).map_err(|e| HostError::System {
            what: "cannot serialise the outcome",
            source: std::io::Error::other(e),
        })?;
        if let Some(obj) = v.as_object_mut() {
            obj.insert("file".into(), args.file.display().to_string().into());
            obj.insert("tier".into(), artifact.tier.as_str().into());
            if let Some(s) = &supervised {
                obj.insert(
                    "supervisor".into(),
                    super::fix::summary_json(s, &args.repair),
                );
            }
        }
        outln!("{v}");
    } else {
        let source = match &supervised {
            Some(s) => s.code.as_str(),
            None => artifact.source.as_str(),
        };
        print_human(&outcome, source, artifact.tier);
    }
    super::leave(llmos);
    Ok(if outcome.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_ARTIFACT_FAILED)
    })
}

/// The outcome for a person: the artifact's stdout on stdout, the rest on
/// stderr. Guest text in llmos's own lines (values, errors, logs, summaries)
/// always goes through [`terminal`]; the artifact's own stdout and stderr
/// are cleaned when they go to a terminal and passed through byte for byte
/// when redirected (`llmos run x.py > data.csv`).
pub(super) fn print_human(o: &Outcome, source: &str, tier: Tier) {
    use std::io::IsTerminal;
    let stream = |text: &str, tty: bool| {
        if tty {
            terminal::clean(text)
        } else {
            text.to_string()
        }
    };
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(stream(&o.stdout, out.is_terminal()).as_bytes());
    let _ = out.flush();
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(stream(&o.stderr, err.is_terminal()).as_bytes());
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
            terminal::line(&out.summary),
            if files.is_empty() { "" } else { " → " },
            files.join(", ")
        );
    }
    for log in &o.logs {
        let fields: Vec<_> = log
            .fields
            .iter()
            .map(|(k, v)| format!("{}={}", terminal::line(k), terminal::line(v)))
            .collect();
        let _ = writeln!(
            err,
            "[{:?}] {} {}",
            log.level,
            terminal::line(&log.message),
            fields.join(" ")
        );
    }
    if o.is_ok() {
        if let Some(v) = &o.value {
            let _ = writeln!(err, "=> {}", terminal::clean(v));
        }
        let _ = writeln!(err, "✓ ok ({facts})");
        return;
    }
    let _ = writeln!(err, "✗ {} ({facts})", o.status);
    let _ = writeln!(err, "  {}", terminal::clean(&o.summary()));
    if let Some(d) = &o.diff {
        let _ = writeln!(err, "  expected (-) vs actual (+):");
        for l in d.lines() {
            let _ = writeln!(err, "    {}", terminal::line(l));
        }
    }
    if let Some(e) = o.test.as_ref().and_then(|t| t.error.as_ref()) {
        for f in e.stack.iter().rev() {
            let _ = writeln!(
                err,
                "    at {} ({}:{}:{})",
                terminal::line(&f.function),
                terminal::line(&f.file),
                f.line,
                f.column
            );
        }
        return;
    }
    if let Some(e) = &o.error
        && e.kind != ErrorKind::Exit
    {
        if let Some(line) = e.line
            && let Some(text) = source.lines().nth(line.saturating_sub(1) as usize)
        {
            let text = terminal::line(text);
            let _ = writeln!(err, "  {line:>4} | {text}");
            // The caret stays under the line shown: a column past its end
            // (or absurdly large) is clamped to it.
            let col = e.column.unwrap_or(1).saturating_sub(1) as usize;
            let pad = " ".repeat(col.min(text.chars().count()));
            let _ = writeln!(err, "       | {pad}^");
        }
        for f in e.stack.iter().rev() {
            let _ = writeln!(
                err,
                "    at {} ({}:{}:{})",
                terminal::line(&f.function),
                terminal::line(&f.file),
                f.line,
                f.column
            );
        }
    }
}
