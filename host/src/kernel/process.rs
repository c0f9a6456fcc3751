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

/// The process API needs no per-run state of its own.
#[derive(Debug, Default)]
pub struct ProcessCtx;

/// What the process API touches: the run's meter (for `budget`).
pub struct ProcessView<'a> {
    /// The run's accounting of host work.
    pub meter: &'a mut Meter,
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
        let err = ProcessView { meter: &mut meter }.exit(3).err();
        assert_eq!(
            err.and_then(|e| e.downcast_ref::<wasmtime_wasi::I32Exit>().map(|e| e.0)),
            Some(3)
        );
    }
}
