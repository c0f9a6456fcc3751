//! The single `bindgen!` of the host: the `language` world every guest
//! implements. The optional exports (`session.run-cell`, `init`) are looked
//! up by name when a language is prepared (see `engine.rs`), as their
//! manifest's capabilities declare them.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "language",
    // Kernel API imports may trap (e.g. an output limit ends the run).
    imports: { default: trappable },
    // The store is async so a wall-clock timeout can also cancel a guest that
    // is blocked inside a host call.
    exports: { default: async },
    // Resources are host values kept in the run's `ResourceTable`.
    with: {
        "llmos:kernel/dom.element": crate::kernel::dom::ElementHandle,
        "llmos:kernel/viz.canvas": crate::kernel::viz::canvas::Canvas,
    },
});

pub use self::exports::llmos::kernel::interpreter;
pub use self::llmos::kernel::{dom, log, process, quantum, storage, viz};
