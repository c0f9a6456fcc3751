//! The store of a build without the `storage` feature (no SQLite): it can
//! never be opened, so every storage call fails with the typed
//! `unavailable` error, which the artifact can catch.

use std::path::Path;

pub use super::types::{StorageLimits, StoreError, Usage};

/// A store that cannot exist: [`Store::open`] always fails.
#[derive(Debug)]
pub enum Store {}

impl Store {
    /// Always `Unavailable`: this build has no storage engine.
    pub fn open(_path: &Path, _limits: StorageLimits) -> Result<Store, StoreError> {
        Err(StoreError::Unavailable(
            "storage is not available: this llmos was built without the `storage` feature".into(),
        ))
    }

    /// Never called (no `Store` exists).
    pub fn path(&self) -> &Path {
        match *self {}
    }

    /// Never called (no `Store` exists).
    pub fn get(&self, _namespace: &str, _key: &str) -> Result<Option<String>, StoreError> {
        match *self {}
    }

    /// Never called (no `Store` exists).
    pub fn set(&self, _namespace: &str, _key: &str, _value: &str) -> Result<(), StoreError> {
        match *self {}
    }

    /// Never called (no `Store` exists).
    pub fn delete(&self, _namespace: &str, _key: &str) -> Result<bool, StoreError> {
        match *self {}
    }

    /// Never called (no `Store` exists).
    pub fn keys(&self, _namespace: &str, _prefix: &str) -> Result<Vec<String>, StoreError> {
        match *self {}
    }

    /// Never called (no `Store` exists).
    pub fn clear(&self, _namespace: &str) -> Result<u32, StoreError> {
        match *self {}
    }

    /// Never called (no `Store` exists).
    pub fn usage(&self, _namespace: &str) -> Result<Usage, StoreError> {
        match *self {}
    }
}
