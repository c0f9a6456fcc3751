//! Booting the kernel: every command starts here.
//!
//! Stages, each reported as events (started, progress, done with its time):
//! 1. **initialising system**: the config file, the data directories;
//! 2. **mounting volumes**: the system volume verified against its
//!    SHA-256 manifest, the user volume (data directory) created;
//! 3. **loading kernel runtime**: the engine, and each language's component
//!    deserialized from the precompiled cache (or compiled, with progress,
//!    on first boot or after an upgrade), languages in parallel;
//! 4. **initialising Python environment**: a first Python instance created
//!    and checked;
//! 5. **loading standard library**: the JavaScript and Python standard
//!    libraries and init scripts (in the components' snapshots) checked;
//! 6. **system ready**.
//!
//! Stages 4 and 5 do not depend on each other and run concurrently, as do
//! the language loads of stage 3. Nothing waits for anything but real work.

use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;

use crate::config::Config;
use crate::engine::{RunRequest, Runtime, RuntimeConfig, RuntimeEvent};
use crate::error::HostError;
use crate::volume::{SystemVolume, USER_ARTIFACTS};

/// A boot stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    System,
    Volumes,
    Runtime,
    Python,
    Stdlib,
    Ready,
}

impl Stage {
    pub fn title(self) -> &'static str {
        match self {
            Stage::System => "initialising system",
            Stage::Volumes => "mounting volumes",
            Stage::Runtime => "loading kernel runtime",
            Stage::Python => "initialising Python environment",
            Stage::Stdlib => "loading standard library",
            Stage::Ready => "system ready",
        }
    }
}

/// Something that happened during boot.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum BootEvent {
    Started {
        stage: Stage,
    },
    Progress {
        stage: Stage,
        detail: String,
    },
    Done {
        stage: Stage,
        ms: f64,
        detail: String,
    },
    Failed {
        stage: Stage,
        error: String,
    },
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
    /// Run the Python and standard-library checks (stages 4 and 5).
    pub checks: bool,
}

/// A booted kernel.
pub struct Kernel {
    pub config: Config,
    pub runtime: Runtime,
    pub system: SystemVolume,
    pub data_dir: PathBuf,
    /// (stage, milliseconds, detail) in order.
    pub stages: Vec<(Stage, f64, String)>,
    pub boot_ms: f64,
}

type Sink<'a> = &'a (dyn Fn(&BootEvent) + Send + Sync);

fn stage<T>(
    on: Sink<'_>,
    stages: &mut Vec<(Stage, f64, String)>,
    s: Stage,
    f: impl FnOnce() -> Result<(T, String), HostError>,
) -> Result<T, HostError> {
    on(&BootEvent::Started { stage: s });
    let t = Instant::now();
    match f() {
        Ok((v, detail)) => {
            let ms = t.elapsed().as_secs_f64() * 1e3;
            on(&BootEvent::Done {
                stage: s,
                ms,
                detail: detail.clone(),
            });
            stages.push((s, ms, detail));
            Ok(v)
        }
        Err(e) => {
            on(&BootEvent::Failed {
                stage: s,
                error: e.to_string(),
            });
            Err(e)
        }
    }
}

fn env_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

impl Kernel {
    /// Boot, reporting each stage to `on_event`.
    pub fn boot(opts: &BootOptions, on_event: Sink<'_>) -> Result<Kernel, HostError> {
        let start = Instant::now();
        let mut stages = Vec::new();

        let (config, rc) = stage(on_event, &mut stages, Stage::System, || {
            let config = Config::load(opts.config.as_deref())?;
            let defaults = RuntimeConfig::default();
            // Environment, then the config file, then built-in defaults.
            let rc = RuntimeConfig {
                components_dir: env_path("LLMOS_COMPONENTS")
                    .or_else(|| config.volumes.components.clone())
                    .unwrap_or(defaults.components_dir),
                system_volume: env_path("LLMOS_SYSTEM_VOLUME")
                    .or_else(|| config.volumes.system.clone())
                    .unwrap_or(defaults.system_volume),
                cache_dir: env_path("LLMOS_CACHE_DIR")
                    .or_else(|| config.volumes.cache.clone())
                    .unwrap_or(defaults.cache_dir),
                data_dir: env_path("LLMOS_DATA_DIR")
                    .or_else(|| config.data_dir.clone())
                    .unwrap_or(defaults.data_dir),
                quotas: defaults.quotas,
            };
            for dir in [rc.data_dir.clone(), rc.data_dir.join("outputs")] {
                std::fs::create_dir_all(&dir).map_err(|e| HostError::Io {
                    path: dir.clone(),
                    source: std::io::Error::new(
                        e.kind(),
                        format!("{e}; the data directory must be writable (set LLMOS_DATA_DIR or data_dir in llmos.toml)"),
                    ),
                })?;
            }
            let detail = format!(
                "config {}, data {}",
                config
                    .path
                    .as_ref()
                    .map_or("(none)".to_string(), |p| p.display().to_string()),
                rc.data_dir.display()
            );
            Ok(((config, rc), detail))
        })?;

        let system = stage(on_event, &mut stages, Stage::Volumes, || {
            let system = SystemVolume::verify(&rc.system_volume)?;
            let user = rc.data_dir.join(USER_ARTIFACTS);
            std::fs::create_dir_all(&user).map_err(|e| HostError::io(&user, e))?;
            let (files, bytes) = system.size();
            let detail = format!(
                "system {} ({files} files, {:.0} KiB, verified, read-only); user {} (read-write)",
                rc.system_volume.display(),
                bytes as f64 / 1024.0,
                rc.data_dir.display()
            );
            Ok((system, detail))
        })?;

        let runtime = stage(on_event, &mut stages, Stage::Runtime, || {
            // Compilation progress (first boot, upgrades) becomes progress
            // events of this stage, relayed from the loader threads.
            let sink = opts.runtime_events.clone();
            let (tx, rx) = std::sync::mpsc::channel::<String>();
            let runtime = Runtime::new(rc.clone())?.on_event(move |e| {
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
            });
            let names: Vec<String> = match &opts.languages {
                Some(l) => l.clone(),
                None => runtime.languages().iter().map(|m| m.name.clone()).collect(),
            };
            let mut engines = vec![true];
            if opts.trusted_engine {
                engines.push(false);
            }
            let relay = |rx: &std::sync::mpsc::Receiver<String>| {
                while let Ok(detail) = rx.try_recv() {
                    on_event(&BootEvent::Progress {
                        stage: Stage::Runtime,
                        detail,
                    });
                }
            };
            let results: Vec<Result<String, HostError>> = std::thread::scope(|s| {
                let handles: Vec<_> = names
                    .iter()
                    .flat_map(|n| engines.iter().map(move |m| (n, *m)))
                    .map(|(name, metered)| {
                        let rt = &runtime;
                        s.spawn(move || {
                            rt.prepare(name, metered).map(|p| {
                                format!(
                                    "{}{} ({}, {:.1} ms)",
                                    p.language.name,
                                    if metered { "" } else { " [trusted engine]" },
                                    match p.cache {
                                        crate::cache::CacheStatus::Hit => "cached",
                                        _ => "compiled",
                                    },
                                    p.load_ms
                                )
                            })
                        })
                    })
                    .collect();
                while !handles.iter().all(|h| h.is_finished()) {
                    if let Ok(detail) = rx.recv_timeout(std::time::Duration::from_millis(20)) {
                        on_event(&BootEvent::Progress {
                            stage: Stage::Runtime,
                            detail,
                        });
                    }
                }
                relay(&rx);
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            Err(HostError::Usage("a loader thread panicked".into()))
                        })
                    })
                    .collect()
            });
            let mut loaded = Vec::new();
            for r in results {
                loaded.push(r?);
            }
            Ok((runtime, loaded.join(", ")))
        })?;

        if opts.checks {
            let rt = crate::engine::async_runtime()?;
            let has = |l: &str| runtime.languages().by_name(l).is_ok();
            let (has_py, has_js) = (has("python"), has("javascript"));
            on_event(&BootEvent::Started {
                stage: Stage::Python,
            });
            on_event(&BootEvent::Started {
                stage: Stage::Stdlib,
            });
            let check = |lang: &'static str, src: &'static str, want: &'static str| {
                let runtime = &runtime;
                async move {
                    let t = Instant::now();
                    let o = runtime.run(&RunRequest::new(lang, src)).await?;
                    if o.value.as_deref() != Some(want) {
                        return Err(HostError::Usage(format!(
                            "the {lang} check returned {:?} instead of {want} ({})",
                            o.value,
                            o.summary()
                        )));
                    }
                    Ok::<f64, HostError>(t.elapsed().as_secs_f64() * 1e3)
                }
            };
            let (py, js_lib, py_lib) = rt.block_on(async {
                tokio::join!(
                    async { if has_py { check("python", "import sys\nsys.version_info[0] + 1", "4").await.map(Some) } else { Ok(None) } },
                    async { if has_js { check("javascript", "[typeof kernel.storage.get, typeof kernel.viz.plot, typeof console.log].join()", "'function,function,function'").await.map(Some) } else { Ok(None) } },
                    async { if has_py { check("python", "import llmos\nlen(llmos.__all__)", "10").await.map(Some) } else { Ok(None) } },
                )
            });
            let mut finish = |s: Stage, r: Result<Vec<Option<f64>>, HostError>, what: &str| match r
            {
                Ok(ms) => {
                    let total: f64 = ms.iter().flatten().sum();
                    on_event(&BootEvent::Done {
                        stage: s,
                        ms: total,
                        detail: what.to_string(),
                    });
                    stages.push((s, total, what.to_string()));
                    Ok(())
                }
                Err(e) => {
                    on_event(&BootEvent::Failed {
                        stage: s,
                        error: e.to_string(),
                    });
                    Err(e)
                }
            };
            finish(
                Stage::Python,
                py.map(|x| vec![x]),
                "first instance created and checked",
            )?;
            finish(
                Stage::Stdlib,
                js_lib.and_then(|a| py_lib.map(|b| vec![a, b])),
                "kernel stdlib (JS) and llmos package (Python) with their init scripts",
            )?;
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
        Ok(Kernel {
            config,
            runtime,
            system,
            data_dir: rc.data_dir,
            stages,
            boot_ms,
        })
    }
}
