//! Native hooks for the kernel APIs (log, storage, viz, dom, quantum).
//!
//! The thin, untyped bridge between `volumes/system/kernel/lua/kernel.lua`
//! (which checks argument types, gives every function its idiomatic shape
//! and raises the typed errors) and the WIT imports. Natives never raise
//! for a kernel error: they return `true, results...` or
//! `false, code, message`. They only raise when Lua itself does (out of
//! memory while pushing a result).
//!
//! Rules for code here: a Lua API call that can raise (anything that
//! allocates: pushing strings, creating tables) unwinds through these Rust
//! frames without running destructors, so no `RefCell` borrow may be held
//! across one (it would stay borrowed), and owned Rust values alive at that
//! point leak (acceptable: the run is ending in a memory error). Arguments
//! are read with `lua_type` checks first: the raw-access functions are only
//! called on values of the right type.
//!
//! WIT resources (dom elements, canvases) stay in per-instance handle tables
//! here; Lua only sees their indices. The tables are only touched while an
//! artifact runs, never during the build-time `init` snapshot.

use std::cell::RefCell;
use std::ffi::c_int;

use mlua::ffi::{self, lua_State};

use crate::llmos::kernel::{dom, log as klog, quantum, storage, viz};
use crate::lua::{arg_bytes, arg_number, arg_string, push_str, raise_oom};

thread_local! {
    static HANDLES: RefCell<Handles> = const { RefCell::new(Handles { elements: Vec::new(), canvases: Vec::new() }) };
}

/// Resource handles owned by the guest, by index.
struct Handles {
    elements: Vec<dom::Element>,
    canvases: Vec<viz::Canvas>,
}

/// The kernel natives, registered on the `native` table by `lib.rs`.
pub(crate) const NATIVES: &[(&std::ffi::CStr, ffi::lua_CFunction)] = &[
    (c"log", native_log),
    (c"storage_get", storage_get),
    (c"storage_set", storage_set),
    (c"storage_delete", storage_delete),
    (c"storage_keys", storage_keys),
    (c"storage_clear", storage_clear),
    (c"viz_plot", viz_plot),
    (c"viz_render3d", viz_render3d),
    (c"canvas_new", canvas_new),
    (c"canvas_op", canvas_op),
    (c"dom_root", dom_root),
    (c"dom_create", dom_create),
    (c"dom_op", dom_op),
    (c"quantum_simulate", quantum_simulate),
    (c"quantum_draw", quantum_draw),
];

// ------------------------------------------------------------------ helpers

/// Return `false, code, message`.
unsafe fn fail(l: *mut lua_State, code: &str, message: &str) -> c_int {
    ffi::lua_pushboolean(l, 0);
    push_str(l, code);
    push_str(l, message);
    3
}

/// Push `true` (the caller pushes the results after it).
unsafe fn ok(l: *mut lua_State) {
    ffi::lua_pushboolean(l, 1);
}

/// A non-negative integer argument as u32, `u32::MAX` when it is not one
/// (the host then reports the value as out of range).
unsafe fn arg_u32(l: *mut lua_State, idx: c_int) -> u32 {
    let n = arg_number(l, idx);
    if n.is_finite() && n >= 0.0 && n <= u32::MAX as f64 && n.fract() == 0.0 {
        n as u32
    } else {
        u32::MAX
    }
}

fn storage_code(c: storage::ErrorCode) -> &'static str {
    match c {
        storage::ErrorCode::InvalidKey => "invalid-key",
        storage::ErrorCode::InvalidValue => "invalid-value",
        storage::ErrorCode::QuotaExceeded => "quota-exceeded",
        storage::ErrorCode::Unavailable => "unavailable",
    }
}

fn viz_code(c: viz::ErrorCode) -> &'static str {
    match c {
        viz::ErrorCode::InvalidData => "invalid-data",
        viz::ErrorCode::InvalidOptions => "invalid-options",
        viz::ErrorCode::InvalidArgument => "invalid-argument",
        viz::ErrorCode::TooLarge => "too-large",
    }
}

fn dom_code(c: dom::ErrorCode) -> &'static str {
    match c {
        dom::ErrorCode::ForbiddenTag => "forbidden-tag",
        dom::ErrorCode::ForbiddenAttribute => "forbidden-attribute",
        dom::ErrorCode::ForbiddenUrl => "forbidden-url",
        dom::ErrorCode::InvalidSelector => "invalid-selector",
        dom::ErrorCode::InvalidOperation => "invalid-operation",
        dom::ErrorCode::TooLarge => "too-large",
    }
}

fn quantum_code(c: quantum::ErrorCode) -> &'static str {
    match c {
        quantum::ErrorCode::TooManyQubits => "too-many-qubits",
        quantum::ErrorCode::InvalidGate => "invalid-gate",
        quantum::ErrorCode::InvalidQubit => "invalid-qubit",
        quantum::ErrorCode::TooLarge => "too-large",
    }
}

// ------------------------------------------------------------------ log

/// `log(level, message, {k1, v1, k2, v2, ...})` → `log::write`.
unsafe extern "C-unwind" fn native_log(l: *mut lua_State) -> c_int {
    let level = match arg_number(l, 1) as i32 {
        0 => klog::Level::Debug,
        1 => klog::Level::Info,
        2 => klog::Level::Warn,
        _ => klog::Level::Error,
    };
    let message = arg_string(l, 2);
    let mut fields = Vec::new();
    if ffi::lua_type(l, 3) == ffi::LUA_TTABLE {
        let n = ffi::lua_rawlen(l, 3) / 2;
        if fields.try_reserve_exact(n).is_err() {
            raise_oom(l);
        }
        for i in 0..n {
            ffi::lua_rawgeti(l, 3, (2 * i + 1) as ffi::lua_Integer);
            ffi::lua_rawgeti(l, 3, (2 * i + 2) as ffi::lua_Integer);
            let key = arg_string(l, -2);
            let value = arg_string(l, -1);
            ffi::lua_settop(l, 3);
            fields.push(klog::Field { key, value });
        }
    }
    klog::write(level, &message, &fields);
    0
}

// ------------------------------------------------------------------ storage

/// `storage_get(key)` → `true, json | nil`.
unsafe extern "C-unwind" fn storage_get(l: *mut lua_State) -> c_int {
    let key = arg_string(l, 1);
    match storage::get(&key) {
        Ok(value) => {
            ok(l);
            match value {
                Some(text) => push_str(l, &text),
                None => ffi::lua_pushnil(l),
            }
            2
        }
        Err(e) => fail(l, storage_code(e.code), &e.message),
    }
}

/// `storage_set(key, json)` → `true`.
unsafe extern "C-unwind" fn storage_set(l: *mut lua_State) -> c_int {
    let key = arg_string(l, 1);
    let json = arg_string(l, 2);
    match storage::set(&key, &json) {
        Ok(()) => {
            ok(l);
            1
        }
        Err(e) => fail(l, storage_code(e.code), &e.message),
    }
}

/// `storage_delete(key)` → `true, existed`.
unsafe extern "C-unwind" fn storage_delete(l: *mut lua_State) -> c_int {
    let key = arg_string(l, 1);
    match storage::delete(&key) {
        Ok(existed) => {
            ok(l);
            ffi::lua_pushboolean(l, existed as c_int);
            2
        }
        Err(e) => fail(l, storage_code(e.code), &e.message),
    }
}

/// `storage_keys(prefix)` → `true, {key, ...}`.
unsafe extern "C-unwind" fn storage_keys(l: *mut lua_State) -> c_int {
    let prefix = arg_string(l, 1);
    match storage::keys(&prefix) {
        Ok(keys) => {
            ok(l);
            ffi::lua_createtable(l, keys.len().min(1 << 20) as c_int, 0);
            for (i, k) in keys.iter().enumerate() {
                push_str(l, k);
                ffi::lua_rawseti(l, -2, (i + 1) as ffi::lua_Integer);
            }
            2
        }
        Err(e) => fail(l, storage_code(e.code), &e.message),
    }
}

/// `storage_clear()` → `true, removed`.
unsafe extern "C-unwind" fn storage_clear(l: *mut lua_State) -> c_int {
    match storage::clear() {
        Ok(n) => {
            ok(l);
            ffi::lua_pushinteger(l, n as ffi::lua_Integer);
            2
        }
        Err(e) => fail(l, storage_code(e.code), &e.message),
    }
}

// ------------------------------------------------------------------ viz

/// `viz_plot(data_json, options_json)` → `true, output index`.
unsafe extern "C-unwind" fn viz_plot(l: *mut lua_State) -> c_int {
    let data = arg_string(l, 1);
    let options = arg_string(l, 2);
    match viz::plot(&data, &options) {
        Ok(i) => {
            ok(l);
            ffi::lua_pushinteger(l, i as ffi::lua_Integer);
            2
        }
        Err(e) => fail(l, viz_code(e.code), &e.message),
    }
}

/// `viz_render3d(scene_json)` → `true, output index`.
unsafe extern "C-unwind" fn viz_render3d(l: *mut lua_State) -> c_int {
    let scene = arg_string(l, 1);
    match viz::render3d(&scene) {
        Ok(i) => {
            ok(l);
            ffi::lua_pushinteger(l, i as ffi::lua_Integer);
            2
        }
        Err(e) => fail(l, viz_code(e.code), &e.message),
    }
}

/// `canvas_new(width, height)` → `true, handle`.
unsafe extern "C-unwind" fn canvas_new(l: *mut lua_State) -> c_int {
    let (w, h) = (arg_u32(l, 1), arg_u32(l, 2));
    match viz::new_canvas(w, h) {
        Ok(canvas) => {
            let idx = HANDLES.with(|hs| {
                let mut hs = hs.borrow_mut();
                hs.canvases.push(canvas);
                hs.canvases.len() - 1
            });
            ok(l);
            ffi::lua_pushinteger(l, idx as ffi::lua_Integer);
            2
        }
        Err(e) => fail(l, viz_code(e.code), &e.message),
    }
}

fn paint(n: f64) -> viz::Paint {
    match n as i32 {
        0 => viz::Paint::Fill,
        1 => viz::Paint::Stroke,
        _ => viz::Paint::FillAndStroke,
    }
}

/// One canvas operation's arguments, read from Lua before the handle
/// table is borrowed.
enum CanvasOp {
    FillColor(String),
    StrokeColor(String),
    LineWidth(f64),
    Rect(f64, f64, f64, f64, viz::Paint),
    Line(f64, f64, f64, f64),
    Circle(f64, f64, f64, viz::Paint),
    Path(Vec<viz::Point>, bool, viz::Paint),
    Text(f64, f64, String, f64),
    Show,
}

/// `canvas_op(handle, op, a, b, c, d, e)` → `true[, output index]`.
unsafe extern "C-unwind" fn canvas_op(l: *mut lua_State) -> c_int {
    let handle = arg_number(l, 1);
    let n = |i: c_int| arg_number(l, i);
    let op = match arg_bytes(l, 2) {
        b"fill_color" => CanvasOp::FillColor(arg_string(l, 3)),
        b"stroke_color" => CanvasOp::StrokeColor(arg_string(l, 3)),
        b"line_width" => CanvasOp::LineWidth(n(3)),
        b"rect" => CanvasOp::Rect(n(3), n(4), n(5), n(6), paint(n(7))),
        b"line" => CanvasOp::Line(n(3), n(4), n(5), n(6)),
        b"circle" => CanvasOp::Circle(n(3), n(4), n(5), paint(n(6))),
        b"path" => {
            // A flat sequence {x0, y0, x1, y1, ...} built by kernel.lua.
            let mut pts = Vec::new();
            if ffi::lua_type(l, 3) == ffi::LUA_TTABLE {
                let count = ffi::lua_rawlen(l, 3) / 2;
                if pts.try_reserve_exact(count).is_err() {
                    raise_oom(l);
                }
                let top = ffi::lua_gettop(l);
                for i in 0..count {
                    ffi::lua_rawgeti(l, 3, (2 * i + 1) as ffi::lua_Integer);
                    ffi::lua_rawgeti(l, 3, (2 * i + 2) as ffi::lua_Integer);
                    pts.push(viz::Point {
                        x: arg_number(l, -2),
                        y: arg_number(l, -1),
                    });
                    ffi::lua_settop(l, top);
                }
            }
            CanvasOp::Path(pts, ffi::lua_toboolean(l, 4) != 0, paint(n(5)))
        }
        b"text" => CanvasOp::Text(n(3), n(4), arg_string(l, 5), n(6)),
        b"show" => CanvasOp::Show,
        _ => return fail(l, "invalid-argument", "unknown canvas operation"),
    };
    let result = HANDLES.with(|hs| {
        let hs = hs.borrow();
        let canvas = match usize::try_from(handle as i64)
            .ok()
            .filter(|_| handle.fract() == 0.0)
            .and_then(|i| hs.canvases.get(i))
        {
            Some(c) => c,
            None => return Err(("invalid-argument", "not a canvas".to_string())),
        };
        let r = match op {
            CanvasOp::FillColor(c) => canvas.fill_color(&c).map(|_| None),
            CanvasOp::StrokeColor(c) => canvas.stroke_color(&c).map(|_| None),
            CanvasOp::LineWidth(w) => canvas.line_width(w).map(|_| None),
            CanvasOp::Rect(x, y, w, h, p) => canvas.rect(x, y, w, h, p).map(|_| None),
            CanvasOp::Line(a, b, c, d) => canvas.line(a, b, c, d).map(|_| None),
            CanvasOp::Circle(x, y, r, p) => canvas.circle(x, y, r, p).map(|_| None),
            CanvasOp::Path(pts, closed, p) => canvas.path(&pts, closed, p).map(|_| None),
            CanvasOp::Text(x, y, t, s) => canvas.text(x, y, &t, s).map(|_| None),
            CanvasOp::Show => canvas.show().map(Some),
        };
        r.map_err(|e| (viz_code(e.code), e.message))
    });
    match result {
        Ok(out) => {
            ok(l);
            match out {
                Some(i) => {
                    ffi::lua_pushinteger(l, i as ffi::lua_Integer);
                    2
                }
                None => 1,
            }
        }
        Err((code, message)) => fail(l, code, &message),
    }
}

// ------------------------------------------------------------------ dom

fn push_element(el: dom::Element) -> usize {
    HANDLES.with(|h| {
        let mut h = h.borrow_mut();
        h.elements.push(el);
        h.elements.len() - 1
    })
}

/// `dom_root()` → handle of the artifact's container.
unsafe extern "C-unwind" fn dom_root(l: *mut lua_State) -> c_int {
    let idx = push_element(dom::root());
    ffi::lua_pushinteger(l, idx as ffi::lua_Integer);
    1
}

/// `dom_create(tag)` → `true, handle`.
unsafe extern "C-unwind" fn dom_create(l: *mut lua_State) -> c_int {
    let tag = arg_string(l, 1);
    match dom::create_element(&tag) {
        Ok(el) => {
            let idx = push_element(el);
            ok(l);
            ffi::lua_pushinteger(l, idx as ffi::lua_Integer);
            2
        }
        Err(e) => fail(l, dom_code(e.code), &e.message),
    }
}

/// What a dom operation gives back, pushed after the handle table is released.
enum DomOut {
    Nothing,
    Text(String),
    MaybeText(Option<String>),
    Bool(bool),
    One(Option<dom::Element>),
    Many(Vec<dom::Element>),
}

/// `dom_op(handle, op, a, b)` → `true, result`.
unsafe extern "C-unwind" fn dom_op(l: *mut lua_State) -> c_int {
    let handle = arg_number(l, 1);
    let op: Vec<u8> = arg_bytes(l, 2).to_vec();
    let a_num = arg_number(l, 3);
    let (a, b) = match op.as_slice() {
        b"set_text"
        | b"get_attribute"
        | b"remove_attribute"
        | b"query_selector"
        | b"query_selector_all" => (arg_string(l, 3), String::new()),
        b"set_attribute" => (arg_string(l, 3), arg_string(l, 4)),
        _ => (String::new(), String::new()),
    };
    let index = |n: f64| -> Option<usize> {
        if n.fract() == 0.0 && n >= 0.0 && n < usize::MAX as f64 {
            Some(n as usize)
        } else {
            None
        }
    };
    let out = HANDLES.with(|h| -> Result<DomOut, (&'static str, String)> {
        let h = h.borrow();
        let not_element = || ("invalid-operation", "not an element".to_string());
        let el = index(handle)
            .and_then(|i| h.elements.get(i))
            .ok_or_else(not_element)?;
        let child = || {
            index(a_num)
                .and_then(|i| h.elements.get(i))
                .ok_or_else(not_element)
        };
        let err = |e: dom::DomError| (dom_code(e.code), e.message);
        Ok(match op.as_slice() {
            b"tag_name" => DomOut::Text(el.tag_name()),
            b"text" => DomOut::Text(el.text()),
            b"set_text" => {
                el.set_text(&a).map_err(err)?;
                DomOut::Nothing
            }
            b"set_attribute" => {
                el.set_attribute(&a, &b).map_err(err)?;
                DomOut::Nothing
            }
            b"get_attribute" => DomOut::MaybeText(el.get_attribute(&a)),
            b"remove_attribute" => DomOut::Bool(el.remove_attribute(&a)),
            b"append_child" => {
                el.append_child(child()?).map_err(err)?;
                DomOut::Nothing
            }
            b"remove_child" => {
                el.remove_child(child()?).map_err(err)?;
                DomOut::Nothing
            }
            b"children" => DomOut::Many(el.children()),
            b"query_selector" => DomOut::One(el.query_selector(&a).map_err(err)?),
            b"query_selector_all" => DomOut::Many(el.query_selector_all(&a).map_err(err)?),
            _ => return Err(("invalid-operation", "unknown dom operation".to_string())),
        })
    });
    match out {
        Err((code, message)) => fail(l, code, &message),
        Ok(out) => {
            ok(l);
            match out {
                DomOut::Nothing => ffi::lua_pushnil(l),
                DomOut::Text(s) => push_str(l, &s),
                DomOut::MaybeText(Some(s)) => push_str(l, &s),
                DomOut::MaybeText(None) | DomOut::One(None) => ffi::lua_pushnil(l),
                DomOut::Bool(b) => ffi::lua_pushboolean(l, b as c_int),
                DomOut::One(Some(el)) => {
                    ffi::lua_pushinteger(l, push_element(el) as ffi::lua_Integer)
                }
                DomOut::Many(els) => {
                    let idx: Vec<usize> = els.into_iter().map(push_element).collect();
                    ffi::lua_createtable(l, idx.len().min(1 << 20) as c_int, 0);
                    for (i, h) in idx.iter().enumerate() {
                        ffi::lua_pushinteger(l, *h as ffi::lua_Integer);
                        ffi::lua_rawseti(l, -2, (i + 1) as ffi::lua_Integer);
                    }
                }
            }
            2
        }
    }
}

// ------------------------------------------------------------------ quantum

/// Gate kinds by the index kernel.lua uses (the order of the WIT enum).
const GATES: [quantum::GateKind; 13] = [
    quantum::GateKind::H,
    quantum::GateKind::X,
    quantum::GateKind::Y,
    quantum::GateKind::Z,
    quantum::GateKind::S,
    quantum::GateKind::T,
    quantum::GateKind::Rx,
    quantum::GateKind::Ry,
    quantum::GateKind::Rz,
    quantum::GateKind::Cnot,
    quantum::GateKind::Cz,
    quantum::GateKind::Swap,
    quantum::GateKind::Measure,
];

/// The circuit from `qubits` (index 1) and the gate list (index 2,
/// `{{kind, {q, ...}, theta | nil}, ...}`, built by kernel.lua but
/// reachable by the artifact, so every value is type-checked).
unsafe fn circuit(l: *mut lua_State) -> Result<quantum::Circuit, (&'static str, String)> {
    let qubits = arg_u32(l, 1);
    let bad = |m: &str| ("invalid-gate", m.to_string());
    if ffi::lua_type(l, 2) != ffi::LUA_TTABLE {
        return Err(bad("the circuit's gate list is not a table"));
    }
    let n = ffi::lua_rawlen(l, 2);
    let mut gates = Vec::new();
    if gates.try_reserve_exact(n.min(1 << 20)).is_err() {
        raise_oom(l);
    }
    let top = ffi::lua_gettop(l);
    for i in 1..=n {
        ffi::lua_settop(l, top);
        if ffi::lua_rawgeti(l, 2, i as ffi::lua_Integer) != ffi::LUA_TTABLE {
            return Err(bad("a gate of the circuit is not a table"));
        }
        let g = ffi::lua_gettop(l);
        ffi::lua_rawgeti(l, g, 1);
        let kind = arg_number(l, -1);
        let kind = if kind.fract() == 0.0 && (0.0..13.0).contains(&kind) {
            GATES[kind as usize]
        } else {
            return Err(bad("unknown gate kind"));
        };
        let mut targets = Vec::new();
        if ffi::lua_rawgeti(l, g, 2) == ffi::LUA_TTABLE {
            let t = ffi::lua_gettop(l);
            let m = ffi::lua_rawlen(l, t).min(8);
            for j in 1..=m {
                ffi::lua_rawgeti(l, t, j as ffi::lua_Integer);
                targets.push(arg_u32(l, -1));
                ffi::lua_settop(l, t);
            }
        }
        ffi::lua_rawgeti(l, g, 3);
        let theta = if ffi::lua_type(l, -1) == ffi::LUA_TNIL {
            None
        } else {
            Some(arg_number(l, -1))
        };
        gates.push(quantum::Gate {
            kind,
            qubits: targets,
            theta,
        });
    }
    ffi::lua_settop(l, top);
    Ok(quantum::Circuit { qubits, gates })
}

/// `quantum_simulate(qubits, gates, shots, seed | nil)` →
/// `true, {amplitudes = {{re =, im =}, ...}, probabilities = {...}, counts = {bits = n}}`.
unsafe extern "C-unwind" fn quantum_simulate(l: *mut lua_State) -> c_int {
    ffi::lua_settop(l, 4);
    let shots = arg_u32(l, 3);
    let seed = if ffi::lua_type(l, 4) == ffi::LUA_TNIL {
        None
    } else {
        let n = arg_number(l, 4);
        Some(if n.is_finite() { n.abs() as u64 } else { 0 })
    };
    let c = match circuit(l) {
        Ok(c) => c,
        Err((code, m)) => return fail(l, code, &m),
    };
    let sim = match quantum::simulate(&c, shots, seed) {
        Ok(s) => s,
        Err(e) => return fail(l, quantum_code(e.code), &e.message),
    };
    drop(c);
    ok(l);
    ffi::lua_createtable(l, 0, 3);
    ffi::lua_createtable(l, sim.amplitudes.len().min(1 << 20) as c_int, 0);
    for (i, a) in sim.amplitudes.iter().enumerate() {
        ffi::lua_createtable(l, 0, 2);
        ffi::lua_pushnumber(l, a.re);
        ffi::lua_setfield(l, -2, c"re".as_ptr());
        ffi::lua_pushnumber(l, a.im);
        ffi::lua_setfield(l, -2, c"im".as_ptr());
        ffi::lua_rawseti(l, -2, (i + 1) as ffi::lua_Integer);
    }
    ffi::lua_setfield(l, -2, c"amplitudes".as_ptr());
    ffi::lua_createtable(l, sim.probabilities.len().min(1 << 20) as c_int, 0);
    for (i, p) in sim.probabilities.iter().enumerate() {
        ffi::lua_pushnumber(l, *p);
        ffi::lua_rawseti(l, -2, (i + 1) as ffi::lua_Integer);
    }
    ffi::lua_setfield(l, -2, c"probabilities".as_ptr());
    ffi::lua_createtable(l, 0, sim.counts.len().min(1 << 20) as c_int);
    for (bits, n) in &sim.counts {
        push_str(l, bits);
        ffi::lua_pushinteger(l, *n as ffi::lua_Integer);
        ffi::lua_rawset(l, -3);
    }
    ffi::lua_setfield(l, -2, c"counts".as_ptr());
    2
}

/// `quantum_draw(qubits, gates)` → `true, output index`.
unsafe extern "C-unwind" fn quantum_draw(l: *mut lua_State) -> c_int {
    ffi::lua_settop(l, 2);
    let c = match circuit(l) {
        Ok(c) => c,
        Err((code, m)) => return fail(l, code, &m),
    };
    match quantum::draw(&c) {
        Ok(i) => {
            ok(l);
            ffi::lua_pushinteger(l, i as ffi::lua_Integer);
            2
        }
        Err(e) => fail(l, quantum_code(e.code), &e.message),
    }
}
