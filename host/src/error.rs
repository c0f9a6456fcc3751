//! Host errors: everything that is not the artifact's fault.
//!
//! An artifact that throws, traps or exceeds a limit is not an error here: it
//! is an [`Outcome`](crate::Outcome). A `HostError` means llmos itself could not
//! run the artifact (unknown language, missing component, unreadable cache...).

use std::path::PathBuf;

/// Why llmos could not run an artifact.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs)] // variant fields are named for what they hold
pub enum HostError {
    /// No manifest answers to this name.
    #[error("unknown language `{name}` (known: {known})")]
    UnknownLanguage { name: String, known: String },

    #[error(
        "cannot tell the language of `{path}` from its extension; pass --lang (known: {known})"
    )]
    /// No manifest claims this extension.
    UndetectedLanguage { path: PathBuf, known: String },

    /// A language's component file does not exist.
    #[error("component `{path}` is missing; build the guests with `make guests`")]
    ComponentMissing { path: PathBuf },

    /// A language manifest is invalid.
    #[error("invalid language manifest `{path}`: {reason}")]
    Manifest { path: PathBuf, reason: String },

    /// A file could not be read or written.
    #[error("cannot read `{path}`: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A component could not be compiled or linked.
    #[error("cannot compile component `{path}`: {reason}")]
    Compile { path: PathBuf, reason: String },

    /// A limit value is malformed or out of range.
    /// A cache or data directory other users could tamper with.
    #[error("{0}")]
    UnsafeDir(crate::paths::UnsafeDir),

    #[error("invalid limit: {0}")]
    InvalidLimit(String),

    /// The system volume failed verification, or cannot be read.
    #[error("system volume: `{file}`: {reason}")]
    Volume { file: PathBuf, reason: String },

    /// The configuration file is invalid.
    #[error("config `{path}`: {reason}")]
    Config { path: PathBuf, reason: String },

    /// A bad command-line value not covered by clap's own checks.
    #[error("{0}")]
    Usage(String),

    /// The host could not get an operating-system resource it needs
    /// (a thread, the async runtime).
    #[error("{what}: {source}")]
    System {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },

    /// A session could not be found, restored or continued.
    #[error("session: {0}")]
    Session(String),

    /// Every sandbox slot of the instance pool is in use; try again later.
    #[error("the host is busy: {0}")]
    Busy(String),

    /// An engine error outside any run.
    #[error("wasmtime: {0:#}")]
    Wasmtime(wasmtime::Error),
}

impl From<wasmtime::Error> for HostError {
    fn from(e: wasmtime::Error) -> Self {
        HostError::Wasmtime(e)
    }
}

impl HostError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        HostError::Io {
            path: path.into(),
            source,
        }
    }
}
