//! Engines, prepared languages and runs.
//!
//! A [`Runtime`] owns at most two Wasmtime engines: a fuel-metered one for
//! untrusted artifacts and an un-metered one (epoch deadline only) for runs
//! with `fuel: None`; fuel changes the generated code, so each engine has its
//! own precompiled components. Each language is prepared once per engine into
//! an `InstancePre` (component loaded through the [`cache`](crate::cache),
//! imports resolved); every run gets a fresh `Store` and instance.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use wasmtime::component::Linker;
use wasmtime::{Config, Engine, Store};

use crate::bindings::LanguagePre;
use crate::cache::{CacheStatus, ComponentCache, engine_fingerprint};
use crate::error::HostError;
use crate::inputs::{Source, Tape};
use crate::kernel::storage::StorageService;
use crate::language::{Capability, Languages, Manifest};
use crate::limits::{self, EpochTicker, Limits, Quotas};
use crate::outcome::{self, Abort, ErrorKind, GuestError, Outcome, Status, TrapInfo};
use crate::state::HostState;

/// Where a runtime finds its pieces.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Directory of the guest components (`quickjs.wasm`, ...).
    pub components_dir: PathBuf,
    /// The system volume (manifests, stdlibs, prompts).
    pub system_volume: PathBuf,
    /// The precompiled-component cache.
    pub cache_dir: PathBuf,
    /// The user data directory: the storage database lives here.
    pub data_dir: PathBuf,
    /// The kernel APIs' quotas, handed to each kernel module per run.
    pub quotas: Quotas,
    /// Make sandboxes from an instance pool (default: fresh mappings).
    pub instance_pool: Option<InstancePool>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            components_dir: crate::paths::components_dir(),
            system_volume: crate::paths::system_volume(),
            cache_dir: crate::paths::cache_dir(),
            data_dir: crate::paths::data_dir(),
            quotas: Quotas::default(),
            instance_pool: None,
        }
    }
}

/// Name of the storage database in the data directory.
pub const STORAGE_FILE: &str = "storage.db";

/// One artifact to run.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// Language name or alias (see the language manifests).
    pub language: String,
    /// The program text.
    pub source: String,
    /// File name shown in the artifact's stack traces; empty means
    /// `artifact.<the language's first extension>`.
    pub filename: String,
    /// Identifies the artifact in logs, and names its storage namespace.
    pub artifact_id: String,
    /// The run's limits.
    pub limits: Limits,
    /// Seed for the guest's randomness; `None` draws from the host. A
    /// seeded run also gets virtual clocks (see [`crate::inputs`]), so it is
    /// fully deterministic.
    pub seed: Option<u64>,
    /// Where the run's inputs come from instead (a replay, or a fix being
    /// verified on a failing run's inputs); the seed is then ignored.
    pub inputs: Option<Source>,
    /// Run this component artifact (`llmos run app.wasm`) instead of
    /// `source` in an interpreter; `language` is then
    /// [`crate::component::LANGUAGE`].
    pub component: Option<PathBuf>,
    /// What the artifact must print on stdout; anything else is
    /// `wrong_output` (with a diff).
    pub expect_stdout: Option<String>,
    /// A test program run after the artifact in the same interpreter state
    /// (a session); if it fails, the run is `test_failed`.
    pub test: Option<TestProgram>,
    /// Ask the guest for a located stop even where it costs (see
    /// `process.budget`'s `trace-lines`); set by [`Runtime::locate`].
    pub trace_lines: bool,
    /// Publish the run's fuel and memory here while it runs (a live
    /// display); sampled at kernel calls and every [`limits::LIVE_SAMPLE`].
    pub live: Option<Arc<crate::state::LiveUsage>>,
}

/// A test program in the artifact's language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestProgram {
    /// Its source.
    pub source: String,
    /// Its file name in stack traces (e.g. `test_app.py`).
    pub filename: String,
}

impl RunRequest {
    /// A request with default limits, id `artifact` and the language's default file name.
    pub fn new(language: impl Into<String>, source: impl Into<String>) -> Self {
        let language = language.into();
        RunRequest {
            filename: String::new(),
            artifact_id: "artifact".into(),
            language,
            source: source.into(),
            limits: Limits::default(),
            seed: None,
            inputs: None,
            component: None,
            expect_stdout: None,
            test: None,
            trace_lines: false,
            live: None,
        }
    }
}

/// An engine and the ticker that drives its epoch-based deadlines.
struct EngineSlot {
    engine: Engine,
    fingerprint: String,
    _ticker: EpochTicker,
}

/// A language ready to instantiate on one engine.
pub struct Prepared {
    /// The language's manifest.
    pub language: Manifest,
    /// Whether this was prepared on the fuel-metered engine.
    pub metered: bool,
    pub(crate) pre: LanguagePre<HostState>,
    /// Whether the component came from the cache or was compiled.
    pub cache: CacheStatus,
    /// Time to load (or compile) and link it.
    pub load_ms: f64,
    /// The precompiled cache entry it was loaded from (or stored to).
    pub cache_entry: PathBuf,
    /// The storage database shared by every run of this runtime.
    pub storage: Arc<StorageService>,
    /// The kernel quotas of every run.
    pub quotas: Arc<Quotas>,
    /// `session.run-cell`, when the component exports it.
    pub(crate) run_cell: Option<wasmtime::component::ComponentExportIndex>,
}

/// What a guest says about itself.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GuestInfo {
    /// Its language name.
    pub language: String,
    /// Interpreter and version.
    pub version: String,
}

/// The name of the session interface export.
pub const SESSION_EXPORT: &str = "llmos:kernel/session@0.1.0";

/// Something that happened while preparing a language, for progress display.
#[derive(Debug, Clone)]
#[allow(missing_docs)] // variant fields are named for what they hold
pub enum RuntimeEvent {
    /// A component is being compiled (first run or after a change): slow.
    Compiling {
        language: String,
        component: PathBuf,
    },
    /// That compilation finished and was cached.
    Compiled { language: String, millis: f64 },
}

type EventSink = Box<dyn Fn(&RuntimeEvent) + Send + Sync>;
/// A language on one engine: (language name, metered).
type PreparedKey = (String, bool);

/// Engines and prepared languages, shared by every run; cheap to clone (the
/// clones share everything), so blocking work such as compiling a component
/// can move to a blocking thread.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<RuntimeInner>,
}

struct RuntimeInner {
    config: RuntimeConfig,
    languages: Languages,
    cache: ComponentCache,
    metered: OnceLock<EngineSlot>,
    unmetered: OnceLock<EngineSlot>,
    prepared: Mutex<HashMap<(String, bool), Arc<Prepared>>>,
    /// One lock per (language, engine), held while loading that component,
    /// so concurrent first runs compile it once while different languages
    /// load in parallel.
    loading: Mutex<HashMap<PreparedKey, Arc<Mutex<()>>>>,
    events: Option<EventSink>,
    storage: Arc<StorageService>,
    quotas: Arc<Quotas>,
}

/// Sandboxes made from a pool of pre-reserved instance slots instead of
/// fresh mappings: memories, tables and async stacks are reset in place
/// (their first pages kept resident), which makes a fresh sandbox much
/// cheaper. The pool bounds how many sandboxes an engine has at once, so it
/// suits a process whose concurrency is bounded, like a batch worker; one
/// run too many fails with [`HostError::Busy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstancePool {
    /// Sandboxes alive at once, per engine.
    pub sandboxes: u32,
}

impl InstancePool {
    fn config(self) -> wasmtime::PoolingAllocationConfig {
        let n = self.sandboxes.max(1);
        let mut p = wasmtime::PoolingAllocationConfig::default();
        p.total_component_instances(n)
            .total_core_instances(n * limits::POOL_CORE_INSTANCES_PER_COMPONENT)
            .total_memories(n * limits::POOL_MEMORIES_PER_COMPONENT)
            .total_tables(n * limits::POOL_TABLES_PER_COMPONENT)
            .total_stacks(n)
            .max_core_instances_per_component(limits::POOL_CORE_INSTANCES_PER_COMPONENT)
            .max_memories_per_component(limits::POOL_MEMORIES_PER_COMPONENT)
            .max_tables_per_component(limits::POOL_TABLES_PER_COMPONENT)
            .table_elements(limits::POOL_TABLE_ELEMENTS)
            // Any memory limit a run may set (wasm32: 4 GiB).
            .max_memory_size(1 << 32)
            .linear_memory_keep_resident(limits::POOL_MEMORY_KEEP_RESIDENT)
            .table_keep_resident(limits::POOL_KEEP_RESIDENT)
            .async_stack_keep_resident(limits::POOL_KEEP_RESIDENT)
            // Linux ≥ 6.7: reset only the pages a run dirtied (elsewhere,
            // and on older kernels, the whole resident region).
            .pagemap_scan(wasmtime::Enabled::Auto);
        p
    }
}

/// The Wasmtime configuration shared by both engines; only fuel differs.
pub fn engine_config(metered: bool) -> Config {
    engine_config_with(metered, None)
}

/// [`engine_config`], with sandboxes from `pool` when given.
pub fn engine_config_with(metered: bool, pool: Option<InstancePool>) -> Config {
    let mut c = Config::new();
    c.consume_fuel(metered)
        .epoch_interruption(true)
        .max_wasm_stack(limits::MAX_WASM_STACK)
        .async_stack_size(limits::ASYNC_STACK)
        // Guests built from C with setjmp/longjmp (Lua) need wasm exceptions.
        .wasm_exceptions(true)
        .cranelift_opt_level(wasmtime::OptLevel::Speed)
        .parallel_compilation(true);
    if let Some(pool) = pool {
        c.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool.config()));
    }
    c
}

/// The linker every guest is instantiated with: WASI (with the capabilities
/// `HostState` grants, i.e. none) and the kernel APIs.
pub fn linker(engine: &Engine) -> wasmtime::Result<Linker<HostState>> {
    let mut linker: Linker<HostState> = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    // The monotonic clock (and its sleeps) go through the run's tape.
    crate::inputs::add_to_linker(&mut linker, HostState::monotonic)?;
    crate::kernel::add_to_linker(&mut linker)?;
    Ok(linker)
}

impl Runtime {
    /// A runtime reading manifests from the configured system volume.
    pub fn new(config: RuntimeConfig) -> Result<Self, HostError> {
        Self::with_events(config, None)
    }

    /// A runtime that reports progress events (e.g. "compiling the Python
    /// component") to `sink`.
    pub fn with_events(config: RuntimeConfig, sink: Option<EventSink>) -> Result<Self, HostError> {
        let languages = Languages::load(&config.system_volume.join("languages"))?;
        let inner = RuntimeInner {
            cache: ComponentCache::new(&config.cache_dir),
            storage: Arc::new(StorageService::new(
                config.data_dir.join(STORAGE_FILE),
                config.quotas.storage,
            )),
            quotas: Arc::new(config.quotas.clone()),
            config,
            languages,
            metered: OnceLock::new(),
            unmetered: OnceLock::new(),
            prepared: Mutex::new(HashMap::new()),
            loading: Mutex::new(HashMap::new()),
            events: sink,
        };
        Ok(Runtime {
            inner: Arc::new(inner),
        })
    }

    /// The languages of the system volume.
    pub fn languages(&self) -> &Languages {
        &self.inner.languages
    }

    /// Where this runtime finds its pieces, and the quotas of its runs.
    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    /// The engine for metered (`true`) or un-metered runs, and its
    /// fingerprint (what precompiled code is keyed by).
    pub(crate) fn engine_and_fingerprint(
        &self,
        metered: bool,
    ) -> Result<(&Engine, &str), HostError> {
        let slot = self.inner.slot(metered)?;
        Ok((&slot.engine, &slot.fingerprint))
    }

    /// The precompiled-component cache.
    pub(crate) fn component_cache(&self) -> &ComponentCache {
        &self.inner.cache
    }

    /// The kernel quotas of every run.
    pub(crate) fn quotas(&self) -> Arc<Quotas> {
        self.inner.quotas.clone()
    }

    /// The storage service every run shares.
    pub(crate) fn storage(&self) -> Arc<StorageService> {
        self.inner.storage.clone()
    }

    /// The engine used for metered (`true`) or un-metered runs.
    pub fn engine(&self, metered: bool) -> Result<&Engine, HostError> {
        Ok(&self.inner.slot(metered)?.engine)
    }

    /// Load (from cache or by compiling) and link a language for one engine.
    /// Blocking: compiling a component takes seconds; from async code use
    /// [`Runtime::prepare_async`].
    pub fn prepare(&self, language: &str, metered: bool) -> Result<Arc<Prepared>, HostError> {
        self.inner.prepare(language, metered)
    }

    /// [`Runtime::prepare`] without blocking the async executor: a language
    /// already prepared is returned at once, otherwise the load runs on a
    /// blocking thread.
    pub async fn prepare_async(
        &self,
        language: &str,
        metered: bool,
    ) -> Result<Arc<Prepared>, HostError> {
        if let Some(p) = self.inner.prepared_already(language, metered) {
            return Ok(p);
        }
        let rt = self.clone();
        let language = language.to_string();
        tokio::task::spawn_blocking(move || rt.inner.prepare(&language, metered))
            .await
            .map_err(|e| HostError::System {
                what: "a component loader thread failed",
                source: std::io::Error::other(e.to_string()),
            })?
    }

    /// What a language's guest says about itself (`interpreter.describe`),
    /// from a fresh instance.
    pub async fn describe(&self, language: &str) -> Result<GuestInfo, HostError> {
        let prepared = self.prepare_async(language, true).await?;
        let limits = Limits::default();
        let mut store = new_store(
            &prepared,
            "describe",
            &limits,
            Tape::new(Source::Host { seed: None }),
        )?;
        arm(&mut store, &limits)?;
        let info = tokio::time::timeout(limits.timeout, async {
            let instance = prepared.pre.instantiate_async(&mut store).await?;
            instance
                .llmos_kernel_interpreter()
                .call_describe(&mut store)
                .await
        })
        .await
        .map_err(|_| HostError::Usage(format!("{language}: `describe` timed out")))??;
        Ok(GuestInfo {
            language: info.language,
            version: info.version,
        })
    }

    /// Run one artifact in a fresh sandbox and report how it ended.
    ///
    /// `Err` only for host problems (unknown language, missing component...);
    /// everything the artifact does, including every limit it hits, is an `Ok(Outcome)`.
    pub async fn run(&self, req: &RunRequest) -> Result<Outcome, HostError> {
        req.limits.validate()?;
        if req.test.is_some() {
            return crate::session::run_with_test(self, req).await;
        }
        let mut outcome = self.run_unchecked(req).await?;
        check_stdout(&mut outcome, req.expect_stdout.as_deref());
        Ok(outcome)
    }

    /// Where an `out_of_fuel` run was when it was stopped, for an
    /// interpreter that cannot say so cheaply (CPython): the run again on
    /// its recorded inputs (nothing is written twice, see
    /// [`crate::inputs`]), with the guest asked to trace lines, stop itself
    /// just before the limit and count the lines it ran most. The outcome
    /// keeps its own figures and takes the located error. Outcomes that
    /// already say where they stopped are returned as they are.
    pub async fn locate(&self, req: &RunRequest, mut outcome: Outcome) -> Outcome {
        let replayable = outcome.inputs.as_ref().filter(|i| i.replayable()).cloned();
        if outcome.status != Status::OutOfFuel
            || outcome.error.is_some()
            || req.component.is_some()
            || req.test.is_some()
        {
            return outcome;
        }
        let Some(inputs) = replayable else {
            return outcome;
        };
        // The re-run gets what is left of the run's wall-clock limit, so the
        // whole command stays within it; too little left, no location.
        let spent = std::time::Duration::from_secs_f64(outcome.duration_ms.max(0.0) / 1e3);
        let left = req.limits.timeout.saturating_sub(spent);
        if left < std::time::Duration::from_millis(50) {
            return outcome;
        }
        let mut again = req.clone();
        again.inputs = Some(Source::Replay(inputs));
        again.trace_lines = true;
        again.expect_stdout = None;
        again.limits.timeout = left;
        match self.run_unchecked(&again).await {
            Ok(located) => match located.error {
                Some(mut e) if e.kind == ErrorKind::Limit => {
                    // Stopped by time or by fuel in the traced re-run, the
                    // position is where the runaway artifact was.
                    e.class = Status::OutOfFuel.as_str().to_string();
                    outcome.error = Some(e);
                }
                _ => tracing::debug!(
                    status = %located.status,
                    diverged = ?located.replay_diverged,
                    "the traced re-run did not locate the stop"
                ),
            },
            Err(e) => tracing::warn!("cannot re-run to locate the stop: {e}"),
        }
        outcome
    }

    /// [`Runtime::run`] without the expectations.
    async fn run_unchecked(&self, req: &RunRequest) -> Result<Outcome, HostError> {
        if let Some(path) = &req.component {
            return self.run_component(path, req).await;
        }
        let prepared = self
            .prepare_async(&req.language, req.limits.fuel.is_some())
            .await?;
        run_prepared(&prepared, req).await
    }
}

impl RuntimeInner {
    fn prepared_already(&self, language: &str, metered: bool) -> Option<Arc<Prepared>> {
        let manifest = self.languages.by_name(language).ok()?;
        self.lock_prepared()
            .get(&(manifest.name.clone(), metered))
            .cloned()
    }

    fn slot(&self, metered: bool) -> Result<&EngineSlot, HostError> {
        let cell = if metered {
            &self.metered
        } else {
            &self.unmetered
        };
        if let Some(s) = cell.get() {
            return Ok(s);
        }
        let engine = Engine::new(&engine_config_with(metered, self.config.instance_pool))?;
        let ticker = EpochTicker::start(&engine).map_err(|source| HostError::System {
            what: "cannot start the epoch ticker thread",
            source,
        })?;
        let slot = EngineSlot {
            fingerprint: engine_fingerprint(&engine),
            engine,
            _ticker: ticker,
        };
        // If another thread won the race, its slot is used and ours dropped.
        Ok(cell.get_or_init(|| slot))
    }

    fn prepare(&self, language: &str, metered: bool) -> Result<Arc<Prepared>, HostError> {
        let manifest = self.languages.by_name(language)?;
        let key = (manifest.name.clone(), metered);
        if let Some(p) = self.lock_prepared().get(&key) {
            return Ok(p.clone());
        }
        let lock = self
            .loading
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key.clone())
            .or_default()
            .clone();
        let _loading = lock.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = self.lock_prepared().get(&key) {
            return Ok(p.clone());
        }
        let slot = self.slot(metered)?;
        let component_path = self.config.components_dir.join(&manifest.component);
        let on_compile = |path: &Path| {
            tracing::info!(language = %manifest.name, component = %path.display(), "compiling component");
            if let Some(sink) = &self.events {
                sink(&RuntimeEvent::Compiling {
                    language: manifest.name.clone(),
                    component: path.to_owned(),
                });
            }
        };
        let loaded = self.cache.load(
            &slot.engine,
            &slot.fingerprint,
            &manifest.name,
            &component_path,
            &on_compile,
        )?;
        if let (CacheStatus::Compiled(_), Some(sink)) = (&loaded.status, &self.events) {
            sink(&RuntimeEvent::Compiled {
                language: manifest.name.clone(),
                millis: loaded.millis,
            });
        }
        let linker = linker(&slot.engine)?;
        let instance_pre =
            linker
                .instantiate_pre(&loaded.component)
                .map_err(|e| HostError::Compile {
                    path: component_path.clone(),
                    reason: format!("it does not fit the llmos `language` world: {e:#}"),
                })?;
        let pre = LanguagePre::new(instance_pre).map_err(|e| HostError::Compile {
            path: component_path.clone(),
            reason: format!("it does not export `llmos:kernel/interpreter`: {e:#}"),
        })?;
        // What the manifest declares, the component must have.
        let component = &loaded.component;
        let run_cell = component
            .get_export_index(None, SESSION_EXPORT)
            .and_then(|i| component.get_export_index(Some(&i), "run-cell"));
        let missing = |what: &str, capability: &str| HostError::Compile {
            path: component_path.clone(),
            reason: format!("its manifest declares `{capability}` but it does not export {what}"),
        };
        if manifest.has(Capability::Sessions) && run_cell.is_none() {
            return Err(missing(&format!("`{SESSION_EXPORT}#run-cell`"), "sessions"));
        }
        if manifest.has(Capability::Preinit)
            && component
                .get_export_index(None, crate::preinit::INIT_EXPORT)
                .is_none()
        {
            return Err(missing("`init` (the language-preinit world)", "preinit"));
        }
        let prepared = Arc::new(Prepared {
            language: manifest.clone(),
            metered,
            pre,
            cache: loaded.status,
            load_ms: loaded.millis,
            cache_entry: loaded.path,
            storage: self.storage.clone(),
            quotas: self.quotas.clone(),
            run_cell: if manifest.has(Capability::Sessions) {
                run_cell
            } else {
                None
            },
        });
        self.lock_prepared().insert(key, prepared.clone());
        Ok(prepared)
    }

    fn lock_prepared(&self) -> std::sync::MutexGuard<'_, HashMap<(String, bool), Arc<Prepared>>> {
        self.prepared.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Run an artifact on an already prepared language.
///
/// The language must have been prepared on the engine the limits call for:
/// metered when `limits.fuel` is set, un-metered otherwise.
pub async fn run_prepared(prepared: &Prepared, req: &RunRequest) -> Result<Outcome, HostError> {
    let limits = &req.limits;
    let source = match &req.inputs {
        Some(source) => source.clone(),
        None => Source::for_seed(req.seed),
    };
    let mut store = new_store(prepared, &req.artifact_id, limits, Tape::new(source))?;
    store.data_mut().process.trace_lines = req.trace_lines;
    arm(&mut store, limits)?;
    if let Some(live) = &req.live {
        watch_live(&mut store, limits, live.clone());
    }
    let filename = artifact_filename(prepared, &req.filename);
    let start = Instant::now();
    // The epoch deadline stops running wasm; the tokio timeout (one tick
    // later) also stops a guest blocked inside a host call, e.g. a sleep.
    let result = tokio::time::timeout(limits.timeout + limits::EPOCH_TICK, async {
        let instance = prepared.pre.instantiate_async(&mut store).await?;
        instance
            .llmos_kernel_interpreter()
            .call_run(&mut store, &req.source, &filename)
            .await
    })
    .await;
    finish(&mut store, &prepared.language.name, limits, result, start)
}

/// A store for one run (or one session) of `prepared`, with the limiter,
/// the meter's call hook and the tape in place.
pub(crate) fn new_store(
    prepared: &Prepared,
    artifact_id: &str,
    limits: &Limits,
    tape: Tape,
) -> Result<Store<HostState>, HostError> {
    new_store_on(
        prepared.pre.engine(),
        prepared.metered,
        &prepared.quotas,
        prepared.storage.clone(),
        artifact_id,
        limits,
        tape,
    )
}

/// [`new_store`] on `engine` (`metered` when it has fuel enabled).
pub(crate) fn new_store_on(
    engine: &Engine,
    metered: bool,
    quotas: &Quotas,
    storage: Arc<StorageService>,
    artifact_id: &str,
    limits: &Limits,
    tape: Tape,
) -> Result<Store<HostState>, HostError> {
    limits.validate()?;
    if metered != limits.fuel.is_some() {
        let (run, engine) = match limits.fuel {
            Some(_) => ("fuel-limited", "metered"),
            None => ("un-metered", "un-metered"),
        };
        return Err(HostError::InvalidLimit(format!(
            "a {run} run needs the language prepared on the {engine} engine"
        )));
    }
    let mut store = Store::new(
        engine,
        HostState::new(artifact_id, limits, quotas, tape, storage),
    );
    store.limiter(|s| &mut s.limiter);
    store.call_hook(meter_host_calls);
    Ok(store)
}

/// Give the store the fuel and deadline of the call about to start.
pub(crate) fn arm(store: &mut Store<HostState>, limits: &Limits) -> Result<(), HostError> {
    if let Some(fuel) = limits.fuel {
        // The engine has fuel enabled (checked by `new_store`), so neither can fail.
        store.set_fuel(fuel)?;
        store.fuel_async_yield_interval(Some(limits::FUEL_YIELD_INTERVAL))?;
    }
    store.set_epoch_deadline(limits.epoch_ticks());
    store.epoch_deadline_trap();
    Ok(())
}

/// Sample the run into `live` at every kernel call (see
/// [`meter_host_calls`]) and every [`limits::LIVE_SAMPLE`]: the epoch
/// deadline is cut into samples, and the last one still ends the run with
/// the same `Trap::Interrupt` as [`arm`]'s single deadline.
fn watch_live(store: &mut Store<HostState>, limits: &Limits, live: Arc<crate::state::LiveUsage>) {
    live.start(limits.fuel);
    store.data_mut().live = Some(live.clone());
    let step = (limits::LIVE_SAMPLE.as_millis() / limits::EPOCH_TICK.as_millis()).max(1) as u64;
    let mut left = limits.epoch_ticks();
    let first = step.min(left);
    left -= first;
    store.set_epoch_deadline(first);
    store.epoch_deadline_callback(move |ctx| {
        let memory = ctx.data().limiter.current();
        live.sample(ctx.get_fuel().ok(), memory);
        if left == 0 {
            return Err(wasmtime::Trap::Interrupt.into());
        }
        let next = step.min(left);
        left -= next;
        Ok(wasmtime::UpdateDeadline::Continue(next))
    });
}

/// The file name an artifact's stack traces show: `filename`, or the
/// language's default.
pub(crate) fn artifact_filename(prepared: &Prepared, filename: &str) -> String {
    if filename.is_empty() {
        let ext = prepared
            .language
            .extensions
            .first()
            .map(String::as_str)
            .unwrap_or("txt");
        format!("artifact.{ext}")
    } else {
        filename.to_string()
    }
}

/// What a call into the guest returned, within the run's timeout.
pub(crate) type CallResult = Result<
    wasmtime::Result<
        Result<crate::bindings::interpreter::Success, crate::bindings::interpreter::GuestError>,
    >,
    tokio::time::error::Elapsed,
>;

/// Turn the end of a call into its [`Outcome`], taking the call's streams,
/// logs and outputs out of the store (which a session keeps for its next
/// cell).
pub(crate) fn finish(
    store: &mut Store<HostState>,
    language: &str,
    limits: &Limits,
    result: CallResult,
    start: Instant,
) -> Result<Outcome, HostError> {
    let duration_ms = start.elapsed().as_secs_f64() * 1e3;
    let fuel_consumed = limits
        .fuel
        .map(|initial| initial.saturating_sub(store.get_fuel().unwrap_or(0)));
    let state = store.data_mut();
    // The document is the run's last output; it is kept even when the run
    // failed, like every output produced before the failure.
    if let Err(e) = state.dom.finish(&mut state.outputs) {
        tracing::warn!("document output dropped: {e}");
    }
    let memory_denied = state.limiter.denied();
    let (status, value, error, trap) = match result {
        Err(_elapsed) => (
            Status::Timeout,
            None,
            None,
            Some(TrapInfo {
                message: "wall-clock timeout while blocked in a host call".into(),
                backtrace: None,
            }),
        ),
        Ok(Ok(Ok(success))) => (Status::Ok, success.value, None, None),
        Ok(Ok(Err(guest))) => {
            let error = GuestError::from_guest(guest, &state.error_limits);
            match (error.kind, error.exit_code) {
                // A clean exit is a success, and a success carries no error.
                (ErrorKind::Exit, Some(0)) => (Status::Ok, None, None, None),
                // The interpreter stopped it just before the limit: the
                // limit's status, located.
                (ErrorKind::Limit, _) => {
                    let status = if error.class == Status::Timeout.as_str() {
                        Status::Timeout
                    } else {
                        Status::OutOfFuel
                    };
                    (status, None, Some(error), None)
                }
                _ if memory_denied => (Status::MemoryLimit, None, Some(error), None),
                _ => (Status::Error, None, Some(error), None),
            }
        }
        // A full instance pool is the host's limit, not the artifact's doing.
        Ok(Err(err)) if err.is::<wasmtime::PoolConcurrencyLimitError>() => {
            return Err(HostError::Busy(err.to_string()));
        }
        Ok(Err(err)) => {
            let trap = TrapInfo {
                message: trap_message(&err),
                backtrace: err
                    .downcast_ref::<wasmtime::WasmBacktrace>()
                    .map(|bt| bt.to_string()),
            };
            match outcome::classify(&err, memory_denied) {
                Abort::Exit(0) => (Status::Ok, None, None, None),
                Abort::Exit(code) => (Status::Error, None, Some(exit_error(code)), None),
                Abort::Status(s) => (s, None, None, Some(trap)),
            }
        }
    };

    let stdout = state.stdout.captured();
    let stderr = state.stderr.captured();
    let mut truncated = Vec::new();
    for (name, t) in [
        ("stdout", stdout.truncated),
        ("stderr", stderr.truncated),
        ("logs", state.log.truncated()),
    ] {
        if t {
            truncated.push(name.to_string());
        }
    }
    let outputs = std::mem::replace(&mut state.outputs, crate::outputs::Outputs::new(0, 0));
    Ok(Outcome {
        status,
        language: language.to_string(),
        stdout: stdout.text,
        stderr: stderr.text,
        value,
        error,
        trap,
        fuel_consumed,
        memory_peak_bytes: state.limiter.peak(),
        host_fuel: state.meter.host_fuel(),
        host_memory_peak_bytes: state.meter.memory_peak(),
        duration_ms,
        logs: state.log.take_records(),
        truncated,
        outputs: outputs.into_vec(),
        inputs: Some(state.tape.inputs()),
        replay_diverged: state.tape.diverged(),
        diff: None,
        test: None,
    })
}

/// An `ok` outcome whose stdout is not `expected` becomes `wrong_output`,
/// with a diff.
pub(crate) fn check_stdout(outcome: &mut Outcome, expected: Option<&str>) {
    if let Some(expected) = expected
        && outcome.is_ok()
        && outcome.stdout != expected
    {
        outcome.status = Status::WrongOutput;
        outcome.diff = Some(crate::outcome::stdout_diff(expected, &outcome.stdout));
    }
}

/// The store's call hook: host work charged by the [`Meter`](crate::meter::Meter)
/// during a kernel call is taken from the store's fuel when the call returns;
/// a call that charged more than was left ends the run out of fuel.
fn meter_host_calls(
    mut ctx: wasmtime::StoreContextMut<'_, HostState>,
    hook: wasmtime::CallHook,
) -> wasmtime::Result<()> {
    match hook {
        wasmtime::CallHook::CallingHost => {
            let fuel = ctx.get_fuel().ok();
            if let Some(live) = &ctx.data().live {
                live.sample(fuel, ctx.data().limiter.current());
            }
            ctx.data_mut().meter.calling_host(fuel);
        }
        wasmtime::CallHook::ReturningFromHost => {
            let charged = ctx.data_mut().meter.returning_from_host();
            if charged > 0 {
                let left = ctx.get_fuel()?;
                ctx.set_fuel(left.saturating_sub(charged))?;
                if charged > left {
                    return Err(wasmtime::Trap::OutOfFuel.into());
                }
            }
        }
        wasmtime::CallHook::CallingWasm | wasmtime::CallHook::ReturningFromWasm => {}
    }
    Ok(())
}

/// The error record of a WASI `exit` (e.g. Python's `os._exit`).
fn exit_error(code: i32) -> GuestError {
    GuestError {
        kind: ErrorKind::Exit,
        class: "Exit".into(),
        message: format!("exited with code {code}"),
        line: None,
        column: None,
        stack: Vec::new(),
        exit_code: Some(code),
        globals: Vec::new(),
    }
}

/// The cause of a trap, without the backtrace wasmtime adds as context.
fn trap_message(err: &wasmtime::Error) -> String {
    match err.downcast_ref::<wasmtime::Trap>() {
        Some(trap) => trap.to_string(),
        None => err.root_cause().to_string(),
    }
}
