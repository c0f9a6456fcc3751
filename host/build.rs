//! Checks that the dashboard's front-end dependency (three.js, installed
//! from npm by `make dashboard`) is in place before `llmos serve` embeds it,
//! and packs the binaries' relative relocations where the toolchain can.

fn main() {
    pack_relative_relocs();
    println!("cargo:rerun-if-changed=dashboard/index.html");
    println!("cargo:rerun-if-changed=dashboard/app.js");
    println!("cargo:rerun-if-changed=dashboard/style.css");
    println!("cargo:rerun-if-changed=dashboard/package-lock.json");
    if std::env::var_os("CARGO_FEATURE_SERVE").is_none() {
        return;
    }
    let three = std::path::Path::new("dashboard/node_modules/three/build/three.module.min.js");
    println!("cargo:rerun-if-changed={}", three.display());
    if !three.exists() {
        eprintln!(
            "error: the dashboard's three.js is missing ({}).\n\
             Run `make dashboard` (npm ci in host/dashboard), or build without the `serve` feature.",
            three.display()
        );
        std::process::exit(1);
    }
}

/// Link the binaries with `-z pack-relative-relocs` (DT_RELR) when the C
/// toolchain supports it (binutils ≥ 2.38 with glibc ≥ 2.36, e.g. Debian
/// 12): the ~61 000 relative relocations of `llmos` then take a few KiB
/// instead of 1.4 MiB that every process start had to page in and walk
/// (about a millisecond of each `llmos run`). Probed by linking a trivial
/// program, so an older toolchain just links as before.
fn pack_relative_relocs() {
    let linux_gnu = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|o| o == "linux")
        && std::env::var("CARGO_CFG_TARGET_ENV").is_ok_and(|e| e == "gnu");
    if !linux_gnu || std::env::var("TARGET").ok() != std::env::var("HOST").ok() {
        return;
    }
    let Some(out) = std::env::var_os("OUT_DIR").map(std::path::PathBuf::from) else {
        return;
    };
    let src = out.join("relr-probe.c");
    if std::fs::write(&src, "int main(void) { return 0; }\n").is_err() {
        return;
    }
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let ok = std::process::Command::new(cc)
        .arg(&src)
        .arg("-o")
        .arg(out.join("relr-probe"))
        .args(["-pie", "-fPIE", "-Wl,-z,pack-relative-relocs"])
        .output()
        .is_ok_and(|o| o.status.success())
        && std::process::Command::new(out.join("relr-probe"))
            .status()
            .is_ok_and(|s| s.success());
    if ok {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
