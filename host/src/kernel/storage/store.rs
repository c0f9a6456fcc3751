//! The persistent, per-artifact key-value store behind `llmos:kernel/storage`.
//!
//! # Design
//!
//! * **One SQLite file shared by every llmos process.** Concurrent CLI runs and
//!   batch worker processes open the same database; SQLite arbitrates between
//!   them with file locks. The connection runs in WAL mode (readers never block
//!   the writer) with `synchronous=FULL`, so a `set` is on disk when it returns
//!   and killing a process mid-run loses nothing committed and corrupts
//!   nothing. A writer that finds the database locked by another process waits
//!   up to [`BUSY_TIMEOUT`] before giving up with [`StoreError::Unavailable`].
//!   If the file system cannot do WAL (SQLite then keeps its rollback journal),
//!   the store still works, just with readers and writers serialised.
//! * **Schema.** `kv(namespace, key, value)` is a `WITHOUT ROWID, STRICT` table
//!   whose primary key is `(namespace, key)`, so a lookup is one B-tree
//!   descent and a prefix listing is one range scan. `ns_usage(namespace, keys,
//!   bytes)` holds the running totals that quotas are checked against; it is
//!   updated in the same transaction as every write, so `set` costs the same on
//!   a namespace with 10 000 keys as on an empty one. The schema version lives
//!   in `PRAGMA user_version`; a file written by a newer llmos (a higher
//!   version) is refused rather than misread.
//! * **Quotas hold across processes.** Every write runs in a `BEGIN IMMEDIATE`
//!   transaction, which takes the database's write lock *before* reading the
//!   namespace's usage. Two processes can therefore never both see "room for
//!   one more key" and both insert it.
//! * **Accounting.** A namespace's bytes are the sum over its keys of (key
//!   bytes + value bytes); its count is the number of keys. Replacing a value
//!   first subtracts the old key and value. A write that would leave the
//!   namespace over a quota is rejected and changes nothing. (A replacement that
//!   *shrinks* a namespace which is already over its byte quota, say because
//!   the quota was lowered since, is allowed: it moves towards compliance.)
//! * **Byte order.** SQLite compares `TEXT` under the default `BINARY`
//!   collation with `memcmp`, and the database encoding is UTF-8, so key order
//!   is byte order, the same as Rust's `str` ordering. `keys(prefix)` is the
//!   range `prefix <= key < successor(prefix)`, where the successor increments
//!   the prefix's last character; no `LIKE`, so `%`, `_` and every other
//!   character are literal.
//! * **Validation.** Keys are 1 to `max_key_bytes` bytes of UTF-8 without NUL.
//!   Values must parse as JSON (checked with `serde_json`, without building a
//!   tree) and are stored exactly as given. Sizes are checked before parsing,
//!   so an oversized value is rejected without being scanned.
//! * **Sharing.** [`Store`] wraps one connection in a `Mutex`, so it is `Send +
//!   Sync` and meant to be shared behind an `Arc` by every run in the process.
//!   Hot statements are prepared once and cached (`prepare_cached`), which keeps
//!   a `get` to a few microseconds.
//!
//! Namespaces are chosen by the host (the artifact id), never by the guest;
//! they are used as given. Everything else — keys, values, prefixes — is
//! untrusted and validated here.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior, params};

/// How long a write waits for another process's lock before failing with
/// [`StoreError::Unavailable`]. This is a robustness setting, not a quota.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The schema version this code writes, stored in `PRAGMA user_version`.
/// Databases with a higher version were written by a newer llmos and are
/// refused.
pub const SCHEMA_VERSION: i64 = 1;

/// How many characters of an offending key are quoted in error messages.
const KEY_PREVIEW_CHARS: usize = 40;

const SQL_SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS kv (
    namespace TEXT NOT NULL,
    key       TEXT NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (namespace, key)
) WITHOUT ROWID, STRICT;
CREATE TABLE IF NOT EXISTS ns_usage (
    namespace TEXT NOT NULL PRIMARY KEY,
    keys      INTEGER NOT NULL,
    bytes     INTEGER NOT NULL
) WITHOUT ROWID, STRICT;
";
const SQL_GET: &str = "SELECT value FROM kv WHERE namespace = ?1 AND key = ?2";
const SQL_OLD_LEN: &str = "SELECT octet_length(value) FROM kv WHERE namespace = ?1 AND key = ?2";
const SQL_UPSERT: &str = "INSERT INTO kv (namespace, key, value) VALUES (?1, ?2, ?3) \
     ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value";
const SQL_DELETE: &str =
    "DELETE FROM kv WHERE namespace = ?1 AND key = ?2 RETURNING octet_length(value)";
const SQL_CLEAR: &str = "DELETE FROM kv WHERE namespace = ?1";
const SQL_KEYS_RANGE: &str = "SELECT key FROM kv WHERE namespace = ?1 AND key >= ?2 AND key < ?3 \
     ORDER BY key LIMIT ?4";
const SQL_KEYS_FROM: &str =
    "SELECT key FROM kv WHERE namespace = ?1 AND key >= ?2 ORDER BY key LIMIT ?3";
const SQL_USAGE_GET: &str = "SELECT keys, bytes FROM ns_usage WHERE namespace = ?1";
const SQL_USAGE_PUT: &str = "INSERT INTO ns_usage (namespace, keys, bytes) VALUES (?1, ?2, ?3) \
     ON CONFLICT (namespace) DO UPDATE SET keys = excluded.keys, bytes = excluded.bytes";
const SQL_USAGE_DELETE: &str = "DELETE FROM ns_usage WHERE namespace = ?1";

pub use super::types::{StorageLimits, StoreError, Usage};

/// A persistent key-value store in one SQLite file, partitioned into
/// namespaces (one per artifact) with per-namespace quotas.
///
/// `Send + Sync`: share one instance behind an `Arc`. Several `Store`s — in
/// this process or in others — may open the same file at once.
#[derive(Debug)]
pub struct Store {
    conn: Mutex<rusqlite::Connection>,
    path: PathBuf,
    limits: StorageLimits,
}

impl Store {
    /// Opens (creating if missing, along with its parent directory) the
    /// database at `path`, enables WAL and full synchronous commits, and
    /// creates or checks the schema.
    ///
    /// Fails with [`StoreError::Unavailable`] if the location is not writable,
    /// the file is not a SQLite database, or it was written by a newer llmos.
    pub fn open(path: &Path, limits: StorageLimits) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Unavailable(format!(
                    "cannot create the directory {} for the storage database {}: {e}; \
                     make it writable by this user or configure another data directory",
                    dir.display(),
                    path.display()
                ))
            })?;
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = rusqlite::Connection::open_with_flags(path, flags)
            .map_err(|e| db_error(path, "open", &e))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| db_error(path, "open", &e))?;
        // The first statement that reads the file: a non-database fails here.
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(|e| db_error(path, "open", &e))?;
        check_version(path, version)?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(|e| db_error(path, "open", &e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(
                path = %path.display(),
                journal_mode = %mode,
                "storage database cannot use WAL; concurrent access is serialised"
            );
        }
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(|e| db_error(path, "open", &e))?;

        // Create the schema under the write lock, so two processes opening a
        // fresh file at once cannot race, and re-check the version there.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| db_error(path, "open", &e))?;
        let version: i64 = tx
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(|e| db_error(path, "open", &e))?;
        check_version(path, version)?;
        if version < SCHEMA_VERSION {
            tx.execute_batch(SQL_SCHEMA_V1)
                .map_err(|e| db_error(path, "initialise", &e))?;
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)
                .map_err(|e| db_error(path, "initialise", &e))?;
        }
        tx.commit().map_err(|e| db_error(path, "initialise", &e))?;

        Ok(Store {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
            limits,
        })
    }

    /// The database file's path, as given to [`Store::open`].
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The JSON text stored under `key` in `namespace`, or `None`.
    pub fn get(&self, namespace: &str, key: &str) -> Result<Option<String>, StoreError> {
        self.check_key(key)?;
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(SQL_GET)
            .map_err(|e| self.err("read", &e))?;
        stmt.query_row(params![namespace, key], |row| row.get(0))
            .optional()
            .map_err(|e| self.err("read", &e))
    }

    /// Stores the JSON text `value` under `key` in `namespace`, replacing any
    /// earlier value. Durable when it returns. A rejected write changes
    /// nothing.
    pub fn set(&self, namespace: &str, key: &str, value: &str) -> Result<(), StoreError> {
        self.check_key(key)?;
        let limits = &self.limits;
        if value.len() > limits.max_value_bytes {
            return Err(StoreError::QuotaExceeded(format!(
                "the value for key {} is {} bytes: the quota is {} bytes per value; \
                 store less or split it across several keys",
                key_preview(key),
                value.len(),
                limits.max_value_bytes
            )));
        }
        check_json(key, value)?;

        let key_len = len_u64(key.len());
        let entry_len = key_len.saturating_add(len_u64(value.len()));

        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.err("write", &e))?;
        let old_value_len: Option<i64> = tx
            .prepare_cached(SQL_OLD_LEN)
            .and_then(|mut s| {
                s.query_row(params![namespace, key], |row| row.get(0))
                    .optional()
            })
            .map_err(|e| self.err("read", &e))?;
        let before = read_usage(&tx, namespace).map_err(|e| self.err("read", &e))?;

        let after = match old_value_len {
            Some(old) => Usage {
                keys: before.keys,
                bytes: before
                    .bytes
                    .saturating_sub(key_len.saturating_add(i64_to_u64(old)))
                    .saturating_add(entry_len),
            },
            None => Usage {
                keys: before.keys.saturating_add(1),
                bytes: before.bytes.saturating_add(entry_len),
            },
        };
        if old_value_len.is_none() && after.keys > limits.max_keys {
            return Err(StoreError::QuotaExceeded(format!(
                "namespace '{namespace}' would hold {} keys: the quota is {} keys; \
                 delete keys or reuse existing ones",
                after.keys, limits.max_keys
            )));
        }
        if after.bytes > limits.max_namespace_bytes && after.bytes > before.bytes {
            return Err(StoreError::QuotaExceeded(format!(
                "namespace '{namespace}' would hold {} bytes: the quota is {} bytes; \
                 delete keys or store less",
                after.bytes, limits.max_namespace_bytes
            )));
        }

        tx.prepare_cached(SQL_UPSERT)
            .and_then(|mut s| s.execute(params![namespace, key, value]))
            .map_err(|e| self.err("write", &e))?;
        write_usage(&tx, namespace, after).map_err(|e| self.err("write", &e))?;
        tx.commit().map_err(|e| self.err("write", &e))
    }

    /// Removes `key` from `namespace`; `true` if it existed.
    pub fn delete(&self, namespace: &str, key: &str) -> Result<bool, StoreError> {
        self.check_key(key)?;
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.err("write", &e))?;
        let removed_value_len: Option<i64> = tx
            .prepare_cached(SQL_DELETE)
            .and_then(|mut s| {
                s.query_row(params![namespace, key], |row| row.get(0))
                    .optional()
            })
            .map_err(|e| self.err("write", &e))?;
        let Some(value_len) = removed_value_len else {
            // Nothing was deleted; dropping the transaction rolls it back.
            return Ok(false);
        };
        let before = read_usage(&tx, namespace).map_err(|e| self.err("read", &e))?;
        let after = Usage {
            keys: before.keys.saturating_sub(1),
            bytes: before
                .bytes
                .saturating_sub(len_u64(key.len()).saturating_add(i64_to_u64(value_len))),
        };
        write_usage(&tx, namespace, after).map_err(|e| self.err("write", &e))?;
        tx.commit().map_err(|e| self.err("write", &e))?;
        Ok(true)
    }

    /// The keys of `namespace` that start with `prefix` (all keys for `""`),
    /// in byte order. Every character of `prefix` is literal. The list holds
    /// at most `max_keys` entries, which is all of them unless the quota was
    /// lowered after the keys were written.
    pub fn keys(&self, namespace: &str, prefix: &str) -> Result<Vec<String>, StoreError> {
        // No stored key contains NUL or is longer than the key limit, so such
        // a prefix matches nothing; answering early also avoids binding a
        // huge untrusted string.
        if prefix.len() > self.limits.max_key_bytes || prefix.contains('\0') {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(self.limits.max_keys).unwrap_or(i64::MAX);
        let conn = self.lock();
        let rows: rusqlite::Result<Vec<String>> = match prefix_successor(prefix) {
            Some(end) => conn.prepare_cached(SQL_KEYS_RANGE).and_then(|mut s| {
                s.query_map(params![namespace, prefix, end, limit], |row| row.get(0))?
                    .collect()
            }),
            None => conn.prepare_cached(SQL_KEYS_FROM).and_then(|mut s| {
                s.query_map(params![namespace, prefix, limit], |row| row.get(0))?
                    .collect()
            }),
        };
        rows.map_err(|e| self.err("read", &e))
    }

    /// Removes every key of `namespace`; returns how many were removed
    /// (saturating at `u32::MAX`).
    pub fn clear(&self, namespace: &str) -> Result<u32, StoreError> {
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.err("write", &e))?;
        let removed = tx
            .prepare_cached(SQL_CLEAR)
            .and_then(|mut s| s.execute(params![namespace]))
            .map_err(|e| self.err("write", &e))?;
        tx.prepare_cached(SQL_USAGE_DELETE)
            .and_then(|mut s| s.execute(params![namespace]))
            .map_err(|e| self.err("write", &e))?;
        tx.commit().map_err(|e| self.err("write", &e))?;
        Ok(u32::try_from(removed).unwrap_or(u32::MAX))
    }

    /// What `namespace` holds, as counted against its quotas.
    pub fn usage(&self, namespace: &str) -> Result<Usage, StoreError> {
        let conn = self.lock();
        read_usage(&conn, namespace).map_err(|e| self.err("read", &e))
    }

    /// The connection. A panic while it was held cannot leave a transaction
    /// open (dropping a `Transaction` rolls it back), so a poisoned lock is
    /// still safe to use.
    fn lock(&self) -> MutexGuard<'_, rusqlite::Connection> {
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn err(&self, action: &str, e: &rusqlite::Error) -> StoreError {
        db_error(&self.path, action, e)
    }

    fn check_key(&self, key: &str) -> Result<(), StoreError> {
        let max = self.limits.max_key_bytes;
        if key.is_empty() {
            return Err(StoreError::InvalidKey(format!(
                "the key is empty: keys are 1 to {max} bytes of UTF-8 without NUL characters"
            )));
        }
        if key.len() > max {
            return Err(StoreError::InvalidKey(format!(
                "the key {} is {} bytes long: keys are at most {max} bytes (UTF-8)",
                key_preview(key),
                key.len()
            )));
        }
        if let Some(at) = key.find('\0') {
            return Err(StoreError::InvalidKey(format!(
                "the key {} contains a NUL character at byte {at}: keys may not contain NUL",
                key_preview(key)
            )));
        }
        Ok(())
    }
}

/// Refuses databases written by a newer schema.
fn check_version(path: &Path, version: i64) -> Result<(), StoreError> {
    if version > SCHEMA_VERSION {
        return Err(StoreError::Unavailable(format!(
            "the storage database {} has schema version {version}, newer than the version \
             {SCHEMA_VERSION} this llmos understands; upgrade llmos, or move the file away to \
             start an empty store",
            path.display()
        )));
    }
    Ok(())
}

/// Checks that `value` is one complete JSON text, without building a tree.
fn check_json(key: &str, value: &str) -> Result<(), StoreError> {
    use serde::de::{Deserialize, IgnoredAny};
    let mut de = serde_json::Deserializer::from_str(value);
    IgnoredAny::deserialize(&mut de)
        .and_then(|_| de.end())
        .map_err(|e| {
            StoreError::InvalidValue(format!(
                "the value for key {} is not valid JSON ({e}); store JSON text, \
                 e.g. JSON.stringify(x) or json.dumps(x)",
                key_preview(key)
            ))
        })
}

fn read_usage(conn: &rusqlite::Connection, namespace: &str) -> rusqlite::Result<Usage> {
    let row: Option<(i64, i64)> = conn
        .prepare_cached(SQL_USAGE_GET)?
        .query_row(params![namespace], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    Ok(row
        .map(|(keys, bytes)| Usage {
            keys: i64_to_u64(keys),
            bytes: i64_to_u64(bytes),
        })
        .unwrap_or_default())
}

/// Records `usage` for `namespace`; an empty namespace has no row.
fn write_usage(conn: &rusqlite::Connection, namespace: &str, usage: Usage) -> rusqlite::Result<()> {
    if usage.keys == 0 {
        conn.prepare_cached(SQL_USAGE_DELETE)?
            .execute(params![namespace])?;
    } else {
        let keys = i64::try_from(usage.keys).unwrap_or(i64::MAX);
        let bytes = i64::try_from(usage.bytes).unwrap_or(i64::MAX);
        conn.prepare_cached(SQL_USAGE_PUT)?
            .execute(params![namespace, keys, bytes])?;
    }
    Ok(())
}

/// The smallest string greater than every string that starts with `prefix`,
/// in byte (= code point) order, or `None` if there is none (`prefix` is
/// empty or all `char::MAX`). Increments the last character that can be
/// incremented and drops the ones after it.
fn prefix_successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last {
            '\u{D7FF}' => Some('\u{E000}'),
            c => char::from_u32(u32::from(c) + 1),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// `key` quoted for an error message, shortened if long, with control
/// characters escaped.
fn key_preview(key: &str) -> String {
    let mut shown: String = key.chars().take(KEY_PREVIEW_CHARS).collect();
    let truncated = shown.len() < key.len();
    shown = format!("{shown:?}");
    if truncated {
        // Infallible for String.
        let _ = write!(shown, "… ({} bytes in all)", key.len());
    }
    shown
}

fn db_error(path: &Path, action: &str, e: &rusqlite::Error) -> StoreError {
    let p = path.display();
    let msg = match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => format!(
            "the storage database {p} is busy: another llmos process held it locked for more \
             than {} s; try again",
            BUSY_TIMEOUT.as_secs()
        ),
        Some(ErrorCode::NotADatabase) => format!(
            "{p} is not a SQLite database ({e}); move or delete it so llmos can create a fresh \
             storage database there, or configure another data directory"
        ),
        Some(ErrorCode::DatabaseCorrupt) => format!(
            "the storage database {p} is corrupt ({e}); move it away (its data is lost) so \
             llmos can create a fresh one"
        ),
        Some(ErrorCode::DiskFull) => {
            format!("cannot {action} the storage database {p}: the disk is full ({e})")
        }
        Some(
            ErrorCode::CannotOpen
            | ErrorCode::ReadOnly
            | ErrorCode::PermissionDenied
            | ErrorCode::SystemIoFailure,
        ) => format!(
            "cannot {action} the storage database {p} ({e}); check that the file and its \
             directory exist and are writable by this user, or configure another data directory"
        ),
        _ => format!("cannot {action} the storage database {p}: {e}"),
    };
    StoreError::Unavailable(msg)
}

fn len_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

fn i64_to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

#[cfg(all(test, feature = "storage"))]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn limits() -> StorageLimits {
        StorageLimits {
            max_key_bytes: 64,
            max_value_bytes: 1000,
            max_namespace_bytes: 5000,
            max_keys: 20,
        }
    }

    fn open_in(dir: &tempfile::TempDir, limits: StorageLimits) -> Store {
        Store::open(&dir.path().join("storage.sqlite3"), limits).unwrap()
    }

    /// Recomputes usage from the stored data and checks the usage table
    /// agrees.
    fn assert_usage_consistent(store: &Store, ns: &str) -> Usage {
        let keys = store.keys(ns, "").unwrap();
        let mut bytes = 0u64;
        for k in &keys {
            let v = store.get(ns, k).unwrap().unwrap();
            bytes += (k.len() + v.len()) as u64;
        }
        let expected = Usage {
            keys: keys.len() as u64,
            bytes,
        };
        assert_eq!(store.usage(ns).unwrap(), expected);
        expected
    }

    fn is_quota(r: Result<(), StoreError>) -> String {
        match r {
            Err(StoreError::QuotaExceeded(m)) => m,
            other => panic!("expected QuotaExceeded, got {other:?}"),
        }
    }

    #[test]
    fn store_is_send_sync() {
        fn check<T: Send + Sync>() {}
        check::<Store>();
        check::<Arc<Store>>();
    }

    #[test]
    fn round_trip_json_values() {
        let dir = tempfile::tempdir().unwrap();
        let s = open_in(&dir, limits());
        let values = [
            "null",
            "true",
            "42",
            "-1.5e3",
            "\"text with \\\"quotes\\\" and ünïcödé\"",
            "[1, 2, {\"a\": null}]",
            " { \"nested\" : { \"x\" : [ ] } } ",
        ];
        for (i, v) in values.iter().enumerate() {
            s.set("ns", &format!("k{i}"), v).unwrap();
        }
        for (i, v) in values.iter().enumerate() {
            // Stored exactly as given, whitespace included.
            assert_eq!(s.get("ns", &format!("k{i}")).unwrap().as_deref(), Some(*v));
        }
        assert_eq!(s.get("ns", "missing").unwrap(), None);
        assert_usage_consistent(&s, "ns");
    }

    #[test]
    fn overwrite_replaces_value() {
        let dir = tempfile::tempdir().unwrap();
        let s = open_in(&dir, limits());
        s.set("ns", "k", "1").unwrap();
        s.set("ns", "k", "{\"longer\": true}").unwrap();
        assert_eq!(
            s.get("ns", "k").unwrap().as_deref(),
            Some("{\"longer\": true}")
        );
        let u = assert_usage_consistent(&s, "ns");
        assert_eq!(u.keys, 1);
        assert_eq!(u.bytes, 1 + 16);
    }

    #[test]
    fn delete_reports_existence() {
        let dir = tempfile::tempdir().unwrap();
        let s = open_in(&dir, limits());
        s.set("ns", "a", "1").unwrap();
        s.set("ns", "b", "2").unwrap();
        assert!(s.delete("ns", "a").unwrap());
        assert!(!s.delete("ns", "a").unwrap());
        assert!(!s.delete("ns", "never").unwrap());
        assert_eq!(s.get("ns", "a").unwrap(), None);
        assert_eq!(s.get("ns", "b").unwrap().as_deref(), Some("2"));
        assert_eq!(assert_usage_consistent(&s, "ns").keys, 1);
        assert!(s.delete("ns", "b").unwrap());
        assert_eq!(s.usage("ns").unwrap(), Usage::default());
    }

    #[test]
    fn keys_by_literal_prefix_in_byte_order() {
        let dir = tempfile::tempdir().unwrap();
        let s = open_in(&dir, limits());
        let all = [
            "a",
            "a%b",
            "a%",
            "a_b",
            "ab",
            "a\u{80}",
            "b",
            "é",
            "éa",
            "中文",
            "中",
            "%",
            "_x",
            "A",
            "\u{D7FF}x",
            "\u{E000}",
            "\u{10FFFF}",
            "\u{10FFFF}a",
        ];
        for k in all {
            s.set("ns", k, "0").unwrap();
        }
        let mut sorted: Vec<String> = all.iter().map(|k| k.to_string()).collect();
        sorted.sort();
        assert_eq!(s.keys("ns", "").unwrap(), sorted);

        let with = |p: &str| -> Vec<String> {
            sorted
                .iter()
                .filter(|k| k.starts_with(p))
                .cloned()
                .collect()
        };
        for p in [
            "a",
            "a%",
            "a_",
            "%",
            "_",
            "é",
            "中",
            "\u{D7FF}",
            "\u{10FFFF}",
            "zzz",
            "ab",
            "A",
        ] {
            let got = s.keys("ns", p).unwrap();
            assert_eq!(got, with(p), "prefix {p:?}");
        }
        assert_eq!(s.keys("ns", "a%").unwrap(), vec!["a%", "a%b"]);
        assert_eq!(s.keys("ns", "a_").unwrap(), vec!["a_b"]);
        assert_eq!(s.keys("ns", "中").unwrap(), vec!["中", "中文"]);
        // Prefixes no key can have.
        assert!(s.keys("ns", "a\0").unwrap().is_empty());
        assert!(s.keys("ns", &"a".repeat(1000)).unwrap().is_empty());
    }

    #[test]
    fn prefix_successor_edges() {
        assert_eq!(prefix_successor(""), None);
        assert_eq!(prefix_successor("ab").as_deref(), Some("ac"));
        assert_eq!(prefix_successor("a\u{D7FF}").as_deref(), Some("a\u{E000}"));
        assert_eq!(prefix_successor("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_successor("\u{10FFFF}\u{10FFFF}"), None);
    }

    #[test]
    fn clear_returns_count_and_stays_in_namespace() {
        let dir = tempfile::tempdir().unwrap();
        let s = open_in(&dir, limits());
        for i in 0..5 {
            s.set("one", &format!("k{i}"), "1").unwrap();
        }
        s.set("two", "k0", "\"other\"").unwrap();
        s.set("two", "only-two", "2").unwrap();
        assert_eq!(s.clear("one").unwrap(), 5);
        assert_eq!(s.clear("one").unwrap(), 0);
        assert!(s.keys("one", "").unwrap().is_empty());
        assert_eq!(s.usage("one").unwrap(), Usage::default());
        assert_eq!(s.keys("two", "").unwrap(), vec!["k0", "only-two"]);
        assert_eq!(assert_usage_consistent(&s, "two").keys, 2);
    }

    #[test]
    fn namespaces_are_isolated() {
        let dir = tempfile::tempdir().unwrap();
        let s = open_in(&dir, limits());
        s.set("alpha", "shared", "1").unwrap();
        s.set("alphabet", "shared", "2").unwrap();
        s.set("alpha", "a-only", "3").unwrap();
        assert_eq!(s.get("alpha", "shared").unwrap().as_deref(), Some("1"));
        assert_eq!(s.get("alphabet", "shared").unwrap().as_deref(), Some("2"));
        assert_eq!(s.get("alphabet", "a-only").unwrap(), None);
        assert_eq!(s.keys("alphabet", "").unwrap(), vec!["shared"]);
        assert_eq!(s.keys("alpha", "").unwrap(), vec!["a-only", "shared"]);
        assert!(!s.delete("alphabet", "a-only").unwrap());
        assert_eq!(s.clear("alphabet").unwrap(), 1);
        assert_eq!(s.keys("alpha", "").unwrap(), vec!["a-only", "shared"]);
        assert_usage_consistent(&s, "alpha");
        // Quotas are per namespace.
        let tight = StorageLimits {
            max_keys: 1,
            ..limits()
        };
        let dir2 = tempfile::tempdir().unwrap();
        let t = open_in(&dir2, tight);
        t.set("x", "k", "1").unwrap();
        t.set("y", "k", "1").unwrap();
        is_quota(t.set("x", "k2", "1"));
    }

    #[test]
    fn invalid_keys_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let s = open_in(&dir, limits());
        let cases = ["", "a\0b", &"k".repeat(65)];
        for key in cases {
            for r in [
                s.set("ns", key, "1").map(|_| ()),
                s.get("ns", key).map(|_| ()),
                s.delete("ns", key).map(|_| ()),
            ] {
                match r {
                    Err(StoreError::InvalidKey(m)) => assert!(!m.is_empty()),
                    other => panic!("key {key:?}: expected InvalidKey, got {other:?}"),
                }
            }
        }
        let m = s.set("ns", "a\0b", "1").unwrap_err().to_string();
        assert!(m.contains("NUL") && m.contains("byte 1"), "{m}");
        let m = s.set("ns", &"k".repeat(65), "1").unwrap_err().to_string();
        assert!(m.contains("65 bytes") && m.contains("at most 64"), "{m}");
        let m = s.set("ns", "", "1").unwrap_err().to_string();
        assert!(m.contains("empty"), "{m}");
        // Exactly at the limit, with multi-byte characters, is fine.
        let key = "é".repeat(32);
        assert_eq!(key.len(), 64);
        s.set("ns", &key, "1").unwrap();
        assert_eq!(s.usage("ns").unwrap().keys, 1);
    }

    #[test]
    fn invalid_json_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let s = open_in(&dir, limits());
        for v in [
            "",
            " ",
            "undefined",
            "{a: 1}",
            "[1,",
            "[}",
            "1 2",
            "'x'",
            "NaN",
            "{} x",
            "\u{FEFF}1",
        ] {
            match s.set("ns", "k", v) {
                Err(StoreError::InvalidValue(m)) => {
                    assert!(m.contains("not valid JSON"), "{m}")
                }
                other => panic!("value {v:?}: expected InvalidValue, got {other:?}"),
            }
        }
        // Deep nesting is valid JSON; it is checked iteratively, without
        // recursion, so it cannot overflow the stack.
        let depth = 100_000;
        let deep = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let big = StorageLimits {
            max_value_bytes: 2 * depth,
            max_namespace_bytes: 1 << 20,
            ..limits()
        };
        let dir2 = tempfile::tempdir().unwrap();
        let s2 = open_in(&dir2, big);
        s2.set("ns", "deep", &deep).unwrap();
        let unbalanced = format!("{}{}", "[".repeat(depth), "]".repeat(depth - 1));
        assert!(matches!(
            s2.set("ns", "k", &unbalanced),
            Err(StoreError::InvalidValue(_))
        ));
        assert_eq!(s.usage("ns").unwrap(), Usage::default());
        assert_eq!(s.get("ns", "k").unwrap(), None);
    }

    #[test]
    fn value_size_quota() {
        let dir = tempfile::tempdir().unwrap();
        let s = open_in(&dir, limits());
        let at_limit = format!("\"{}\"", "x".repeat(998));
        assert_eq!(at_limit.len(), 1000);
        s.set("ns", "k", &at_limit).unwrap();
        let over = format!("\"{}\"", "x".repeat(999));
        let m = is_quota(s.set("ns", "k", &over));
        assert!(
            m.contains("1001 bytes") && m.contains("1000 bytes per value"),
            "{m}"
        );
        // Unchanged.
        assert_eq!(s.get("ns", "k").unwrap(), Some(at_limit));
        // Checked before JSON validity: oversized garbage is a quota error.
        is_quota(s.set("ns", "k2", &"{".repeat(2000)));
        assert_usage_consistent(&s, "ns");
    }

    #[test]
    fn namespace_bytes_quota_with_replacement() {
        let dir = tempfile::tempdir().unwrap();
        let lim = StorageLimits {
            max_namespace_bytes: 100,
            ..limits()
        };
        let s = open_in(&dir, lim);
        let v40 = format!("\"{}\"", "a".repeat(38)); // 40 bytes
        s.set("demo", "k1", &v40).unwrap(); // 42
        s.set("demo", "k2", &v40).unwrap(); // 84
        // New key of 2 + 40 bytes would make 126.
        let m = is_quota(s.set("demo", "k3", &v40));
        assert_eq!(
            m,
            "namespace 'demo' would hold 126 bytes: the quota is 100 bytes; \
             delete keys or store less"
        );
        // Replacing k2 (42 bytes) with 2 + 58 = 60 bytes makes 102: too much.
        let v58 = format!("\"{}\"", "b".repeat(56));
        let m = is_quota(s.set("demo", "k2", &v58));
        assert!(m.contains("102 bytes"), "{m}");
        assert_eq!(s.get("demo", "k2").unwrap(), Some(v40.clone()));
        // Replacing with 2 + 56 = 58 makes exactly 100: fine, because the old
        // value is no longer counted.
        let v56 = format!("\"{}\"", "c".repeat(54));
        s.set("demo", "k2", &v56).unwrap();
        assert_eq!(
            assert_usage_consistent(&s, "demo"),
            Usage {
                keys: 2,
                bytes: 100
            }
        );
        // Deleting frees room.
        assert!(s.delete("demo", "k1").unwrap());
        s.set("demo", "k3", &v40).unwrap();
        assert_usage_consistent(&s, "demo");
    }

    #[test]
    fn key_count_quota() {
        let dir = tempfile::tempdir().unwrap();
        let lim = StorageLimits {
            max_keys: 3,
            ..limits()
        };
        let s = open_in(&dir, lim);
        for k in ["a", "b", "c"] {
            s.set("demo", k, "1").unwrap();
        }
        let m = is_quota(s.set("demo", "d", "1"));
        assert_eq!(
            m,
            "namespace 'demo' would hold 4 keys: the quota is 3 keys; \
             delete keys or reuse existing ones"
        );
        assert_eq!(s.get("demo", "d").unwrap(), None);
        // Overwriting an existing key does not add one.
        s.set("demo", "c", "2").unwrap();
        assert!(s.delete("demo", "a").unwrap());
        s.set("demo", "d", "1").unwrap();
        assert_eq!(s.keys("demo", "").unwrap(), vec!["b", "c", "d"]);
        assert_usage_consistent(&s, "demo");
    }

    #[test]
    fn lowered_quota_allows_shrinking() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let s = Store::open(&path, limits()).unwrap();
        s.set("ns", "k", &format!("\"{}\"", "x".repeat(200)))
            .unwrap();
        s.set("ns", "j", "1").unwrap();
        drop(s);
        let tight = StorageLimits {
            max_namespace_bytes: 50,
            max_keys: 1,
            ..limits()
        };
        let s = Store::open(&path, tight).unwrap();
        // Over both quotas now: growing is refused, shrinking is allowed.
        is_quota(s.set("ns", "k", &format!("\"{}\"", "x".repeat(201))));
        is_quota(s.set("ns", "new", "1"));
        s.set("ns", "k", "\"small\"").unwrap();
        // keys() is bounded by the key-count quota.
        assert_eq!(s.keys("ns", "").unwrap(), vec!["j"]);
        assert_eq!(s.usage("ns").unwrap().keys, 2);
    }

    #[test]
    fn persists_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join("deeper").join("store.db");
        {
            let s = Store::open(&path, limits()).unwrap();
            assert_eq!(s.path(), path.as_path());
            s.set("ns", "k", "{\"saved\": [1, 2]}").unwrap();
            s.set("ns", "gone", "0").unwrap();
            s.delete("ns", "gone").unwrap();
        }
        let s = Store::open(&path, limits()).unwrap();
        assert_eq!(
            s.get("ns", "k").unwrap().as_deref(),
            Some("{\"saved\": [1, 2]}")
        );
        assert_eq!(s.get("ns", "gone").unwrap(), None);
        assert_usage_consistent(&s, "ns");
    }

    #[test]
    fn two_instances_share_the_file_and_quotas() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shared.db");
        let lim = StorageLimits {
            max_keys: 4,
            max_namespace_bytes: 40,
            ..limits()
        };
        let a = Store::open(&path, lim).unwrap();
        let b = Store::open(&path, lim).unwrap();
        a.set("ns", "a1", "1").unwrap();
        b.set("ns", "b1", "2").unwrap();
        assert_eq!(a.get("ns", "b1").unwrap().as_deref(), Some("2"));
        a.set("ns", "a2", "3").unwrap();
        b.set("ns", "b2", "4").unwrap();
        // Each instance sees the other's keys in the quota.
        is_quota(a.set("ns", "a3", "5"));
        is_quota(b.set("ns", "b3", "6"));
        assert!(b.delete("ns", "a1").unwrap());
        a.set("ns", "a3", "5").unwrap();
        is_quota(b.set("ns", "b3", "6"));
        // Byte quota across instances: 4 keys of 3 bytes = 12 now; b grows
        // one value so the total is 40, then a cannot grow any.
        b.set("ns", "b2", &format!("\"{}\"", "x".repeat(27)))
            .unwrap();
        assert_eq!(a.usage("ns").unwrap().bytes, 40);
        is_quota(a.set("ns", "a2", "33"));
        assert_usage_consistent(&a, "ns");
        assert_usage_consistent(&b, "ns");
    }

    #[test]
    fn concurrent_writers_respect_quota() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("race.db");
        let lim = StorageLimits {
            max_keys: 25,
            ..limits()
        };
        let stores: Vec<Arc<Store>> = (0..2)
            .map(|_| Arc::new(Store::open(&path, lim).unwrap()))
            .collect();
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let s = Arc::clone(&stores[t % 2]);
                std::thread::spawn(move || {
                    let mut ok = 0u64;
                    for i in 0..20 {
                        match s.set("ns", &format!("t{t}-{i}"), "1") {
                            Ok(()) => ok += 1,
                            Err(StoreError::QuotaExceeded(_)) => {}
                            Err(e) => panic!("{e}"),
                        }
                    }
                    ok
                })
            })
            .collect();
        let ok: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(ok, 25);
        let u = assert_usage_consistent(&stores[0], "ns");
        assert_eq!(u.keys, 25);
    }

    #[test]
    fn garbage_file_is_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("not-a-db.sqlite3");
        std::fs::write(
            &path,
            "this is definitely not a SQLite database\n".repeat(100),
        )
        .unwrap();
        match Store::open(&path, limits()) {
            Err(StoreError::Unavailable(m)) => {
                assert!(m.contains(&path.display().to_string()), "{m}");
                assert!(m.contains("not a SQLite database"), "{m}");
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
        // The file is left alone.
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .starts_with("this is")
        );
    }

    #[test]
    fn unwritable_location_is_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        // A regular file where a directory should be: fails even as root.
        let file = dir.path().join("plain-file");
        std::fs::write(&file, "x").unwrap();
        let path = file.join("sub").join("store.db");
        match Store::open(&path, limits()) {
            Err(StoreError::Unavailable(m)) => {
                assert!(m.contains(&path.display().to_string()), "{m}")
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
        // A directory where the database file should be.
        match Store::open(dir.path(), limits()) {
            Err(StoreError::Unavailable(m)) => {
                assert!(m.contains(&dir.path().display().to_string()), "{m}")
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("future.db");
        drop(Store::open(&path, limits()).unwrap());
        {
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
                .unwrap();
        }
        match Store::open(&path, limits()) {
            Err(StoreError::Unavailable(m)) => {
                assert!(m.contains(&path.display().to_string()), "{m}");
                assert!(m.contains("schema version 2"), "{m}");
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }

    #[test]
    fn uses_wal_and_full_sync() {
        let dir = tempfile::tempdir().unwrap();
        let s = open_in(&dir, limits());
        let conn = s.lock();
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let sync: i64 = conn
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 2, "synchronous=FULL");
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
    }
}
