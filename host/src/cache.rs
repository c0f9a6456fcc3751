//! The on-disk cache of precompiled components.
//!
//! Compiling a component with Cranelift takes from one to several seconds; a
//! precompiled artifact loads in milliseconds with `Component::deserialize_file`.
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
//! writers and crashes leave either a complete entry or none. On load the
//! checksum is verified *before* the bytes reach `deserialize_file` (which
//! trusts its input): a corrupted or truncated entry is detected, removed and
//! rebuilt.

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
    Hit,
    Compiled(Rebuild),
}

/// A component loaded through the cache, with what happened.
pub struct Loaded {
    pub component: Component,
    pub status: CacheStatus,
    pub path: PathBuf,
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

/// Map a file read-only (an empty file maps to an empty slice).
///
/// Mapping rather than reading avoids copying tens of megabytes on every
/// start: hashing reads straight from the page cache.
fn map_file(path: &Path) -> std::io::Result<Mapped> {
    let file = std::fs::File::open(path)?;
    if file.metadata()?.len() == 0 {
        return Ok(Mapped::Empty);
    }
    // SAFETY: components and cache entries are only ever replaced by rename,
    // never written in place, so the mapped bytes do not change under us.
    #[allow(unsafe_code)]
    let map = unsafe { memmap2::MmapOptions::new().populate().map(&file)? };
    Ok(Mapped::Map(map))
}

enum Mapped {
    Empty,
    Map(memmap2::Mmap),
}

impl std::ops::Deref for Mapped {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Mapped::Empty => &[],
            Mapped::Map(m) => m,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ComponentCache {
    dir: PathBuf,
}

impl ComponentCache {
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

    /// Load `component_path` for `engine`, from the cache if a verified entry
    /// exists, else by compiling it and storing the result.
    pub fn load(
        &self,
        engine: &Engine,
        engine_fp: &str,
        name: &str,
        component_path: &Path,
        on_compile: &dyn Fn(&Path),
    ) -> Result<Loaded, HostError> {
        let start = Instant::now();
        let missing = |e: std::io::Error| match e.kind() {
            std::io::ErrorKind::NotFound => HostError::ComponentMissing {
                path: component_path.to_owned(),
            },
            _ => HostError::io(component_path, e),
        };
        let meta = std::fs::metadata(component_path).map_err(missing)?;
        let component_hash = match self.stamped_hash(name, component_path, &meta) {
            Some(hash) => hash,
            None => {
                let hash = xxh3_128(&map_file(component_path).map_err(missing)?);
                self.write_stamp(name, component_path, &meta, hash);
                hash
            }
        };
        let hashed_ms = start.elapsed().as_secs_f64() * 1e3;
        let mut path = self.entry_path(name, component_hash, engine_fp);
        let verified = self.verify(&path);
        let verified_ms = start.elapsed().as_secs_f64() * 1e3;
        tracing::debug!(component = name, hashed_ms, verified_ms, "cache lookup");
        let rebuild = match verified {
            Ok(()) => {
                // SAFETY: the file was written by `store` below from
                // `Engine::precompile_component`, and its checksum was verified
                // just now, so it is exactly what wasmtime produced.
                #[allow(unsafe_code)]
                match unsafe { Component::deserialize_file(engine, &path) } {
                    Ok(component) => {
                        return Ok(Loaded {
                            component,
                            status: CacheStatus::Hit,
                            path,
                            millis: start.elapsed().as_secs_f64() * 1e3,
                        });
                    }
                    Err(e) => Rebuild::Corrupt(format!("wasmtime refused it: {e:#}")),
                }
            }
            Err(r) => r,
        };
        if let Rebuild::Corrupt(reason) = &rebuild {
            tracing::warn!(entry = %path.display(), %reason, "discarding corrupt precompiled component");
        }
        on_compile(component_path);
        let wasm = map_file(component_path).map_err(missing)?;
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
        // SAFETY: `path` now holds the bytes wasmtime just produced (verified
        // by `store` writing them atomically).
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize_file(engine, &path) }?;
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
        // A stamp is only a shortcut: failing to write one costs a rehash next time.
        let _ = std::fs::create_dir_all(&self.dir)
            .and_then(|()| std::fs::write(&tmp, text))
            .and_then(|()| std::fs::rename(&tmp, self.stamp_path(name)));
    }

    fn sum_path(path: &Path) -> PathBuf {
        path.with_extension("sum")
    }

    /// Check an entry against its sidecar checksum.
    fn verify(&self, path: &Path) -> Result<(), Rebuild> {
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
        let bytes = match map_file(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Rebuild::Missing),
            Err(e) => return Err(Rebuild::Corrupt(format!("unreadable: {e}"))),
        };
        if bytes.len() as u64 != want_len {
            return Err(Rebuild::Corrupt(format!(
                "length {} != recorded {want_len}",
                bytes.len()
            )));
        }
        if xxh3_128(&bytes) != want_hash {
            return Err(Rebuild::Corrupt("checksum mismatch".into()));
        }
        Ok(())
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
        std::fs::create_dir_all(&self.dir).map_err(|e| HostError::io(&self.dir, e))?;
        let write_atomic = |dest: &Path, bytes: &[u8]| -> Result<(), HostError> {
            let tmp = dest.with_extension(format!("tmp{}", std::process::id()));
            let mut f = std::fs::File::create(&tmp).map_err(|e| HostError::io(&tmp, e))?;
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
        let suffix = format!("-{}.cwasm", &engine_fp[..16.min(engine_fp.len())]);
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for entry in entries.flatten() {
                let p = entry.path();
                let fname = entry.file_name().to_string_lossy().into_owned();
                let same_kind = fname.starts_with(&format!("{name}-")) && fname.ends_with(&suffix);
                let hash_part = fname
                    .strip_prefix(&format!("{name}-"))
                    .and_then(|r| r.strip_suffix(&suffix));
                // Only `<name>-<32 hex>-<fp>.cwasm`: never a longer name that shares the prefix.
                if same_kind && p != path && hash_part.is_some_and(|h| h.len() == 32) {
                    let _ = std::fs::remove_file(Self::sum_path(&p));
                    let _ = std::fs::remove_file(&p);
                }
            }
        }
        Ok(())
    }
}
