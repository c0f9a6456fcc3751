//! Where llmos finds its components, system volume and cache.
//!
//! Each location can be overridden by an environment variable; the defaults
//! point into the source tree the binary was built from, so `make` followed by
//! `llmos run` works without installation.

use std::path::{Path, PathBuf};

use crate::error::HostError;

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

/// Why [`ensure_private_dir`] refused a directory.
///
/// It reaches callers as [`HostError::UnsafeDir`]; [`unsafe_dir`] gets it
/// back out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[allow(missing_docs)] // variant fields are named for what they hold
pub enum UnsafeDir {
    /// The path exists but is not a directory.
    #[error("refusing `{path}`: it is not a directory")]
    NotADirectory { path: PathBuf },
    /// Group or other users may create, rename or delete its files.
    #[error(
        "refusing `{path}`: other users can write it (mode {mode:04o}), so they could \
         replace its files; run `chmod 700 {path}` or choose another directory"
    )]
    WritableByOthers { path: PathBuf, mode: u32 },
    /// It belongs to another user, who can change its permissions at will.
    #[error(
        "refusing `{path}`: it belongs to uid {owner}, not to this user (uid {me}); \
         choose a directory of your own"
    )]
    ForeignOwner { path: PathBuf, owner: u32, me: u32 },
    /// A parent that other users can write without the sticky bit: they could
    /// rename the directory away and put their own in its place.
    #[error(
        "refusing `{path}`: its parent `{parent}` is writable by other users \
         (mode {mode:04o}) without the sticky bit, so they could replace it"
    )]
    UnsafeParent {
        path: PathBuf,
        parent: PathBuf,
        mode: u32,
    },
}

/// The [`UnsafeDir`] inside a [`HostError`] from [`ensure_private_dir`], if any.
pub fn unsafe_dir(err: &HostError) -> Option<&UnsafeDir> {
    match err {
        HostError::UnsafeDir(why) => Some(why),
        _ => None,
    }
}

/// The effective user id of this process.
fn euid() -> u32 {
    // Declared here rather than through the libc crate, which the host does
    // not depend on; the symbol is in every unix C library std links.
    #[allow(unsafe_code)]
    unsafe extern "C" {
        fn geteuid() -> u32;
    }
    // SAFETY: geteuid(2) takes no arguments, cannot fail and touches no memory
    // of ours; `uid_t` is a 32-bit unsigned integer on every unix llmos builds for.
    #[allow(unsafe_code)]
    unsafe {
        geteuid()
    }
}

/// Creates `path` (and missing parents) private to this user, or checks that
/// an existing one is: a directory llmos keeps its cache or data in must not
/// let another local user plant or swap files (a precompiled component is
/// native code that wasmtime trusts; the data directory holds every
/// artifact's storage).
///
/// - A directory this call creates gets mode 0700 (missing parents too).
/// - The directory (symlinks followed) must belong to this process's
///   effective uid and must not be group- or world-writable; an existing one
///   is accepted as it is otherwise (0755 stays 0755) and is never chmod-ed.
/// - Every ancestor of its canonical path that other users can write must
///   carry the sticky bit (as `/tmp` does), else they could rename the
///   directory away and substitute their own after this check.
///
/// Refusals are [`HostError::Io`] with kind `PermissionDenied` around an
/// [`UnsafeDir`] that names the path and the fix.
pub fn ensure_private_dir(path: &Path) -> Result<(), HostError> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};

    let refuse = HostError::UnsafeDir;
    let created = match std::fs::metadata(path) {
        Ok(_) => false,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(path)
                .map_err(|e| HostError::io(path, e))?;
            true
        }
        Err(e) => return Err(HostError::io(path, e)),
    };
    let meta = std::fs::metadata(path).map_err(|e| HostError::io(path, e))?;
    if !meta.is_dir() {
        return Err(refuse(UnsafeDir::NotADirectory {
            path: path.to_owned(),
        }));
    }
    let me = euid();
    if meta.uid() != me {
        return Err(refuse(UnsafeDir::ForeignOwner {
            path: path.to_owned(),
            owner: meta.uid(),
            me,
        }));
    }
    if created {
        // The umask may have cleared bits; never let it have added any.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| HostError::io(path, e))?;
    } else if meta.mode() & 0o022 != 0 {
        return Err(refuse(UnsafeDir::WritableByOthers {
            path: path.to_owned(),
            mode: meta.mode() & 0o7777,
        }));
    }
    let canonical = std::fs::canonicalize(path).map_err(|e| HostError::io(path, e))?;
    for parent in canonical.ancestors().skip(1) {
        let m = std::fs::metadata(parent).map_err(|e| HostError::io(parent, e))?;
        if m.mode() & 0o022 != 0 && m.mode() & 0o1000 == 0 {
            return Err(refuse(UnsafeDir::UnsafeParent {
                path: path.to_owned(),
                parent: parent.to_owned(),
                mode: m.mode() & 0o7777,
            }));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p)
            .map(|m| m.permissions().mode() & 0o7777)
            .unwrap_or(0)
    }

    #[test]
    fn creates_private_and_accepts_again() {
        let t = tempfile::tempdir().expect("tempdir");
        let d = t.path().join("a").join("b");
        ensure_private_dir(&d).expect("create");
        assert_eq!(mode(&d), 0o700);
        assert_eq!(mode(&t.path().join("a")), 0o700);
        ensure_private_dir(&d).expect("again");
    }

    #[test]
    fn refuses_writable_by_others() {
        let t = tempfile::tempdir().expect("tempdir");
        for bad in [0o777, 0o770, 0o702] {
            let d = t.path().join(format!("d{bad:o}"));
            std::fs::create_dir(&d).expect("mkdir");
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(bad)).expect("chmod");
            let err = ensure_private_dir(&d).expect_err("must refuse");
            assert_eq!(
                unsafe_dir(&err),
                Some(&UnsafeDir::WritableByOthers {
                    path: d.clone(),
                    mode: bad
                })
            );
            assert!(
                err.to_string().contains("other users can write it"),
                "{err}"
            );
        }
    }

    #[test]
    fn refuses_a_file_and_an_unsafe_parent() {
        let t = tempfile::tempdir().expect("tempdir");
        let f = t.path().join("file");
        std::fs::write(&f, "x").expect("write");
        let err = ensure_private_dir(&f).expect_err("file");
        assert!(matches!(
            unsafe_dir(&err),
            Some(UnsafeDir::NotADirectory { .. })
        ));

        let open = t.path().join("open");
        std::fs::create_dir(&open).expect("mkdir");
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let err = ensure_private_dir(&open.join("cache")).expect_err("parent");
        assert!(
            matches!(unsafe_dir(&err), Some(UnsafeDir::UnsafeParent { parent, .. }) if *parent == open.canonicalize().expect("canon")),
            "{err}"
        );
        // A sticky world-writable parent (like /tmp) is fine.
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
        ensure_private_dir(&open.join("cache")).expect("sticky parent");
    }
}
