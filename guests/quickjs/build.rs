//! Build script of the QuickJS guest.
//!
//! 1. Gives the guest a large linear-memory shadow stack (placed first in
//!    memory by the wasm32-wasip2 linker) so that deep JS recursion exhausts
//!    Wasmtime's native wasm stack (a clean StackOverflow trap) long before
//!    QuickJS's C frames could overflow the shadow stack.
//! 2. Precompiles `src/prelude.js` to QuickJS bytecode with a native build of
//!    the same QuickJS-ng version: reading bytecode at run time is several
//!    times cheaper than parsing the prelude, which would otherwise dominate
//!    the cost of a trivial run. A syntax error in the prelude fails the build.

use std::{env, fs, path::PathBuf};

use rquickjs::{qjs, Context, Runtime};

/// Must match `PRELUDE_FILE` in src/lib.rs.
const PRELUDE_FILE: &str = "<llmos:prelude>";

fn main() {
    println!("cargo:rustc-link-arg-cdylib=-zstack-size=8388608");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/prelude.js");

    let source = fs::read_to_string("src/prelude.js").expect("read src/prelude.js");
    let bytecode = compile(&source);
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR")).join("prelude.qjsbc");
    fs::write(&out, bytecode).expect("write prelude bytecode");
}

fn compile(source: &str) -> Vec<u8> {
    let rt = Runtime::new().expect("QuickJS runtime");
    let ctx = Context::full(&rt).expect("QuickJS context");
    ctx.with(|ctx| {
        let raw = ctx.as_raw().as_ptr();
        let mut src = source.as_bytes().to_vec();
        src.push(0);
        let fname = std::ffi::CString::new(PRELUDE_FILE).expect("file name");
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
                panic!("src/prelude.js does not compile: {exc:?}");
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
