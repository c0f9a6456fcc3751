//! The precompiled-component cache: reused, rebuilt on change, corruption detected.

use std::path::{Path, PathBuf};

use llmos::cache::{CacheStatus, Rebuild, engine_fingerprint};
use llmos::engine::engine_config;
use llmos::{RunRequest, Runtime, RuntimeConfig, Status};
use llmos_tests::{block_on, test_config};

/// A private cache and components directory holding a copy of the JS component.
struct Scratch {
    _dir: tempfile::TempDir,
    config: RuntimeConfig,
}

impl Scratch {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let components = dir.path().join("components");
        std::fs::create_dir_all(&components).expect("mkdir");
        let src = test_config().components_dir.join("quickjs.wasm");
        std::fs::copy(&src, components.join("quickjs.wasm"))
            .unwrap_or_else(|e| panic!("{}: {e} (run `make guests`)", src.display()));
        let config = RuntimeConfig {
            components_dir: components,
            cache_dir: dir.path().join("cache"),
            system_volume: test_config().system_volume,
            data_dir: dir.path().join("data"),
            quotas: Default::default(),
            instance_pool: None,
        };
        Scratch { _dir: dir, config }
    }

    /// Prepare JS on a brand-new runtime (as a new process would).
    fn prepare(&self, metered: bool) -> CacheStatus {
        let rt = Runtime::new(self.config.clone()).expect("runtime");
        let p = rt.prepare("js", metered).expect("prepare");
        let mut req = RunRequest::new("js", "6*7");
        if !metered {
            req.limits.fuel = None;
        }
        let o = block_on(llmos::engine::run_prepared(&p, &req)).expect("run");
        assert_eq!(o.value.as_deref(), Some("42"));
        assert_eq!(o.fuel_consumed.is_some(), metered);
        // A run whose limits need the other engine is refused, not run unmetered.
        req.limits.fuel = if metered { None } else { Some(1_000_000) };
        assert!(block_on(llmos::engine::run_prepared(&p, &req)).is_err());
        p.cache.clone()
    }

    fn entries(&self) -> Vec<PathBuf> {
        let mut v: Vec<_> = std::fs::read_dir(&self.config.cache_dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

fn flip_byte(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).expect("read");
    let at = at.min(bytes.len() - 1);
    bytes[at] ^= 0xff;
    std::fs::write(path, bytes).expect("write");
}

#[test]
fn second_run_reuses_the_cache() {
    let s = Scratch::new();
    assert_eq!(s.prepare(true), CacheStatus::Compiled(Rebuild::Missing));
    assert_eq!(s.prepare(true), CacheStatus::Hit);
    assert_eq!(s.entries().len(), 1);
}

#[test]
fn a_changed_component_is_recompiled_and_the_stale_entry_dropped() {
    let s = Scratch::new();
    assert_eq!(s.prepare(true), CacheStatus::Compiled(Rebuild::Missing));
    let before = s.entries();
    // Append a custom section: still a valid component, different bytes.
    let wasm = s.config.components_dir.join("quickjs.wasm");
    let mut bytes = std::fs::read(&wasm).expect("read");
    bytes.extend_from_slice(&[0x00, 0x06, 0x05, b'l', b'l', b'm', b'o', b's']);
    std::fs::write(&wasm, bytes).expect("write");
    assert_eq!(s.prepare(true), CacheStatus::Compiled(Rebuild::Missing));
    let after = s.entries();
    assert_eq!(after.len(), 1);
    assert_ne!(before, after);
    assert_eq!(s.prepare(true), CacheStatus::Hit);
}

#[test]
fn a_different_engine_configuration_gets_its_own_entry() {
    let metered = wasmtime::Engine::new(&engine_config(true)).expect("engine");
    let unmetered = wasmtime::Engine::new(&engine_config(false)).expect("engine");
    assert_ne!(engine_fingerprint(&metered), engine_fingerprint(&unmetered));
    let s = Scratch::new();
    assert_eq!(s.prepare(true), CacheStatus::Compiled(Rebuild::Missing));
    assert_eq!(s.prepare(false), CacheStatus::Compiled(Rebuild::Missing));
    assert_eq!(s.entries().len(), 2);
    assert_eq!(s.prepare(true), CacheStatus::Hit);
    assert_eq!(s.prepare(false), CacheStatus::Hit);
}

#[test]
fn corrupted_entries_are_detected_and_rebuilt() {
    let s = Scratch::new();
    s.prepare(true);
    let entry = s.entries().pop().expect("entry");
    let len = std::fs::metadata(&entry).expect("meta").len() as usize;

    // A flipped byte deep in the code: wasmtime alone would not notice.
    flip_byte(&entry, len / 2);
    assert!(matches!(
        s.prepare(true),
        CacheStatus::Compiled(Rebuild::Corrupt(_))
    ));
    assert_eq!(s.prepare(true), CacheStatus::Hit);

    // Truncated.
    let bytes = std::fs::read(&entry).expect("read");
    std::fs::write(&entry, &bytes[..bytes.len() / 3]).expect("write");
    assert!(matches!(
        s.prepare(true),
        CacheStatus::Compiled(Rebuild::Corrupt(_))
    ));

    // Garbage checksum file.
    std::fs::write(entry.with_extension("sum"), "not a checksum").expect("write");
    assert!(matches!(
        s.prepare(true),
        CacheStatus::Compiled(Rebuild::Corrupt(_))
    ));

    // Checksum file gone.
    std::fs::remove_file(entry.with_extension("sum")).expect("rm");
    assert!(matches!(
        s.prepare(true),
        CacheStatus::Compiled(Rebuild::Corrupt(_))
    ));
    assert_eq!(s.prepare(true), CacheStatus::Hit);
}

#[test]
fn a_missing_component_is_a_clear_host_error() {
    let s = Scratch::new();
    std::fs::remove_file(s.config.components_dir.join("quickjs.wasm")).expect("rm");
    let rt = Runtime::new(s.config.clone()).expect("runtime");
    let err = rt.prepare("js", true).err().expect("must fail");
    assert!(err.to_string().contains("make guests"), "{err}");
    let o = block_on(rt.run(&RunRequest::new("js", "1")));
    assert!(o.is_err());
}

#[test]
fn a_component_that_is_not_wasm_is_a_clear_host_error() {
    let s = Scratch::new();
    std::fs::write(
        s.config.components_dir.join("quickjs.wasm"),
        b"definitely not wasm",
    )
    .expect("write");
    let rt = Runtime::new(s.config.clone()).expect("runtime");
    let err = rt.prepare("js", true).err().expect("must fail");
    assert!(
        err.to_string().contains("cannot compile component"),
        "{err}"
    );
    // The Python runtime in the shared cache still works.
    let o = llmos_tests::run("python", "2*21");
    assert_eq!((o.status, o.value.as_deref()), (Status::Ok, Some("42")));
}

#[test]
fn an_in_place_same_size_change_is_noticed() {
    let s = Scratch::new();
    assert_eq!(s.prepare(true), CacheStatus::Compiled(Rebuild::Missing));
    assert_eq!(s.prepare(true), CacheStatus::Hit);
    // Overwrite the component in place with different bytes of the same
    // length (same inode), as a later `cp` would: the name custom section
    // at the end of the file is renamed.
    let wasm = s.config.components_dir.join("quickjs.wasm");
    let mut bytes = std::fs::read(&wasm).expect("read");
    bytes.extend_from_slice(&[0x00, 0x06, 0x05, b'l', b'l', b'm', b'o', b's']);
    std::fs::write(&wasm, &bytes).expect("write");
    assert_eq!(s.prepare(true), CacheStatus::Compiled(Rebuild::Missing));
    let n = bytes.len();
    bytes[n - 1] = b'S';
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&wasm)
        .expect("open");
    use std::io::Write;
    (&f).write_all(&bytes).expect("write");
    f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(2))
        .expect("mtime");
    assert_eq!(s.prepare(true), CacheStatus::Compiled(Rebuild::Missing));
    assert_eq!(s.prepare(true), CacheStatus::Hit);
}

#[test]
fn the_cache_dir_is_private_and_an_open_one_is_refused_until_fixed() {
    use std::os::unix::fs::PermissionsExt;
    let s = Scratch::new();
    assert_eq!(s.prepare(true), CacheStatus::Compiled(Rebuild::Missing));
    let dir = &s.config.cache_dir;
    let mode = || std::fs::metadata(dir).expect("meta").permissions().mode() & 0o7777;
    assert_eq!(mode(), 0o700);
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let rt = Runtime::new(s.config.clone()).expect("runtime");
    let err = rt.prepare("js", true).err().expect("refused");
    assert!(llmos::paths::unsafe_dir(&err).is_some(), "{err}");
    assert!(err.to_string().contains("chmod 700"), "{err}");
    // Fixed as the message says: the verified entry loads again.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    assert_eq!(s.prepare(true), CacheStatus::Hit);
}
