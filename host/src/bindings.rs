//! The single `bindgen!` of the host: the `language` world every guest implements.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "language",
    // Kernel API imports may trap (e.g. an output limit ends the run).
    imports: { default: trappable },
    // The store is async so a wall-clock timeout can also cancel a guest that
    // is blocked inside a host call.
    exports: { default: async },
});

pub use self::exports::llmos::kernel::interpreter;
pub use self::llmos::kernel::{log, process};
