//! Native hooks for the kernel APIs (storage, viz, dom, quantum).
//!
//! These are the thin, untyped bridge between the JavaScript standard
//! library (`volumes/system/kernel/stdlib.js`, which checks argument types
//! and gives every function its idiomatic shape) and the WIT imports. A
//! kernel error is thrown as a plain object `{ kernelError: true, code,
//! message }` that the stdlib turns into a `StorageError`, `VizError`,
//! `DomError` or `QuantumError`.
//!
//! WIT resources (dom elements, canvases) stay in per-instance handle tables
//! here; JavaScript only sees their indices. The tables are only touched
//! while an artifact runs, never during the build-time `init` snapshot.

use std::cell::RefCell;

use rquickjs::{Array, Ctx, Error as JsError, Function, Object, Value};

use crate::js_string;
use crate::llmos::kernel::{dom, quantum, storage, viz};

thread_local! {
    static HANDLES: RefCell<Handles> = const { RefCell::new(Handles { elements: Vec::new(), canvases: Vec::new() }) };
}

/// Resource handles owned by the guest, by index.
struct Handles {
    elements: Vec<dom::Element>,
    canvases: Vec<viz::Canvas>,
}

/// Register every native on `native`.
pub(crate) fn install<'js>(ctx: &Ctx<'js>, native: &Object<'js>) -> rquickjs::Result<()> {
    macro_rules! add {
        ($name:literal, $f:expr) => {
            native.set($name, Function::new(ctx.clone(), $f)?)?;
        };
    }
    add!("storageGet", storage_get);
    add!("storageSet", storage_set);
    add!("storageDelete", storage_delete);
    add!("storageKeys", storage_keys);
    add!("storageClear", storage_clear);
    add!("vizPlot", viz_plot);
    add!("vizRender3d", viz_render3d);
    add!("canvasNew", canvas_new);
    add!("canvasOp", canvas_op);
    add!("domRoot", dom_root);
    add!("domCreate", dom_create);
    add!("domOp", dom_op);
    add!("quantumSimulate", quantum_simulate);
    add!("quantumDraw", quantum_draw);
    Ok(())
}

// ------------------------------------------------------------------ helpers

/// Throw `{ kernelError: true, code, message }`.
fn kernel_error<'js>(ctx: &Ctx<'js>, code: &str, message: &str) -> JsError {
    let obj = match Object::new(ctx.clone()) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let set = || -> rquickjs::Result<()> {
        obj.set("kernelError", true)?;
        obj.set("code", code)?;
        obj.set("message", message)?;
        Ok(())
    };
    if let Err(e) = set() {
        return e;
    }
    ctx.throw(obj.into_value())
}

/// Throw QuickJS's out-of-memory error.
fn oom<'js>(ctx: &Ctx<'js>) -> JsError {
    // SAFETY: throws on this context.
    unsafe { rquickjs::qjs::JS_ThrowOutOfMemory(ctx.as_raw().as_ptr()) };
    JsError::Exception
}

fn string<'js>(ctx: &Ctx<'js>, v: &Value<'js>) -> rquickjs::Result<String> {
    js_string(ctx, v).ok_or_else(|| oom(ctx))
}

fn number<'js>(v: &Value<'js>) -> f64 {
    v.as_number().unwrap_or(f64::NAN)
}

fn storage_err<'js>(ctx: &Ctx<'js>, e: storage::StorageError) -> JsError {
    let code = match e.code {
        storage::ErrorCode::InvalidKey => "invalid-key",
        storage::ErrorCode::InvalidValue => "invalid-value",
        storage::ErrorCode::QuotaExceeded => "quota-exceeded",
        storage::ErrorCode::Unavailable => "unavailable",
    };
    kernel_error(ctx, code, &e.message)
}

fn viz_err<'js>(ctx: &Ctx<'js>, e: viz::VizError) -> JsError {
    let code = match e.code {
        viz::ErrorCode::InvalidData => "invalid-data",
        viz::ErrorCode::InvalidOptions => "invalid-options",
        viz::ErrorCode::InvalidArgument => "invalid-argument",
        viz::ErrorCode::TooLarge => "too-large",
    };
    kernel_error(ctx, code, &e.message)
}

fn dom_err<'js>(ctx: &Ctx<'js>, e: dom::DomError) -> JsError {
    let code = match e.code {
        dom::ErrorCode::ForbiddenTag => "forbidden-tag",
        dom::ErrorCode::ForbiddenAttribute => "forbidden-attribute",
        dom::ErrorCode::ForbiddenUrl => "forbidden-url",
        dom::ErrorCode::InvalidSelector => "invalid-selector",
        dom::ErrorCode::InvalidOperation => "invalid-operation",
        dom::ErrorCode::TooLarge => "too-large",
    };
    kernel_error(ctx, code, &e.message)
}

fn quantum_err<'js>(ctx: &Ctx<'js>, e: quantum::QuantumError) -> JsError {
    let code = match e.code {
        quantum::ErrorCode::TooManyQubits => "too-many-qubits",
        quantum::ErrorCode::InvalidGate => "invalid-gate",
        quantum::ErrorCode::InvalidQubit => "invalid-qubit",
        quantum::ErrorCode::TooLarge => "too-large",
    };
    kernel_error(ctx, code, &e.message)
}

// ------------------------------------------------------------------ storage

/// `storageGet(key)` → JSON text or `null`.
fn storage_get<'js>(ctx: Ctx<'js>, key: Value<'js>) -> rquickjs::Result<Option<String>> {
    let key = string(&ctx, &key)?;
    storage::get(&key).map_err(|e| storage_err(&ctx, e))
}

/// `storageSet(key, json)`.
fn storage_set<'js>(ctx: Ctx<'js>, key: Value<'js>, json: Value<'js>) -> rquickjs::Result<()> {
    let key = string(&ctx, &key)?;
    let json = string(&ctx, &json)?;
    storage::set(&key, &json).map_err(|e| storage_err(&ctx, e))
}

/// `storageDelete(key)` → existed.
fn storage_delete<'js>(ctx: Ctx<'js>, key: Value<'js>) -> rquickjs::Result<bool> {
    let key = string(&ctx, &key)?;
    storage::delete(&key).map_err(|e| storage_err(&ctx, e))
}

/// `storageKeys(prefix)` → array of keys.
fn storage_keys<'js>(ctx: Ctx<'js>, prefix: Value<'js>) -> rquickjs::Result<Vec<String>> {
    let prefix = string(&ctx, &prefix)?;
    storage::keys(&prefix).map_err(|e| storage_err(&ctx, e))
}

/// `storageClear()` → number removed.
fn storage_clear(ctx: Ctx<'_>) -> rquickjs::Result<u32> {
    storage::clear().map_err(|e| storage_err(&ctx, e))
}

// ------------------------------------------------------------------ viz

/// `vizPlot(dataJson, optionsJson)` → output index.
fn viz_plot<'js>(ctx: Ctx<'js>, data: Value<'js>, options: Value<'js>) -> rquickjs::Result<u32> {
    let data = string(&ctx, &data)?;
    let options = string(&ctx, &options)?;
    viz::plot(&data, &options).map_err(|e| viz_err(&ctx, e))
}

/// `vizRender3d(sceneJson)` → output index.
fn viz_render3d<'js>(ctx: Ctx<'js>, scene: Value<'js>) -> rquickjs::Result<u32> {
    let scene = string(&ctx, &scene)?;
    viz::render3d(&scene).map_err(|e| viz_err(&ctx, e))
}

/// `canvasNew(width, height)` → canvas handle index.
fn canvas_new<'js>(ctx: Ctx<'js>, width: Value<'js>, height: Value<'js>) -> rquickjs::Result<u32> {
    let dim = |v: &Value<'js>| {
        let n = number(v);
        if n.is_finite() && n >= 0.0 && n <= u32::MAX as f64 {
            n as u32
        } else {
            u32::MAX
        }
    };
    let canvas = viz::new_canvas(dim(&width), dim(&height)).map_err(|e| viz_err(&ctx, e))?;
    HANDLES.with(|h| {
        let mut h = h.borrow_mut();
        h.canvases.push(canvas);
        Ok((h.canvases.len() - 1) as u32)
    })
}

fn paint(v: &Value<'_>) -> viz::Paint {
    match v.as_int() {
        Some(0) => viz::Paint::Fill,
        Some(1) => viz::Paint::Stroke,
        _ => viz::Paint::FillAndStroke,
    }
}

/// `canvasOp(handle, op, a, b, c, d, e)`: one drawing operation; `show`
/// returns the output index, every other op `undefined`.
fn canvas_op<'js>(
    ctx: Ctx<'js>,
    handle: u32,
    op: Value<'js>,
    args: rquickjs::function::Rest<Value<'js>>,
) -> rquickjs::Result<Option<u32>> {
    let op = string(&ctx, &op)?;
    let undef = Value::new_undefined(ctx.clone());
    let arg = |i: usize| args.0.get(i).cloned().unwrap_or_else(|| undef.clone());
    let (a, b, c, d, e) = (arg(0), arg(1), arg(2), arg(3), arg(4));
    let points = |v: &Value<'js>| -> rquickjs::Result<Vec<viz::Point>> {
        // A flat array [x0, y0, x1, y1, ...] built by the stdlib.
        let arr: Array = Array::from_value(v.clone())?;
        let n = arr.len() / 2;
        let mut pts = Vec::new();
        pts.try_reserve_exact(n).map_err(|_| oom(&ctx))?;
        for i in 0..n {
            let x: Value = arr.get(2 * i)?;
            let y: Value = arr.get(2 * i + 1)?;
            pts.push(viz::Point {
                x: number(&x),
                y: number(&y),
            });
        }
        Ok(pts)
    };
    let text_arg = |v: &Value<'js>| string(&ctx, v);
    HANDLES.with(|h| {
        let h = h.borrow();
        let Some(canvas) = h.canvases.get(handle as usize) else {
            return Err(kernel_error(&ctx, "invalid-argument", "not a canvas"));
        };
        let r = match op.as_str() {
            "fillColor" => canvas.fill_color(&text_arg(&a)?).map(|_| None),
            "strokeColor" => canvas.stroke_color(&text_arg(&a)?).map(|_| None),
            "lineWidth" => canvas.line_width(number(&a)).map(|_| None),
            "rect" => canvas
                .rect(number(&a), number(&b), number(&c), number(&d), paint(&e))
                .map(|_| None),
            "line" => canvas
                .line(number(&a), number(&b), number(&c), number(&d))
                .map(|_| None),
            "circle" => canvas
                .circle(number(&a), number(&b), number(&c), paint(&d))
                .map(|_| None),
            "path" => canvas
                .path(&points(&a)?, b.as_bool().unwrap_or(false), paint(&c))
                .map(|_| None),
            "text" => canvas
                .text(number(&a), number(&b), &text_arg(&c)?, number(&d))
                .map(|_| None),
            "show" => canvas.show().map(Some),
            _ => {
                return Err(kernel_error(
                    &ctx,
                    "invalid-argument",
                    "unknown canvas operation",
                ))
            }
        };
        r.map_err(|e| viz_err(&ctx, e))
    })
}

// ------------------------------------------------------------------ dom

fn push_element(el: dom::Element) -> u32 {
    HANDLES.with(|h| {
        let mut h = h.borrow_mut();
        h.elements.push(el);
        (h.elements.len() - 1) as u32
    })
}

/// `domRoot()` → element handle index of the artifact's container.
fn dom_root() -> u32 {
    push_element(dom::root())
}

/// `domCreate(tag)` → element handle index.
fn dom_create<'js>(ctx: Ctx<'js>, tag: Value<'js>) -> rquickjs::Result<u32> {
    let tag = string(&ctx, &tag)?;
    let el = dom::create_element(&tag).map_err(|e| dom_err(&ctx, e))?;
    Ok(push_element(el))
}

/// `domOp(handle, op, a, b)`: one element operation.
fn dom_op<'js>(
    ctx: Ctx<'js>,
    handle: u32,
    op: Value<'js>,
    a: rquickjs::function::Opt<Value<'js>>,
    b: rquickjs::function::Opt<Value<'js>>,
) -> rquickjs::Result<Value<'js>> {
    let op = string(&ctx, &op)?;
    let undef = Value::new_undefined(ctx.clone());
    let a = a.0.unwrap_or_else(|| undef.clone());
    let b = b.0.unwrap_or_else(|| undef.clone());
    let not_element = || kernel_error(&ctx, "invalid-operation", "not an element");
    // Results that carry new handles are pushed after the borrow ends.
    enum Out<'js> {
        Value(Value<'js>),
        One(Option<dom::Element>),
        Many(Vec<dom::Element>),
    }
    let out = HANDLES.with(|h| -> rquickjs::Result<Out<'js>> {
        let h = h.borrow();
        let el = h.elements.get(handle as usize).ok_or_else(not_element)?;
        let child = |v: &Value<'js>| -> rquickjs::Result<&dom::Element> {
            let idx = v.as_int().ok_or_else(not_element)?;
            h.elements
                .get(usize::try_from(idx).map_err(|_| not_element())?)
                .ok_or_else(not_element)
        };
        let v = |x: Value<'js>| Ok(Out::Value(x));
        match op.as_str() {
            "tagName" => v(rquickjs::String::from_str(ctx.clone(), &el.tag_name())?.into_value()),
            "text" => v(rquickjs::String::from_str(ctx.clone(), &el.text())?.into_value()),
            "setText" => {
                el.set_text(&string(&ctx, &a)?)
                    .map_err(|e| dom_err(&ctx, e))?;
                v(undef.clone())
            }
            "setAttribute" => {
                el.set_attribute(&string(&ctx, &a)?, &string(&ctx, &b)?)
                    .map_err(|e| dom_err(&ctx, e))?;
                v(undef.clone())
            }
            "getAttribute" => match el.get_attribute(&string(&ctx, &a)?) {
                Some(s) => v(rquickjs::String::from_str(ctx.clone(), &s)?.into_value()),
                None => v(Value::new_null(ctx.clone())),
            },
            "removeAttribute" => v(Value::new_bool(
                ctx.clone(),
                el.remove_attribute(&string(&ctx, &a)?),
            )),
            "appendChild" => {
                el.append_child(child(&a)?).map_err(|e| dom_err(&ctx, e))?;
                v(undef.clone())
            }
            "removeChild" => {
                el.remove_child(child(&a)?).map_err(|e| dom_err(&ctx, e))?;
                v(undef.clone())
            }
            "children" => Ok(Out::Many(el.children())),
            "querySelector" => Ok(Out::One(
                el.query_selector(&string(&ctx, &a)?)
                    .map_err(|e| dom_err(&ctx, e))?,
            )),
            "querySelectorAll" => Ok(Out::Many(
                el.query_selector_all(&string(&ctx, &a)?)
                    .map_err(|e| dom_err(&ctx, e))?,
            )),
            _ => Err(kernel_error(
                &ctx,
                "invalid-operation",
                "unknown dom operation",
            )),
        }
    })?;
    match out {
        Out::Value(v) => Ok(v),
        Out::One(None) => Ok(Value::new_null(ctx)),
        Out::One(Some(el)) => Ok(Value::new_int(ctx, push_element(el) as i32)),
        Out::Many(els) => {
            let arr = Array::new(ctx.clone())?;
            for (i, el) in els.into_iter().enumerate() {
                arr.set(i, push_element(el))?;
            }
            Ok(arr.into_value())
        }
    }
}

// ------------------------------------------------------------------ quantum

/// Gate kinds by the index the stdlib uses (same order as the WIT enum).
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

/// The circuit `[qubits, [[kind, [q...], theta|null], ...]]` built by the stdlib.
fn circuit<'js>(
    ctx: &Ctx<'js>,
    qubits: &Value<'js>,
    gates: &Value<'js>,
) -> rquickjs::Result<quantum::Circuit> {
    let q = number(qubits);
    let qubits = if q.is_finite() && q >= 0.0 && q <= u32::MAX as f64 {
        q as u32
    } else {
        u32::MAX
    };
    let list: Array = Array::from_value(gates.clone())?;
    let mut out = Vec::new();
    out.try_reserve_exact(list.len()).map_err(|_| oom(ctx))?;
    for i in 0..list.len() {
        let g: Array = list.get(i)?;
        let kind: Value = g.get(0)?;
        let kind = kind
            .as_int()
            .and_then(|k| GATES.get(usize::try_from(k).ok()?).copied())
            .ok_or_else(|| kernel_error(ctx, "invalid-gate", "unknown gate kind"))?;
        let qs: Array = g.get(1)?;
        let mut targets = Vec::new();
        for j in 0..qs.len().min(8) {
            let v: Value = qs.get(j)?;
            let n = number(&v);
            targets.push(
                if n.is_finite() && n >= 0.0 && n <= u32::MAX as f64 && n.fract() == 0.0 {
                    n as u32
                } else {
                    u32::MAX
                },
            );
        }
        let theta: Value = g.get(2)?;
        let theta = if theta.is_null() || theta.is_undefined() {
            None
        } else {
            Some(number(&theta))
        };
        out.push(quantum::Gate {
            kind,
            qubits: targets,
            theta,
        });
    }
    Ok(quantum::Circuit { qubits, gates: out })
}

/// `quantumSimulate(qubits, gates, shots, seed|null)` →
/// `{ amplitudes: [[re, im], ...], probabilities: [...], counts: {bits: n} }`.
fn quantum_simulate<'js>(
    ctx: Ctx<'js>,
    qubits: Value<'js>,
    gates: Value<'js>,
    shots: Value<'js>,
    seed: Value<'js>,
) -> rquickjs::Result<Object<'js>> {
    let c = circuit(&ctx, &qubits, &gates)?;
    let s = number(&shots);
    let shots = if s.is_finite() && s >= 0.0 && s <= u32::MAX as f64 {
        s as u32
    } else {
        u32::MAX
    };
    let seed = if seed.is_null() || seed.is_undefined() {
        None
    } else {
        let n = number(&seed);
        Some(if n.is_finite() { n.abs() as u64 } else { 0 })
    };
    let sim = quantum::simulate(&c, shots, seed).map_err(|e| quantum_err(&ctx, e))?;
    let out = Object::new(ctx.clone())?;
    let amps = Array::new(ctx.clone())?;
    for (i, a) in sim.amplitudes.iter().enumerate() {
        let pair = Array::new(ctx.clone())?;
        pair.set(0, a.re)?;
        pair.set(1, a.im)?;
        amps.set(i, pair)?;
    }
    let probs = Array::new(ctx.clone())?;
    for (i, p) in sim.probabilities.iter().enumerate() {
        probs.set(i, *p)?;
    }
    let counts = Object::new(ctx.clone())?;
    for (bits, n) in &sim.counts {
        counts.set(bits.as_str(), *n)?;
    }
    out.set("amplitudes", amps)?;
    out.set("probabilities", probs)?;
    out.set("counts", counts)?;
    Ok(out)
}

/// `quantumDraw(qubits, gates)` → output index.
fn quantum_draw<'js>(
    ctx: Ctx<'js>,
    qubits: Value<'js>,
    gates: Value<'js>,
) -> rquickjs::Result<u32> {
    let c = circuit(&ctx, &qubits, &gates)?;
    quantum::draw(&c).map_err(|e| quantum_err(&ctx, e))
}
