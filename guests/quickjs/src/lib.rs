//! llmos QuickJS guest: QuickJS-ng (through rquickjs) behind the
//! `llmos:kernel/language` world.
//!
//! Every `run` builds a brand-new QuickJS runtime and context, installs the
//! prelude (`console`, `kernel`, timers), compiles the artifact (so a compile-time
//! SyntaxError is told apart from a run-time one), runs it, drains the job
//! queue, runs the timer event loop (`setTimeout`/`setInterval`), settles the
//! completion value and reports either the inspected completion value or a typed error.
//!
//! The guest must never panic on any input: every JS-facing failure is turned
//! into a `guest-error`, and strings that can be large are copied out of
//! QuickJS with fallible allocations.

use std::cell::{Cell, RefCell};
use std::ffi::CStr;
use std::io::Write;
use std::ptr;
use std::time::{Duration, Instant};

use rquickjs::{
    qjs, Array, Context, Ctx, Error as JsError, Function, Object, Persistent, Runtime, Value,
};

wit_bindgen::generate!({
    path: "../../wit",
    world: "language-preinit",
});

use exports::llmos::kernel::interpreter::{ErrorKind, Frame, GuestError, Info, Success, Variable};
use llmos::kernel::log as klog;

mod kernel;

/// Scripts evaluated before any artifact, each under an internal file name
/// that no artifact has (so their frames are dropped from reported stacks),
/// precompiled to QuickJS bytecode by build.rs:
/// `src/prelude.js` (console, timers, inspect: `<llmos:prelude>`),
/// the system volume's `kernel/stdlib.js` (the `kernel` API: `<llmos:stdlib>`)
/// and `kernel/init.js` (sandbox start: `<llmos:init>`).
const PRELUDE_BYTECODE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/prelude.qjsbc"));
const STDLIB_BYTECODE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/stdlib.qjsbc"));
const INIT_BYTECODE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/init.qjsbc"));
/// Used when the host passes an empty file name.
const DEFAULT_FILENAME: &str = "artifact.js";
/// Memory set aside at the start of a run and released when reporting an
/// error after the artifact exhausted linear memory.
const BALLAST_BYTES: usize = 1 << 20;

thread_local! {
    /// Set by `kernel.exit(code)`; the run ends with an `exit` error.
    static EXIT_CODE: Cell<Option<i32>> = const { Cell::new(None) };
    /// State of `Math.random` (xoshiro256**), seeded at the start of each run.
    static RNG: Cell<[u64; 4]> = const { Cell::new([1, 2, 3, 4]) };
    /// The last run's QuickJS context and runtime, freed when the next run starts.
    static PREVIOUS: RefCell<Option<(Context, Runtime)>> = const { RefCell::new(None) };
    /// A runtime and context with the prelude installed, built by `init` at
    /// build time (Wizer snapshot); the first run on an instance uses it.
    static WARM: RefCell<Option<Warm>> = const { RefCell::new(None) };
    /// The session's runtime, context and helpers between cells
    /// (`run-cell`); built from `WARM` by the first cell.
    static SESSION: RefCell<Option<Warm>> = const { RefCell::new(None) };
    /// Set when the interrupt handler stopped the artifact just before a
    /// limit: `out_of_fuel` or `timeout`.
    static STOPPED: Cell<Option<&'static str>> = const { Cell::new(None) };
    /// Origin of `native.now` (timers): the run's first monotonic-clock
    /// reading, taken lazily (never during `init`), reset at each run.
    static CLOCK_BASE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Interpreter state prepared ahead of the run.
struct Warm {
    rt: Runtime,
    context: Context,
    helpers: SavedHelpers,
}

/// [`Helpers`] kept outside a context.
struct SavedHelpers {
    inspect: Persistent<Function<'static>>,
    describe: Persistent<Function<'static>>,
    timer_wait: Persistent<Function<'static>>,
    timer_fire: Persistent<Function<'static>>,
    globals: Persistent<Function<'static>>,
}

impl SavedHelpers {
    fn save<'js>(ctx: &Ctx<'js>, h: Helpers<'js>) -> Self {
        SavedHelpers {
            inspect: Persistent::save(ctx, h.inspect),
            describe: Persistent::save(ctx, h.describe),
            timer_wait: Persistent::save(ctx, h.timer_wait),
            timer_fire: Persistent::save(ctx, h.timer_fire),
            globals: Persistent::save(ctx, h.globals),
        }
    }

    fn restore<'js>(self, ctx: &Ctx<'js>) -> Option<Helpers<'js>> {
        Some(Helpers {
            inspect: self.inspect.restore(ctx).ok()?,
            describe: self.describe.restore(ctx).ok()?,
            timer_wait: self.timer_wait.restore(ctx).ok()?,
            timer_fire: self.timer_fire.restore(ctx).ok()?,
            globals: self.globals.restore(ctx).ok()?,
        })
    }
}

struct Component;

impl Guest for Component {
    /// Build the runtime, context and prelude once, before any run. Touches
    /// no WASI resource (no output), as the snapshot must not hold handles.
    fn init() {
        let Ok(rt) = Runtime::new() else { return };
        let Ok(context) = Context::full(&rt) else {
            return;
        };
        let helpers = context.with(|ctx| {
            let mut ballast = None;
            let mut run = Run {
                ctx: ctx.clone(),
                filename: DEFAULT_FILENAME,
                source: "",
                helpers: None,
                ballast: &mut ballast,
            };
            run.install_prelude().ok()?;
            let h = run.helpers.take()?;
            Some(SavedHelpers::save(&ctx, h))
        });
        if let Some(helpers) = helpers {
            WARM.with(|w| {
                *w.borrow_mut() = Some(Warm {
                    rt,
                    context,
                    helpers,
                })
            });
        }
    }
}

impl exports::llmos::kernel::interpreter::Guest for Component {
    fn describe() -> Info {
        Info {
            language: "javascript".to_string(),
            version: format!("QuickJS-ng {} (rquickjs 0.14)", quickjs_version()),
        }
    }

    fn run(source: String, filename: String) -> Result<Success, GuestError> {
        run(&source, &filename).map(|value| Success { value })
    }
}

impl exports::llmos::kernel::session::Guest for Component {
    fn run_cell(source: String, filename: String) -> Result<Success, GuestError> {
        run_cell(&source, &filename).map(|value| Success { value })
    }
}

export!(Component);

fn quickjs_version() -> String {
    // SAFETY: JS_GetVersion returns a static NUL-terminated string.
    unsafe {
        let p = qjs::JS_GetVersion();
        if p.is_null() {
            return "unknown".to_string();
        }
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

fn internal_error(message: impl Into<String>) -> GuestError {
    GuestError {
        kind: ErrorKind::Runtime,
        class: "InternalError".to_string(),
        message: message.into(),
        line: None,
        column: None,
        stack: Vec::new(),
        exit_code: None,
        globals: Vec::new(),
    }
}

/// Poll the run's budgets from QuickJS's interrupt handler (every ~10 000
/// interrupt checks: calls and loop back-edges) and stop the artifact with
/// an uncatchable error just before the host would trap, so its position
/// and stack can be reported. The margin (a twentieth of the budget, at most
/// 20 M fuel or 100 ms) leaves room to build the report.
fn install_stop(rt: &Runtime) {
    STOPPED.with(|s| s.set(None));
    rt.set_interrupt_handler(Some(Box::new(|| {
        if STOPPED.with(|s| s.get()).is_some() {
            return true;
        }
        let b = llmos::kernel::process::budget();
        let near_fuel = match (b.fuel_limit, b.fuel_left) {
            (Some(limit), Some(left)) => left <= (limit / 20).min(20_000_000),
            _ => false,
        };
        let near_time = b.ms_left <= (b.ms_limit / 20).min(100);
        if near_fuel || near_time {
            let kind = if near_fuel { "out_of_fuel" } else { "timeout" };
            STOPPED.with(|s| s.set(Some(kind)));
            return true;
        }
        false
    })));
}

/// A run's error, as the limit's own when the artifact was stopped.
fn located(result: Result<Option<String>, GuestError>) -> Result<Option<String>, GuestError> {
    match (result, STOPPED.with(|s| s.get())) {
        (Err(mut e), Some(kind)) => {
            e.kind = ErrorKind::Limit;
            e.class = kind.to_string();
            e.message = match kind {
                "timeout" => {
                    "stopped just before its time limit: the artifact was still running here".into()
                }
                _ => "stopped just before its fuel ran out: the artifact was still running here"
                    .into(),
            };
            Err(e)
        }
        (r, _) => r,
    }
}

/// Where a run's interpreter comes from and goes to.
#[derive(Clone, Copy, PartialEq)]
enum Scope {
    /// A run: the pre-initialised interpreter, freed lazily afterwards.
    Fresh,
    /// A session cell: the session's interpreter (the pre-initialised one
    /// for the first cell), kept for the next cell, so global bindings
    /// persist (`let` and `const` of a script live in the global lexical
    /// scope, as in a browser console).
    Session,
}

fn run(source: &str, filename: &str) -> Result<Option<String>, GuestError> {
    evaluate(source, filename, Scope::Fresh)
}

fn run_cell(source: &str, filename: &str) -> Result<Option<String>, GuestError> {
    evaluate(source, filename, Scope::Session)
}

fn evaluate(source: &str, filename: &str, scope: Scope) -> Result<Option<String>, GuestError> {
    if scope == Scope::Fresh {
        // Free the previous run's runtime (see the end of this function).
        drop(PREVIOUS.with(|p| p.borrow_mut().take()));
    }
    EXIT_CODE.with(|c| c.set(None));
    CLOCK_BASE.with(|c| c.set(None));
    seed_random();
    // Initialise std's stdout/stderr (and their buffers) while memory is plentiful.
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();

    let mut ballast: Vec<u8> = Vec::new();
    let _ = ballast.try_reserve_exact(BALLAST_BYTES);
    let mut ballast = Some(ballast);

    let filename = if filename.is_empty() {
        DEFAULT_FILENAME
    } else {
        filename
    };

    let kept = match scope {
        Scope::Session => SESSION.with(|s| s.borrow_mut().take()),
        Scope::Fresh => None,
    }
    .or_else(|| WARM.with(|w| w.borrow_mut().take()));
    let (rt, context, helpers) = match kept {
        Some(w) => (w.rt, w.context, Some(w.helpers)),
        None => {
            let rt = Runtime::new()
                .map_err(|e| internal_error(format!("cannot create QuickJS runtime: {e}")))?;
            let context = Context::full(&rt)
                .map_err(|e| internal_error(format!("cannot create QuickJS context: {e}")))?;
            (rt, context, None)
        }
    };
    install_stop(&rt);
    let (result, saved) = context.with(|ctx| {
        let helpers = helpers.and_then(|h| h.restore(&ctx));
        let mut run = Run {
            ctx: ctx.clone(),
            filename,
            source,
            helpers,
            ballast: &mut ballast,
        };
        let result = located(run.run(source));
        let saved = match scope {
            Scope::Session => run.helpers.take().map(|h| SavedHelpers::save(&ctx, h)),
            Scope::Fresh => None,
        };
        (result, saved)
    });
    match saved {
        Some(helpers) => SESSION.with(|s| {
            *s.borrow_mut() = Some(Warm {
                rt,
                context,
                helpers,
            })
        }),
        // Tearing a runtime down costs ~20% of a trivial run (more with a
        // big heap) and the host discards the instance after one run, so the
        // runtime is freed lazily, at the start of the next run on this
        // instance if any. (A session whose prelude could not be installed
        // has nothing to keep either.)
        None => PREVIOUS.with(|p| *p.borrow_mut() = Some((context, rt))),
    }
    result
}

/// Guest-side helpers returned by the prelude factory.
struct Helpers<'js> {
    inspect: Function<'js>,
    describe: Function<'js>,
    /// `timerWait()`: -1 when no timer remains, else ms until the earliest is due.
    timer_wait: Function<'js>,
    /// `timerFire()`: run the earliest timer's callback.
    timer_fire: Function<'js>,
    /// `globals(source)`: the artifact's top-level variables.
    globals: Function<'js>,
}

struct Run<'a, 'js> {
    ctx: Ctx<'js>,
    filename: &'a str,
    /// The artifact's source (read again only when reporting an error).
    source: &'a str,
    helpers: Option<Helpers<'js>>,
    ballast: &'a mut Option<Vec<u8>>,
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// A global (sloppy) script; the completion value is the result.
    Script,
    /// A global script compiled with top-level `await` allowed: evaluation
    /// returns a promise of `{ value }`.
    AsyncScript,
    /// An ES module (`.mjs`): evaluation returns a promise, no value.
    Module,
}

impl<'a, 'js> Run<'a, 'js> {
    fn raw(&self) -> *mut qjs::JSContext {
        self.ctx.as_raw().as_ptr()
    }

    fn run(&mut self, source: &str) -> Result<Option<String>, GuestError> {
        if self.helpers.is_none() {
            self.install_prelude()?;
        }

        // QuickJS requires a NUL byte after the source text.
        let mut src: Vec<u8> = Vec::new();
        src.try_reserve_exact(source.len() + 1)
            .map_err(|_| internal_error("out of memory copying the source"))?;
        src.extend_from_slice(source.as_bytes());
        src.push(0);
        let fname = c_string(self.filename);

        let module = self.filename.ends_with(".mjs");
        let (compiled, mode) = if module {
            match self.compile(&src, source.len(), &fname, qjs::JS_EVAL_TYPE_MODULE) {
                Ok(f) => (f, Mode::Module),
                Err(exc) => return Err(self.compile_error(exc)),
            }
        } else {
            match self.compile(&src, source.len(), &fname, qjs::JS_EVAL_TYPE_GLOBAL) {
                Ok(f) => (f, Mode::Script),
                Err(exc) => {
                    // A script using top-level `await` only parses as an async
                    // script; anything else keeps the original SyntaxError.
                    if source.contains("await") {
                        match self.compile(
                            &src,
                            source.len(),
                            &fname,
                            qjs::JS_EVAL_TYPE_GLOBAL | qjs::JS_EVAL_FLAG_ASYNC,
                        ) {
                            Ok(f) => (f, Mode::AsyncScript),
                            Err(exc2) => {
                                // Report whichever parse got further: a
                                // script with top-level await fails the plain
                                // parse at its first `await`.
                                let plain = self.compile_error(exc);
                                let with_await = self.compile_error(exc2);
                                let pos =
                                    |e: &GuestError| (e.line.unwrap_or(0), e.column.unwrap_or(0));
                                if pos(&with_await) > pos(&plain) {
                                    return Err(with_await);
                                }
                                return Err(plain);
                            }
                        }
                    } else {
                        return Err(self.compile_error(exc));
                    }
                }
            }
        };
        drop(src);
        // A backtrace left over from building the prelude is not the artifact's.
        drop(self.take_throw_trace());

        // SAFETY: JS_EvalFunction takes ownership of the compiled function.
        let raw = unsafe {
            qjs::JS_EvalFunction(self.raw(), qjs::JS_DupValue(self.raw(), compiled.as_raw()))
        };
        drop(compiled);
        let value = if unsafe { qjs::JS_IsException(raw) } {
            let exc = self.ctx.catch();
            return Err(self.error_from(exc, ErrorKind::Runtime));
        } else {
            // SAFETY: `raw` is an owned, non-exception value of this context.
            unsafe { Value::from_raw(self.ctx.clone(), raw) }
        };

        self.drain_jobs()?;
        self.event_loop(&value)?;

        let mut value = value;
        if mode != Mode::Script {
            // Module and async-script evaluation return a promise.
            match self.settle(&value) {
                Settled::Fulfilled(v) if mode == Mode::AsyncScript => {
                    // ... of `{ value: completion }`
                    match v.as_object().map(|o| o.get::<_, Value>("value")) {
                        Some(Ok(inner)) => value = inner,
                        _ => return Ok(None),
                    }
                }
                Settled::Fulfilled(_) | Settled::Pending => return Ok(None),
                Settled::Rejected(reason) => {
                    return Err(self.error_from(reason, ErrorKind::Runtime))
                }
                Settled::NotAPromise => {}
            }
        }
        // A promise completion value stands for its outcome.
        match self.settle(&value) {
            Settled::Fulfilled(v) => value = v,
            Settled::Rejected(reason) => return Err(self.error_from(reason, ErrorKind::Runtime)),
            Settled::Pending => return Ok(None),
            Settled::NotAPromise => {}
        }

        if value.is_undefined() {
            return Ok(None);
        }
        self.display(value)
    }

    fn install_prelude(&mut self) -> Result<(), GuestError> {
        let ctx = self.ctx.clone();
        let setup = || -> rquickjs::Result<Helpers<'js>> {
            let prelude = load_bytecode(&ctx, PRELUDE_BYTECODE)?;
            let stdlib = load_bytecode(&ctx, STDLIB_BYTECODE)?;
            let init = load_bytecode(&ctx, INIT_BYTECODE)?;
            let native = Object::new(ctx.clone())?;
            native.set("write", Function::new(ctx.clone(), native_write)?)?;
            native.set("log", Function::new(ctx.clone(), native_log)?)?;
            native.set("exit", Function::new(ctx.clone(), native_exit)?)?;
            native.set(
                "promiseState",
                Function::new(ctx.clone(), native_promise_state)?,
            )?;
            native.set(
                "random",
                Function::new(ctx.clone(), native_random)?.with_name("random")?,
            )?;
            native.set("now", Function::new(ctx.clone(), native_now)?)?;
            kernel::install(&ctx, &native)?;
            let helpers: Object = prelude.call((native.clone(),))?;
            let inspect: Function = helpers.get("inspect")?;
            let kernel: Object = stdlib.call((native, inspect))?;
            init.call::<_, ()>((kernel,))?;
            let globals: Function = helpers.get("globals")?;
            globals.call::<_, ()>((Value::new_null(ctx.clone()),))?;
            Ok(Helpers {
                inspect: helpers.get("inspect")?,
                describe: helpers.get("describe")?,
                timer_wait: helpers.get("timerWait")?,
                timer_fire: helpers.get("timerFire")?,
                globals,
            })
        };
        match setup() {
            Ok(h) => {
                self.helpers = Some(h);
                Ok(())
            }
            Err(e) => {
                let detail = if let JsError::Exception = e {
                    let exc = self.ctx.catch();
                    let msg = exc
                        .as_object()
                        .and_then(|o| o.get::<_, Value>("message").ok())
                        .and_then(|m| js_string(&self.ctx, &m))
                        .unwrap_or_default();
                    let stack = exc
                        .as_object()
                        .and_then(|o| o.get::<_, Value>("stack").ok())
                        .and_then(|m| js_string(&self.ctx, &m))
                        .unwrap_or_default();
                    format!("{msg}\n{stack}")
                } else {
                    e.to_string()
                };
                Err(internal_error(format!(
                    "cannot install the prelude: {detail}"
                )))
            }
        }
    }

    /// Compile without running. `Err` carries the pending exception.
    fn compile(
        &self,
        src: &[u8],
        len: usize,
        fname: &CStr,
        flags: u32,
    ) -> Result<Value<'js>, Value<'js>> {
        // SAFETY: `src` is NUL-terminated at `len`, `fname` is a C string.
        let raw = unsafe {
            qjs::JS_Eval(
                self.raw(),
                src.as_ptr() as *const _,
                len as qjs::size_t,
                fname.as_ptr(),
                (flags | qjs::JS_EVAL_FLAG_COMPILE_ONLY) as i32,
            )
        };
        if unsafe { qjs::JS_IsException(raw) } {
            Err(self.ctx.catch())
        } else {
            // SAFETY: owned value of this context.
            Ok(unsafe { Value::from_raw(self.ctx.clone(), raw) })
        }
    }

    fn compile_error(&mut self, exc: Value<'js>) -> GuestError {
        let mut err = self.error_from(exc, ErrorKind::Syntax);
        if err.kind == ErrorKind::Syntax && err.class != "SyntaxError" {
            // e.g. out of memory while compiling
            err.kind = ErrorKind::Runtime;
        }
        err
    }

    /// Run every pending job. A job only fails on an uncatchable error,
    /// i.e. `kernel.exit` (or out of memory while scheduling).
    fn drain_jobs(&mut self) -> Result<(), GuestError> {
        // SAFETY: plain calls into the runtime that owns this context.
        let rt = unsafe { qjs::JS_GetRuntime(self.raw()) };
        loop {
            let mut pctx: *mut qjs::JSContext = ptr::null_mut();
            let r = unsafe { qjs::JS_ExecutePendingJob(rt, &mut pctx) };
            if r == 0 {
                return Ok(());
            }
            if r < 0 {
                let exc = self.ctx.catch();
                if exit_code().is_some() {
                    return Err(self.error_from(exc, ErrorKind::Runtime));
                }
            }
        }
    }

    /// Run timers until none remains: sleep (WASI poll, so the host's
    /// wall-clock timeout can end the run) until the earliest is due, run its
    /// callback, drain jobs. A throwing callback ends the run as a runtime
    /// error; so does the rejection of the completion promise (`completion`
    /// is the evaluation result), as an unhandled rejection would in node.
    fn event_loop(&mut self, completion: &Value<'js>) -> Result<(), GuestError> {
        let Some(h) = self.helpers.as_ref() else {
            return Ok(());
        };
        let (wait, fire) = (h.timer_wait.clone(), h.timer_fire.clone());
        loop {
            let ms: f64 = match wait.call(()) {
                Ok(ms) => ms,
                Err(_) => {
                    let exc = self.ctx.catch();
                    return Err(self.error_from(exc, ErrorKind::Runtime));
                }
            };
            if !(ms >= 0.0) {
                return Ok(());
            }
            if let Settled::Rejected(reason) = self.settle(completion) {
                return Err(self.error_from(reason, ErrorKind::Runtime));
            }
            if ms > 0.0 {
                // At most ~11.5 days per sleep; the loop sleeps again if needed.
                std::thread::sleep(Duration::from_secs_f64(ms.min(1e9) / 1000.0));
            }
            if fire.call::<_, ()>(()).is_err() {
                let exc = self.ctx.catch();
                return Err(self.error_from(exc, ErrorKind::Runtime));
            }
            self.drain_jobs()?;
        }
    }

    fn settle(&self, value: &Value<'js>) -> Settled<'js> {
        let v = value.as_raw();
        // SAFETY: JS_PromiseState / JS_PromiseResult on a value of this context.
        unsafe {
            if !qjs::JS_IsPromise(v) {
                return Settled::NotAPromise;
            }
            match qjs::JS_PromiseState(self.raw(), v) {
                qjs::JSPromiseStateEnum_JS_PROMISE_FULFILLED => Settled::Fulfilled(
                    Value::from_raw(self.ctx.clone(), qjs::JS_PromiseResult(self.raw(), v)),
                ),
                qjs::JSPromiseStateEnum_JS_PROMISE_REJECTED => Settled::Rejected(Value::from_raw(
                    self.ctx.clone(),
                    qjs::JS_PromiseResult(self.raw(), v),
                )),
                _ => Settled::Pending,
            }
        }
    }

    fn display(&mut self, value: Value<'js>) -> Result<Option<String>, GuestError> {
        let Some(helpers) = &self.helpers else {
            return Ok(None);
        };
        match helpers.inspect.call::<_, Value>((value.clone(),)) {
            Ok(s) => match js_string(&self.ctx, &s) {
                Some(s) => Ok(Some(s)),
                None => Err(internal_error(
                    "out of memory displaying the completion value",
                )),
            },
            Err(_) => {
                let exc = self.ctx.catch();
                if exit_code().is_some() {
                    return Err(self.error_from(exc, ErrorKind::Runtime));
                }
                // Fall back to String(value); a value that cannot even be
                // converted is reported as such rather than failing the run.
                match js_string(&self.ctx, &value) {
                    Some(s) => Ok(Some(s)),
                    None => {
                        let _ = self.ctx.catch();
                        Ok(Some("[value could not be displayed]".to_string()))
                    }
                }
            }
        }
    }

    /// Turn a thrown value into a guest-error (an `exit` error when
    /// `kernel.exit` was called).
    fn error_from(&mut self, exc: Value<'js>, kind: ErrorKind) -> GuestError {
        // Taken first: running the prelude's `describe` may reset it.
        let throw_trace = self.take_throw_trace();
        if let Some(code) = exit_code() {
            let stack = exc
                .as_object()
                .and_then(|o| o.get::<_, Value>("stack").ok())
                .and_then(|s| js_string(&self.ctx, &s))
                .unwrap_or_default();
            let frames = parse_stack(&stack, self.filename);
            let (line, column) = innermost(&frames);
            return GuestError {
                kind: ErrorKind::Exit,
                class: "Exit".to_string(),
                message: format!("kernel.exit({code})"),
                line,
                column,
                stack: frames,
                exit_code: Some(code),
                globals: Vec::new(),
            };
        }

        let mut described = self.describe(&exc);
        if described.is_err() && exit_code().is_none() && self.ballast.take().is_some() {
            // Most likely out of memory: give QuickJS the ballast back and retry.
            described = self.describe(&exc);
        }
        let (class, message, stack, last_trace) = match described {
            Ok(d) => d,
            // `kernel.exit` called from a getter while describing the error.
            Err(Some(exit_exc)) if exit_code().is_some() => return self.error_from(exit_exc, kind),
            Err(_) => return fallback_error(&self.ctx, &exc, kind),
        };
        // The Error's own stack (where it was created); else where it was
        // thrown (any value); else the last backtrace QuickJS built while
        // the artifact had hidden frames (`Error.stackTraceLimit = 0`, its
        // own `Error.prepareStackTrace`).
        let mut frames = parse_stack(&stack, self.filename);
        if frames.is_empty() {
            frames = parse_stack(&throw_trace, self.filename);
        }
        if frames.is_empty() {
            frames = parse_stack(&last_trace, self.filename);
        }
        let (mut line, mut column) = innermost(&frames);
        if kind == ErrorKind::Syntax && line.is_none() {
            // Compile errors carry their position as `at file:line:col`.
            if let Some((l, c)) = syntax_position(&stack, self.filename) {
                line = Some(l);
                column = Some(c);
            }
        }
        let globals = if kind == ErrorKind::Runtime {
            self.globals()
        } else {
            Vec::new()
        };
        GuestError {
            kind,
            class,
            message,
            line,
            column,
            stack: frames,
            exit_code: None,
            globals,
        }
    }

    /// QuickJS's backtrace of the throw site of the exception that last
    /// escaped to the host (kept for any thrown value, Error or not, and
    /// unaffected by what the artifact did to `Error.prototype.stack`), or
    /// ''. Taking it clears it.
    fn take_throw_trace(&self) -> String {
        extern "C" {
            fn js_std_cmd(cmd: std::ffi::c_int, ...) -> usize;
        }
        let mut v = qjs::JS_UNDEFINED;
        // SAFETY: command 2 (ErrorBackTrace) moves the context's backtrace
        // value (owned) into `v` and leaves undefined in its place.
        unsafe { js_std_cmd(2, self.raw(), &mut v as *mut qjs::JSValue) };
        // SAFETY: `v` is an owned value of this context.
        let val = unsafe { Value::from_raw(self.ctx.clone(), v) };
        if val.is_string() {
            js_string(&self.ctx, &val).unwrap_or_default()
        } else {
            String::new()
        }
    }

    /// The artifact's top-level variables, best effort: nothing when the
    /// snapshot itself fails (an exception is never left pending).
    fn globals(&mut self) -> Vec<Variable> {
        let Some(h) = self.helpers.as_ref() else {
            return Vec::new();
        };
        let list: Array = match h.globals.call((self.source,)) {
            Ok(a) => a,
            Err(_) => {
                let _ = self.ctx.catch();
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for i in 0..list.len() {
            let Ok(item) = list.get::<Array>(i) else {
                continue;
            };
            let get = |j: usize| -> Option<String> {
                let v: Value = item.get(j).ok()?;
                js_string(&self.ctx, &v)
            };
            if let (Some(name), Some(type_name), Some(preview)) = (get(0), get(1), get(2)) {
                out.push(Variable {
                    name,
                    type_name,
                    preview,
                });
            }
        }
        let _ = self.ctx.catch();
        out
    }

    /// `[class, message, stack]` from the prelude's `describe`; on failure,
    /// the exception it threw, if any.
    fn describe(
        &mut self,
        exc: &Value<'js>,
    ) -> Result<(String, String, String, String), Option<Value<'js>>> {
        let Some(helpers) = self.helpers.as_ref() else {
            return Err(None);
        };
        let parts: Array = match helpers.describe.call((exc.clone(),)) {
            Ok(a) => a,
            Err(_) => return Err(Some(self.ctx.catch())),
        };
        let get = |i: usize| -> Option<String> {
            let v: Value = parts.get(i).ok()?;
            js_string(&self.ctx, &v)
        };
        match (get(0), get(1), get(2)) {
            (Some(c), Some(m), Some(s)) => Ok((c, m, s, get(3).unwrap_or_default())),
            _ => {
                let _ = self.ctx.catch();
                Err(None)
            }
        }
    }
}

/// Read and run a precompiled script; its completion value is a function.
fn load_bytecode<'js>(ctx: &Ctx<'js>, bytecode: &[u8]) -> rquickjs::Result<Function<'js>> {
    let raw = ctx.as_raw().as_ptr();
    // SAFETY: trusted bytecode written by build.rs with the same QuickJS-ng;
    // JS_EvalFunction takes ownership of the function object. A failure
    // leaves the exception pending for the caller.
    unsafe {
        let obj = qjs::JS_ReadObject(
            raw,
            bytecode.as_ptr(),
            bytecode.len() as qjs::size_t,
            qjs::JS_READ_OBJ_BYTECODE as i32,
        );
        if qjs::JS_IsException(obj) {
            return Err(JsError::Exception);
        }
        let v = qjs::JS_EvalFunction(raw, obj);
        if qjs::JS_IsException(v) {
            return Err(JsError::Exception);
        }
        Value::from_raw(ctx.clone(), v)
            .into_function()
            .ok_or_else(|| JsError::new_from_js("script", "function"))
    }
}

enum Settled<'js> {
    NotAPromise,
    Pending,
    Fulfilled(Value<'js>),
    Rejected(Value<'js>),
}

fn exit_code() -> Option<i32> {
    EXIT_CODE.with(|c| c.get())
}

/// Best effort when the prelude's `describe` failed (e.g. out of memory).
fn fallback_error<'js>(ctx: &Ctx<'js>, exc: &Value<'js>, kind: ErrorKind) -> GuestError {
    let _ = ctx.catch();
    let mut class = "InternalError".to_string();
    let mut message = "the thrown value could not be described".to_string();
    if let Some(obj) = exc.as_object() {
        if let Some(n) = obj
            .get::<_, Value>("name")
            .ok()
            .and_then(|v| js_string(ctx, &v))
        {
            class = n;
        }
        if let Some(m) = obj
            .get::<_, Value>("message")
            .ok()
            .and_then(|v| js_string(ctx, &v))
        {
            message = m;
        }
    } else if let Some(s) = js_string(ctx, exc) {
        class = exc.type_name().to_string();
        message = s;
    }
    let _ = ctx.catch();
    GuestError {
        kind,
        class,
        message,
        line: None,
        column: None,
        stack: Vec::new(),
        exit_code: None,
        globals: Vec::new(),
    }
}

fn innermost(frames: &[Frame]) -> (Option<u32>, Option<u32>) {
    match frames.last() {
        Some(f) => (Some(f.line), Some(f.column)),
        None => (None, None),
    }
}

/// A C string for QuickJS; interior NULs (never in real file names) are dropped.
fn c_string(s: &str) -> std::ffi::CString {
    let bytes: Vec<u8> = s.bytes().filter(|&b| b != 0).collect();
    std::ffi::CString::new(bytes).unwrap_or_default()
}

/// Copy a JS value's string conversion into a Rust `String` without aborting
/// on allocation failure. `None` leaves no exception pending.
pub(crate) fn js_string<'js>(ctx: &Ctx<'js>, v: &Value<'js>) -> Option<String> {
    let raw_ctx = ctx.as_raw().as_ptr();
    // SAFETY: the C string is freed with JS_FreeCString before returning.
    unsafe {
        let mut len: qjs::size_t = 0;
        let p = qjs::JS_ToCStringLen2(raw_ctx, &mut len, v.as_raw(), false);
        if p.is_null() {
            let _ = ctx.catch();
            return None;
        }
        let bytes = std::slice::from_raw_parts(p as *const u8, len as usize);
        let mut buf: Vec<u8> = Vec::new();
        let ok = buf.try_reserve_exact(bytes.len()).is_ok();
        if ok {
            buf.extend_from_slice(bytes);
        }
        qjs::JS_FreeCString(raw_ctx, p);
        if !ok {
            return None;
        }
        Some(wtf8_lossy(buf))
    }
}

/// A string from QuickJS's UTF-8 output, in which a lone surrogate comes out
/// as its 3-byte WTF-8 encoding (`ED A0..BF xx`): each such sequence (and any
/// other invalid sequence) becomes one U+FFFD, so that only well-formed text
/// crosses the WIT boundary and one bad code unit stays one character.
pub(crate) fn wtf8_lossy(buf: Vec<u8>) -> String {
    let err = match String::from_utf8(buf) {
        Ok(s) => return s,
        Err(e) => e,
    };
    let bytes = err.as_bytes();
    let mut out = String::new();
    if out.try_reserve_exact(bytes.len()).is_err() {
        return String::new();
    }
    let mut rest = bytes;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                out.push_str(s);
                break;
            }
            Err(e) => {
                let (good, bad) = rest.split_at(e.valid_up_to());
                // SAFETY: `good` was just validated as UTF-8.
                out.push_str(unsafe { std::str::from_utf8_unchecked(good) });
                out.push('\u{FFFD}');
                let skip = if bad.len() >= 3
                    && bad[0] == 0xED
                    && (0xA0..=0xBF).contains(&bad[1])
                    && (0x80..=0xBF).contains(&bad[2])
                {
                    3 // a surrogate code unit
                } else {
                    e.error_len().unwrap_or(bad.len())
                };
                rest = &bad[skip..];
            }
        }
    }
    out
}

// ------------------------------------------------------------------ natives

/// `native.write(fd, text)`: one write of the whole text to stdout (1) or
/// stderr (2), straight from QuickJS's buffer.
fn native_write<'js>(ctx: Ctx<'js>, fd: i32, text: Value<'js>) -> rquickjs::Result<()> {
    let raw_ctx = ctx.as_raw().as_ptr();
    // SAFETY: the C string is freed with JS_FreeCString below.
    unsafe {
        let mut len: qjs::size_t = 0;
        let p = qjs::JS_ToCStringLen2(raw_ctx, &mut len, text.as_raw(), false);
        if p.is_null() {
            return Err(JsError::Exception);
        }
        let bytes = std::slice::from_raw_parts(p as *const u8, len as usize);
        if fd == 2 {
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(bytes);
            let _ = err.flush();
        } else {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(bytes);
            let _ = out.flush();
        }
        qjs::JS_FreeCString(raw_ctx, p);
    }
    Ok(())
}

/// `native.log(level, message, [k1, v1, k2, v2, ...])` → `log::write`.
fn native_log<'js>(
    ctx: Ctx<'js>,
    level: i32,
    message: Value<'js>,
    flat: Array<'js>,
) -> rquickjs::Result<()> {
    let level = match level {
        0 => klog::Level::Debug,
        1 => klog::Level::Info,
        2 => klog::Level::Warn,
        _ => klog::Level::Error,
    };
    let oom = |ctx: &Ctx<'js>| -> JsError {
        // SAFETY: throws QuickJS's out-of-memory error on this context.
        unsafe { qjs::JS_ThrowOutOfMemory(ctx.as_raw().as_ptr()) };
        JsError::Exception
    };
    let message = js_string(&ctx, &message).ok_or_else(|| oom(&ctx))?;
    let n = flat.len() / 2;
    let mut fields = Vec::new();
    fields.try_reserve_exact(n).map_err(|_| oom(&ctx))?;
    for i in 0..n {
        let k: Value = flat.get(2 * i)?;
        let v: Value = flat.get(2 * i + 1)?;
        let key = js_string(&ctx, &k).ok_or_else(|| oom(&ctx))?;
        let value = js_string(&ctx, &v).ok_or_else(|| oom(&ctx))?;
        fields.push(klog::Field { key, value });
    }
    klog::write(level, &message, &fields);
    Ok(())
}

/// `native.exit(code)`: record the code and throw an uncatchable error that
/// unwinds the artifact (try/catch and finally blocks do not see it).
fn native_exit<'js>(ctx: Ctx<'js>, code: i32) -> rquickjs::Result<()> {
    EXIT_CODE.with(|c| c.set(Some(code)));
    let raw_ctx = ctx.as_raw().as_ptr();
    // SAFETY: JS_NewError returns an owned value (or an exception).
    let err = unsafe { qjs::JS_NewError(raw_ctx) };
    if unsafe { qjs::JS_IsException(err) } {
        return Err(JsError::Exception);
    }
    let err = unsafe { Value::from_raw(ctx.clone(), err) };
    if let Some(obj) = err.as_object() {
        let _ = obj.set("message", format!("kernel.exit({code})"));
    }
    unsafe { qjs::JS_SetUncatchableError(raw_ctx, err.as_raw()) };
    Err(ctx.throw(err))
}

/// `native.now()`: milliseconds of the WASI monotonic clock since the run's
/// first reading.
fn native_now() -> f64 {
    let now = Instant::now();
    let base = CLOCK_BASE.with(|c| match c.get() {
        Some(b) => b,
        None => {
            c.set(Some(now));
            now
        }
    });
    now.duration_since(base).as_secs_f64() * 1000.0
}

/// `Math.random()`: xoshiro256** seeded per run by [`seed_random`].
fn native_random() -> f64 {
    RNG.with(|c| {
        let mut s = c.get();
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        c.set(s);
        (result >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    })
}

/// Seed `Math.random` from WASI random, which the
/// host can seed for reproducible runs; QuickJS-ng itself seeds from the clock.
fn seed_random() {
    // Fresh entropy from the host (WASI `get-random-bytes`) on every run.
    // Not `RandomState`: std caches its keys per thread, and the Wizer
    // snapshot would bake them into every instance.
    extern "C" {
        fn getentropy(buf: *mut u8, len: usize) -> i32;
    }
    let mut seed = [0u8; 8];
    // SAFETY: `seed` is a valid 8-byte buffer (getentropy allows up to 256).
    let ok = unsafe { getentropy(seed.as_mut_ptr(), seed.len()) } == 0;
    let mut x = if ok {
        u64::from_le_bytes(seed)
    } else {
        0x6c6c_6d6f_7300
    };
    let mut state = [0u64; 4];
    for word in state.iter_mut() {
        // splitmix64
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        *word = z ^ (z >> 31);
    }
    if state == [0; 4] {
        state[0] = 1;
    }
    RNG.with(|c| c.set(state));
}

/// `native.promiseState(v)`: `undefined` for a non-promise, else
/// `[state, result]` with state 0 pending, 1 fulfilled, 2 rejected.
fn native_promise_state<'js>(ctx: Ctx<'js>, v: Value<'js>) -> rquickjs::Result<Value<'js>> {
    let raw_ctx = ctx.as_raw().as_ptr();
    // SAFETY: promise inspection on a value of this context.
    unsafe {
        if !qjs::JS_IsPromise(v.as_raw()) {
            return Ok(Value::new_undefined(ctx));
        }
        let state = qjs::JS_PromiseState(raw_ctx, v.as_raw());
        let arr = Array::new(ctx.clone())?;
        arr.set(0, state as i32)?;
        if state == qjs::JSPromiseStateEnum_JS_PROMISE_PENDING {
            arr.set(1, Value::new_undefined(ctx.clone()))?;
        } else {
            let r = Value::from_raw(ctx.clone(), qjs::JS_PromiseResult(raw_ctx, v.as_raw()));
            arr.set(1, r)?;
        }
        Ok(arr.into_value())
    }
}

// ------------------------------------------------------------------ stacks

/// Parse QuickJS-ng stack text, keeping only frames in `filename`;
/// outermost first. Frame lines look like
/// `    at f (file.js:3:33)`, `    at <anonymous> (file.js:1:2)`,
/// `    at file.js:3:5` (compile errors), `    at f (native)`.
fn parse_stack(stack: &str, filename: &str) -> Vec<Frame> {
    let mut frames: Vec<Frame> = stack
        .lines()
        .filter_map(|l| parse_frame(l, filename))
        .collect();
    frames.reverse();
    frames
}

fn parse_frame(line: &str, filename: &str) -> Option<Frame> {
    let rest = line.trim_start().strip_prefix("at ")?;
    let (function, loc) = match rest.strip_suffix(')') {
        Some(body) => {
            let pat = format!("({filename}:");
            let idx = body.rfind(&pat)?;
            (body[..idx].trim_end(), &body[idx + 1..])
        }
        None => ("<eval>", rest),
    };
    let (line, column) = parse_location(loc, filename)?;
    Some(Frame {
        function: function.to_string(),
        file: filename.to_string(),
        line,
        column,
    })
}

/// `file:line:col` → (line, col) when `file` is `filename`.
fn parse_location(loc: &str, filename: &str) -> Option<(u32, u32)> {
    let tail = loc.strip_prefix(filename)?.strip_prefix(':')?;
    let (l, c) = tail.split_once(':')?;
    Some((l.trim().parse().ok()?, c.trim().parse().ok()?))
}

/// Position of a compile error: the first `at file:line:col` line.
fn syntax_position(stack: &str, filename: &str) -> Option<(u32, u32)> {
    stack
        .lines()
        .find_map(|l| parse_location(l.trim_start().strip_prefix("at ")?, filename))
}
