//! [`Llmos`]: the one library path from "a user names an artifact" to an
//! [`Outcome`]. Every front end (the CLI, and the batch runner, sessions and
//! the server to come) parses its own input, calls this facade, and renders
//! what it returns; none holds policy of its own.
//!
//! The path, in order:
//! 1. [`Llmos::boot`]: config, verified volumes, runtime (see [`crate::boot`]).
//! 2. [`Llmos::artifact`]: resolve what the user named (`system:/x`,
//!    `user:/x`, a path, or inline source) into an [`Artifact`] with its
//!    language, storage id and trust [`Tier`]. The tier comes from where the
//!    artifact is and whether the system volume vouches for its bytes, never
//!    from the artifact itself.
//! 3. [`Llmos::limits`]: the limit policy. Sandboxed artifacts: flags, then
//!    the environment (`LLMOS_FUEL`, `LLMOS_MEMORY`, `LLMOS_TIMEOUT`,
//!    `LLMOS_OUTPUT_LIMIT`), then `llmos.toml`, then built-in defaults.
//!    Untrusted artifacts: the built-in defaults, which overrides may only
//!    tighten. Trusted artifacts: the trusted limits (un-metered).
//! 4. [`Llmos::run`] or [`Llmos::fix`]: one sandboxed run, or the supervisor's
//!    repair loop (LLM provider resolved by [`Llmos::llm_provider`]: flags,
//!    then the environment, then `llmos.toml`'s `[llm]`). Repairs always run
//!    under the untrusted tier's limits, and a trusted artifact's repairs
//!    never run in its storage namespace.
//! 5. [`Llmos::save_outputs`]: the run's pictures and documents as files.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::boot::{BootOptions, BootSink, Booted, Stage};
use crate::config::Config;
use crate::engine::{RunRequest, Runtime};
use crate::error::HostError;
use crate::language::{Languages, Manifest};
use crate::limits::{self, Limits};
use crate::outcome::Outcome;
use crate::session::{Cell, Journal, Replayed, Session, SessionDir};
use crate::volume::{self, Location, SystemVolume};

/// A booted kernel: the facade every front end calls.
pub struct Llmos {
    config: Config,
    runtime: Runtime,
    system: SystemVolume,
    data_dir: PathBuf,
    stages: Vec<(Stage, f64, String)>,
    boot_ms: f64,
}

/// A language as `llmos languages` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LanguageStatus {
    /// Canonical name.
    pub name: String,
    /// How people write it.
    pub display_name: String,
    /// File extensions.
    pub extensions: Vec<String>,
    /// Optional parts of the contract it implements.
    pub capabilities: Vec<String>,
    /// One line.
    pub description: String,
    /// The guest's own version string.
    pub version: Option<String>,
    /// `ready`, `component_missing`, `failed` (does not load) or
    /// `check_failed` (a manifest check returned something else).
    pub status: String,
    /// Why, when not ready.
    pub reason: Option<String>,
}

/// How far an artifact is trusted, from where it comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// LLM-generated, inline, or `--untrusted`: strict limits, fuel-metered,
    /// eligible for refinement.
    Untrusted,
    /// A user's file: sandboxed, fuel-metered, the user's limits.
    Sandboxed,
    /// A hash-verified file of the system volume: the un-metered engine
    /// (epoch deadline only) with larger limits.
    Trusted,
}

impl Tier {
    /// `untrusted`, `sandboxed` or `trusted`.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Untrusted => "untrusted",
            Tier::Sandboxed => "sandboxed",
            Tier::Trusted => "trusted",
        }
    }
}

/// What a user named as the artifact to run.
#[derive(Debug, Clone)]
pub enum ArtifactSource {
    /// `system:/path`, `user:/path` or a filesystem path.
    Named(String),
    /// Source text given directly (e.g. by an agent or an API call): always
    /// [`Tier::Untrusted`].
    Inline {
        /// Language name or alias.
        language: String,
        /// The program.
        source: String,
        /// File name shown in stack traces (default: `artifact.<ext>`).
        name: Option<String>,
    },
}

/// Choices about an artifact that are not in its source.
#[derive(Debug, Clone, Default)]
pub struct ArtifactOptions {
    /// Language name or alias; by default from the file extension.
    pub language: Option<String>,
    /// Storage namespace and log name; by default the canonical path (or
    /// `inline` for inline source).
    pub id: Option<String>,
    /// Treat the artifact as untrusted whatever its location.
    pub untrusted: bool,
}

/// A resolved artifact, ready to run.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// The language's canonical name.
    pub language: String,
    /// The program text.
    pub source: String,
    /// File name shown in the artifact's stack traces.
    pub filename: String,
    /// Storage namespace and log name.
    pub id: String,
    /// How far it is trusted.
    pub tier: Tier,
    /// Where it was read from (`None` for inline source).
    pub path: Option<PathBuf>,
}

impl Artifact {
    /// Whether it is a component artifact (`app.wasm`), not source text.
    pub fn is_component(&self) -> bool {
        self.language == crate::component::LANGUAGE && self.path.is_some()
    }
}

/// Limit values asked for by a user, each overriding the policy's value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LimitOverrides {
    /// `Some(None)`: un-metered (ignored for untrusted artifacts).
    pub fuel: Option<Option<u64>>,
    /// Linear memory, bytes.
    pub memory_bytes: Option<u64>,
    /// Wall clock.
    pub timeout: Option<Duration>,
    /// Captured bytes per stream.
    pub output_bytes: Option<usize>,
    /// Host-side bytes the run's kernel calls may keep.
    pub host_memory_bytes: Option<u64>,
}

impl LimitOverrides {
    /// Parse the textual forms used by flags, environment variables and
    /// config files: fuel `N` or `none`, sizes like `128MiB`, durations like
    /// `10s`.
    pub fn parse(
        fuel: Option<&str>,
        memory: Option<&str>,
        timeout: Option<&str>,
        output: Option<&str>,
    ) -> Result<Self, HostError> {
        let fuel = fuel.map(parse_fuel).transpose()?;
        let memory_bytes = memory.map(limits::parse_size).transpose()?;
        let timeout = timeout.map(limits::parse_duration).transpose()?;
        let output_bytes = output
            .map(|o| {
                usize::try_from(limits::parse_size(o)?).map_err(|_| {
                    HostError::InvalidLimit(format!("output limit `{o}` is too large"))
                })
            })
            .transpose()?;
        Ok(LimitOverrides {
            fuel,
            memory_bytes,
            timeout,
            output_bytes,
            host_memory_bytes: None,
        })
    }

    /// The overrides in `LLMOS_FUEL`, `LLMOS_MEMORY`, `LLMOS_TIMEOUT`,
    /// `LLMOS_OUTPUT_LIMIT`.
    pub fn from_env() -> Result<Self, HostError> {
        let var = |n: &str| std::env::var(n).ok().filter(|v| !v.trim().is_empty());
        let (f, m, t, o) = (
            var("LLMOS_FUEL"),
            var("LLMOS_MEMORY"),
            var("LLMOS_TIMEOUT"),
            var("LLMOS_OUTPUT_LIMIT"),
        );
        Self::parse(f.as_deref(), m.as_deref(), t.as_deref(), o.as_deref())
            .map_err(|e| HostError::InvalidLimit(format!("in the environment: {e}")))
    }

    /// `self`, with `lower`'s values where `self` has none.
    pub fn or(self, lower: LimitOverrides) -> LimitOverrides {
        LimitOverrides {
            fuel: self.fuel.or(lower.fuel),
            memory_bytes: self.memory_bytes.or(lower.memory_bytes),
            timeout: self.timeout.or(lower.timeout),
            output_bytes: self.output_bytes.or(lower.output_bytes),
            host_memory_bytes: self.host_memory_bytes.or(lower.host_memory_bytes),
        }
    }

    /// `base` with these values set.
    pub fn apply(&self, mut base: Limits) -> Limits {
        if let Some(f) = self.fuel {
            base.fuel = f;
        }
        if let Some(m) = self.memory_bytes {
            base.memory_bytes = m;
        }
        if let Some(t) = self.timeout {
            base.timeout = t;
        }
        if let Some(o) = self.output_bytes {
            base.output_bytes = o;
        }
        if let Some(h) = self.host_memory_bytes {
            base.host_memory_bytes = h;
        }
        base
    }

    /// `base`, where these values may only tighten it (never un-metered).
    pub fn tighten(&self, base: Limits) -> Limits {
        let asked = self.apply(base.clone());
        Limits {
            fuel: match (asked.fuel, base.fuel) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (_, b) => b,
            },
            memory_bytes: asked.memory_bytes.min(base.memory_bytes),
            timeout: asked.timeout.min(base.timeout),
            output_bytes: asked.output_bytes.min(base.output_bytes),
            log_records: asked.log_records.min(base.log_records),
            host_memory_bytes: asked.host_memory_bytes.min(base.host_memory_bytes),
        }
    }
}

/// Fuel as written by a user: a number (underscores allowed) or `none`.
pub fn parse_fuel(text: &str) -> Result<Option<u64>, HostError> {
    match text.trim().to_ascii_lowercase().as_str() {
        "none" | "unlimited" | "off" => Ok(None),
        n => n.replace('_', "").parse().map(Some).map_err(|_| {
            HostError::InvalidLimit(format!("fuel `{text}` is not a number (or `none`)"))
        }),
    }
}

/// How to run an artifact.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Limits asked for (applied by the tier's policy, see [`Llmos::limits`]).
    pub limits: LimitOverrides,
    /// Seed for the guest's randomness (reproducible runs).
    pub seed: Option<u64>,
    /// What the artifact must print on stdout (else `wrong_output`).
    pub expect_stdout: Option<String>,
    /// A test program run after it in the same interpreter state (else
    /// `test_failed`).
    pub test: Option<crate::engine::TestProgram>,
    /// Publish the run's fuel and memory here while it runs (a live
    /// display, e.g. the dashboard's active runs).
    pub live: Option<std::sync::Arc<crate::LiveUsage>>,
}

impl Llmos {
    /// Boot the kernel, reporting each stage to `on_event`. Awaitable inside
    /// any tokio runtime; blocking work runs on blocking threads.
    pub async fn boot(opts: &BootOptions, on_event: BootSink<'_>) -> Result<Llmos, HostError> {
        Ok(Llmos::from_booted(crate::boot::boot(opts, on_event).await?))
    }

    fn from_booted(b: Booted) -> Llmos {
        Llmos {
            config: b.config,
            runtime: b.runtime,
            system: b.system,
            data_dir: b.data_dir,
            stages: b.stages,
            boot_ms: b.boot_ms,
        }
    }

    /// The runtime: engines and prepared languages.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The configuration file's contents.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The verified system volume.
    pub fn system(&self) -> &SystemVolume {
        &self.system
    }

    /// The user data directory (storage, outputs, `user:/` artifacts).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// (stage, milliseconds, detail) of each boot stage, in order.
    pub fn stages(&self) -> &[(Stage, f64, String)] {
        &self.stages
    }

    /// How long boot took.
    pub fn boot_ms(&self) -> f64 {
        self.boot_ms
    }

    /// The languages of the system volume.
    pub fn languages(&self) -> &Languages {
        self.runtime.languages()
    }

    /// A language's version, capabilities and health: whether its component
    /// exists, loads and passes its manifest's checks.
    pub async fn language_status(&self, name: &str) -> Result<LanguageStatus, HostError> {
        let m = self.language(name)?.clone();
        let mut st = LanguageStatus {
            name: m.name.clone(),
            display_name: m.display_name().to_string(),
            extensions: m.extensions.clone(),
            capabilities: m
                .capabilities
                .iter()
                .map(|c| c.as_str().to_string())
                .collect(),
            description: m.description.clone(),
            version: None,
            status: "ready".into(),
            reason: None,
        };
        let component = self.runtime.config().components_dir.join(&m.component);
        if !component.is_file() {
            st.status = "component_missing".into();
            st.reason = Some(format!(
                "{} does not exist (make guests)",
                component.display()
            ));
            return Ok(st);
        }
        match self.runtime.describe(&m.name).await {
            Ok(info) => st.version = Some(info.version),
            Err(e) => {
                st.status = "failed".into();
                st.reason = Some(e.to_string());
                return Ok(st);
            }
        }
        for c in [&m.check.instance, &m.check.stdlib].into_iter().flatten() {
            let o = self
                .runtime
                .run(&RunRequest::new(&m.name, &c.source))
                .await?;
            if o.value.as_deref() != Some(c.value.as_str()) {
                st.status = "check_failed".into();
                st.reason = Some(format!(
                    "`{}` returned {:?}, not {} ({})",
                    c.source.lines().next().unwrap_or(""),
                    o.value,
                    c.value,
                    o.summary()
                ));
                break;
            }
        }
        Ok(st)
    }

    /// The kernel API reference of a language, from its stdlib's doc comments.
    pub fn api_reference(&self, language: &str) -> Result<Vec<crate::apiref::ApiEntry>, HostError> {
        let manifest = self.languages().by_name(language)?;
        crate::apiref::reference(manifest, self.system.root())
    }

    /// Resolve what the user named into an artifact: its source, language,
    /// id and tier.
    pub fn artifact(
        &self,
        source: ArtifactSource,
        opts: &ArtifactOptions,
    ) -> Result<Artifact, HostError> {
        let id = match &opts.id {
            Some(id) if id.trim().is_empty() => {
                return Err(HostError::Usage("an artifact id must not be empty".into()));
            }
            other => other.clone(),
        };
        match source {
            ArtifactSource::Inline {
                language,
                source,
                name,
            } => {
                let manifest = self.language(opts.language.as_deref().unwrap_or(&language))?;
                Ok(Artifact {
                    language: manifest.name.clone(),
                    filename: name.unwrap_or_else(|| manifest.default_file_name()),
                    id: id.unwrap_or_else(|| "inline".into()),
                    tier: Tier::Untrusted,
                    path: None,
                    source,
                })
            }
            ArtifactSource::Named(name) => {
                let location = volume::resolve(&name, self.system.root(), &self.data_dir)?;
                let path = location.path().to_path_buf();
                if crate::component::is_component_path(&path) && opts.language.is_none() {
                    return self.component_artifact(location, id, opts);
                }
                let bytes = std::fs::read(&path).map_err(|e| HostError::io(&path, e))?;
                let source = String::from_utf8(bytes).map_err(|_| {
                    HostError::io(
                        &path,
                        std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"),
                    )
                })?;
                // The tier comes from where the artifact is and whether the
                // system volume vouches for these exact bytes.
                let tier = if opts.untrusted {
                    Tier::Untrusted
                } else if self.system.verifies(&path, source.as_bytes()) {
                    Tier::Trusted
                } else {
                    Tier::Sandboxed
                };
                if matches!(location, Location::System(_)) && tier == Tier::Sandboxed {
                    return Err(HostError::Volume {
                        file: path,
                        reason: "not a verified file of the system volume".into(),
                    });
                }
                let manifest = match &opts.language {
                    Some(l) => self.language(l)?,
                    None => self.languages().for_path(&path)?,
                };
                let filename = path
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_else(|| manifest.default_file_name());
                let id = id.unwrap_or_else(|| {
                    std::fs::canonicalize(&path)
                        .unwrap_or_else(|_| path.clone())
                        .display()
                        .to_string()
                });
                Ok(Artifact {
                    language: manifest.name.clone(),
                    source,
                    filename,
                    id,
                    tier,
                    path: Some(path),
                })
            }
        }
    }

    fn language(&self, name: &str) -> Result<&Manifest, HostError> {
        self.languages().by_name(name)
    }

    /// A component artifact (`app.wasm`): checked when it is loaded, run as
    /// a command (see [`crate::component`]).
    fn component_artifact(
        &self,
        location: Location,
        id: Option<String>,
        opts: &ArtifactOptions,
    ) -> Result<Artifact, HostError> {
        let path = location.path().to_path_buf();
        let bytes = std::fs::read(&path).map_err(|e| HostError::io(&path, e))?;
        let tier = if opts.untrusted {
            Tier::Untrusted
        } else if self.system.verifies(&path, &bytes) {
            Tier::Trusted
        } else {
            Tier::Sandboxed
        };
        if matches!(location, Location::System(_)) && tier == Tier::Sandboxed {
            return Err(HostError::Volume {
                file: path,
                reason: "not a verified file of the system volume".into(),
            });
        }
        let filename = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let id = id.unwrap_or_else(|| {
            std::fs::canonicalize(&path)
                .unwrap_or_else(|_| path.clone())
                .display()
                .to_string()
        });
        Ok(Artifact {
            language: crate::component::LANGUAGE.into(),
            source: String::new(),
            filename,
            id,
            tier,
            path: Some(path),
        })
    }

    /// The limits of a run of a `language` artifact of `tier`, with
    /// `overrides` asked for (see the module docs for the precedence; the
    /// language's manifest may move the built-in defaults).
    pub fn limits(
        &self,
        tier: Tier,
        language: &str,
        overrides: &LimitOverrides,
    ) -> Result<Limits, HostError> {
        let defaults = self.language_defaults(language)?;
        let l = match tier {
            Tier::Trusted => limits::trusted(),
            Tier::Untrusted => overrides.tighten(defaults),
            Tier::Sandboxed => {
                let file = self.config.limits(defaults)?;
                overrides
                    .clone()
                    .or(LimitOverrides::from_env()?)
                    .apply(file)
            }
        };
        l.validate()?;
        Ok(l)
    }

    /// The built-in limits with `language`'s manifest defaults applied.
    pub fn language_defaults(&self, language: &str) -> Result<Limits, HostError> {
        if language == crate::component::LANGUAGE {
            return Ok(Limits::default());
        }
        let m = self.language(language)?;
        let asked = LimitOverrides::parse(
            m.limits.fuel.as_deref(),
            m.limits.memory.as_deref(),
            m.limits.timeout.as_deref(),
            None,
        )?;
        Ok(asked.apply(Limits::default()))
    }

    /// The request for one run of `artifact`, limits decided by policy.
    pub fn request(&self, artifact: &Artifact, opts: &RunOptions) -> Result<RunRequest, HostError> {
        Ok(RunRequest {
            language: artifact.language.clone(),
            source: artifact.source.clone(),
            filename: artifact.filename.clone(),
            artifact_id: artifact.id.clone(),
            limits: self.limits(artifact.tier, &artifact.language, &opts.limits)?,
            seed: opts.seed,
            inputs: None,
            expect_stdout: opts.expect_stdout.clone(),
            test: opts.test.clone(),
            trace_lines: false,
            live: opts.live.clone(),
            component: artifact
                .is_component()
                .then(|| artifact.path.clone())
                .flatten(),
        })
    }

    /// Run `artifact` once in a fresh sandbox.
    ///
    /// `Err` only for host problems; everything the artifact does, including
    /// every limit it hits, is an `Ok(Outcome)`.
    pub async fn run(&self, artifact: &Artifact, opts: &RunOptions) -> Result<Outcome, HostError> {
        let req = self.request(artifact, opts)?;
        let outcome = self.runtime.run(&req).await?;
        // Say where a runaway artifact was, where the interpreter could not.
        Ok(self.runtime.locate(&req, outcome).await)
    }

    /// Where a run's outputs go by default: `<data dir>/outputs/<artifact>`.
    pub fn output_dir(&self, artifact: &Artifact) -> PathBuf {
        self.data_dir
            .join("outputs")
            .join(output_dir_name(&artifact.id))
    }

    /// Write the outcome's pictures and documents as files in `dir` (default
    /// [`Llmos::output_dir`], cleaned of earlier runs' outputs; a directory
    /// the user named is only added to), recording each file in the outcome.
    /// Returns the directory.
    pub fn save_outputs(
        &self,
        outcome: &mut Outcome,
        artifact: &Artifact,
        dir: Option<&Path>,
    ) -> Result<PathBuf, HostError> {
        self.save_outputs_for(outcome, &artifact.id, dir)
    }

    /// [`Llmos::save_outputs`] for the outputs of anything with an id (an
    /// artifact, a session).
    pub fn save_outputs_for(
        &self,
        outcome: &mut Outcome,
        id: &str,
        dir: Option<&Path>,
    ) -> Result<PathBuf, HostError> {
        let (dir, clean) = match dir {
            Some(d) => (d.to_path_buf(), false),
            None => (
                self.data_dir.join("outputs").join(output_dir_name(id)),
                true,
            ),
        };
        if !outcome.outputs.is_empty() {
            crate::outputs::write_files(&mut outcome.outputs, &dir, clean)
                .map_err(|e| HostError::io(&dir, e))?;
        }
        Ok(dir)
    }
}

/// Sessions and snapshots (see [`crate::session`]).
impl Llmos {
    /// The sessions kept between commands, in `<data dir>/sessions`.
    pub fn sessions(&self) -> SessionDir {
        SessionDir::new(self.data_dir.join("sessions"))
    }

    /// An empty journal for a new session named `name` in `language`
    /// (default [`crate::session::DEFAULT_LANGUAGE`]), its cells in the
    /// session's own storage namespace: the user's limits (sandboxed), or
    /// the strict ones when `untrusted` (cells written by a model).
    pub fn new_session(
        &self,
        language: Option<&str>,
        name: &str,
        untrusted: bool,
    ) -> Result<Journal, HostError> {
        crate::session::check_name(name)?;
        let manifest = self.language(language.unwrap_or(crate::session::DEFAULT_LANGUAGE))?;
        let id = crate::session::namespace(name);
        let tier = if untrusted {
            Tier::Untrusted
        } else {
            Tier::Sandboxed
        };
        Ok(Journal::new(&manifest.name, &id, tier))
    }

    /// A live session over `journal`, its cells replayed (and checked).
    pub async fn open_session(&self, journal: Journal) -> Result<(Session, Replayed), HostError> {
        Session::open(&self.runtime, journal).await
    }

    /// The limits of a cell of a session of `tier`: the policy's, which must
    /// be fuel-metered.
    pub fn cell_limits(
        &self,
        tier: Tier,
        language: &str,
        overrides: &LimitOverrides,
    ) -> Result<Limits, HostError> {
        let mut limits = self.limits(tier, language, overrides)?;
        if limits.fuel.is_none() {
            if overrides.fuel == Some(None) {
                return Err(HostError::Session(
                    "session cells are fuel-metered: give a fuel limit, not `none`".into(),
                ));
            }
            limits.fuel = Some(limits::DEFAULT_FUEL);
        }
        Ok(limits)
    }

    /// Run `artifact` from a snapshot: a session started from `snapshot`'s
    /// cells, with the artifact as its next cell, under the artifact's
    /// limits and in its storage namespace. Nothing is kept afterwards.
    pub async fn run_from(
        &self,
        snapshot: Journal,
        artifact: &Artifact,
        opts: &RunOptions,
    ) -> Result<Outcome, HostError> {
        if snapshot.language != artifact.language {
            return Err(HostError::Session(format!(
                "the snapshot is a {} session; the artifact is {}",
                snapshot.language, artifact.language
            )));
        }
        let limits = self.cell_limits(artifact.tier, &artifact.language, &opts.limits)?;
        let mut snapshot = snapshot;
        snapshot.artifact_id = artifact.id.clone();
        snapshot.budget_fuel = None;
        let (mut session, _) = self.open_session(snapshot).await?;
        let cell = session
            .run_cell(Cell {
                source: &artifact.source,
                filename: &artifact.filename,
                limits,
                seed: opts.seed,
            })
            .await?;
        Ok(cell.outcome)
    }
}

/// How hard the supervisor tries to repair a failing artifact.
#[cfg(feature = "supervisor")]
#[derive(Debug, Clone)]
pub struct FixOptions {
    /// Repairs after the first run.
    pub max_attempts: u32,
    /// Fuel across every attempt (default: the run's fuel × (attempts + 1)).
    pub budget_fuel: Option<u64>,
    /// Wall-clock time across every attempt and LLM call (default 5 min).
    pub budget_time: Option<Duration>,
}

#[cfg(feature = "supervisor")]
impl Default for FixOptions {
    fn default() -> Self {
        FixOptions {
            max_attempts: 3,
            budget_fuel: None,
            budget_time: None,
        }
    }
}

#[cfg(feature = "supervisor")]
impl Llmos {
    /// The LLM provider named by `overrides`, else the environment
    /// (`LLMOS_LLM_PROVIDER`, `LLMOS_LLM_URL`, `LLMOS_LLM_MODEL`,
    /// `LLMOS_LLM_TIMEOUT`), else `llmos.toml`'s `[llm]`; `None` when none is
    /// named anywhere.
    pub fn llm_provider(
        &self,
        overrides: &crate::supervisor::llm::LlmOverrides,
    ) -> Result<Option<Box<dyn crate::supervisor::llm::FixProvider>>, HostError> {
        use crate::supervisor::llm::{self, LlmConfig};
        let file = &self.config.llm;
        let lookup = |name: &str| -> Option<String> {
            std::env::var(name)
                .ok()
                .filter(|v| !v.is_empty())
                .or_else(|| match name {
                    llm::ENV_PROVIDER => file.provider.clone(),
                    llm::ENV_URL => file.url.clone(),
                    llm::ENV_MODEL => file.model.clone(),
                    llm::ENV_TIMEOUT => file.timeout.map(|t| t.to_string()),
                    _ => None,
                })
        };
        match LlmConfig::from_lookup(overrides, lookup)
            .map_err(|e| HostError::Usage(e.to_string()))?
        {
            Some(config) => Ok(Some(
                llm::provider(config).map_err(|e| HostError::Usage(e.to_string()))?,
            )),
            None => Ok(None),
        }
    }

    /// Run `artifact` and, while it fails, ask `provider` for a corrected
    /// version and run that, within the budgets of `fix`; without a provider
    /// it runs once. Every repair runs under the untrusted tier's limits
    /// (never the user's loosened ones) and, for a trusted artifact, in a
    /// storage namespace of its own.
    pub async fn fix(
        &self,
        artifact: &Artifact,
        opts: &RunOptions,
        fix: &FixOptions,
        provider: Option<&dyn crate::supervisor::llm::FixProvider>,
        on_event: &(dyn Fn(crate::supervisor::Event<'_>) + Send + Sync),
    ) -> Result<crate::supervisor::Supervised, HostError> {
        use crate::supervisor::{Supervisor, SupervisorConfig};
        if artifact.is_component() {
            return Err(HostError::Usage(
                "a component artifact is compiled code: the supervisor repairs source artifacts only".into(),
            ));
        }
        let req = self.request(artifact, opts)?;
        let mut config = SupervisorConfig {
            max_attempts: fix.max_attempts,
            ..SupervisorConfig::default()
        };
        config.budget_fuel = match (fix.budget_fuel, req.limits.fuel) {
            (Some(b), _) => Some(b),
            (None, Some(f)) => Some(f.saturating_mul(u64::from(fix.max_attempts) + 1)),
            (None, None) => None,
        };
        if let Some(t) = fix.budget_time {
            config.budget_time = t;
        }
        // Repairs run under the untrusted tier's limits (`repair_limits:
        // None` lets the supervisor derive them from the run's: never looser
        // than the defaults, always metered), and a trusted artifact's
        // repairs never touch its storage.
        if artifact.tier == Tier::Trusted {
            config.repair_namespace = Some(format!("{}#repair", artifact.id));
        }
        let supervisor = Supervisor::new(&self.runtime, provider, config)?;
        supervisor.run(&req, on_event).await
    }
}

/// Replaying recorded runs (`llmos replay`).
#[cfg(feature = "supervisor")]
impl Llmos {
    /// Run attempt `number` of `trace` again on its recorded inputs: the
    /// same code, limits, seed, clock readings and storage replies (served
    /// from the record: nothing is written). The result's
    /// `replay_diverged` says if the run asked for anything the record does
    /// not hold.
    pub async fn replay(
        &self,
        trace: &crate::supervisor::trace::Trace,
        number: u32,
    ) -> Result<Outcome, HostError> {
        let bad = |why: String| HostError::Usage(format!("cannot replay attempt {number}: {why}"));
        let attempt = trace
            .attempts
            .iter()
            .find(|a| a.number == number)
            .ok_or_else(|| bad(format!("the trace has {} attempts", trace.attempts.len())))?;
        let code = attempt
            .code
            .clone()
            .ok_or_else(|| bad("it never ran (the LLM's answer was rejected)".into()))?;
        let inputs = attempt
            .outcome
            .as_ref()
            .and_then(|o| o.inputs.clone())
            .ok_or_else(|| bad("the trace has no recorded inputs for it".into()))?;
        if !inputs.replayable() {
            return Err(bad(
                "it read the clocks or storage more often than a record holds".into(),
            ));
        }
        let limits = attempt
            .limits
            .clone()
            .ok_or_else(|| bad("the trace does not record its limits".into()))?;
        let req = RunRequest {
            language: self.language(&trace.language)?.name.clone(),
            source: code,
            filename: trace.artifact.clone(),
            artifact_id: "replay".into(),
            limits,
            seed: None,
            inputs: Some(crate::inputs::Source::Replay(inputs)),
            component: None,
            expect_stdout: None,
            test: None,
            trace_lines: false,
            live: None,
        };
        self.runtime.run(&req).await
    }
}

/// Directory name for an artifact's outputs: readable, unique per id.
fn output_dir_name(artifact_id: &str) -> String {
    let stem = Path::new(artifact_id)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_parse_and_layer() {
        let flags = LimitOverrides::parse(Some("1_000"), None, Some("2s"), None).expect("parse");
        let env = LimitOverrides::parse(Some("5"), Some("64MiB"), None, None).expect("parse");
        let l = flags.or(env).apply(Limits::default());
        assert_eq!(l.fuel, Some(1_000));
        assert_eq!(l.memory_bytes, 64 << 20);
        assert_eq!(l.timeout, Duration::from_secs(2));
        assert!(LimitOverrides::parse(Some("lots"), None, None, None).is_err());
        assert_eq!(parse_fuel("none").ok(), Some(None));
    }

    #[test]
    fn untrusted_limits_only_tighten() {
        let asked = LimitOverrides {
            fuel: Some(None),
            memory_bytes: Some(1 << 40),
            timeout: Some(Duration::from_millis(10)),
            ..Default::default()
        };
        let l = asked.tighten(Limits::default());
        assert_eq!(l.fuel, Limits::default().fuel);
        assert_eq!(l.memory_bytes, Limits::default().memory_bytes);
        assert_eq!(l.timeout, Duration::from_millis(10));
    }

    #[test]
    fn output_dir_names_are_safe_and_distinct() {
        let a = output_dir_name("/x/../y/a b.py");
        assert!(a.starts_with("a_b-"), "{a}");
        assert_ne!(output_dir_name("/1/a.py"), output_dir_name("/2/a.py"));
        assert!(output_dir_name("").starts_with("artifact-"));
    }
}
