//! The per-run host state stored in each `Store`.

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use std::sync::Arc;

use crate::capture::CapturePipe;
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
}

impl HostState {
    /// A sandbox with no capabilities: no preopened directories, no
    /// environment, no arguments, no network, an empty stdin, and stdout and
    /// stderr captured into bounded pipes. Clocks and randomness come from the
    /// host; `seed` makes randomness deterministic (for replay). `artifact`
    /// names the run in logs and is its storage namespace.
    pub fn new(
        artifact: &str,
        limits: &Limits,
        quotas: &Quotas,
        seed: Option<u64>,
        storage: Arc<StorageService>,
    ) -> Self {
        let stdout = CapturePipe::new("stdout", limits.output_bytes);
        let stderr = CapturePipe::new("stderr", limits.output_bytes);
        let mut b = WasiCtxBuilder::new();
        b.stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }));
        if let Some(seed) = seed {
            use rand::SeedableRng;
            b.secure_random(rand::rngs::StdRng::seed_from_u64(seed))
                .insecure_random(rand::rngs::StdRng::seed_from_u64(seed ^ 0x5eed))
                .insecure_random_seed(u128::from(seed));
        }
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
            process: ProcessCtx,
            storage: StorageCtx::new(artifact, storage),
            viz: VizCtx::new(quotas.viz.clone(), quotas.max_canvases),
            dom: DomCtx::new(quotas.dom.clone(), quotas.max_element_handles),
            quantum: QuantumCtx::new(seed, quotas.quantum.clone()),
            outputs: Outputs::new(quotas.max_outputs, quotas.max_outputs_bytes),
        }
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
