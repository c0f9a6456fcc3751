//! Build script of the Lua guest.
//!
//! Lua raises errors with setjmp/longjmp. On wasm32 that takes the
//! exception-handling proposal: lua-src compiles Lua with
//! `-mllvm -wasm-enable-sjlj` (so a longjmp is a wasm `throw` of the
//! `__c_longjmp` tag) and asks to link `-lsetjmp` and
//! `-lwasi-emulated-signal`, which wasi-sdk ships but neither Debian's
//! wasi-libc nor Rust's self-contained one does. This script builds both
//! here, from `csrc/`, with the same C compiler (`CC_wasm32_wasip2`, set by
//! the Makefile):
//! - `libsetjmp.a`: the runtime the lowered setjmp/longjmp calls
//!   (`csrc/setjmp_rt.c`) and the `__c_longjmp` tag;
//! - `libwasi-emulated-signal.a`: empty (the Lua library never calls
//!   `signal`; it only needs `<signal.h>` to compile).
//!
//! `csrc/include/setjmp.h` stands in for the header Debian's wasi-libc lacks;
//! the Makefile puts it on the C include path of the whole build.

use std::{env, fs, path::PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=csrc");
    println!("cargo:rerun-if-changed=../../volumes/system/kernel/lua/kernel.lua");
    lua_release();
    let target = env::var("TARGET").unwrap_or_default();
    if !target.starts_with("wasm32") {
        return;
    }
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    cc::Build::new()
        .file("csrc/setjmp_rt.c")
        .include("csrc/include")
        .flag("-mllvm")
        .flag("-wasm-enable-eh")
        .flag("-mllvm")
        .flag("-wasm-use-legacy-eh=false")
        .flag("-mllvm")
        .flag("-wasm-enable-sjlj")
        .warnings(true)
        .out_dir(&out)
        .compile("setjmp");
    let stub = out.join("emulated_signal.c");
    fs::write(
        &stub,
        "/* Lua never calls signal(); see build.rs. */\ntypedef int llmos_no_signal;\n",
    )
    .expect("write stub");
    cc::Build::new()
        .file(&stub)
        .out_dir(&out)
        .compile("wasi-emulated-signal");
    println!("cargo:rustc-link-search=native={}", out.display());
}

/// `LUA_RELEASE` ("5.4.9") for `describe()`, from the headers of the Lua
/// that mlua-sys built (its `links = "lua"` gives us their directory).
fn lua_release() {
    let mut release = String::from("5.4");
    if let Ok(dir) = env::var("DEP_LUA_INCLUDE") {
        let header = PathBuf::from(dir).join("lua.h");
        println!("cargo:rerun-if-changed={}", header.display());
        if let Ok(text) = fs::read_to_string(&header) {
            let field = |name: &str| {
                text.lines().find_map(|l| {
                    let v = l.strip_prefix("#define ")?.trim().strip_prefix(name)?;
                    v.starts_with([' ', '\t'])
                        .then(|| v.trim().trim_matches('"').to_string())
                })
            };
            if let (Some(major), Some(minor), Some(rel)) = (
                field("LUA_VERSION_MAJOR"),
                field("LUA_VERSION_MINOR"),
                field("LUA_VERSION_RELEASE"),
            ) {
                release = format!("{major}.{minor}.{rel}");
            }
        }
    }
    println!("cargo:rustc-env=LLMOS_LUA_RELEASE={release}");
}
