//! Build script of the QuickJS guest.
//!
//! 1. Gives the guest a large linear-memory shadow stack (placed first in
//!    memory by the wasm32-wasip2 linker) so that deep JS recursion exhausts
//!    Wasmtime's native wasm stack (a clean StackOverflow trap) long before
//!    QuickJS's C frames could overflow the shadow stack.
//! 2. Precompiles the scripts the guest evaluates before any artifact to
//!    QuickJS bytecode with a native build of the same QuickJS-ng version:
//!    `src/prelude.js` (console, timers, inspect) and, from the system volume,
//!    `kernel/stdlib.js` (the `kernel` API) and `kernel/init.js` (sandbox
//!    start). Reading bytecode is several times cheaper than parsing, and a
//!    syntax error in any of them fails the build.

use std::{env, fs, path::PathBuf};

use rquickjs::{qjs, Context, Runtime};

/// Source, internal file name (must match the `*_FILE` constants in
/// src/lib.rs) and bytecode file name of each script.
const SCRIPTS: [(&str, &str, &str); 3] = [
    ("src/prelude.js", "<llmos:prelude>", "prelude.qjsbc"),
    (
        "../../volumes/system/kernel/stdlib.js",
        "<llmos:stdlib>",
        "stdlib.qjsbc",
    ),
    (
        "../../volumes/system/kernel/init.js",
        "<llmos:init>",
        "init.qjsbc",
    ),
];

fn main() {
    println!("cargo:rustc-link-arg-cdylib=-zstack-size=8388608");
    println!("cargo:rerun-if-changed=build.rs");
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    for (path, file, out) in SCRIPTS {
        println!("cargo:rerun-if-changed={path}");
        let source = fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
        let bytecode = compile(&source, path, file);
        fs::write(out_dir.join(out), bytecode).expect("write bytecode");
    }
}

fn compile(source: &str, path: &str, file: &str) -> Vec<u8> {
    let rt = Runtime::new().expect("QuickJS runtime");
    let ctx = Context::full(&rt).expect("QuickJS context");
    ctx.with(|ctx| {
        let raw = ctx.as_raw().as_ptr();
        let mut src = source.as_bytes().to_vec();
        src.push(0);
        let fname = std::ffi::CString::new(file).expect("file name");
        // SAFETY: NUL-terminated inputs; every value and buffer is freed.
        unsafe {
            let obj = qjs::JS_Eval(
                raw,
                src.as_ptr() as *const _,
                source.len() as _,
                fname.as_ptr(),
                (qjs::JS_EVAL_TYPE_GLOBAL
                    | qjs::JS_EVAL_FLAG_STRICT
                    | qjs::JS_EVAL_FLAG_COMPILE_ONLY) as i32,
            );
            if qjs::JS_IsException(obj) {
                let exc = ctx.catch();
                panic!("{path} does not compile: {exc:?}");
            }
            let mut size: qjs::size_t = 0;
            let buf = qjs::JS_WriteObject(
                raw,
                &mut size,
                obj,
                (qjs::JS_WRITE_OBJ_BYTECODE | qjs::JS_WRITE_OBJ_STRIP_SOURCE) as i32,
            );
            qjs::JS_FreeValue(raw, obj);
            assert!(!buf.is_null(), "JS_WriteObject failed");
            let bytes = std::slice::from_raw_parts(buf, size as usize).to_vec();
            qjs::js_free(raw, buf as *mut _);
            bytes
        }
    })
}
