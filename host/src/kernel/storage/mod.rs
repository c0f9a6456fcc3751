//! `llmos:kernel/storage`: a persistent key-value store private to each
//! artifact.
//!
//! The engine is [`store::Store`] (SQLite, WAL, full synchronous commits);
//! this module binds it to the WIT interface. The database is opened lazily,
//! on an artifact's first storage call, once per process, and shared by every
//! run; runs that never touch storage never open it. The namespace is the
//! run's artifact id, fixed by the host: nothing the guest passes can name
//! another namespace.

#[cfg(not(feature = "storage"))]
#[path = "disabled.rs"]
pub mod store;
#[cfg(feature = "storage")]
pub mod store;
mod types;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use wasmtime::component::{HasData, Linker};

use crate::bindings::storage::{self, ErrorCode, StorageError};
use crate::inputs::{Recordable, StorageFailure, StorageReply, Tape};
use crate::meter::{Meter, cost};
use store::{StorageLimits, Store, StoreError};

/// The process-wide storage service: where the database lives, opened on
/// first use.
#[derive(Debug)]
pub struct StorageService {
    path: PathBuf,
    limits: StorageLimits,
    store: OnceLock<Result<Arc<Store>, StoreError>>,
}

impl StorageService {
    /// A service for the database at `path`, opened on first use, under these quotas.
    pub fn new(path: impl Into<PathBuf>, limits: StorageLimits) -> Self {
        StorageService {
            path: path.into(),
            limits,
            store: OnceLock::new(),
        }
    }

    /// A service whose every call fails with `reason` (no database), for
    /// stores that must never persist anything, such as a build-time snapshot.
    pub fn unavailable(reason: &str) -> Self {
        let store = OnceLock::new();
        let _ = store.set(Err(StoreError::Unavailable(reason.to_string())));
        StorageService {
            path: PathBuf::new(),
            // Never consulted: no database is ever opened.
            limits: StorageLimits {
                max_key_bytes: 0,
                max_value_bytes: 0,
                max_namespace_bytes: 0,
                max_keys: 0,
            },
            store,
        }
    }

    /// Where the database lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open database (opening it on the first call). An open failure is
    /// remembered, so every later call reports it without retrying.
    pub fn store(&self) -> Result<&Arc<Store>, StoreError> {
        self.store
            .get_or_init(|| {
                let r = Store::open(&self.path, self.limits).map(Arc::new);
                if let Err(e) = &r {
                    tracing::warn!(path = %self.path.display(), error = %e, "storage unavailable");
                }
                r
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

/// Per-run state of the storage API: the run's namespace, and the tape
/// that records each reply (or serves it back when the run is a replay, so
/// a replayed write is never applied twice).
#[derive(Debug)]
pub struct StorageCtx {
    namespace: String,
    service: Arc<StorageService>,
    tape: Tape,
}

impl StorageCtx {
    /// A run's storage, in `namespace`, on the shared service.
    pub fn new(namespace: impl Into<String>, service: Arc<StorageService>, tape: Tape) -> Self {
        StorageCtx {
            namespace: namespace.into(),
            service,
            tape,
        }
    }

    fn with<T>(
        &self,
        key: &str,
        f: impl FnOnce(&Store, &str) -> Result<T, StoreError>,
    ) -> wasmtime::Result<Result<T, StorageError>>
    where
        Result<T, StorageError>: Recordable,
    {
        Ok(self.tape.storage(key, || {
            self.service
                .store()
                .and_then(|s| f(s, &self.namespace))
                .map_err(guest_error)
        }))
    }
}

fn failure(e: &StorageError) -> StorageFailure {
    let code = match e.code {
        ErrorCode::InvalidKey => "invalid-key",
        ErrorCode::InvalidValue => "invalid-value",
        ErrorCode::QuotaExceeded => "quota-exceeded",
        ErrorCode::Unavailable => "unavailable",
    };
    StorageFailure {
        code: code.into(),
        message: e.message.clone(),
    }
}

fn from_failure(f: &StorageFailure) -> StorageError {
    let code = match f.code.as_str() {
        "invalid-key" => ErrorCode::InvalidKey,
        "invalid-value" => ErrorCode::InvalidValue,
        "quota-exceeded" => ErrorCode::QuotaExceeded,
        _ => ErrorCode::Unavailable,
    };
    StorageError {
        code,
        message: f.message.clone(),
    }
}

/// Each storage function's result, recorded as its [`StorageReply`] variant.
macro_rules! recordable {
    ($($t:ty => $variant:ident, $read:expr);* $(;)?) => {$(
        impl Recordable for Result<$t, StorageError> {
            const IS_READ: bool = $read;
            fn to_reply(&self) -> StorageReply {
                StorageReply::$variant(self.as_ref().map(Clone::clone).map_err(failure))
            }
            fn from_reply(r: &StorageReply) -> Option<Self> {
                match r {
                    StorageReply::$variant(v) => Some(v.clone().map_err(|f| from_failure(&f))),
                    _ => None,
                }
            }
            fn unavailable(message: &str) -> Self {
                Err(StorageError { code: ErrorCode::Unavailable, message: message.into() })
            }
        }
    )*};
}

recordable! {
    Option<String> => Get, true;
    () => Set, false;
    bool => Delete, false;
    Vec<String> => Keys, true;
    u32 => Clear, false;
}

fn guest_error(e: StoreError) -> StorageError {
    let code = match &e {
        StoreError::InvalidKey(_) => ErrorCode::InvalidKey,
        StoreError::InvalidValue(_) => ErrorCode::InvalidValue,
        StoreError::QuotaExceeded(_) => ErrorCode::QuotaExceeded,
        StoreError::Unavailable(_) => ErrorCode::Unavailable,
    };
    StorageError {
        code,
        message: e.message().to_string(),
    }
}

/// What the storage API touches: its context and the run's meter.
pub struct StorageView<'a> {
    /// The run's namespace and the shared database.
    pub ctx: &'a mut StorageCtx,
    /// The run's accounting of host work.
    pub meter: &'a mut Meter,
}

/// Host fuel for `bytes` bytes read, written or copied.
fn per_bytes(bytes: usize) -> u64 {
    (bytes as u64).saturating_mul(cost::PER_BYTE)
}

/// Host budgets: every call pays [`cost::CALL`] plus its bytes, before the
/// work for what it sends and after for what it reads back; writes (`set`,
/// `delete`, `clear`: a transaction each) pay [`cost::STORAGE_WRITE`] before
/// they start, so a write loop runs out of the run's fuel, and the deadline
/// is checked before and after each statement. Nothing is kept on the host
/// between calls (the data lives in SQLite), so no host memory is reserved.
impl storage::Host for StorageView<'_> {
    fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<String>, StorageError>> {
        self.meter.charge(cost::CALL + per_bytes(key.len()))?;
        let r = self.ctx.with(&key, |s, ns| s.get(ns, &key))?;
        let read = r.as_ref().map_or(0, |v| v.as_ref().map_or(0, String::len));
        self.meter.charge(per_bytes(read))?;
        Ok(r)
    }

    fn set(&mut self, key: String, value: String) -> wasmtime::Result<Result<(), StorageError>> {
        self.meter.charge(
            cost::CALL + cost::STORAGE_WRITE + per_bytes(key.len().saturating_add(value.len())),
        )?;
        let r = self.ctx.with(&key, |s, ns| s.set(ns, &key, &value));
        self.meter.check_time()?;
        r
    }

    fn delete(&mut self, key: String) -> wasmtime::Result<Result<bool, StorageError>> {
        self.meter
            .charge(cost::CALL + cost::STORAGE_WRITE + per_bytes(key.len()))?;
        let r = self.ctx.with(&key, |s, ns| s.delete(ns, &key));
        self.meter.check_time()?;
        r
    }

    fn keys(&mut self, prefix: String) -> wasmtime::Result<Result<Vec<String>, StorageError>> {
        self.meter.charge(cost::CALL + per_bytes(prefix.len()))?;
        let r = self.ctx.with(&prefix, |s, ns| s.keys(ns, &prefix))?;
        let read = r.as_ref().map_or(0, |v| v.iter().map(String::len).sum());
        self.meter.charge(per_bytes(read))?;
        Ok(r)
    }

    fn clear(&mut self) -> wasmtime::Result<Result<u32, StorageError>> {
        self.meter.charge(cost::CALL + cost::STORAGE_WRITE)?;
        let r = self.ctx.with("", |s, ns| s.clear(ns));
        self.meter.check_time()?;
        r
    }
}

struct HasStorage;

impl HasData for HasStorage {
    type Data<'a> = StorageView<'a>;
}

/// Add `llmos:kernel/storage` to `linker`, reaching the context through `get`.
pub fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> StorageView<'_>,
) -> wasmtime::Result<()> {
    storage::add_to_linker::<T, HasStorage>(linker, get)
}
