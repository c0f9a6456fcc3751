//! The kernel APIs: the only way out of the sandbox.
//!
//! One module per WIT interface in `wit/`, each exposing its per-run context
//! and an `add_to_linker` function.

pub mod log;
pub mod process;

use wasmtime::component::Linker;

use crate::state::HostState;

/// Add every kernel API to `linker`.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    log::add_to_linker(linker, |s| &mut s.log)?;
    process::add_to_linker(linker, |s| &mut s.process)?;
    Ok(())
}
