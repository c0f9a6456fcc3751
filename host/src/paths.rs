//! Where llmos finds its components, system volume and cache.
//!
//! Each location can be overridden by an environment variable; the defaults
//! point into the source tree the binary was built from, so `make` followed by
//! `llmos run` works without installation.

use std::path::PathBuf;

/// Directory holding the guest components (`quickjs.wasm`, `python.wasm`).
pub fn components_dir() -> PathBuf {
    env_path("LLMOS_COMPONENTS").unwrap_or_else(|| source_root().join("target").join("components"))
}

/// The system volume (`volumes/system`): language manifests, stdlibs, init scripts.
pub fn system_volume() -> PathBuf {
    env_path("LLMOS_SYSTEM_VOLUME").unwrap_or_else(|| source_root().join("volumes").join("system"))
}

/// Directory of the precompiled-component cache.
pub fn cache_dir() -> PathBuf {
    env_path("LLMOS_CACHE_DIR").unwrap_or_else(|| {
        dirs::cache_dir()
            .unwrap_or_else(std::env::temp_dir)
            .join("llmos")
            .join("components")
    })
}

/// The user volume: the user's data (storage database, run outputs).
/// `LLMOS_DATA_DIR`, else `~/.local/share/llmos` (the platform's data directory).
pub fn data_dir() -> PathBuf {
    env_path("LLMOS_DATA_DIR").unwrap_or_else(|| {
        dirs::data_dir()
            .unwrap_or_else(std::env::temp_dir)
            .join("llmos")
    })
}

fn source_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn env_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}
