//! `llmos:kernel/process`: ending the run immediately with an exit code, and
//! the run's budgets (`budget`, polled by interpreters that stop a runaway
//! artifact themselves to say where it was).
//!
//! `exit(code)` traps with [`wasmtime_wasi::I32Exit`], the same error WASI's
//! own `exit` raises, so the run ends at once (no guest handler can catch a
//! trap) and the outcome carries the exact code. WASI's `exit` alone can only
//! say success or failure.

use wasmtime::component::{HasData, Linker};

use crate::bindings::process;
use crate::meter::{Meter, cost};

/// The process API's per-run state: whether the host asks the guest to
/// trace lines (see `process.budget`).
#[derive(Debug, Default)]
pub struct ProcessCtx {
    /// Ask for a located stop even where it costs (a re-run of a limit
    /// failure).
    pub trace_lines: bool,
}

/// What the process API touches: the run's meter (for `budget`).
pub struct ProcessView<'a> {
    /// The run's accounting of host work.
    pub meter: &'a mut Meter,
    /// The run's process state.
    pub ctx: &'a ProcessCtx,
}

impl process::Host for ProcessView<'_> {
    fn exit(&mut self, code: i32) -> wasmtime::Result<()> {
        Err(wasmtime::Error::new(wasmtime_wasi::I32Exit(code)))
    }

    fn budget(&mut self) -> wasmtime::Result<process::RunBudget> {
        self.meter.charge(cost::CALL)?;
        let (fuel_limit, fuel_left, limit, left) = self.meter.budget();
        let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Ok(process::RunBudget {
            fuel_limit,
            fuel_left,
            ms_limit: ms(limit),
            ms_left: ms(left),
            trace_lines: self.ctx.trace_lines,
        })
    }
}

struct HasProcess;

impl HasData for HasProcess {
    type Data<'a> = ProcessView<'a>;
}

/// Add `llmos:kernel/process` to `linker`, reaching the context through `get`.
pub fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> ProcessView<'_>,
) -> wasmtime::Result<()> {
    process::add_to_linker::<T, HasProcess>(linker, get)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::process::Host;

    #[test]
    fn exit_traps_with_the_exact_code() {
        let mut meter = Meter::unlimited();
        let ctx = ProcessCtx::default();
        let err = ProcessView {
            meter: &mut meter,
            ctx: &ctx,
        }
        .exit(3)
        .err();
        assert_eq!(
            err.and_then(|e| e.downcast_ref::<wasmtime_wasi::I32Exit>().map(|e| e.0)),
            Some(3)
        );
    }
}
