//! The store's limits, usage and errors: shared by the SQLite store and by
//! builds without the `storage` feature.

/// Size limits of the store, applied per namespace (per artifact).
///
/// The values come from [`crate::limits::Quotas`]; nothing here has a
/// default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageLimits {
    /// Longest key, in UTF-8 bytes. Longer keys are [`StoreError::InvalidKey`].
    pub max_key_bytes: usize,
    /// Largest value, in UTF-8 bytes of JSON text.
    pub max_value_bytes: usize,
    /// Most bytes a namespace may hold: the sum over its keys of key bytes
    /// plus value bytes.
    pub max_namespace_bytes: u64,
    /// Most keys a namespace may hold.
    pub max_keys: u64,
}

/// What a namespace currently holds, as counted against its quotas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Number of keys.
    pub keys: u64,
    /// Sum over the keys of key bytes plus value bytes.
    pub bytes: u64,
}

/// Why a store operation failed. The variants map 1:1 onto the WIT
/// `error-code` of `llmos:kernel/storage`; the message is written for the
/// artifact's author.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The key is empty, too long, or contains a NUL character.
    #[error("{0}")]
    InvalidKey(String),
    /// The value is not valid JSON text.
    #[error("{0}")]
    InvalidValue(String),
    /// The value, or the namespace's total bytes or key count, would exceed
    /// its quota.
    #[error("{0}")]
    QuotaExceeded(String),
    /// The database could not be opened, read or written.
    #[error("{0}")]
    Unavailable(String),
}

impl StoreError {
    /// The message, without the variant.
    pub fn message(&self) -> &str {
        match self {
            StoreError::InvalidKey(m)
            | StoreError::InvalidValue(m)
            | StoreError::QuotaExceeded(m)
            | StoreError::Unavailable(m) => m,
        }
    }
}
