//! The run's accounting of host work: every kernel call pays for what it
//! makes the host do, out of the same budgets the guest's own code spends.
//!
//! A [`Meter`] lives in each run's store. Kernel modules receive it in their
//! view and, before or while doing expensive work, call:
//! - [`Meter::charge`]: host fuel, by the cost model below. The units come
//!   out of the run's Wasmtime fuel, so a small `--fuel` cannot buy seconds
//!   of host CPU. Past the budget the call traps with `Trap::OutOfFuel`.
//! - [`Meter::afford`]: the same check without paying, so a call whose work
//!   would not fit is refused *before* the work is done.
//! - [`Meter::check_time`]: the wall-clock deadline, for long host loops
//!   (rasterising, simulating, serialising). Past it the call traps with
//!   `Trap::Interrupt`, classified `timeout` like an epoch interrupt.
//! - [`Meter::reserve`] / [`Meter::release`]: host-side bytes the run keeps
//!   alive (canvas operations, scenes, the document, logs, outputs, error
//!   records). Past the run's `host_memory` budget the call fails with
//!   [`HostMemoryExceeded`], which kernel modules turn into their own typed,
//!   catchable guest error.
//!
//! ## How host fuel reaches the store
//! Host functions cannot touch the `Store`, so the engine installs a call
//! hook ([`Meter::calling_host`], [`Meter::returning_from_host`]): when the
//! guest enters the host, the hook records the fuel it has left, so charges
//! can be checked against it during the call; when the call returns, the hook
//! subtracts what the call charged from the store's fuel. An un-metered
//! (trusted) run pays no fuel, but its deadline still holds.
//!
//! ## Cost model (host fuel units; one unit ≈ one wasm instruction)
//! | work                                  | cost                                   |
//! |---------------------------------------|----------------------------------------|
//! | any kernel call                       | [`cost::CALL`]                         |
//! | bytes parsed, copied or serialised    | [`cost::PER_BYTE`] per byte            |
//! | rasterising                           | [`cost::PER_PIXEL`] per pixel covered  |
//! | text                                  | [`cost::PER_GLYPH_PX`] per glyph × size in px |
//! | quantum simulation                    | [`cost::PER_AMPLITUDE`] per amplitude updated |
//! | DOM and selector work                 | [`cost::PER_NODE`] per node or attribute visited |
//! | storage writes                        | [`cost::STORAGE_WRITE`] plus bytes     |
//!
//! The factors come from measuring each engine on this class of machine
//! against the guest's fuel rate (about 1e10 units ≈ 1 s, i.e. 10 units per
//! nanosecond), rounded up. Measured with the ignored unit test
//! `kernel::viz::render::tests::calibrate_engines`
//! (`cargo test --release -p llmos --lib calibrate -- --ignored --nocapture`),
//! which times each engine on its worst inputs and prints the fuel charged
//! per nanosecond (target ≈ 10):
//!
//! | engine and input                                   | time     | fuel/ns |
//! |----------------------------------------------------|----------|---------|
//! | canvas 2000², 200 huge translucent circles (8.3e8 units) | 1.7–2.1 s | 9.9 |
//! | canvas 2000², 3000 long lines (3.0e8 units)        | 0.7–0.8 s | 9.1    |
//! | canvas 2000², 50k small rects (1.0e8 units)        | 0.24 s   | 10.6    |
//! | canvas 2000², 400 × 100 glyphs at 40 px (2.2e8 units) | 0.5–0.6 s | 10.6 (12 with per-glyph fuel) |
//! | empty 2000² picture (clear + PNG)                  | 30–40 ms | 14      |
//! | chart, 200k-point line                             | 50–65 ms | 9.7     |
//! | chart, 200k-point scatter                          | 1.2–1.4 s | 6.6 (bounded per chart by `max_draw_cost`) |
//! | 16 qubits × 2000 gates                             | 80–105 ms | 13–17  |
//! | 16 qubits, 1e6 shots                               | 0.2–0.34 s | ~10–15 |
//! | DOM, `*` over 10k elements                         | 0.7 ms   | 9.4     |
//! | DOM, serialising 10k elements                      | 0.3–0.6 ms | 9–14  |
//!
//! Rasterizing is estimated in `viz::render::DrawCost` units (≈ pixels
//! covered, plus fixed per-shape and per-character costs), measured at
//! 2.0–2.8 ns per unit; [`cost::PER_PIXEL`] is charged per unit, and the
//! same estimate (at 3 ns per unit, plus half) decides whether a render can
//! end before the run's deadline, since resvg cannot be interrupted.
//! Storage writes were ~90 µs each on the test machine's disk; the price
//! assumes a slower, fsyncing disk (0.2 ms). Measurements vary by ±30% on
//! the shared 2-core machine; prices round towards the slower runs.

use std::time::{Duration, Instant};

use wasmtime::Trap;

/// Host fuel prices of the cost model (see the module docs).
pub mod cost {
    /// Base price of any kernel call that does real work.
    pub const CALL: u64 = 1_000;
    /// Per byte parsed, copied, hashed or serialised.
    pub const PER_BYTE: u64 = 20;
    /// Per pixel rasterised (filled or stroked area; the whole picture for
    /// PNG encoding): per unit of `viz::render::DrawCost`, measured at
    /// 2.0–2.5 ns each for fills, strokes and small shapes.
    pub const PER_PIXEL: u64 = 25;
    /// Per glyph, times its size in pixels: laying out and outlining glyphs
    /// grows with their size, on top of the fixed draw cost of a character
    /// (`viz::render::CHAR_COST`, paid per pixel unit like any drawing).
    pub const PER_GLYPH_PX: u64 = 500;
    /// Per amplitude updated by a gate or read by a measurement (0.8 ns per
    /// update on 16 qubits).
    pub const PER_AMPLITUDE: u64 = 10;
    /// Per DOM node or attribute visited (selectors, serialisation,
    /// sanitising), per selector step.
    pub const PER_NODE: u64 = 700;
    /// Per storage write (a transaction with fsync).
    pub const STORAGE_WRITE: u64 = 2_000_000;
}

/// Default budget of host-side bytes one run may keep alive.
pub const DEFAULT_HOST_MEMORY: u64 = 64 << 20;

/// A host budget that a kernel call ran out of: the run ends (a trap).
///
/// Deliberately not a `std::error::Error`: it converts (with `?`) only into
/// the Wasmtime trap the guest's own code would have raised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostLimit {
    /// The run's fuel cannot pay for the host work.
    Fuel,
    /// The run's wall-clock deadline passed during host work.
    Deadline,
}

impl From<HostLimit> for wasmtime::Error {
    /// The trap Wasmtime itself would raise, so classification by type holds.
    fn from(l: HostLimit) -> Self {
        match l {
            HostLimit::Fuel => wasmtime::Error::from(Trap::OutOfFuel),
            HostLimit::Deadline => wasmtime::Error::from(Trap::Interrupt),
        }
    }
}

/// The run's host-memory budget refused a reservation; the call fails with a
/// typed, catchable error and the run goes on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the run's host memory budget ({limit} bytes) is exhausted: {used} bytes in use, {asked} more asked"
)]
pub struct HostMemoryExceeded {
    /// The budget.
    pub limit: u64,
    /// Bytes held when the reservation was refused.
    pub used: u64,
    /// Bytes asked for.
    pub asked: u64,
}

/// Per-run accounting of host work (see the module docs).
#[derive(Debug, Clone)]
pub struct Meter {
    deadline: Instant,
    /// The run's wall-clock limit.
    timeout: Duration,
    /// The run's fuel limit.
    fuel_limit: Option<u64>,
    /// Whether host work pays fuel (the run is fuel-metered).
    metered: bool,
    /// Fuel the guest had when it entered the current host call.
    fuel_at_entry: u64,
    /// Fuel charged during the current host call.
    charged_in_call: u64,
    /// Fuel charged over the whole run.
    host_fuel: u64,
    memory_limit: u64,
    memory_used: u64,
    memory_peak: u64,
}

impl Meter {
    /// A meter for a run that started at `start` with these budgets.
    /// `fuel` is the run's fuel (`None`: un-metered, host work is free).
    pub fn new(start: Instant, timeout: Duration, fuel: Option<u64>, host_memory: u64) -> Self {
        Meter {
            deadline: start.checked_add(timeout).unwrap_or(start),
            timeout,
            fuel_limit: fuel,
            metered: fuel.is_some(),
            fuel_at_entry: fuel.unwrap_or(u64::MAX),
            charged_in_call: 0,
            host_fuel: 0,
            memory_limit: host_memory,
            memory_used: 0,
            memory_peak: 0,
        }
    }

    /// No budgets at all: for engine unit tests and tools.
    pub fn unlimited() -> Self {
        Meter::new(
            Instant::now(),
            Duration::from_secs(u64::from(u32::MAX)),
            None,
            u64::MAX,
        )
    }

    /// Fuel left for host work in the current call.
    fn fuel_left(&self) -> u64 {
        self.fuel_at_entry.saturating_sub(self.charged_in_call)
    }

    /// Would `units` of host fuel fit? Checks the deadline too. Pays nothing.
    pub fn afford(&self, units: u64) -> Result<(), HostLimit> {
        self.check_time()?;
        if self.metered && units > self.fuel_left() {
            return Err(HostLimit::Fuel);
        }
        Ok(())
    }

    /// Pay `units` of host fuel (and check the deadline). When the fuel
    /// cannot pay, what is left is spent and the call must trap.
    pub fn charge(&mut self, units: u64) -> Result<(), HostLimit> {
        self.check_time()?;
        if !self.metered {
            return Ok(());
        }
        let left = self.fuel_left();
        let paid = units.min(left);
        self.charged_in_call += paid;
        self.host_fuel = self.host_fuel.saturating_add(paid);
        if units > left {
            return Err(HostLimit::Fuel);
        }
        Ok(())
    }

    /// The wall-clock deadline.
    pub fn check_time(&self) -> Result<(), HostLimit> {
        if Instant::now() >= self.deadline {
            Err(HostLimit::Deadline)
        } else {
            Ok(())
        }
    }

    /// The run's deadline.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Keep `bytes` of host memory for the rest of the run (or until released).
    pub fn reserve(&mut self, bytes: u64) -> Result<(), HostMemoryExceeded> {
        let total = self.memory_used.saturating_add(bytes);
        if total > self.memory_limit {
            return Err(HostMemoryExceeded {
                limit: self.memory_limit,
                used: self.memory_used,
                asked: bytes,
            });
        }
        self.memory_used = total;
        self.memory_peak = self.memory_peak.max(total);
        Ok(())
    }

    /// Give back bytes reserved earlier (e.g. a dropped canvas).
    pub fn release(&mut self, bytes: u64) {
        self.memory_used = self.memory_used.saturating_sub(bytes);
    }

    /// Host bytes held now.
    pub fn memory_used(&self) -> u64 {
        self.memory_used
    }

    /// The most host bytes held at once during the run.
    pub fn memory_peak(&self) -> u64 {
        self.memory_peak
    }

    /// Host fuel charged over the run (included in the run's fuel consumed).
    pub fn host_fuel(&self) -> u64 {
        self.host_fuel
    }

    /// Call hook: the guest enters the host with `fuel` left (`None` when
    /// un-metered or unreadable).
    pub(crate) fn calling_host(&mut self, fuel: Option<u64>) {
        self.charged_in_call = 0;
        if let Some(f) = fuel {
            self.fuel_at_entry = f;
        }
    }

    /// The run's budgets as they stand: (fuel limit, fuel left, wall-clock
    /// limit, time left), for `process.budget`.
    pub fn budget(&self) -> (Option<u64>, Option<u64>, Duration, Duration) {
        (
            self.fuel_limit,
            self.metered.then(|| self.fuel_left()),
            self.timeout,
            self.deadline.saturating_duration_since(Instant::now()),
        )
    }

    /// Call hook: the host call returns; what it charged, to take from the
    /// store's fuel.
    pub(crate) fn returning_from_host(&mut self) -> u64 {
        std::mem::take(&mut self.charged_in_call)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_up_to_the_fuel_left_then_refuses() {
        let mut m = Meter::new(
            Instant::now(),
            Duration::from_secs(60),
            Some(1_000),
            1 << 20,
        );
        m.calling_host(Some(1_000));
        assert_eq!(m.afford(1_000), Ok(()));
        assert_eq!(m.charge(600), Ok(()));
        assert_eq!(m.afford(500), Err(HostLimit::Fuel));
        assert_eq!(m.charge(500), Err(HostLimit::Fuel));
        assert_eq!(m.returning_from_host(), 1_000);
        assert_eq!(m.host_fuel(), 1_000);
        // The next call starts from what the store says is left.
        m.calling_host(Some(0));
        assert_eq!(m.charge(1), Err(HostLimit::Fuel));
    }

    #[test]
    fn unmetered_runs_pay_no_fuel_but_keep_the_deadline() {
        let mut m = Meter::new(Instant::now(), Duration::ZERO, None, 1 << 20);
        assert_eq!(m.charge(u64::MAX), Err(HostLimit::Deadline));
        let mut m = Meter::new(Instant::now(), Duration::from_secs(60), None, 1 << 20);
        assert_eq!(m.charge(u64::MAX), Ok(()));
        assert_eq!(m.host_fuel(), 0);
    }

    #[test]
    fn memory_is_a_budget_with_release() {
        let mut m = Meter::new(Instant::now(), Duration::from_secs(60), None, 100);
        assert!(m.reserve(60).is_ok());
        let e = m.reserve(50).expect_err("over budget");
        assert_eq!((e.limit, e.used, e.asked), (100, 60, 50));
        m.release(30);
        assert!(m.reserve(50).is_ok());
        assert_eq!((m.memory_used(), m.memory_peak()), (80, 80));
    }

    #[test]
    fn host_limits_become_wasmtime_traps() {
        let e = wasmtime::Error::from(HostLimit::Fuel);
        assert_eq!(e.downcast_ref::<Trap>(), Some(&Trap::OutOfFuel));
        let e = wasmtime::Error::from(HostLimit::Deadline);
        assert_eq!(e.downcast_ref::<Trap>(), Some(&Trap::Interrupt));
    }
}
