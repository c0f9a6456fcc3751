//! Booting the kernel: every command starts here.
//!
//! Stages, each reported as events (started, progress, done with its time):
//! 1. **initialising system**: the config file, the data directories;
//! 2. **mounting volumes**: the system volume verified against its
//!    SHA-256 manifest, the user volume (data directory) created;
//! 3. **loading kernel runtime**: the engine, and each language's component
//!    deserialized from the precompiled cache (or compiled, with progress,
//!    on first boot or after an upgrade), languages in parallel;
//! 4. **initialising language environments**: a first instance of each
//!    language created and checked (the manifest's `check.instance`);
//! 5. **loading standard library**: each language's kernel standard library
//!    and init scripts (in the components' snapshots) checked
//!    (`check.stdlib`);
//! 6. **system ready**.
//!
//! Stages 4 and 5 do not depend on each other and run concurrently, as do
//! the language loads of stage 3. Nothing waits for anything but real work.
//!
//! A check that passed is not run again while nothing it depends on has
//! changed: `<cache dir>/boot-checks` records a key per passed check over
//! everything that decides its result (the check's program and expected
//! value, the precompiled entry it ran on and that entry's checksum, the
//! verified system volume's manifest, the `llmos` executable's identity and
//! the versions). Any change to one of them runs the check again;
//! [`BootOptions::recheck`] (`llmos boot --recheck`) always runs them.
//!
//! Boot is an `async fn` that can be awaited inside any tokio application:
//! blocking work (verifying the volume, compiling or deserializing
//! components) runs on tokio's blocking threads, never on an async worker.

use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;

use crate::config::Config;
use crate::engine::{Prepared, RunRequest, Runtime, RuntimeConfig, RuntimeEvent};
use crate::error::HostError;
use crate::language::Check;
use crate::limits::Quotas;
use crate::volume::{SystemVolume, USER_ARTIFACTS};

/// A boot stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The config file and the data directories.
    System,
    /// The system volume verified, the user volume created.
    Volumes,
    /// Engines and language components loaded.
    Runtime,
    /// A first instance of each language checked.
    Languages,
    /// Each language's kernel standard library checked.
    Stdlib,
    /// Done.
    Ready,
}

impl Stage {
    /// What the boot screen shows for the stage.
    pub fn title(self) -> &'static str {
        match self {
            Stage::System => "initialising system",
            Stage::Volumes => "mounting volumes",
            Stage::Runtime => "loading kernel runtime",
            Stage::Languages => "initialising language environments",
            Stage::Stdlib => "loading standard library",
            Stage::Ready => "system ready",
        }
    }
}

/// Something that happened during boot.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[allow(missing_docs)] // the fields are named for what they are
pub enum BootEvent {
    /// A stage began.
    Started { stage: Stage },
    /// Something happened inside a stage (e.g. a component compiling).
    Progress { stage: Stage, detail: String },
    /// A stage finished after `ms` milliseconds.
    Done {
        stage: Stage,
        ms: f64,
        detail: String,
    },
    /// A stage failed; boot stops.
    Failed { stage: Stage, error: String },
}

/// Receives the runtime's own events (component compilation progress).
pub type RuntimeSink = std::sync::Arc<dyn Fn(&RuntimeEvent) + Send + Sync>;

/// What to boot.
#[derive(Clone, Default)]
pub struct BootOptions {
    /// Compilation progress, e.g. a spinner (else it goes to `tracing`).
    pub runtime_events: Option<RuntimeSink>,
    /// `--config`.
    pub config: Option<PathBuf>,
    /// Languages to load (all when `None`).
    pub languages: Option<Vec<String>>,
    /// Also load the un-metered engine (for trusted artifacts).
    pub trusted_engine: bool,
    /// Run each language's checks (stages 4 and 5).
    pub checks: bool,
    /// Run them even when an identical boot already passed them (see the
    /// module docs).
    pub recheck: bool,
    /// Locations chosen by the embedder: each wins over its environment
    /// variable, the config file and the default.
    pub components_dir: Option<PathBuf>,
    /// See `components_dir`.
    pub system_volume: Option<PathBuf>,
    /// See `components_dir`.
    pub cache_dir: Option<PathBuf>,
    /// See `components_dir`.
    pub data_dir: Option<PathBuf>,
    /// The kernel APIs' quotas (default [`Quotas::default`]).
    pub quotas: Option<Quotas>,
    /// Make sandboxes from an instance pool of this size (see
    /// [`InstancePool`](crate::engine::InstancePool)).
    pub instance_pool: Option<crate::engine::InstancePool>,
}

/// A receiver of boot events.
pub type BootSink<'a> = &'a (dyn Fn(&BootEvent) + Send + Sync);

/// What boot produced: the parts the facade is made of.
pub(crate) struct Booted {
    pub config: Config,
    pub runtime: Runtime,
    pub system: SystemVolume,
    pub data_dir: PathBuf,
    pub stages: Vec<(Stage, f64, String)>,
    pub boot_ms: f64,
}

fn finished(
    on: BootSink<'_>,
    stages: &mut Vec<(Stage, f64, String)>,
    s: Stage,
    t: Instant,
    r: Result<String, HostError>,
) -> Result<(), HostError> {
    match r {
        Ok(detail) => {
            let ms = t.elapsed().as_secs_f64() * 1e3;
            on(&BootEvent::Done {
                stage: s,
                ms,
                detail: detail.clone(),
            });
            stages.push((s, ms, detail));
            Ok(())
        }
        Err(e) => {
            failed(on, s, &e);
            Err(e)
        }
    }
}

fn failed(on: BootSink<'_>, s: Stage, e: &HostError) {
    on(&BootEvent::Failed {
        stage: s,
        error: e.to_string(),
    });
}

fn thread_failed(what: &'static str, e: tokio::task::JoinError) -> HostError {
    HostError::System {
        what,
        source: std::io::Error::other(e.to_string()),
    }
}

fn env_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Where the runtime finds its pieces: the boot options, then the
/// environment, then the config file, then built-in defaults.
fn runtime_config(opts: &BootOptions, config: &Config) -> RuntimeConfig {
    let defaults = RuntimeConfig::default();
    let pick = |opt: &Option<PathBuf>, var: &str, file: &Option<PathBuf>, default: PathBuf| {
        opt.clone()
            .or_else(|| env_path(var))
            .or_else(|| file.clone())
            .unwrap_or(default)
    };
    let (v, c) = (&config.volumes, &config.data_dir);
    RuntimeConfig {
        components_dir: pick(
            &opts.components_dir,
            "LLMOS_COMPONENTS",
            &v.components,
            defaults.components_dir,
        ),
        system_volume: pick(
            &opts.system_volume,
            "LLMOS_SYSTEM_VOLUME",
            &v.system,
            defaults.system_volume,
        ),
        cache_dir: pick(
            &opts.cache_dir,
            "LLMOS_CACHE_DIR",
            &v.cache,
            defaults.cache_dir,
        ),
        data_dir: pick(&opts.data_dir, "LLMOS_DATA_DIR", c, defaults.data_dir),
        quotas: opts.quotas.clone().unwrap_or(defaults.quotas),
        instance_pool: opts.instance_pool,
    }
}

/// Stage 1: the config file and the data directories.
fn system(opts: &BootOptions) -> Result<(Config, RuntimeConfig), HostError> {
    let config = Config::load(opts.config.as_deref())?;
    let rc = runtime_config(opts, &config);
    // The data and cache directories are private (0700) and refused when
    // other users could write them.
    let hint = |what: &'static str, var: &'static str, key: &'static str| {
        move |e: HostError| {
            HostError::Usage(format!(
                "{e}; the {what} must be a private, writable directory (set {var} or {key} in llmos.toml)"
            ))
        }
    };
    crate::paths::ensure_private_dir(&rc.data_dir).map_err(hint(
        "data directory",
        "LLMOS_DATA_DIR",
        "data_dir",
    ))?;
    crate::paths::ensure_private_dir(&rc.cache_dir).map_err(hint(
        "cache directory",
        "LLMOS_CACHE_DIR",
        "volumes.cache",
    ))?;
    let outputs = rc.data_dir.join("outputs");
    std::fs::create_dir_all(&outputs).map_err(|e| HostError::Io {
        path: outputs.clone(),
        source: std::io::Error::new(
            e.kind(),
            format!("{e}; the data directory must be writable (set LLMOS_DATA_DIR or data_dir in llmos.toml)"),
        ),
    })?;
    Ok((config, rc))
}

/// Boot, reporting each stage to `on_event`.
pub(crate) async fn boot(opts: &BootOptions, on_event: BootSink<'_>) -> Result<Booted, HostError> {
    let start = Instant::now();
    let mut stages = Vec::new();

    // 1. System.
    on_event(&BootEvent::Started {
        stage: Stage::System,
    });
    let t = Instant::now();
    let (config, rc) = match system(opts) {
        Ok(v) => v,
        Err(e) => {
            failed(on_event, Stage::System, &e);
            return Err(e);
        }
    };
    let detail = format!(
        "config {}, data {}",
        config
            .path
            .as_ref()
            .map_or("(none)".to_string(), |p| p.display().to_string()),
        rc.data_dir.display()
    );
    finished(on_event, &mut stages, Stage::System, t, Ok(detail))?;

    // 2. Volumes: hashing every file of the system volume is blocking work.
    on_event(&BootEvent::Started {
        stage: Stage::Volumes,
    });
    let t = Instant::now();
    let (root, data) = (rc.system_volume.clone(), rc.data_dir.clone());
    let verified = tokio::task::spawn_blocking(move || {
        let system = SystemVolume::verify(&root)?;
        let user = data.join(USER_ARTIFACTS);
        std::fs::create_dir_all(&user).map_err(|e| HostError::io(&user, e))?;
        Ok(system)
    })
    .await
    .unwrap_or_else(|e| Err(thread_failed("the volume check failed", e)));
    let system = match verified {
        Ok(system) => system,
        Err(e) => {
            failed(on_event, Stage::Volumes, &e);
            return Err(e);
        }
    };
    let (files, bytes) = system.size();
    let detail = format!(
        "system {} ({files} files, {:.0} KiB, verified, read-only); user {} (read-write)",
        rc.system_volume.display(),
        bytes as f64 / 1024.0,
        rc.data_dir.display()
    );
    finished(on_event, &mut stages, Stage::Volumes, t, Ok(detail))?;

    // 3. Runtime: languages load in parallel on blocking threads; their
    // compilation progress becomes progress events of this stage.
    on_event(&BootEvent::Started {
        stage: Stage::Runtime,
    });
    let t = Instant::now();
    let runtime = match load_runtime(opts, &rc, on_event).await {
        Ok((runtime, detail)) => {
            finished(on_event, &mut stages, Stage::Runtime, t, Ok(detail))?;
            runtime
        }
        Err(e) => {
            failed(on_event, Stage::Runtime, &e);
            return Err(e);
        }
    };

    // 4 and 5: each language's checks, from its manifest, concurrently.
    if opts.checks {
        check_languages(&runtime, &system, opts.recheck, on_event, &mut stages).await?;
    }

    let boot_ms = start.elapsed().as_secs_f64() * 1e3;
    let langs: Vec<String> = runtime.languages().iter().map(|m| m.name.clone()).collect();
    let detail = format!("languages: {}", langs.join(", "));
    on_event(&BootEvent::Done {
        stage: Stage::Ready,
        ms: boot_ms,
        detail: detail.clone(),
    });
    stages.push((Stage::Ready, boot_ms, detail));
    Ok(Booted {
        config,
        runtime,
        system,
        data_dir: rc.data_dir,
        stages,
        boot_ms,
    })
}

/// Stage 3: the runtime, with the asked languages prepared in parallel.
async fn load_runtime(
    opts: &BootOptions,
    rc: &RuntimeConfig,
    on_event: BootSink<'_>,
) -> Result<(Runtime, String), HostError> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let sink = opts.runtime_events.clone();
    let runtime = Runtime::with_events(
        rc.clone(),
        Some(Box::new(move |e: &RuntimeEvent| {
            if let Some(s) = &sink {
                s(e);
            }
            let detail = match e {
                RuntimeEvent::Compiling { language, .. } => {
                    format!("compiling the {language} component (first boot or upgrade)")
                }
                RuntimeEvent::Compiled { language, millis } => {
                    format!("compiled the {language} component in {:.1} s", millis / 1e3)
                }
            };
            tracing::info!("{detail}");
            let _ = tx.send(detail);
        })),
    )?;
    let names: Vec<String> = match &opts.languages {
        Some(l) => l.clone(),
        None => runtime.languages().iter().map(|m| m.name.clone()).collect(),
    };
    let mut engines = vec![true];
    if opts.trusted_engine {
        engines.push(false);
    }
    let mut loads = tokio::task::JoinSet::new();
    for (i, (name, metered)) in names
        .iter()
        .flat_map(|n| engines.iter().map(move |m| (n.clone(), *m)))
        .enumerate()
    {
        let rt = runtime.clone();
        loads.spawn_blocking(move || {
            rt.prepare(&name, metered).map(|p| {
                let how = match p.cache {
                    crate::cache::CacheStatus::Hit => "cached",
                    _ => "compiled",
                };
                let engine = if metered { "" } else { " [trusted engine]" };
                (
                    i,
                    format!("{}{engine} ({how}, {:.1} ms)", p.language.name, p.load_ms),
                )
            })
        });
    }
    let mut loaded: Vec<(usize, String)> = Vec::new();
    let mut failure: Option<HostError> = None;
    loop {
        tokio::select! {
            Some(detail) = rx.recv() => on_event(&BootEvent::Progress { stage: Stage::Runtime, detail }),
            joined = loads.join_next() => match joined {
                None => break,
                Some(Ok(Ok(done))) => loaded.push(done),
                Some(Ok(Err(e))) => { failure.get_or_insert(e); }
                Some(Err(e)) => { failure.get_or_insert(thread_failed("a component loader thread failed", e)); }
            },
        }
    }
    while let Ok(detail) = rx.try_recv() {
        on_event(&BootEvent::Progress {
            stage: Stage::Runtime,
            detail,
        });
    }
    if let Some(e) = failure {
        return Err(e);
    }
    loaded.sort();
    let detail = loaded
        .into_iter()
        .map(|(_, d)| d)
        .collect::<Vec<_>>()
        .join(", ");
    Ok((runtime, detail))
}

/// The boot checks that passed, by key (see the module docs).
struct CheckRecord {
    path: PathBuf,
    passed: std::collections::BTreeSet<String>,
    /// What every key shares: versions, executable, system volume.
    base: Option<String>,
}

impl CheckRecord {
    fn open(runtime: &Runtime, system: &SystemVolume, recheck: bool) -> Self {
        let path = runtime.config().cache_dir.join("boot-checks");
        let passed = match recheck {
            true => Default::default(),
            false => std::fs::read_to_string(&path)
                .map(|t| t.lines().map(str::to_owned).collect())
                .unwrap_or_default(),
        };
        // The running executable's identity: a rebuilt or upgraded llmos
        // checks again (its kernel APIs may behave differently).
        let exe = std::env::current_exe()
            .and_then(std::fs::metadata)
            .ok()
            .map(|m| crate::cache::file_identity(&m));
        let base = exe.map(|exe| {
            format!(
                "llmos {} wasmtime {} exe {exe} volume {:032x}",
                env!("CARGO_PKG_VERSION"),
                crate::cache::WASMTIME_VERSION,
                system.digest()
            )
        });
        CheckRecord { path, passed, base }
    }

    /// What the keys of a prepared language's checks share: the base, the
    /// language, its precompiled entry and that entry's checksum (`None`
    /// when it cannot be keyed; its checks then always run).
    fn language(&self, p: &Prepared) -> Option<String> {
        let base = self.base.as_ref()?;
        let sum = std::fs::read_to_string(p.cache_entry.with_extension("sum")).ok()?;
        Some(format!(
            "{base} language {} entry {} sum {}",
            p.language.name,
            p.cache_entry.display(),
            sum.trim()
        ))
    }

    /// The key of one check of a language keyed by [`Self::language`].
    fn key(language: &str, stdlib: bool, c: &Check) -> String {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        for part in [
            language,
            if stdlib { "stdlib" } else { "instance" },
            &c.source,
            &c.value,
        ] {
            h.update(&(part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        format!("{:032x}", h.digest128())
    }

    /// Replace the record with the keys of this boot's passed checks (a
    /// shortcut only: failing to write it costs running them next time).
    fn save(&self, keys: &std::collections::BTreeSet<String>) {
        let text: String = keys.iter().map(|k| format!("{k}\n")).collect();
        let tmp = self
            .path
            .with_extension(format!("tmp{}", std::process::id()));
        let _ = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &self.path));
    }
}

/// Stages 4 and 5: every language's `check.instance` and `check.stdlib`,
/// all concurrently.
async fn check_languages(
    runtime: &Runtime,
    system: &SystemVolume,
    recheck: bool,
    on_event: BootSink<'_>,
    stages: &mut Vec<(Stage, f64, String)>,
) -> Result<(), HostError> {
    on_event(&BootEvent::Started {
        stage: Stage::Languages,
    });
    on_event(&BootEvent::Started {
        stage: Stage::Stdlib,
    });
    let t = Instant::now();
    let record = CheckRecord::open(runtime, system, recheck);
    let mut passed = std::collections::BTreeSet::new();
    let mut checks = tokio::task::JoinSet::new();
    let (mut instances, mut stdlibs) = (Vec::new(), Vec::new());
    for m in runtime.languages().iter() {
        // A language that cannot load has no key: its checks then run and
        // report the failure like any other.
        if m.check.instance.is_none() && m.check.stdlib.is_none() {
            continue;
        }
        let language = match runtime.prepare_async(&m.name, true).await {
            Ok(prepared) => record.language(&prepared),
            Err(_) => None,
        };
        for (stdlib, c) in [(false, &m.check.instance), (true, &m.check.stdlib)] {
            let Some(c) = c.clone() else { continue };
            let key = language.as_deref().map(|l| CheckRecord::key(l, stdlib, &c));
            if let Some(k) = key.as_ref().filter(|k| record.passed.contains(*k)) {
                passed.insert(k.clone());
                let name = format!("{} (unchanged since it passed)", m.name);
                if stdlib { &mut stdlibs } else { &mut instances }.push(Ok(name));
                continue;
            }
            let (rt, lang) = (runtime.clone(), m.name.clone());
            checks.spawn(async move {
                let r = rt.run(&RunRequest::new(&lang, &c.source)).await;
                let r = r.and_then(|o| {
                    if o.value.as_deref() == Some(c.value.as_str()) {
                        Ok((lang.clone(), key))
                    } else {
                        Err(HostError::Usage(format!(
                            "the {lang} boot check returned {:?} instead of {} ({})",
                            o.value,
                            c.value,
                            o.summary()
                        )))
                    }
                });
                (stdlib, r)
            });
        }
    }
    while let Some(joined) = checks.join_next().await {
        let (stdlib, r) =
            joined.unwrap_or_else(|e| (false, Err(thread_failed("a boot check failed", e))));
        let r = r.map(|(lang, key)| {
            passed.extend(key);
            lang
        });
        if stdlib { &mut stdlibs } else { &mut instances }.push(r);
    }
    if instances.iter().chain(&stdlibs).all(Result::is_ok) && passed != record.passed {
        record.save(&passed);
    }
    let summary = |r: Vec<Result<String, HostError>>, what: &str| {
        let mut names = r.into_iter().collect::<Result<Vec<_>, _>>()?;
        names.sort();
        Ok(if names.is_empty() {
            "no checks declared".to_string()
        } else {
            format!("{what}: {}", names.join(", "))
        })
    };
    finished(
        on_event,
        stages,
        Stage::Languages,
        t,
        summary(instances, "first instance created and checked"),
    )?;
    finished(
        on_event,
        stages,
        Stage::Stdlib,
        t,
        summary(stdlibs, "kernel stdlib and init scripts checked"),
    )
}
