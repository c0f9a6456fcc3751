//! Every limit of a run in one place, and how Wasmtime enforces each.
//!
//! | limit        | enforced by                                                        | outcome          |
//! |--------------|--------------------------------------------------------------------|------------------|
//! | fuel         | `Config::consume_fuel` + `Store::set_fuel`                         | `out_of_fuel`    |
//! | memory       | [`MemoryLimiter`], a `ResourceLimiter` on the store                | `memory_limit`   |
//! | wall clock   | epoch interruption ([`EpochTicker`]) + a tokio timeout for guests blocked in a host call | `timeout` |
//! | output       | bounded capture pipes ([`crate::capture`]) and the log API        | `output_limit`   |
//! | wasm stack   | `Config::max_wasm_stack`                                           | `stack_overflow` |
//!
//! Host work done inside kernel calls is bounded by the same run's limits
//! (see [`crate::meter`]):
//!
//! | host budget  | enforced by                                                        | outcome          |
//! |--------------|--------------------------------------------------------------------|------------------|
//! | host fuel    | each kernel call charges its cost model to the run's fuel (call hook) | `out_of_fuel` |
//! | host time    | long host loops check the run's deadline                           | `timeout`        |
//! | host memory  | every kernel module reserves the bytes it keeps (`host_memory`)    | typed guest error |
//! | error record | the guest's error is clipped ([`crate::outcome::ErrorLimits`])      | clipped text     |
//!
//! The kernel APIs' quotas are a value, [`Quotas`], carried in the runtime
//! configuration and handed to each kernel module when a run starts. Crossing
//! one is not a trap: the call fails with a typed, guest-visible error that
//! the artifact can catch, and the run goes on.
//!
//! Outcomes are classified by the *type* of the error Wasmtime returns
//! ([`crate::outcome::classify`]), never by matching message strings.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use wasmtime::{Engine, ResourceLimiter};

use crate::error::HostError;
use crate::kernel::dom::tree::DomLimits;
use crate::kernel::quantum::sim::QuantumLimits;
use crate::kernel::storage::store::StorageLimits;
use crate::kernel::viz::VizLimits;
use crate::outcome::ErrorLimits;

/// Per-run limits. `fuel: None` runs on the un-metered engine (epoch deadline only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Deterministic CPU budget in Wasmtime fuel units (≈ one per wasm instruction).
    pub fuel: Option<u64>,
    /// Maximum linear memory, in bytes, summed over all memories of the instance.
    pub memory_bytes: u64,
    /// Wall-clock budget for instantiation plus the run.
    #[serde(
        serialize_with = "ser_duration_ms",
        deserialize_with = "de_duration_ms"
    )]
    pub timeout: Duration,
    /// Maximum bytes captured per stream: stdout, stderr, and log text.
    pub output_bytes: usize,
    /// Maximum number of log records per run.
    pub log_records: usize,
    /// Host-side bytes the run's kernel calls may keep alive (canvases,
    /// scenes, the document, logs, outputs, the error record).
    pub host_memory_bytes: u64,
}

/// Fuel for roughly one second of guest work on this class of machine.
pub const DEFAULT_FUEL: u64 = 10_000_000_000;
/// Default linear memory of a sandboxed run.
pub const DEFAULT_MEMORY_BYTES: u64 = 128 << 20;
/// Default wall clock of a sandboxed run.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default bytes captured per stream.
pub const DEFAULT_OUTPUT_BYTES: usize = 1 << 20;
/// Default log records per run.
pub const DEFAULT_LOG_RECORDS: usize = 10_000;

/// Maximum size of the wasm call stack (native stack used by compiled wasm).
///
/// 16 MiB gives JavaScript ~20k frames (more than node) while staying below
/// the point where the QuickJS guest's 8 MiB linear-memory stack would run
/// out first (an out-of-bounds trap instead of a clean `stack_overflow`).
/// Python raises `RecursionError` for Python-level recursion at any size;
/// pathological C-level recursion (repr of a 100k-deep list) ends as
/// `stack_overflow`.
pub const MAX_WASM_STACK: usize = 16 << 20;
/// Size of the fiber stack an async call runs on; must exceed [`MAX_WASM_STACK`].
pub const ASYNC_STACK: usize = MAX_WASM_STACK + (1 << 20);
/// Maximum table elements (the Python component needs ~64 K).
pub const MAX_TABLE_ELEMENTS: usize = 1 << 20;
/// Table elements of one table slot in the instance pool (see
/// [`InstancePool`](crate::engine::InstancePool)); a guest whose tables need
/// more cannot be instantiated from a pool. The Python component needs ~64 K.
pub const POOL_TABLE_ELEMENTS: usize = 1 << 17;
/// Bytes of a pooled linear memory kept resident between sandboxes: with
/// Linux's `PAGEMAP_SCAN` only the pages a run dirtied are restored (copied
/// back from the image or zeroed), the rest is returned with `madvise`. The
/// default memory limit, so a whole sandbox is reset without page faults;
/// the price is that a slot keeps resident what its runs touched (measured:
/// 64 MiB gave Python 860 runs/s, 128 MiB 1 040, on 2 workers).
pub const POOL_MEMORY_KEEP_RESIDENT: usize = 128 << 20;
/// Bytes of a pooled table, and of a pooled async stack, kept resident.
pub const POOL_KEEP_RESIDENT: usize = 1 << 20;
/// Core instances, memories and tables one pooled component may have.
pub const POOL_CORE_INSTANCES_PER_COMPONENT: u32 = 64;
/// Memories one pooled component may have.
pub const POOL_MEMORIES_PER_COMPONENT: u32 = 8;
/// Tables one pooled component may have.
pub const POOL_TABLES_PER_COMPONENT: u32 = 32;

/// Engine configurations whose precompiled entries the component cache
/// keeps per component: the four of a build (metered and un-metered, each
/// with or without the instance pool) and those of one earlier build. Older
/// ones (~40 MB each for Python) are removed when a component is next
/// compiled.
pub const CACHE_ENGINE_CONFIGS: usize = 8;

/// Maximum instances / tables / memories per store.
pub const MAX_INSTANCES: usize = 64;
/// Maximum tables per store.
pub const MAX_TABLES: usize = 64;
/// Maximum memories per store.
pub const MAX_MEMORIES: usize = 8;

/// The kernel APIs' quotas: a value carried in the runtime configuration
/// ([`crate::RuntimeConfig::quotas`]) and handed to each kernel module when a
/// run starts. Crossing one is a typed, catchable guest error, not a trap.
#[derive(Debug, Clone, PartialEq)]
pub struct Quotas {
    /// Per-namespace quotas of `storage` (one namespace per artifact id).
    pub storage: StorageLimits,
    /// Bounds of `viz`: canvas side, points per chart, drawing operations and
    /// text per canvas, 3D scene size.
    pub viz: VizLimits,
    /// Live canvases per run.
    pub max_canvases: usize,
    /// Bounds of the `dom` document of a run.
    pub dom: DomLimits,
    /// Live element handles per run (query results create new handles).
    pub max_element_handles: usize,
    /// Bounds of the `quantum` simulator.
    pub quantum: QuantumLimits,
    /// Outputs (charts, canvases, scenes, diagrams, the document) per run.
    pub max_outputs: usize,
    /// Total bytes of a run's outputs.
    pub max_outputs_bytes: usize,
    /// Bounds on the error record a guest returns (class, message, frames,
    /// variables): clipped on the host before anything shows it.
    pub error: ErrorLimits,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            storage: StorageLimits {
                max_key_bytes: 512,
                max_value_bytes: 1 << 20,
                max_namespace_bytes: 16 << 20,
                max_keys: 10_000,
            },
            viz: VizLimits {
                max_canvas_side: 2000,
                max_points: 200_000,
                max_ops: 100_000,
                max_text_bytes: 1 << 20,
                max_scene_items: 1_000_000,
                max_json_bytes: 32 << 20,
                // About 1 s of rasterizing on a 2-core machine (3e8 units per second).
                max_draw_cost: 300_000_000,
            },
            max_canvases: 64,
            dom: DomLimits {
                max_nodes: 10_000,
                max_bytes: 4 << 20,
                max_depth: 64,
                max_selector_bytes: 1024,
            },
            max_element_handles: 100_000,
            // 16 qubits is 65,536 amplitudes (1 MiB).
            quantum: QuantumLimits {
                max_qubits: 16,
                max_gates: 10_000,
                max_shots: 1_000_000,
            },
            max_outputs: 256,
            max_outputs_bytes: 64 << 20,
            error: ErrorLimits::default(),
        }
    }
}

/// How often the engine's epoch advances: the resolution of the wall-clock limit.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);
/// How often a run watched live ([`crate::LiveUsage`]) samples its fuel and
/// memory, in wall time (a multiple of [`EPOCH_TICK`]).
pub const LIVE_SAMPLE: Duration = Duration::from_millis(100);
/// A metered guest yields to the async executor after this much fuel, so many
/// runs can share a thread fairly.
pub const FUEL_YIELD_INTERVAL: u64 = 50_000_000;

/// Limits of a trusted artifact (a hash-verified file of the system
/// volume): the un-metered engine (epoch deadline only) and larger bounds.
pub fn trusted() -> Limits {
    Limits {
        fuel: None,
        memory_bytes: 1 << 30,
        timeout: Duration::from_secs(60),
        output_bytes: 16 << 20,
        log_records: 100_000,
        host_memory_bytes: 256 << 20,
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel: Some(DEFAULT_FUEL),
            memory_bytes: DEFAULT_MEMORY_BYTES,
            timeout: DEFAULT_TIMEOUT,
            output_bytes: DEFAULT_OUTPUT_BYTES,
            log_records: DEFAULT_LOG_RECORDS,
            host_memory_bytes: crate::meter::DEFAULT_HOST_MEMORY,
        }
    }
}

impl Limits {
    /// Epoch ticks until the deadline, rounded up, at least one.
    pub fn epoch_ticks(&self) -> u64 {
        let tick = EPOCH_TICK.as_nanos();
        (self.timeout.as_nanos().div_ceil(tick)).max(1) as u64
    }

    /// Refuse limits no run can have (zero fuel, tiny memory, zero time).
    pub fn validate(&self) -> Result<(), HostError> {
        if self.fuel == Some(0) {
            return Err(HostError::InvalidLimit("fuel must be positive".into()));
        }
        if self.memory_bytes < (1 << 20) {
            return Err(HostError::InvalidLimit(
                "memory must be at least 1MiB".into(),
            ));
        }
        if self.timeout.is_zero() {
            return Err(HostError::InvalidLimit("timeout must be positive".into()));
        }
        Ok(())
    }
}

fn ser_duration_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

fn de_duration_ms<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    u64::deserialize(d).map(Duration::from_millis)
}

/// Parse a size: `1048576`, `512K`, `64M`, `128MiB`, `1G`, `2GB` (binary units).
pub fn parse_size(text: &str) -> Result<u64, HostError> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| HostError::InvalidLimit(format!("`{text}` is not a size (try 128MiB)")))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => {
            return Err(HostError::InvalidLimit(format!(
                "`{text}` has an unknown unit (use K, M or G)"
            )));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| HostError::InvalidLimit(format!("`{text}` is too large")))
}

/// Parse a duration: `10s`, `500ms`, `1.5s`, `2m`, `100us`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, HostError> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| {
        HostError::InvalidLimit(format!("`{text}` is not a duration (try 10s or 500ms)"))
    })?;
    let secs = match unit.trim() {
        "" | "s" | "sec" => n,
        "ms" => n / 1e3,
        "us" | "µs" => n / 1e6,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        _ => {
            return Err(HostError::InvalidLimit(format!(
                "`{text}` has an unknown unit (use ms, s or m)"
            )));
        }
    };
    if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
        return Err(HostError::InvalidLimit(format!("`{text}` is out of range")));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// The store's `ResourceLimiter`: caps linear memory and tables, and records
/// the peak and whether the guest was ever refused memory.
///
/// A refused growth is reported to the guest as a failed `memory.grow` (its
/// allocator then raises the language's own out-of-memory error) rather than
/// trapping, so an artifact can catch `MemoryError` and carry on. The run is
/// classified `memory_limit` if it then fails in any way.
#[derive(Debug)]
pub struct MemoryLimiter {
    limit: u64,
    current: u64,
    peak: u64,
    denied: bool,
}

impl MemoryLimiter {
    /// A limiter allowing `limit` bytes of linear memory.
    pub fn new(limit: u64) -> Self {
        MemoryLimiter {
            limit,
            current: 0,
            peak: 0,
            denied: false,
        }
    }
    /// The most linear memory held at once.
    pub fn peak(&self) -> u64 {
        self.peak
    }
    /// The linear memory held now.
    pub fn current(&self) -> u64 {
        self.current
    }
    /// Whether a growth was ever refused.
    pub fn denied(&self) -> bool {
        self.denied
    }

    /// Start the next session cell on the same instance: its own limit, a
    /// peak counted from the memory the session already holds.
    pub fn start_cell(&mut self, limit: u64) {
        self.limit = limit;
        self.peak = self.current;
        self.denied = false;
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let grow = desired.saturating_sub(current) as u64;
        let total = self.current.saturating_add(grow);
        if total > self.limit {
            self.denied = true;
            return Ok(false);
        }
        self.current = total;
        self.peak = self.peak.max(total);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }
    fn tables(&self) -> usize {
        MAX_TABLES
    }
    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

/// Advances an engine's epoch every [`EPOCH_TICK`] on a background thread,
/// for as long as it lives. Stores turn the epoch into a wall-clock deadline.
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EpochTicker {
    /// Start ticking `engine`'s epoch (the thread ends with the ticker or the engine).
    pub fn start(engine: &Engine) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let weak = engine.weak();
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("llmos-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    // Parked rather than slept, so dropping the ticker wakes
                    // it at once instead of waiting out the tick.
                    std::thread::park_timeout(EPOCH_TICK);
                    if flag.load(Ordering::Relaxed) {
                        break;
                    }
                    match weak.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })?;
        Ok(EpochTicker {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("128MiB").ok(), Some(128 << 20));
        assert_eq!(parse_size("64m").ok(), Some(64 << 20));
        assert_eq!(parse_size("1G").ok(), Some(1 << 30));
        assert_eq!(parse_size("4096").ok(), Some(4096));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("12X").is_err());
        assert!(parse_size("99999999999999G").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s").ok(), Some(Duration::from_secs(10)));
        assert_eq!(
            parse_duration("250ms").ok(),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            parse_duration("1.5").ok(),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_duration("2m").ok(), Some(Duration::from_secs(120)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5 parsecs").is_err());
    }

    #[test]
    fn limiter_tracks_peak_and_denial() {
        let mut l = MemoryLimiter::new(10 << 20);
        assert!(l.memory_growing(0, 4 << 20, None).unwrap_or(false));
        assert!(l.memory_growing(4 << 20, 8 << 20, None).unwrap_or(false));
        assert!(!l.denied());
        assert!(!l.memory_growing(8 << 20, 16 << 20, None).unwrap_or(true));
        assert!(l.denied());
        assert_eq!(l.peak(), 8 << 20);
    }

    #[test]
    fn epoch_ticks_round_up() {
        let l = Limits {
            timeout: Duration::from_millis(1),
            ..Limits::default()
        };
        assert_eq!(l.epoch_ticks(), 1);
        let l = Limits {
            timeout: Duration::from_secs(1),
            ..Limits::default()
        };
        assert_eq!(l.epoch_ticks(), 200);
    }
}
