//! The on-disk cache of precompiled components.
//!
//! Compiling a component with Cranelift takes from one to several seconds; a
//! precompiled artifact loads in milliseconds with `Component::deserialize`.
//! Each cache entry is keyed by the component's content hash, the engine's
//! compatibility fingerprint (its configuration, e.g. fuel on or off) and the
//! wasmtime version, so a changed component, engine configuration or upgrade
//! never loads a stale artifact.
//!
//! The component's content hash is remembered in `<name>.stamp` together with
//! the file's identity (path, length, mtime, inode), so an unchanged 20 MB
//! component is not rehashed on every start.
//!
//! An entry is `<name>-<component hash>-<engine fingerprint>.cwasm` plus a
//! `.sum` sidecar holding the xxh3-128 checksum and length of the `.cwasm`.
//! Both are written to temporary files and renamed into place, so concurrent
//! writers and crashes leave either a complete entry or none. Storing an
//! entry prunes the component's others: this engine's for other versions of
//! the component, and all of them for engine configurations older than the
//! newest [`limits::CACHE_ENGINE_CONFIGS`](crate::limits::CACHE_ENGINE_CONFIGS),
//! so upgrades do not leave ~40 MB per past configuration behind.
//!
//! Invariants (the threat is a local user or a crash tampering with the
//! entry between its check and its use; `Component::deserialize` trusts its
//! input as native code):
//! 1. The cache directory is private: created 0700 and refused when other
//!    users could write it ([`crate::paths::ensure_private_dir`]), so nobody
//!    else can plant or swap an entry.
//! 2. The bytes checked are the bytes deserialized. An entry is opened once
//!    ([`Verified`]) and its length and checksum are checked on a mapping of
//!    that open file; wasmtime then maps the same open file (through
//!    `/proc/self/fd`, never the path again), so replacing the entry after the
//!    check cannot change what is loaded. Entries are never rewritten in place:
//!    every writer renames a complete new file over the old one, and only the
//!    owner can write a 0600 file in a 0700 directory, so the checked inode's
//!    bytes do not change. (A mapping, not a copy: the Python entry is ~40 MB,
//!    and copying it twice cost ~45 ms of every start.) Where `/proc/self/fd`
//!    does not exist the entry is read into memory and that copy is both
//!    checked and deserialized. A corrupted or truncated entry is detected,
//!    removed and rebuilt.
//! 3. A freshly compiled component is deserialized from the in-memory output
//!    of `precompile_component`, not read back from disk.
//! 4. A full check is not repeated while the entry is provably unchanged.
//!    After one, `<entry>.ok` records the checked file's identity (device,
//!    inode, length, mtime and ctime) and the checksum line it matched. A
//!    later load `fstat`s the file it opened and, when the identity and the
//!    checksum line still match, hands that open file to wasmtime without
//!    rehashing: any write, truncation, `touch` or rename over the entry
//!    changes its identity (ctime cannot be set by a process), so every change
//!    made through the filesystem is still caught. As with Git's index, a
//!    file whose ctime is within [`RACY_SECS`] of the check is not recorded
//!    (timestamps are coarse: a write in the same tick could keep them).
//!    Rehashing the 40 MB Python entry cost ~5 ms of every start. What this
//!    cannot see is silent corruption below the filesystem (bit rot), which a
//!    full check would; removing the `.ok` files forces one.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use wasmtime::Engine;
use wasmtime::component::Component;
use xxhash_rust::xxh3::{Xxh3, xxh3_128};

use crate::error::HostError;

/// The wasmtime version this host is pinned to (part of every cache key).
pub const WASMTIME_VERSION: &str = "48.0.8";

/// Why a component had to be compiled rather than loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rebuild {
    /// No entry for this component and engine configuration.
    Missing,
    /// An entry existed but failed verification (the reason says how).
    Corrupt(String),
}

/// How a component was obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheStatus {
    /// Deserialized from a verified cache entry.
    Hit,
    /// Compiled now (and cached), for this reason.
    Compiled(Rebuild),
}

/// A component loaded through the cache, with what happened.
pub struct Loaded {
    /// The component, ready to link.
    pub component: Component,
    /// Whether it came from the cache.
    pub status: CacheStatus,
    /// The cache entry.
    pub path: PathBuf,
    /// Time to load or compile it.
    pub millis: f64,
}

/// The compatibility fingerprint of an engine: 32 hex digits.
pub fn engine_fingerprint(engine: &Engine) -> String {
    struct H(Xxh3);
    impl Hasher for H {
        fn finish(&self) -> u64 {
            self.0.digest()
        }
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
    }
    let mut h = H(Xxh3::new());
    WASMTIME_VERSION.hash(&mut h);
    engine.precompile_compatibility_hash().hash(&mut h);
    format!("{:032x}", h.0.digest128())
}

/// The bytes of a cache entry that passed verification: the only thing
/// [`ComponentCache`] ever hands to `Component::deserialize`.
///
/// It can only be built by [`ComponentCache::read_verified`], which reads the
/// file once and checks this very copy, so later changes to the file cannot
/// reach the engine.
pub struct Verified(Source);

enum Source {
    /// The open entry and a read-only mapping of it, checked (now or, per
    /// its `.ok` record, by an earlier load of the same unchanged file).
    Mapped(std::fs::File, memmap2::Mmap),
    /// A checked copy in memory (fresh compiles, and hosts without `/proc`).
    Bytes(Vec<u8>),
}

impl std::fmt::Debug for Verified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Verified({} bytes)", self.bytes().len())
    }
}

impl PartialEq for Verified {
    fn eq(&self, other: &Self) -> bool {
        self.bytes() == other.bytes()
    }
}

impl Verified {
    /// The verified bytes.
    pub fn bytes(&self) -> &[u8] {
        match &self.0 {
            Source::Mapped(_, map) => map,
            Source::Bytes(b) => b,
        }
    }

    /// Deserializes exactly these bytes for `engine`.
    pub fn deserialize(&self, engine: &Engine) -> wasmtime::Result<Component> {
        // SAFETY: the bytes were written by `ComponentCache::store` from
        // `Engine::precompile_component` into a directory only this user can
        // write, and they matched the recorded length and xxh3-128 checksum,
        // so they are exactly what wasmtime produced. A mapped entry is handed
        // to wasmtime as the same open file (its inode, not its path), which
        // no writer modifies in place (see the module docs).
        #[allow(unsafe_code)]
        unsafe {
            match &self.0 {
                Source::Mapped(file, _) => {
                    use std::os::fd::AsRawFd;
                    let fd = format!("/proc/self/fd/{}", file.as_raw_fd());
                    Component::deserialize_file(engine, fd)
                }
                Source::Bytes(b) => Component::deserialize(engine, b),
            }
        }
    }
}

/// Seconds a cache entry's ctime must be in the past before a check of it is
/// recorded in its `.ok` file (see the module docs).
pub const RACY_SECS: i64 = 2;

/// A file's identity: device, inode, length, mtime and ctime (to the
/// nanosecond). Any change made through the filesystem changes it: a write,
/// truncation, `touch` or rename over the path (the ctime cannot be set by
/// a process). Shared by the cache's `.ok` records and boot's check record.
pub(crate) fn file_identity(meta: &std::fs::Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    format!(
        "{} {} {} {}.{:09} {}.{:09}",
        meta.dev(),
        meta.ino(),
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec()
    )
}

/// Write a new 0600 file (for the cache's sidecars).
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}

/// Distinguishes temporary files of concurrent writers within one process.
static TMP_COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The on-disk cache of precompiled components (see the module docs).
#[derive(Debug, Clone)]
pub struct ComponentCache {
    dir: PathBuf,
}

impl ComponentCache {
    /// A cache in `dir` (made private on first use).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ComponentCache { dir: dir.into() }
    }

    /// Path of the entry for a component (by content hash) under an engine.
    fn entry_path(&self, name: &str, component_hash: u128, engine_fp: &str) -> PathBuf {
        self.dir.join(format!(
            "{name}-{component_hash:032x}-{}.cwasm",
            &engine_fp[..16.min(engine_fp.len())]
        ))
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Load `component_path` for `engine`, from the cache if a verified entry
    /// exists, else by compiling it and storing the result.
    ///
    /// Fails first if the cache directory is not private
    /// ([`crate::paths::ensure_private_dir`]); it is created 0700 if missing.
    pub fn load(
        &self,
        engine: &Engine,
        engine_fp: &str,
        name: &str,
        component_path: &Path,
        on_compile: &dyn Fn(&Path),
    ) -> Result<Loaded, HostError> {
        let start = Instant::now();
        crate::paths::ensure_private_dir(&self.dir)?;
        let missing = |e: std::io::Error| match e.kind() {
            std::io::ErrorKind::NotFound => HostError::ComponentMissing {
                path: component_path.to_owned(),
            },
            _ => HostError::io(component_path, e),
        };
        let meta = std::fs::metadata(component_path).map_err(missing)?;
        // The component's bytes, when they had to be read for hashing: kept
        // for compiling so the bytes hashed are the bytes compiled.
        let mut wasm: Option<Vec<u8>> = None;
        let component_hash = match self.stamped_hash(name, component_path, &meta) {
            Some(hash) => hash,
            None => {
                let bytes = std::fs::read(component_path).map_err(missing)?;
                let hash = xxh3_128(&bytes);
                self.write_stamp(name, component_path, &meta, hash);
                wasm = Some(bytes);
                hash
            }
        };
        let hashed_ms = start.elapsed().as_secs_f64() * 1e3;
        let mut path = self.entry_path(name, component_hash, engine_fp);
        let verified = Self::read_verified(&path);
        let verified_ms = start.elapsed().as_secs_f64() * 1e3;
        tracing::debug!(component = name, hashed_ms, verified_ms, "cache lookup");
        let rebuild = match verified {
            Ok(entry) => match entry.deserialize(engine) {
                Ok(component) => {
                    return Ok(Loaded {
                        component,
                        status: CacheStatus::Hit,
                        path,
                        millis: start.elapsed().as_secs_f64() * 1e3,
                    });
                }
                Err(e) => Rebuild::Corrupt(format!("wasmtime refused it: {e:#}")),
            },
            Err(r) => r,
        };
        if let Rebuild::Corrupt(reason) = &rebuild {
            tracing::warn!(entry = %path.display(), %reason, "discarding corrupt precompiled component");
        }
        on_compile(component_path);
        let wasm = match wasm {
            Some(bytes) => bytes,
            None => std::fs::read(component_path).map_err(missing)?,
        };
        let actual = xxh3_128(&wasm);
        if actual != component_hash {
            // Replaced since it was hashed (or a stale stamp): key the entry
            // by the bytes actually compiled.
            let meta = std::fs::metadata(component_path).map_err(missing)?;
            self.write_stamp(name, component_path, &meta, actual);
            path = self.entry_path(name, actual, engine_fp);
        }
        let cwasm = engine
            .precompile_component(&wasm)
            .map_err(|e| HostError::Compile {
                path: component_path.to_owned(),
                reason: format!("{e:#}"),
            })?;
        self.store(&path, &cwasm, name, engine_fp)?;
        // Deserialize the bytes wasmtime just produced, from memory: what was
        // written to disk is for the next start.
        let component = Verified(Source::Bytes(cwasm)).deserialize(engine)?;
        Ok(Loaded {
            component,
            status: CacheStatus::Compiled(rebuild),
            path,
            millis: start.elapsed().as_secs_f64() * 1e3,
        })
    }

    fn stamp_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.stamp"))
    }

    /// The file identity a stamp records: path, length, mtime, inode.
    fn identity(component_path: &Path, meta: &std::fs::Metadata) -> String {
        use std::os::unix::fs::MetadataExt;
        format!(
            "{} {} {} {} {}",
            meta.len(),
            meta.mtime(),
            meta.mtime_nsec(),
            meta.ino(),
            component_path.display()
        )
    }

    /// The component's content hash, if a stamp recorded it for exactly this
    /// file (same path, length, mtime and inode): the 20+ MB component need
    /// not be read on every start. Any change to the file invalidates it.
    fn stamped_hash(
        &self,
        name: &str,
        component_path: &Path,
        meta: &std::fs::Metadata,
    ) -> Option<u128> {
        let text = std::fs::read_to_string(self.stamp_path(name)).ok()?;
        let (hash, identity) = text.trim_end_matches('\n').split_once(' ')?;
        (identity == Self::identity(component_path, meta))
            .then(|| u128::from_str_radix(hash, 16).ok())?
    }

    fn write_stamp(&self, name: &str, component_path: &Path, meta: &std::fs::Metadata, hash: u128) {
        let text = format!("{hash:032x} {}\n", Self::identity(component_path, meta));
        let tmp = self
            .stamp_path(name)
            .with_extension(format!("stamp.tmp{}", std::process::id()));
        // A stamp is only a shortcut: failing to write one costs a rehash next
        // time. `load` has made the directory private before any stamp.
        let _ =
            std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, self.stamp_path(name)));
    }

    fn sum_path(path: &Path) -> PathBuf {
        path.with_extension("sum")
    }

    /// Opens an entry once and checks its bytes against the sidecar checksum
    /// (unless its `.ok` record shows this very file was checked before);
    /// the returned entry is what gets deserialized (see the module docs).
    pub fn read_verified(path: &Path) -> Result<Verified, Rebuild> {
        Self::read_verified_at(path, std::time::SystemTime::now())
    }

    fn ok_path(path: &Path) -> PathBuf {
        path.with_extension("ok")
    }

    fn read_verified_at(path: &Path, now: std::time::SystemTime) -> Result<Verified, Rebuild> {
        let sum = match std::fs::read_to_string(Self::sum_path(path)) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(if path.exists() {
                    Rebuild::Corrupt("checksum file missing".into())
                } else {
                    Rebuild::Missing
                });
            }
            Err(e) => return Err(Rebuild::Corrupt(format!("unreadable checksum: {e}"))),
        };
        let (want_hash, want_len) = sum
            .trim()
            .split_once(' ')
            .and_then(|(h, l)| Some((u128::from_str_radix(h, 16).ok()?, l.parse::<u64>().ok()?)))
            .ok_or_else(|| Rebuild::Corrupt("malformed checksum file".into()))?;
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Rebuild::Missing),
            Err(e) => return Err(Rebuild::Corrupt(format!("unreadable: {e}"))),
        };
        let mapped = Path::new("/proc/self/fd").is_dir();
        // The identity of the file opened (not of the path, which a writer
        // may rename over meanwhile), and what an earlier check recorded.
        let identity = file.metadata().ok().map(|m| {
            use std::os::unix::fs::MetadataExt;
            (file_identity(&m), m.ctime())
        });
        let record = identity
            .as_ref()
            .map(|(id, _)| format!("{id} {}\n", sum.trim()));
        let checked_before = mapped
            && record.as_ref().is_some_and(|r| {
                std::fs::read_to_string(Self::ok_path(path)).is_ok_and(|ok| &ok == r)
            });
        let source = if mapped {
            // SAFETY: a read-only private mapping of an entry that no writer
            // modifies in place (entries are replaced by rename only).
            // Populated when it is about to be hashed in full.
            #[allow(unsafe_code)]
            let map = unsafe {
                let mut o = memmap2::MmapOptions::new();
                if !checked_before {
                    o.populate();
                }
                o.map(&file)
            }
            .map_err(|e| Rebuild::Corrupt(format!("unreadable: {e}")))?;
            Source::Mapped(file, map)
        } else {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut &file, &mut bytes)
                .map_err(|e| Rebuild::Corrupt(format!("unreadable: {e}")))?;
            Source::Bytes(bytes)
        };
        let verified = Verified(source);
        let bytes = verified.bytes();
        if bytes.len() as u64 != want_len {
            return Err(Rebuild::Corrupt(format!(
                "length {} != recorded {want_len}",
                bytes.len()
            )));
        }
        if checked_before {
            return Ok(verified);
        }
        if xxh3_128(bytes) != want_hash {
            return Err(Rebuild::Corrupt("checksum mismatch".into()));
        }
        // Record the check, unless the file changed too recently for its
        // timestamps to tell a later change apart (see the module docs).
        let now = now
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        if let (true, Some((_, ctime)), Some(record)) = (mapped, identity, record)
            && now.saturating_sub(ctime) > RACY_SECS
        {
            let ok = Self::ok_path(path);
            let tmp = ok.with_extension(format!("ok.tmp{}", std::process::id()));
            // Only a shortcut: failing to record it costs a rehash next time.
            let _ =
                write_private(&tmp, record.as_bytes()).and_then(|()| std::fs::rename(&tmp, &ok));
        }
        Ok(verified)
    }

    /// Write an entry atomically and drop older entries of the same component
    /// name built for the same engine configuration.
    fn store(
        &self,
        path: &Path,
        cwasm: &[u8],
        name: &str,
        engine_fp: &str,
    ) -> Result<(), HostError> {
        crate::paths::ensure_private_dir(&self.dir)?;
        let write_atomic = |dest: &Path, bytes: &[u8]| -> Result<(), HostError> {
            use std::os::unix::fs::OpenOptionsExt;
            let n = TMP_COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let tmp = dest.with_extension(format!("tmp{}-{n}", std::process::id()));
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(|e| HostError::io(&tmp, e))?;
            f.write_all(bytes)
                .and_then(|()| f.sync_all())
                .map_err(|e| HostError::io(&tmp, e))?;
            std::fs::rename(&tmp, dest).map_err(|e| HostError::io(dest, e))
        };
        // The checksum goes first: a crash between the two renames leaves a
        // sum without its artifact (Missing), never an unverifiable artifact.
        let sum = format!("{:032x} {}\n", xxh3_128(cwasm), cwasm.len());
        write_atomic(&Self::sum_path(path), sum.as_bytes())?;
        write_atomic(path, cwasm)?;
        self.prune(path, name, &engine_fp[..16.min(engine_fp.len())]);
        Ok(())
    }

    /// After `kept` (an entry of component `name` for the engine whose
    /// fingerprint starts with `fp`) was stored: drop this engine's entries
    /// for other versions of the component, and every entry of the
    /// component for engines older than the newest
    /// [`limits::CACHE_ENGINE_CONFIGS`](crate::limits::CACHE_ENGINE_CONFIGS)
    /// (by when their entries were written). Only `<name>-<32 hex>-<16
    /// hex>.cwasm` entries are considered: never another component's, even
    /// one whose name starts with this one's. Removal is best effort: a
    /// file left behind costs disk, never a wrong load.
    fn prune(&self, kept: &Path, name: &str, fp: &str) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let remove = |p: &Path| {
            let _ = std::fs::remove_file(Self::ok_path(p));
            let _ = std::fs::remove_file(Self::sum_path(p));
            let _ = std::fs::remove_file(p);
        };
        let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
        let prefix = format!("{name}-");
        let mut others: std::collections::HashMap<String, (std::time::SystemTime, Vec<PathBuf>)> =
            std::collections::HashMap::new();
        for entry in entries.flatten() {
            let p = entry.path();
            let fname = entry.file_name().to_string_lossy().into_owned();
            let Some((hash, entry_fp)) = fname
                .strip_prefix(&prefix)
                .and_then(|r| r.strip_suffix(".cwasm"))
                .and_then(|r| r.split_once('-'))
            else {
                continue;
            };
            if !hex(hash, 32) || !hex(entry_fp, 16) || p == kept {
                continue;
            }
            if entry_fp == fp {
                remove(&p);
                continue;
            }
            let written = entry
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            let group = others
                .entry(entry_fp.to_string())
                .or_insert((std::time::UNIX_EPOCH, Vec::new()));
            group.0 = group.0.max(written);
            group.1.push(p);
        }
        let mut groups: Vec<_> = others.into_values().collect();
        groups.sort_by_key(|g| std::cmp::Reverse(g.0));
        let keep_others = crate::limits::CACHE_ENGINE_CONFIGS.saturating_sub(1);
        for (_, paths) in groups.into_iter().skip(keep_others) {
            paths.iter().for_each(|p| remove(p));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest component: magic, version 0x0d, layer 1.
    const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0";

    fn engine() -> Engine {
        Engine::new(&crate::engine::engine_config(true)).expect("engine")
    }

    /// An entry stored by `store`, and its bytes.
    fn stored(cache: &ComponentCache, engine: &Engine) -> (PathBuf, Vec<u8>) {
        let fp = engine_fingerprint(engine);
        let cwasm = engine
            .precompile_component(EMPTY_COMPONENT)
            .expect("precompile");
        let path = cache.entry_path("empty", xxh3_128(EMPTY_COMPONENT), &fp);
        cache.store(&path, &cwasm, "empty", &fp).expect("store");
        (path, cwasm)
    }

    /// Storing an entry drops this engine's entries for other versions of
    /// the component and keeps the entries of only the newest
    /// `CACHE_ENGINE_CONFIGS` engine configurations; other components'
    /// entries (even with a name that starts with this one's) stay.
    #[test]
    fn storing_an_entry_prunes_stale_engine_configurations() {
        let t = tempfile::tempdir().expect("tempdir");
        let cache = ComponentCache::new(t.path().join("cache"));
        std::fs::create_dir_all(cache.dir()).expect("dir");
        let engine = engine();
        let fp = engine_fingerprint(&engine);
        let day = std::time::Duration::from_secs(86_400);
        let now = std::time::SystemTime::now();
        // An entry (with its sidecars) written `age` days ago.
        let fake = |name: &str, hash: u128, fp: &str, age: u32| {
            let path = cache.entry_path(name, hash, fp);
            for p in [
                path.clone(),
                ComponentCache::sum_path(&path),
                ComponentCache::ok_path(&path),
            ] {
                let f = std::fs::File::create(&p).expect("create");
                f.set_modified(now - day * age).expect("mtime");
            }
            path
        };
        // More older engine configurations of `empty` than are kept, newest
        // first; one of them with two versions of the component.
        let configs = crate::limits::CACHE_ENGINE_CONFIGS as u32 + 2;
        let olds: Vec<Vec<PathBuf>> = (1..=configs)
            .map(|age| {
                let other_fp = format!("{age:016x}");
                let mut v = vec![fake("empty", 1, &other_fp, age)];
                if age == 2 {
                    v.push(fake("empty", 2, &other_fp, 20));
                }
                v
            })
            .collect();
        // This engine's entry for an older version of the component.
        let superseded = fake("empty", 7, &fp, 1);
        // Other components, one sharing the prefix, all very old.
        let others = [
            fake("emptyish", 1, "00000000000000aa", 30),
            fake("empty-x", 1, "00000000000000bb", 30),
            fake(&format!("empty-{:032x}", 5), 1, "00000000000000bb", 30),
            fake("python", 1, "00000000000000cc", 30),
        ];
        let (kept, _) = stored(&cache, &engine);

        let exists = |p: &Path| p.exists();
        assert!(exists(&kept));
        assert!(!exists(&superseded) && !exists(&ComponentCache::sum_path(&superseded)));
        let kept_configs = crate::limits::CACHE_ENGINE_CONFIGS - 1;
        for (i, group) in olds.iter().enumerate() {
            for p in group {
                let sidecars = [ComponentCache::sum_path(p), ComponentCache::ok_path(p)];
                if i < kept_configs {
                    assert!(exists(p), "{} was pruned", p.display());
                    assert!(sidecars.iter().all(|s| exists(s)));
                } else {
                    assert!(!exists(p), "{} was kept", p.display());
                    assert!(sidecars.iter().all(|s| !exists(s)));
                }
            }
        }
        assert!(others.iter().all(|p| exists(p)));
        // And what stays still loads.
        assert!(ComponentCache::read_verified(&kept).is_ok());
    }

    #[test]
    fn the_bytes_verified_are_the_bytes_deserialized() {
        let t = tempfile::tempdir().expect("tempdir");
        let cache = ComponentCache::new(t.path().join("cache"));
        let engine = engine();
        let (path, cwasm) = stored(&cache, &engine);
        let verified = ComponentCache::read_verified(&path).expect("verifies");
        assert_eq!(verified.bytes(), &cwasm[..]);

        // Swapped after verification (a new file renamed over the entry, as
        // any writer does): the verified entry is unaffected and still
        // deserializes; the path is never opened again for this load.
        let mut evil = cwasm.clone();
        let mid = evil.len() / 2;
        evil[mid] ^= 0xff;
        let tmp = path.with_extension("evil");
        std::fs::write(&tmp, &evil).expect("write");
        std::fs::rename(&tmp, &path).expect("swap");
        assert_eq!(verified.bytes(), &cwasm[..]);
        verified
            .deserialize(&engine)
            .expect("deserializes the verified copy");

        // The next load reads the swapped file and its checksum refuses it.
        assert_eq!(
            ComponentCache::read_verified(&path),
            Err(Rebuild::Corrupt("checksum mismatch".into()))
        );
    }

    #[test]
    fn a_check_is_recorded_and_any_change_to_the_entry_voids_it() {
        let t = tempfile::tempdir().expect("tempdir");
        let cache = ComponentCache::new(t.path().join("cache"));
        let engine = engine();
        let (path, cwasm) = stored(&cache, &engine);
        let ok = ComponentCache::ok_path(&path);
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(60);

        // Just written: too recent to record (timestamps are coarse).
        ComponentCache::read_verified(&path).expect("verifies");
        assert!(!ok.exists(), "a fresh entry's check is not recorded");
        // Old enough: checked in full, then recorded.
        ComponentCache::read_verified_at(&path, later).expect("verifies");
        assert!(ok.exists(), "the check is recorded");
        let v = ComponentCache::read_verified_at(&path, later).expect("checked before");
        assert_eq!(v.bytes(), &cwasm[..]);
        v.deserialize(&engine).expect("deserializes");

        // Corrupted in place, same length: the identity changed (ctime), so
        // the record no longer applies and the full check refuses it.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let mut evil = cwasm.clone();
        let mid = evil.len() / 2;
        evil[mid] ^= 0xff;
        std::fs::write(&path, &evil).expect("overwrite in place");
        assert_eq!(
            ComponentCache::read_verified_at(&path, later),
            Err(Rebuild::Corrupt("checksum mismatch".into()))
        );

        // Restored bytes, new record; then the checksum line is edited: the
        // record names the line it matched, so it no longer applies either.
        std::fs::write(&path, &cwasm).expect("restore");
        ComponentCache::read_verified_at(&path, later).expect("verifies");
        let sum = ComponentCache::sum_path(&path);
        std::fs::write(&sum, format!("{:032x} {}\n", 1u128, cwasm.len())).expect("sum");
        assert_eq!(
            ComponentCache::read_verified_at(&path, later),
            Err(Rebuild::Corrupt("checksum mismatch".into()))
        );
        // Truncated: refused by length before anything else.
        std::fs::write(&sum, format!("{:032x} {}\n", xxh3_128(&cwasm), cwasm.len())).expect("sum");
        ComponentCache::read_verified_at(&path, later).expect("verifies");
        std::fs::write(&path, &cwasm[..cwasm.len() / 2]).expect("truncate");
        assert!(matches!(
            ComponentCache::read_verified_at(&path, later),
            Err(Rebuild::Corrupt(r)) if r.starts_with("length")
        ));
    }

    #[test]
    fn entries_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().expect("tempdir");
        let dir = t.path().join("cache");
        let cache = ComponentCache::new(&dir);
        let (path, _) = stored(&cache, &engine());
        let mode = |p: &Path| {
            std::fs::metadata(p)
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or(0)
        };
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&ComponentCache::sum_path(&path)), 0o600);
    }
}
