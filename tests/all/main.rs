//! llmos integration tests: real guest components on real Wasmtime engines.
//!
//! Run with `make test` (which builds the guests first).

mod cache;
mod cli;
mod dom;
mod javascript;
mod limits;
mod llm;
mod python;
mod quantum;
mod sandbox;
mod storage;
mod supervisor;
mod viz;
