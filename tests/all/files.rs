//! Files llmos keeps on disk: the cache directory is private (created 0700,
//! refused when other users could write it) and only verified bytes load.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use llmos::cache::{CacheStatus, ComponentCache, Rebuild};
use llmos::paths::{UnsafeDir, ensure_private_dir, unsafe_dir};
use llmos::{Runtime, RuntimeConfig};
use llmos_tests::test_config;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", p.display()));
}

/// A runtime configuration whose cache lives under `dir`.
fn config_with_cache(dir: &Path) -> RuntimeConfig {
    RuntimeConfig {
        cache_dir: dir.join("cache"),
        data_dir: dir.join("data"),
        ..test_config()
    }
}

#[test]
fn a_created_cache_dir_and_its_parents_are_0700() {
    let t = tempfile::tempdir().expect("tempdir");
    let dir = t.path().join("deep").join("cache");
    ensure_private_dir(&dir).expect("private dir");
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&t.path().join("deep")), 0o700);
    // An existing private directory is accepted and left as it is.
    let existing = t.path().join("existing");
    std::fs::create_dir(&existing).expect("mkdir");
    chmod(&existing, 0o755);
    ensure_private_dir(&existing).expect("0755 is not writable by others");
    assert_eq!(mode(&existing), 0o755);
}

#[test]
fn loading_through_the_cache_creates_it_private() {
    let t = tempfile::tempdir().expect("tempdir");
    let cfg = config_with_cache(t.path());
    let rt = Runtime::new(cfg.clone()).expect("runtime");
    rt.prepare("js", true).expect("prepare");
    assert_eq!(mode(&cfg.cache_dir), 0o700);
    let entries: Vec<_> = std::fs::read_dir(&cfg.cache_dir)
        .expect("read cache")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(!entries.is_empty());
    for e in entries
        .iter()
        .filter(|p| p.extension().is_some_and(|x| x == "cwasm" || x == "sum"))
    {
        assert_eq!(mode(e) & 0o077, 0, "{}", e.display());
    }
}

#[test]
fn a_world_or_group_writable_cache_dir_is_refused_with_a_clear_error() {
    for bad in [0o777, 0o775, 0o1777] {
        let t = tempfile::tempdir().expect("tempdir");
        let cfg = config_with_cache(t.path());
        std::fs::create_dir_all(&cfg.cache_dir).expect("mkdir");
        chmod(&cfg.cache_dir, bad);
        let rt = Runtime::new(cfg.clone()).expect("runtime");
        let err = rt.prepare("js", true).err().expect("refused");
        assert_eq!(
            unsafe_dir(&err),
            Some(&UnsafeDir::WritableByOthers {
                path: cfg.cache_dir.clone(),
                mode: bad
            }),
            "{err}"
        );
        let text = err.to_string();
        assert!(
            text.contains(&cfg.cache_dir.display().to_string()),
            "{text}"
        );
        assert!(text.contains("other users can write it"), "{text}");
        assert!(text.contains("chmod 700"), "{text}");
        // Nothing was written into it.
        let n = std::fs::read_dir(&cfg.cache_dir).expect("read").count();
        assert_eq!(n, 0, "{bad:o}");
    }
}

#[test]
fn a_cache_dir_under_a_world_writable_parent_is_refused() {
    let t = tempfile::tempdir().expect("tempdir");
    let open = t.path().join("open");
    std::fs::create_dir(&open).expect("mkdir");
    chmod(&open, 0o777);
    let err = ensure_private_dir(&open.join("cache")).expect_err("refused");
    assert!(
        matches!(unsafe_dir(&err), Some(UnsafeDir::UnsafeParent { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("sticky"), "{err}");
}

#[test]
fn a_cache_dir_owned_by_another_user_is_refused() {
    // Needs root to give a directory away; elsewhere the check is covered
    // by the unit tests' logic only.
    let t = tempfile::tempdir().expect("tempdir");
    let dir = t.path().join("theirs");
    std::fs::create_dir(&dir).expect("mkdir");
    chmod(&dir, 0o700);
    if std::os::unix::fs::chown(&dir, Some(4242), Some(4242)).is_err() {
        eprintln!("skipping: cannot chown (not root)");
        return;
    }
    let err = ensure_private_dir(&dir).expect_err("refused");
    assert!(
        matches!(
            unsafe_dir(&err),
            Some(UnsafeDir::ForeignOwner { owner: 4242, .. })
        ),
        "{err}"
    );
    assert!(err.to_string().contains("uid 4242"), "{err}");
}

#[test]
fn a_cache_entry_swapped_after_verification_cannot_be_loaded() {
    // The design opens an entry once and deserializes that very open file,
    // so a swap after verification cannot reach wasmtime (the unit test
    // `cache::tests::the_bytes_verified_are_the_bytes_deserialized` swaps
    // between the two steps). Here: a swap between runs, with a same-length
    // entry for another component whose own checksum is left behind, is
    // caught by the checksum and rebuilt.
    let t = tempfile::tempdir().expect("tempdir");
    let cfg = config_with_cache(t.path());
    let cache = ComponentCache::new(&cfg.cache_dir);
    let rt = Runtime::new(cfg.clone()).expect("runtime");
    assert_eq!(
        rt.prepare("js", true).expect("prepare").cache,
        CacheStatus::Compiled(Rebuild::Missing)
    );
    let entry = std::fs::read_dir(cache.dir())
        .expect("read")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .expect("entry");
    let verified = ComponentCache::read_verified(&entry).expect("verifies");
    let mut swapped = verified.bytes().to_vec();
    let at = swapped.len() / 3;
    swapped[at] ^= 0x5a;
    let tmp = entry.with_extension("swap");
    std::fs::write(&tmp, &swapped).expect("write");
    std::fs::rename(&tmp, &entry).expect("swap");
    // The copy verified before the swap is unchanged.
    assert_ne!(verified.bytes(), &swapped[..]);
    assert_eq!(
        ComponentCache::read_verified(&entry),
        Err(Rebuild::Corrupt("checksum mismatch".into()))
    );
    let rt = Runtime::new(cfg.clone()).expect("runtime");
    assert_eq!(
        rt.prepare("js", true).expect("prepare").cache,
        CacheStatus::Compiled(Rebuild::Corrupt("checksum mismatch".into()))
    );
    let rt = Runtime::new(cfg).expect("runtime");
    assert_eq!(
        rt.prepare("js", true).expect("prepare").cache,
        CacheStatus::Hit
    );
}
