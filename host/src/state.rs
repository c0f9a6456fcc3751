//! The per-run host state stored in each `Store`.

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::capture::CapturePipe;
use crate::inputs::{MonotonicView, Tape, WallClock};
use crate::kernel::dom::DomCtx;
use crate::kernel::log::LogCtx;
use crate::kernel::process::ProcessCtx;
use crate::kernel::quantum::QuantumCtx;
use crate::kernel::storage::{StorageCtx, StorageService};
use crate::kernel::viz::VizCtx;
use crate::limits::{Limits, MemoryLimiter, Quotas};
use crate::meter::Meter;
use crate::outcome::ErrorLimits;
use crate::outputs::Outputs;

/// Everything one run's store holds: the WASI context (no capabilities), the
/// resource table, the limiter, the meter of host work and one context per
/// kernel API.
pub struct HostState {
    /// WASI with no preopens, environment or network.
    pub wasi: WasiCtx,
    /// Guest resources (canvases, elements, WASI streams).
    pub table: ResourceTable,
    /// Linear memory and table limits.
    pub limiter: MemoryLimiter,
    /// Accounting of host work (fuel, deadline, host memory).
    pub meter: Meter,
    /// Bounds on the guest's error record.
    pub error_limits: ErrorLimits,
    pub stdout: CapturePipe,
    pub stderr: CapturePipe,
    pub log: LogCtx,
    pub process: ProcessCtx,
    pub storage: StorageCtx,
    pub viz: VizCtx,
    pub dom: DomCtx,
    pub quantum: QuantumCtx,
    /// Pictures and documents produced through the kernel APIs.
    pub outputs: Outputs,
    /// The run's nondeterministic inputs: supplied and recorded here.
    pub tape: Tape,
    /// Where a live display reads the run's usage (see [`LiveUsage`]).
    pub live: Option<Arc<LiveUsage>>,
    /// The run's storage namespace (the artifact id).
    artifact: String,
    storage_service: Arc<StorageService>,
}

impl HostState {
    /// A sandbox with no capabilities: no preopened directories, no
    /// environment, no arguments, no network, an empty stdin, and stdout and
    /// stderr captured into bounded pipes. Clocks, randomness and storage
    /// replies come through `tape` (host clocks, virtual ones for a seeded
    /// run, or a record being replayed). `artifact` names the run in logs
    /// and is its storage namespace.
    pub fn new(
        artifact: &str,
        limits: &Limits,
        quotas: &Quotas,
        tape: Tape,
        storage: Arc<StorageService>,
    ) -> Self {
        let stdout = CapturePipe::new("stdout", limits.output_bytes);
        let stderr = CapturePipe::new("stderr", limits.output_bytes);
        let (secure, insecure) = tape.rngs();
        let mut b = WasiCtxBuilder::new();
        b.stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }))
            .secure_random(secure)
            .insecure_random(insecure)
            // Read when the instance is created, from the first run's seed.
            .insecure_random_seed(u128::from(tape.seed()))
            .wall_clock(WallClock(tape.clone()));
        let seed = Some(tape.seed());
        HostState {
            wasi: b.build(),
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(limits.memory_bytes),
            meter: Meter::new(
                std::time::Instant::now(),
                limits.timeout,
                limits.fuel,
                limits.host_memory_bytes,
            ),
            error_limits: quotas.error.clone(),
            stdout,
            stderr,
            log: LogCtx::new(artifact, limits.log_records, limits.output_bytes),
            process: ProcessCtx::default(),
            storage: StorageCtx::new(artifact, storage.clone(), tape.clone()),
            viz: VizCtx::new(quotas.viz.clone(), quotas.max_canvases),
            dom: DomCtx::new(quotas.dom.clone(), quotas.max_element_handles),
            quantum: QuantumCtx::new(seed, quotas.quantum.clone()),
            outputs: Outputs::new(quotas.max_outputs, quotas.max_outputs_bytes),
            tape,
            live: None,
            artifact: artifact.to_string(),
            storage_service: storage,
        }
    }

    /// Make the state ready for the next session cell on the same instance:
    /// empty streams, logs and outputs under the cell's limits, a fresh
    /// meter, kernel contexts seeded from the tape's new seed (the caller
    /// restarts the tape first). The resource table and WASI context stay:
    /// the guest keeps its handles between cells.
    pub fn start_cell(&mut self, limits: &Limits, quotas: &Quotas) {
        let seed = Some(self.tape.seed());
        self.stdout.reset(limits.output_bytes);
        self.stderr.reset(limits.output_bytes);
        self.limiter.start_cell(limits.memory_bytes);
        self.meter = Meter::new(
            std::time::Instant::now(),
            limits.timeout,
            limits.fuel,
            limits.host_memory_bytes,
        );
        self.error_limits = quotas.error.clone();
        self.log = LogCtx::new(&self.artifact, limits.log_records, limits.output_bytes);
        self.storage = StorageCtx::new(
            self.artifact.clone(),
            self.storage_service.clone(),
            self.tape.clone(),
        );
        self.viz = VizCtx::new(quotas.viz.clone(), quotas.max_canvases);
        self.dom = DomCtx::new(quotas.dom.clone(), quotas.max_element_handles);
        self.quantum = QuantumCtx::new(seed, quotas.quantum.clone());
        self.outputs = Outputs::new(quotas.max_outputs, quotas.max_outputs_bytes);
    }

    /// The monotonic clock's view of this state.
    pub fn monotonic(&mut self) -> MonotonicView<'_> {
        MonotonicView {
            tape: &self.tape,
            table: &mut self.table,
        }
    }
}

/// A run's usage so far, readable from any thread while it runs: what a
/// live display (the dashboard's active runs) shows. The engine samples it
/// at every kernel call and every [`crate::limits::LIVE_SAMPLE`] of wall
/// time (see [`crate::engine::RunRequest::live`]); the outcome remains the
/// exact account.
#[derive(Debug, Default)]
pub struct LiveUsage {
    fuel_limit: AtomicU64,
    fuel_used: AtomicU64,
    memory_bytes: AtomicU64,
    metered: AtomicBool,
}

impl LiveUsage {
    /// Fuel used so far (`None` for an un-metered run).
    pub fn fuel_used(&self) -> Option<u64> {
        self.metered
            .load(Ordering::Relaxed)
            .then(|| self.fuel_used.load(Ordering::Relaxed))
    }
    /// Linear memory held at the last sample.
    pub fn memory_bytes(&self) -> u64 {
        self.memory_bytes.load(Ordering::Relaxed)
    }
    /// A run with `fuel_limit` (`None`: un-metered) starts.
    pub(crate) fn start(&self, fuel_limit: Option<u64>) {
        self.metered.store(fuel_limit.is_some(), Ordering::Relaxed);
        self.fuel_limit
            .store(fuel_limit.unwrap_or(0), Ordering::Relaxed);
        self.fuel_used.store(0, Ordering::Relaxed);
    }
    /// Record a sample: `fuel_left` in the store, `memory` bytes held.
    pub(crate) fn sample(&self, fuel_left: Option<u64>, memory: u64) {
        if let Some(left) = fuel_left
            && self.metered.load(Ordering::Relaxed)
        {
            let limit = self.fuel_limit.load(Ordering::Relaxed);
            self.fuel_used
                .store(limit.saturating_sub(left), Ordering::Relaxed);
        }
        self.memory_bytes.store(memory, Ordering::Relaxed);
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
