//! llmos: a self-correcting kernel for running code that language models write.
//!
//! Untrusted artifacts (JavaScript, Python) run inside interpreters compiled to
//! WebAssembly components, under hard fuel, memory, wall-clock and output
//! limits enforced by Wasmtime. The only way out of the sandbox is the kernel
//! API defined in `wit/`.
//!
//! The pieces, in the order a run flows through them:
//! - [`language`]: language manifests on the system volume (which component runs `.py`).
//! - [`engine`]: the Wasmtime engines (fuel-metered and un-metered) and [`Runtime`],
//!   which holds one `InstancePre` per language and makes a fresh `Store` per run.
//! - [`cache`]: the on-disk cache of precompiled components.
//! - [`limits`]: every limit in one place, the memory limiter, the epoch ticker and
//!   trap classification.
//! - [`state`]: the per-run host state stored in each `Store`.
//! - [`capture`]: bounded capture of the guest's stdout and stderr.
//! - [`outputs`]: the pictures and documents a run produces (MIME bundles).
//! - [`kernel`]: the kernel APIs, one module per WIT interface.
//! - [`outcome`]: the typed result of a run.
//! - [`supervisor`]: error reports and the LLM repair loop.
//! - [`apiref`]: the kernel API reference of a language, from its stdlib's doc comments.

pub mod apiref;
pub mod bindings;
pub mod boot;
pub mod cache;
pub mod capture;
pub mod cli;
pub mod config;
pub mod engine;
pub mod error;
pub mod kernel;
pub mod language;
pub mod limits;
pub mod meter;
pub mod outcome;
pub mod outputs;
pub mod paths;
pub mod preinit;
pub mod state;
pub mod supervisor;
pub mod volume;

pub use engine::{RunRequest, Runtime, RuntimeConfig};
pub use error::HostError;
pub use limits::Limits;
pub use outcome::{Outcome, Status};
