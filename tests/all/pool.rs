//! Sandboxes from an instance pool (`RuntimeConfig::instance_pool`, what
//! batch workers use): each run still starts from a fresh state, limits
//! still hold, and a full pool is a host error, not a crash.

use llmos::engine::InstancePool;
use llmos::{Limits, RunRequest, Runtime, RuntimeConfig, Status};
use llmos_tests::{block_on, fixture, test_config};

fn pooled(sandboxes: u32) -> Runtime {
    Runtime::new(RuntimeConfig {
        instance_pool: Some(InstancePool { sandboxes }),
        ..test_config()
    })
    .expect("runtime")
}

#[test]
fn pooled_sandboxes_start_fresh_every_time() {
    let rt = pooled(2);
    for _ in 0..5 {
        let o = block_on(rt.run(&RunRequest::new(
            "js",
            "globalThis.n = (globalThis.n || 0) + 1; const big = new Array(1e6).fill(7); n",
        )))
        .expect("js");
        assert_eq!(o.status, Status::Ok, "{o:?}");
        assert_eq!(o.value.as_deref(), Some("1"), "state leaked between runs");
        let o = block_on(rt.run(&RunRequest::new(
            "python",
            "import sys\nn = getattr(sys, 'n', 0) + 1\nsys.n = n\nbig = [7] * 10**6\nn",
        )))
        .expect("python");
        assert_eq!(o.status, Status::Ok, "{o:?}");
        assert_eq!(o.value.as_deref(), Some("1"), "state leaked between runs");
    }
}

#[test]
fn pooled_sandboxes_keep_every_limit() {
    let rt = pooled(2);
    let limits = Limits {
        memory_bytes: 64 << 20,
        ..Limits::default()
    };
    for (lang, file) in [
        ("js", "hostile/memory_bomb.js"),
        ("python", "hostile/memory_bomb.py"),
    ] {
        let mut req = RunRequest::new(lang, fixture(file));
        req.limits = limits.clone();
        let o = block_on(rt.run(&req)).expect("run");
        assert_eq!(o.status, Status::MemoryLimit, "{file}: {o:?}");
    }
    let mut req = RunRequest::new("js", fixture("hostile/infinite_loop.js"));
    req.limits.fuel = Some(50_000_000);
    let o = block_on(rt.run(&req)).expect("run");
    assert_eq!(o.status, Status::OutOfFuel);
    // And the pool is whole again afterwards.
    let o = block_on(rt.run(&RunRequest::new("js", "6 * 7"))).expect("run");
    assert_eq!(o.value.as_deref(), Some("42"));
}

#[test]
fn a_full_pool_is_a_host_error_and_the_runtime_carries_on() {
    let rt = pooled(1);
    let sleeper = || {
        let mut r = RunRequest::new("python", "import time\ntime.sleep(0.3)\n1");
        r.limits.timeout = std::time::Duration::from_secs(5);
        r
    };
    let (a, b) = block_on(async {
        let (r1, r2) = (sleeper(), sleeper());
        tokio::join!(rt.run(&r1), rt.run(&r2))
    });
    let errors = [&a, &b].iter().filter(|r| r.is_err()).count();
    assert_eq!(errors, 1, "one run finds the pool full: {a:?} {b:?}");
    let ok = [a, b].into_iter().flatten().next().expect("one ran");
    assert_eq!(ok.status, Status::Ok);
    let o = block_on(rt.run(&sleeper())).expect("a slot is free again");
    assert_eq!(o.status, Status::Ok);
}

/// A run that dirties pages all over its memory (here every other page of a
/// 16 MiB buffer: thousands of separate dirty regions) leaves nothing behind
/// for the next run in the same slot. The slot's reset finds dirty pages with
/// the kernel's PAGEMAP_SCAN a bounded batch of regions at a time; every batch
/// must be reset (host/patches/wasmtime/pagemap-scan-all-regions.patch).
#[test]
fn a_slot_is_fresh_after_a_run_that_dirtied_thousands_of_scattered_pages() {
    let rt = pooled(1);
    let py = "b = bytearray(16 << 20)\n\
              stale = len(b[::8192]) - b[::8192].count(0)\n\
              for i in range(0, len(b), 8192):\n    b[i] = 1\n\
              stale";
    let js = "const b = new Uint8Array(16 << 20); let stale = 0;\n\
              for (let i = 0; i < b.length; i += 8192) { if (b[i] !== 0) stale++; b[i] = 1; }\n\
              stale";
    for round in 0..4 {
        for (lang, src) in [("python", py), ("js", js)] {
            let o = block_on(rt.run(&RunRequest::new(lang, src))).expect("run");
            assert_eq!(o.status, Status::Ok, "{lang} round {round}: {o:?}");
            assert_eq!(
                o.value.as_deref(),
                Some("0"),
                "{lang} round {round}: pages written by the previous run were not reset"
            );
        }
    }
}
