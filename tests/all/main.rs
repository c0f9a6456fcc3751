//! llmos integration tests: real guest components on real Wasmtime engines.
//!
//! Run with `make test` (which builds the guests first).

mod batch;
mod batch_redis;
mod boot;
mod cache;
mod cli;
mod component;
mod conformance;
mod corpus;
mod dashboard;
mod dom;
mod expect;
mod fidelity;
mod files;
mod host_limits;
mod hostile_cli;
mod javascript;
mod limits;
mod llm;
mod pool;
mod python;
mod quantum;
mod sandbox;
mod serve;
mod session;
mod storage;
mod supervisor;
mod viz;
