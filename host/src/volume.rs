//! Volumes: the read-only, hash-verified **system volume** shipped with
//! llmos, and the read-write **user volume** (the user data directory).
//!
//! The system volume carries `MANIFEST.sha256`: one `<sha256>  <path>` line
//! per file (`sha256sum` format, paths relative to the volume, sorted).
//! `make` regenerates it whenever the volume's sources change. Boot verifies
//! every listed file and refuses to start on a missing, changed or unlisted
//! file, naming it. Python bytecode caches (`__pycache__/`) are not part of
//! the volume.
//!
//! Artifacts can be addressed as `system:/path` (a file of the system
//! volume), `user:/path` (a file under the user volume's `artifacts/`) or a
//! plain filesystem path. Guests never see either volume: storage and
//! outputs go through the kernel API.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::HostError;

/// File name of the system volume's manifest.
pub const MANIFEST: &str = "MANIFEST.sha256";
/// Directory of the user's artifacts in the user volume (`user:/` paths).
pub const USER_ARTIFACTS: &str = "artifacts";

/// A verified system volume: its root and every file's hash.
#[derive(Debug, Clone)]
pub struct SystemVolume {
    root: PathBuf,
    hashes: BTreeMap<String, String>,
    bytes: u64,
}

impl SystemVolume {
    /// Verify the volume at `root` against its manifest.
    pub fn verify(root: &Path) -> Result<SystemVolume, HostError> {
        let manifest_path = root.join(MANIFEST);
        let text = std::fs::read_to_string(&manifest_path).map_err(|e| HostError::Volume {
            file: manifest_path.clone(),
            reason: format!("cannot read the manifest ({e}); regenerate it with `make`"),
        })?;
        let mut hashes = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let (hash, path) = line.split_once("  ").ok_or_else(|| HostError::Volume {
                file: manifest_path.clone(),
                reason: format!("line {} is not `<sha256>  <path>`", n + 1),
            })?;
            let path = path.trim_start_matches("./").to_string();
            if hash.len() != 64
                || !hash.bytes().all(|b| b.is_ascii_hexdigit())
                || !is_relative_clean(&path)
            {
                return Err(HostError::Volume {
                    file: manifest_path.clone(),
                    reason: format!("line {} is not `<sha256>  <relative path>`", n + 1),
                });
            }
            hashes.insert(path, hash.to_ascii_lowercase());
        }
        let mut bytes = 0;
        let on_disk = files(root).map_err(|e| HostError::io(root, e))?;
        for rel in &on_disk {
            if !hashes.contains_key(rel) {
                return Err(HostError::Volume {
                    file: root.join(rel),
                    reason: "this file is not in the system volume's manifest (added or renamed?); restore the volume or regenerate the manifest with `make`".into(),
                });
            }
        }
        for (rel, want) in &hashes {
            let path = root.join(rel);
            let data = std::fs::read(&path).map_err(|e| HostError::Volume {
                file: path.clone(),
                reason: format!(
                    "listed in the manifest but cannot be read ({e}); restore the volume"
                ),
            })?;
            bytes += data.len() as u64;
            let got = hex(&Sha256::digest(&data));
            if &got != want {
                return Err(HostError::Volume {
                    file: path,
                    reason: "its SHA-256 does not match the manifest (the file was modified); restore it, or regenerate the manifest with `make` if the change is intended".into(),
                });
            }
        }
        Ok(SystemVolume {
            root: root.to_path_buf(),
            hashes,
            bytes,
        })
    }

    /// The volume's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Number of files and their total size.
    pub fn size(&self) -> (usize, u64) {
        (self.hashes.len(), self.bytes)
    }

    /// A digest of the verified manifest: every file's path and SHA-256.
    pub fn digest(&self) -> u128 {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        for (path, hash) in &self.hashes {
            h.update(path.as_bytes());
            h.update(b"\0");
            h.update(hash.as_bytes());
            h.update(b"\n");
        }
        h.digest128()
    }

    /// Whether `path` (any form) is a file of this volume whose content
    /// still matches the manifest: what makes an artifact trusted.
    pub fn verifies(&self, path: &Path, content: &[u8]) -> bool {
        let (Ok(root), Ok(file)) = (self.root.canonicalize(), path.canonicalize()) else {
            return false;
        };
        let Ok(rel) = file.strip_prefix(&root) else {
            return false;
        };
        let rel = rel.to_string_lossy().replace('\\', "/");
        self.hashes
            .get(&rel)
            .is_some_and(|h| *h == hex(&Sha256::digest(content)))
    }
}

/// The manifest text for the volume at `root` (what `make` writes).
pub fn manifest(root: &Path) -> std::io::Result<String> {
    let mut s = String::new();
    for rel in files(root)? {
        let data = std::fs::read(root.join(&rel))?;
        s.push_str(&format!("{}  {rel}\n", hex(&Sha256::digest(&data))));
    }
    Ok(s)
}

/// Every file of the volume (relative, `/`-separated, sorted), without the
/// manifest and Python bytecode caches.
fn files(root: &Path) -> std::io::Result<Vec<String>> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let ty = entry.file_type()?;
            if ty.is_dir() {
                if name != "__pycache__" {
                    stack.push(path);
                }
                continue;
            }
            let rel = path
                .strip_prefix(root)
                .map(|r| r.to_string_lossy().replace('\\', "/"))
                .unwrap_or_default();
            if rel == MANIFEST || name.ends_with(".pyc") {
                continue;
            }
            out.push(rel);
        }
    }
    out.sort();
    Ok(out)
}

fn is_relative_clean(p: &str) -> bool {
    !p.is_empty()
        && Path::new(p)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where an artifact comes from, from how it was named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// `system:/path`: a file of the system volume.
    System(PathBuf),
    /// `user:/path`: a file in the user volume's `artifacts/`.
    User(PathBuf),
    /// A plain filesystem path.
    Path(PathBuf),
}

impl Location {
    /// The file the name resolved to.
    pub fn path(&self) -> &Path {
        match self {
            Location::System(p) | Location::User(p) | Location::Path(p) => p,
        }
    }
}

/// Resolve an artifact name: `system:/x`, `user:/x` or a path. Volume
/// paths may not escape their volume (`..` is refused).
pub fn resolve(name: &str, system_root: &Path, data_dir: &Path) -> Result<Location, HostError> {
    let volume_path = |rest: &str, root: PathBuf, vol: &str| -> Result<PathBuf, HostError> {
        let rel = rest.trim_start_matches('/');
        if !is_relative_clean(rel) {
            return Err(HostError::Usage(format!(
                "`{name}`: a {vol}: path must name a file inside the {vol} volume (no `..`)"
            )));
        }
        Ok(root.join(rel))
    };
    if let Some(rest) = name.strip_prefix("system:") {
        Ok(Location::System(volume_path(
            rest,
            system_root.to_path_buf(),
            "system",
        )?))
    } else if let Some(rest) = name.strip_prefix("user:") {
        Ok(Location::User(volume_path(
            rest,
            data_dir.join(USER_ARTIFACTS),
            "user",
        )?))
    } else {
        Ok(Location::Path(PathBuf::from(name)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn volume() -> tempfile::TempDir {
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(d.path().join("kernel/__pycache__")).expect("mkdir");
        std::fs::write(d.path().join("kernel/a.js"), "a").expect("write");
        std::fs::write(d.path().join("b.toml"), "b").expect("write");
        std::fs::write(d.path().join("kernel/__pycache__/x.pyc"), "junk").expect("write");
        let m = manifest(d.path()).expect("manifest");
        std::fs::write(d.path().join(MANIFEST), m).expect("write");
        d
    }

    #[test]
    fn verifies_and_names_the_tampered_file() {
        let d = volume();
        let v = SystemVolume::verify(d.path()).expect("verified");
        assert_eq!(v.size().0, 2);
        assert!(v.verifies(&d.path().join("kernel/a.js"), b"a"));
        assert!(!v.verifies(&d.path().join("kernel/a.js"), b"changed"));

        std::fs::write(d.path().join("kernel/a.js"), "evil").expect("write");
        let e = SystemVolume::verify(d.path())
            .expect_err("tampered")
            .to_string();
        assert!(e.contains("kernel/a.js") && e.contains("SHA-256"), "{e}");

        let d = volume();
        std::fs::write(d.path().join("kernel/planted.js"), "x").expect("write");
        let e = SystemVolume::verify(d.path())
            .expect_err("planted")
            .to_string();
        assert!(
            e.contains("planted.js") && e.contains("not in the system volume's manifest"),
            "{e}"
        );

        let d = volume();
        std::fs::remove_file(d.path().join("b.toml")).expect("rm");
        let e = SystemVolume::verify(d.path())
            .expect_err("missing")
            .to_string();
        assert!(e.contains("b.toml"), "{e}");
    }

    #[test]
    fn addressing() {
        let (sys, data) = (Path::new("/sys"), Path::new("/data"));
        assert_eq!(
            resolve("system:/kernel/x.js", sys, data).ok(),
            Some(Location::System(PathBuf::from("/sys/kernel/x.js")))
        );
        assert_eq!(
            resolve("user:/a/b.py", sys, data).ok(),
            Some(Location::User(PathBuf::from("/data/artifacts/a/b.py")))
        );
        assert_eq!(
            resolve("x.js", sys, data).ok(),
            Some(Location::Path(PathBuf::from("x.js")))
        );
        assert!(resolve("system:/../etc/passwd", sys, data).is_err());
        assert!(resolve("user:", sys, data).is_err());
    }
}
