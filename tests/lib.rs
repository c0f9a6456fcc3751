//! Shared helpers for the llmos integration tests and benchmarks.
