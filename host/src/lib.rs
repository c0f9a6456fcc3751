//! llmos: a self-correcting kernel for running code that language models write.
//!
//! Untrusted artifacts (JavaScript, Python, any language with a manifest and
//! a component) run inside interpreters compiled to WebAssembly components,
//! under hard fuel, memory, wall-clock and output limits enforced by
//! Wasmtime, and every kernel call's host work is charged to the same
//! budgets ([`meter`]). The only way out of the sandbox is the kernel API
//! defined in `wit/`.
//!
//! # Embedding
//!
//! [`Llmos`] is the facade: boot, resolve an artifact, run it, repair it.
//! The `llmos` binary is a thin command line over it; so is everything else.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let rt = tokio::runtime::Runtime::new()?;
//! # rt.block_on(async {
//! use llmos::{ArtifactOptions, ArtifactSource, BootOptions, Llmos, RunOptions};
//!
//! // Boot inside your tokio runtime; languages load on first use.
//! let llmos = Llmos::boot(
//!     &BootOptions {
//!         languages: Some(vec![]),
//!         data_dir: Some(std::env::temp_dir().join("llmos-doc-example")),
//! #       cache_dir: Some(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/test-cache").into()),
//!         ..Default::default()
//!     },
//!     &|_event| {},
//! )
//! .await?;
//! // Model-written code is untrusted: strict, fuel-metered limits.
//! let artifact = llmos.artifact(
//!     ArtifactSource::Inline {
//!         language: "python".into(),
//!         source: "from llmos import viz\nviz.plot([1, 4, 9])\nsum(range(10))".into(),
//!         name: None,
//!     },
//!     &ArtifactOptions::default(),
//! )?;
//! let outcome = llmos.run(&artifact, &RunOptions::default()).await?;
//! assert_eq!(outcome.value.as_deref(), Some("45"));
//! assert_eq!(outcome.outputs.len(), 1); // the chart, as SVG and PNG
//! # Ok::<(), llmos::HostError>(())
//! # })?;
//! # Ok(())
//! # }
//! ```
//!
//! `host/examples/embed.rs` does the whole round trip, including a repair
//! with your own [`supervisor::llm::FixProvider`].
//!
//! # Cargo features
//! - `cli` (default): the `llmos` binary (clap, indicatif, a tracing
//!   subscriber). Library users can turn it off.
//! - `supervisor` (default): the LLM repair loop ([`Llmos::fix`]) and its
//!   HTTP clients (reqwest).
//! - `storage` (default): the storage API's engine (SQLite, bundled).
//!   Without it every storage call fails with the typed `unavailable` error.
//! - `viz` (default): PNG rendering of charts and canvases (resvg). Without
//!   it pictures are SVG only.
//!
//! `default-features = false` leaves a library with only Wasmtime, the
//! kernel and its engines (`make test` checks that it builds).
//!
//! # The pieces, in the order a run flows through them
//! - [`boot`]: config, verified volumes, runtime, language checks.
//! - [`language`]: language manifests on the system volume (which component runs `.py`).
//! - [`engine`]: the Wasmtime engines (fuel-metered and un-metered) and [`Runtime`],
//!   which holds one `InstancePre` per language and makes a fresh `Store` per run.
//! - [`cache`]: the on-disk cache of precompiled components.
//! - [`limits`]: every limit and quota in one place, the memory limiter, the epoch ticker.
//! - [`meter`]: the accounting of host work done inside kernel calls.
//! - [`state`]: the per-run host state stored in each `Store`.
//! - [`inputs`]: the run's nondeterministic inputs (seed, clocks, storage
//!   replies): recorded, virtual (`--seed`) or replayed.
//! - [`session`]: notebook sessions (cells sharing globals), their journal,
//!   save/restore, snapshots.
//! - [`capture`]: bounded capture of the guest's stdout and stderr.
//! - [`outputs`]: the pictures and documents a run produces (MIME bundles).
//! - [`kernel`]: the kernel APIs, one module per WIT interface.
//! - [`outcome`]: the typed result of a run, and trap classification.
//! - [`supervisor`]: error reports and the LLM repair loop.
//! - [`apiref`]: the kernel API reference of a language, from its stdlib's doc comments.
//! - [`conformance`]: the suite every guest language must pass.
//! - [`serve`]: `llmos serve` (HTTP API, events, dashboard) and `llmos mcp`.

#![warn(missing_docs)]

pub mod apiref;
#[cfg(feature = "batch")]
pub mod batch;
mod bindings;
pub mod boot;
pub mod cache;
mod capture;
pub mod component;
pub mod config;
pub mod conformance;
pub mod engine;
pub mod error;
mod facade;
pub mod inputs;
pub mod kernel;
pub mod language;
pub mod limits;
pub mod meter;
pub mod outcome;
pub mod outputs;
pub mod paths;
pub mod preinit;
#[cfg(feature = "serve")]
pub mod serve;
pub mod session;
mod state;
#[cfg(feature = "supervisor")]
pub mod supervisor;
pub mod volume;

pub use boot::BootOptions;
pub use capture::truncation_marker;
pub use engine::{RunRequest, Runtime, RuntimeConfig, RuntimeEvent};
pub use error::HostError;
#[cfg(feature = "supervisor")]
pub use facade::FixOptions;
pub use facade::{
    Artifact, ArtifactOptions, ArtifactSource, LanguageStatus, LimitOverrides, Llmos, RunOptions,
    Tier, parse_fuel,
};
pub use limits::{Limits, Quotas};
pub use outcome::{Outcome, Status};
pub use session::{Cell, CellOutcome, Journal, Session};
pub use state::LiveUsage;
