//! The kernel APIs: the only way out of the sandbox.
//!
//! One module per WIT interface in `wit/`, each exposing its per-run context
//! (or a view over the parts of [`HostState`] it touches) and an
//! `add_to_linker` function. The engines behind the richer APIs live in
//! submodules: `storage::store` (SQLite), `viz::{chart, canvas, scene}`,
//! `dom::tree`, `quantum::{sim, draw}`.

pub mod dom;
pub mod log;
pub mod process;
pub mod quantum;
pub mod storage;
pub mod viz;

use wasmtime::component::Linker;

use crate::state::HostState;

/// Add every kernel API to `linker`.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    log::add_to_linker(linker, |s| log::LogView {
        ctx: &mut s.log,
        meter: &mut s.meter,
    })?;
    process::add_to_linker(linker, |s| process::ProcessView {
        meter: &mut s.meter,
        ctx: &s.process,
    })?;
    storage::add_to_linker(linker, |s| storage::StorageView {
        ctx: &mut s.storage,
        meter: &mut s.meter,
    })?;
    viz::add_to_linker(linker, |s| viz::VizView {
        ctx: &mut s.viz,
        table: &mut s.table,
        outputs: &mut s.outputs,
        meter: &mut s.meter,
    })?;
    dom::add_to_linker(linker, |s| dom::DomView {
        ctx: &mut s.dom,
        table: &mut s.table,
        meter: &mut s.meter,
    })?;
    quantum::add_to_linker(linker, |s| quantum::QuantumView {
        ctx: &mut s.quantum,
        outputs: &mut s.outputs,
        meter: &mut s.meter,
    })?;
    Ok(())
}
