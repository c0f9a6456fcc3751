//! Build-time pre-initialisation of guest components (Wizer).
//!
//! A guest implementing the `language-preinit` world exports `init`, which
//! builds its interpreter state (for QuickJS: runtime, context and prelude).
//! [`preinit`] instantiates the component once, calls `init`, and snapshots
//! the instance's memories and globals back into a new component. Every run
//! then starts from the initialised interpreter instead of building it: the
//! cost of a fresh sandbox drops from building a runtime to instantiating.
//!
//! The snapshot is taken with the same kernel imports a run has (WASI with no
//! capabilities, the kernel APIs), so `init` can read clocks and randomness,
//! but any WASI resource it kept would be stale in the snapshot.

use wasmtime::component::{Component, Instance, Lift, WasmList};
use wasmtime::{Engine, Store};
use wasmtime_wizer::{ComponentInstanceState, Wizer};

use crate::kernel::storage::StorageService;
use crate::limits::Limits;
use crate::state::HostState;

/// Name of the export called to initialise the guest.
pub const INIT_EXPORT: &str = "init";

/// Pre-initialise `wasm` (a component exporting [`INIT_EXPORT`]) and return
/// the snapshot component.
pub async fn preinit(wasm: &[u8]) -> wasmtime::Result<Vec<u8>> {
    let mut wizer = Wizer::new();
    // Keeping the (now redundant) init export keeps the component valid.
    wizer.init_func(INIT_EXPORT).keep_init_func(true);
    let (cx, instrumented) = wizer.instrument_component(wasm)?;

    let engine = Engine::new(&crate::engine::engine_config(false))?;
    let component = Component::new(&engine, &instrumented)?;
    let linker = crate::engine::linker(&engine)?;
    let limits = Limits {
        fuel: None,
        timeout: std::time::Duration::from_secs(3600),
        ..Limits::default()
    };
    let mut store = Store::new(
        &engine,
        HostState::new(
            "preinit",
            &limits,
            &crate::limits::Quotas::default(),
            crate::inputs::Tape::new(crate::inputs::Source::Host { seed: None }),
            std::sync::Arc::new(StorageService::unavailable(
                "storage is not available while a snapshot is built",
            )),
        ),
    );
    store.limiter(|s| &mut s.limiter);
    store.set_epoch_deadline(u64::MAX);
    let instance = linker.instantiate_async(&mut store, &component).await?;

    let init = instance
        .get_typed_func::<(), ()>(&mut store, INIT_EXPORT)
        .map_err(|e| {
            e.context(format!(
                "the component has no `{INIT_EXPORT}: func()` export"
            ))
        })?;
    init.call_async(&mut store, ()).await?;

    let mut state = Snapshotter {
        store: &mut store,
        instance,
        error: None,
    };
    let snapshot = wizer.snapshot_component(&cx, &mut state).await?;
    if let Some(e) = state.error {
        return Err(e.context("reading the initialised instance's state"));
    }
    Ok(snapshot)
}

/// Reads an instrumented instance's state for Wizer; the first failure is kept
/// (Wizer's interface has no error channel) and reported after the snapshot.
struct Snapshotter<'a> {
    store: &'a mut Store<HostState>,
    instance: Instance,
    error: Option<wasmtime::Error>,
}

impl Snapshotter<'_> {
    async fn call<R: Lift + Send + Sync + 'static>(
        &mut self,
        instance: &str,
        func: &str,
    ) -> Option<R> {
        let result = async {
            let (_, inst) = self
                .instance
                .get_export(&mut *self.store, None, instance)
                .ok_or_else(|| wasmtime::format_err!("no export `{instance}`"))?;
            let (_, f) = self
                .instance
                .get_export(&mut *self.store, Some(&inst), func)
                .ok_or_else(|| wasmtime::format_err!("no export `{instance}#{func}`"))?;
            let f = self
                .instance
                .get_typed_func::<(), (R,)>(&mut *self.store, f)?;
            Ok::<R, wasmtime::Error>(f.call_async(&mut *self.store, ()).await?.0)
        }
        .await;
        match result {
            Ok(r) => Some(r),
            Err(e) => {
                self.error.get_or_insert(e);
                None
            }
        }
    }
}

impl ComponentInstanceState for Snapshotter<'_> {
    async fn call_func_ret_list_u8(
        &mut self,
        instance: &str,
        func: &str,
        contents: impl FnOnce(&[u8]) + Send,
    ) {
        match self.call::<WasmList<u8>>(instance, func).await {
            Some(list) => contents(list.as_le_slice(&*self.store)),
            None => contents(&[]),
        }
    }
    async fn call_func_ret_s32(&mut self, instance: &str, func: &str) -> i32 {
        self.call::<i32>(instance, func).await.unwrap_or(0)
    }
    async fn call_func_ret_s64(&mut self, instance: &str, func: &str) -> i64 {
        self.call::<i64>(instance, func).await.unwrap_or(0)
    }
    async fn call_func_ret_f32(&mut self, instance: &str, func: &str) -> u32 {
        self.call::<f32>(instance, func)
            .await
            .map(f32::to_bits)
            .unwrap_or(0)
    }
    async fn call_func_ret_f64(&mut self, instance: &str, func: &str) -> u64 {
        self.call::<f64>(instance, func)
            .await
            .map(f64::to_bits)
            .unwrap_or(0)
    }
}
