//! Small helpers over the Lua C API (`mlua::ffi`), shared by the driver
//! (`lib.rs`) and the kernel natives (`kernel.rs`).

use std::ffi::{c_char, c_int};

use mlua::ffi::{self, lua_State};

/// The bytes of the string at `idx`, or empty when it is not a string
/// (numbers are not converted: that would change the value in place).
pub(crate) unsafe fn arg_bytes<'a>(l: *mut lua_State, idx: c_int) -> &'a [u8] {
    if ffi::lua_type(l, idx) != ffi::LUA_TSTRING {
        return &[];
    }
    let mut len = 0usize;
    let p = ffi::lua_tolstring(l, idx, &mut len);
    if p.is_null() {
        return &[];
    }
    std::slice::from_raw_parts(p as *const u8, len)
}

/// The string at `idx` as well-formed UTF-8 (each invalid sequence becomes
/// one U+FFFD); raises Lua's memory error if the copy cannot be allocated.
pub(crate) unsafe fn arg_string(l: *mut lua_State, idx: c_int) -> String {
    match lossy(arg_bytes(l, idx), usize::MAX) {
        Some(s) => s,
        None => raise_oom(l),
    }
}

/// The number at `idx`; NaN when it is not a number.
pub(crate) unsafe fn arg_number(l: *mut lua_State, idx: c_int) -> f64 {
    if ffi::lua_type(l, idx) != ffi::LUA_TNUMBER {
        return f64::NAN;
    }
    ffi::lua_tonumberx(l, idx, std::ptr::null_mut())
}

/// Push a Rust string (may raise Lua's memory error).
pub(crate) unsafe fn push_str(l: *mut lua_State, s: &str) {
    ffi::lua_pushlstring(l, s.as_ptr() as *const c_char, s.len());
}

/// Raise "not enough memory" (classified as MemoryError by the guest).
pub(crate) unsafe fn raise_oom(l: *mut lua_State) -> ! {
    ffi::lua_pushlstring(l, c"not enough memory".as_ptr(), 17);
    ffi::lua_error(l)
}

/// `bytes` as well-formed UTF-8, each invalid sequence replaced by one
/// U+FFFD, cut to at most `max` bytes (on a character boundary, with "..."
/// appended when cut). `None` when the copy cannot be allocated.
pub(crate) fn lossy(bytes: &[u8], max: usize) -> Option<String> {
    let mut need = 0usize;
    for chunk in bytes.utf8_chunks() {
        need += chunk.valid().len();
        if !chunk.invalid().is_empty() {
            need += 3;
        }
        if need > max {
            break;
        }
    }
    let cap = need.min(max).saturating_add(3);
    let mut out = String::new();
    out.try_reserve_exact(cap).ok()?;
    let mut cut = false;
    'chunks: for chunk in bytes.utf8_chunks() {
        let valid = chunk.valid();
        if out.len() + valid.len() <= max {
            out.push_str(valid);
        } else {
            for c in valid.chars() {
                if out.len() + c.len_utf8() > max {
                    cut = true;
                    break 'chunks;
                }
                out.push(c);
            }
        }
        if !chunk.invalid().is_empty() {
            if out.len() + 3 > max {
                cut = true;
                break;
            }
            out.push('\u{FFFD}');
        }
    }
    if cut {
        out.push_str("...");
    }
    Some(out)
}

/// The string value at `idx` (converted like `lossy`), if it is one.
pub(crate) unsafe fn string_at(l: *mut lua_State, idx: c_int, max: usize) -> Option<String> {
    if ffi::lua_type(l, idx) != ffi::LUA_TSTRING {
        return None;
    }
    lossy(arg_bytes(l, idx), max)
}
