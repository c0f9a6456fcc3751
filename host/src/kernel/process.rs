//! `llmos:kernel/process`: ending the run immediately with an exit code.
//!
//! `exit(code)` traps with [`wasmtime_wasi::I32Exit`], the same error WASI's
//! own `exit` raises, so the run ends at once (no guest handler can catch a
//! trap) and the outcome carries the exact code. WASI's `exit` alone can only
//! say success or failure.

use wasmtime::component::{HasData, Linker};

use crate::bindings::process;

/// The process API needs no per-run state.
#[derive(Debug, Default)]
pub struct ProcessCtx;

impl process::Host for ProcessCtx {
    fn exit(&mut self, code: i32) -> wasmtime::Result<()> {
        Err(wasmtime::Error::new(wasmtime_wasi::I32Exit(code)))
    }
}

struct HasProcess;

impl HasData for HasProcess {
    type Data<'a> = &'a mut ProcessCtx;
}

/// Add `llmos:kernel/process` to `linker`, reaching the context through `get`.
pub fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut ProcessCtx,
) -> wasmtime::Result<()> {
    process::add_to_linker::<T, HasProcess>(linker, get)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::process::Host;

    #[test]
    fn exit_traps_with_the_exact_code() {
        let err = ProcessCtx.exit(3).err();
        assert_eq!(
            err.and_then(|e| e.downcast_ref::<wasmtime_wasi::I32Exit>().map(|e| e.0)),
            Some(3)
        );
    }
}
