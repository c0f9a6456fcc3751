//! llmos Lua guest: Lua 5.4 (PUC-Rio, vendored by mlua's `lua-src`) behind
//! the `llmos:kernel/language-preinit` world.
//!
//! `init` (run at build time under Wizer) creates the Lua state, opens the
//! safe standard libraries, evaluates the prelude (`src/prelude.lua`: print,
//! io, os, require, value display, error description) and the kernel module
//! (`volumes/system/kernel/lua/kernel.lua`), so every run's fresh instance
//! starts from a ready interpreter.
//!
//! `run` / `run-cell` compile the artifact as a chunk named `@<filename>`
//! (first as `return (<source>)`, REPL-style, then as statements), call it
//! under a message handler that records the artifact's frames and
//! top-level locals at the error point, and report either the display of
//! the first returned value or a typed error.
//!
//! The Lua C API is used directly (`mlua::ffi`): mlua's own allocator
//! aborts when memory runs out, where Lua must see a failed allocation and
//! raise its memory error, and mlua turns callback errors into userdata
//! wrappers where llmos wants Lua's own error values.
//!
//! The guest never panics on artifact input: every failure becomes a
//! `guest-error`, strings that cross the WIT boundary are well-formed
//! UTF-8 and bounded.

use std::cell::{Cell, RefCell};
use std::ffi::{c_char, c_int, c_void, CStr};
use std::io::Write;
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use mlua::ffi::{self, lua_Debug, lua_State};

wit_bindgen::generate!({
    path: "../../wit",
    world: "language-preinit",
});

use exports::llmos::kernel::interpreter::{ErrorKind, Frame, GuestError, Info, Success, Variable};

mod kernel;
mod lua;

use lua::{arg_bytes, arg_number, lossy, string_at};

/// The prelude, evaluated once by `init` under this chunk name.
const PRELUDE: &str = include_str!("prelude.lua");
const PRELUDE_NAME: &CStr = c"=<llmos:prelude>";
/// The kernel module, from the system volume.
const KERNEL: &str = include_str!("../../../volumes/system/kernel/lua/kernel.lua");
const KERNEL_NAME: &CStr = c"=<llmos:kernel>";
/// Used when the host passes an empty file name.
const DEFAULT_FILENAME: &str = "artifact.lua";
/// Bounds on what is built from artifact data.
const VALUE_LIMIT: usize = 16 * 1024;
const MESSAGE_LIMIT: usize = 4096;
const NAME_LIMIT: usize = 200;
/// Memory set aside during a run and released when it ends, so that an
/// error can be described even when the artifact used all the memory.
const BALLAST_BYTES: usize = 1 << 20;
/// Frames recorded at an error: the innermost ones, then the outermost.
const INNER_FRAMES: c_int = 48;
const OUTER_FRAMES: c_int = 16;

thread_local! {
    /// The pre-initialised state built by `init` (Wizer snapshot); the
    /// first `run` (or the first cell) on an instance takes it.
    static WARM: Cell<Option<State>> = const { Cell::new(None) };
    /// The session's state between cells (`run-cell`).
    static SESSION: Cell<Option<State>> = const { Cell::new(None) };
    /// Set by `os.exit` / `kernel.exit`; the run ends with an `exit` error.
    static EXIT_CODE: Cell<Option<i32>> = const { Cell::new(None) };
    /// Set when the count hook stopped the artifact just before a limit:
    /// `out_of_fuel` or `timeout` (see [`stop_hook`]).
    static STOPPED: Cell<Option<&'static str>> = const { Cell::new(None) };
    /// Origin of `os.clock`: the run's first reading, taken lazily.
    static CLOCK_BASE: Cell<Option<Instant>> = const { Cell::new(None) };
    /// See [`BALLAST_BYTES`].
    static BALLAST: Cell<Option<Vec<u8>>> = const { Cell::new(None) };
    /// The state running an artifact (null outside of runs).
    static RUNNING: Cell<*mut lua_State> = const { Cell::new(ptr::null_mut()) };
    /// What the message handler recorded about the error being raised.
    static CAPTURE: RefCell<Capture> = const { RefCell::new(Capture::new()) };
}

/// A Lua state and the prelude's helpers (registry references).
#[derive(Clone, Copy)]
struct State {
    l: *mut lua_State,
    inspect: c_int,
    describe: c_int,
    variables: c_int,
    randomseed: c_int,
}

/// One artifact frame recorded by the message handler (no allocation: the
/// handler runs at the error point, possibly short of memory).
#[derive(Clone, Copy)]
struct RawFrame {
    name: [u8; 48],
    name_len: u8,
    kind: FrameKind,
    line: i32,
}

#[derive(Clone, Copy, PartialEq)]
enum FrameKind {
    Main,
    Named,
    Anonymous,
}

struct Capture {
    /// The artifact's chunk name (`@filename`), compared with each frame's source.
    chunk: Vec<u8>,
    /// The message handler is running (an error inside it is not recorded).
    in_handler: bool,
    /// Artifact frames, innermost first.
    frames: Vec<RawFrame>,
    /// Level (relative to the handler) of the artifact's main chunk, if on the stack.
    main_level: Option<c_int>,
}

impl Capture {
    const fn new() -> Self {
        Capture {
            chunk: Vec::new(),
            in_handler: false,
            frames: Vec::new(),
            main_level: None,
        }
    }
}

/// Registry key of the main chunk's locals captured at the last error.
static LOCALS_KEY: u8 = 0;

fn locals_key() -> *const c_void {
    &LOCALS_KEY as *const u8 as *const c_void
}

struct Component;

impl Guest for Component {
    /// Build the Lua state, the prelude and the kernel module once, before
    /// any run. Touches no WASI resource (no output).
    fn init() {
        if let Ok(st) = unsafe { new_state() } {
            WARM.with(|w| w.set(Some(st)));
        }
    }
}

impl exports::llmos::kernel::interpreter::Guest for Component {
    fn describe() -> Info {
        Info {
            language: "lua".to_string(),
            version: concat!("Lua ", env!("LLMOS_LUA_RELEASE"), " (mlua 0.12)").to_string(),
        }
    }

    fn run(source: String, filename: String) -> Result<Success, GuestError> {
        // A fresh interpreter for every run: the snapshot's, else a new
        // one. A used state is never closed: closing would run the
        // artifact's __gc finalizers outside its run.
        let st = match WARM.with(|w| w.take()) {
            Some(st) => st,
            None => unsafe { new_state() }.map_err(internal_error)?,
        };
        unsafe { evaluate(st, &source, &filename) }.map(|value| Success { value })
    }
}

impl exports::llmos::kernel::session::Guest for Component {
    fn run_cell(source: String, filename: String) -> Result<Success, GuestError> {
        let st = match SESSION
            .with(|s| s.get())
            .or_else(|| WARM.with(|w| w.take()))
        {
            Some(st) => st,
            None => unsafe { new_state() }.map_err(internal_error)?,
        };
        SESSION.with(|s| s.set(Some(st)));
        unsafe { evaluate(st, &source, &filename) }.map(|value| Success { value })
    }
}

export!(Component);

fn internal_error(message: String) -> GuestError {
    GuestError {
        kind: ErrorKind::Runtime,
        class: "InternalError".to_string(),
        message,
        line: None,
        column: None,
        stack: Vec::new(),
        exit_code: None,
        globals: Vec::new(),
    }
}

// ------------------------------------------------------------------ state

/// Lua's allocator over wasi-libc's malloc: a failed allocation returns
/// NULL (Lua then collects garbage, retries, and raises its memory error).
/// A failure is remembered until the next successful allocation, so that
/// [`llmos_lua_throwing`] knows the error being thrown is that one.
unsafe extern "C" fn alloc(
    _ud: *mut c_void,
    p: *mut c_void,
    _osize: usize,
    nsize: usize,
) -> *mut c_void {
    extern "C" {
        fn realloc(p: *mut c_void, n: usize) -> *mut c_void;
        fn free(p: *mut c_void);
    }
    if nsize == 0 {
        free(p);
        return ptr::null_mut();
    }
    let q = realloc(p, nsize);
    if q.is_null() {
        ALLOC_FAILED.store(true, Ordering::Relaxed);
    } else if ALLOC_FAILED.load(Ordering::Relaxed) {
        ALLOC_FAILED.store(false, Ordering::Relaxed);
    }
    q
}

/// Set by [`alloc`] when an allocation fails, cleared by the next success.
static ALLOC_FAILED: AtomicBool = AtomicBool::new(false);

/// Called by the setjmp runtime (`csrc/setjmp_rt.c`, `llmos_throw_hook`)
/// whenever Lua is about to throw, while the stack is still intact. Lua does not call a message
/// handler for a memory error, so this is where the artifact's frames are
/// recorded for one: a throw right after a failed allocation is Lua's
/// memory error. Reads the call list only (no allocation, no Lua call that
/// can raise).
extern "C" fn llmos_lua_throwing() {
    if !ALLOC_FAILED.swap(false, Ordering::Relaxed) {
        return;
    }
    let l = RUNNING.with(|r| r.get());
    if l.is_null() {
        return;
    }
    unsafe { capture_frames(l, 0) };
}

/// A new state with the standard libraries, the prelude and the kernel.
unsafe fn new_state() -> Result<State, String> {
    extern "C" {
        static mut llmos_throw_hook: Option<extern "C" fn()>;
    }
    llmos_throw_hook = Some(llmos_lua_throwing);
    let l = ffi::lua_newstate(alloc, ptr::null_mut());
    if l.is_null() {
        return Err("cannot create a Lua state".to_string());
    }
    ffi::lua_pushcfunction(l, setup);
    if ffi::lua_pcall(l, 0, 0, 0) != ffi::LUA_OK {
        let msg = string_at(l, -1, MESSAGE_LIMIT).unwrap_or_default();
        return Err(format!("cannot set up the Lua state: {msg}"));
    }
    let refs = SETUP_REFS
        .with(|r| r.take())
        .ok_or("the Lua state has no helpers")?;
    ffi::lua_settop(l, 0);
    Ok(State {
        l,
        inspect: refs[0],
        describe: refs[1],
        variables: refs[2],
        randomseed: refs[3],
    })
}

thread_local! {
    /// Registry references made by [`setup`].
    static SETUP_REFS: Cell<Option<[c_int; 4]>> = const { Cell::new(None) };
}

/// Protected part of [`new_state`].
unsafe extern "C-unwind" fn setup(l: *mut lua_State) -> c_int {
    let libs: [(&CStr, ffi::lua_CFunction); 7] = [
        (c"_G", ffi::luaopen_base),
        (c"table", ffi::luaopen_table),
        (c"string", ffi::luaopen_string),
        (c"math", ffi::luaopen_math),
        (c"utf8", ffi::luaopen_utf8),
        (c"coroutine", ffi::luaopen_coroutine),
        (c"os", ffi::luaopen_os),
    ];
    for (name, open) in libs {
        ffi::luaL_requiref(l, name.as_ptr(), open, 1);
        ffi::lua_settop(l, 0);
    }
    // math.randomseed as the library made it, reseeded at every run.
    ffi::lua_getglobal(l, c"math".as_ptr());
    ffi::lua_getfield(l, -1, c"randomseed".as_ptr());
    // A fixed seed for the snapshot (luaopen_math seeds from the clock);
    // every run reseeds from WASI random.
    ffi::lua_pushvalue(l, -1);
    ffi::lua_pushinteger(l, 0);
    ffi::lua_call(l, 1, 0);
    let randomseed = ffi::luaL_ref(l, ffi::LUA_REGISTRYINDEX);
    ffi::lua_settop(l, 0);

    // The prelude: (native, debug) -> helpers.
    load_internal(l, PRELUDE, PRELUDE_NAME);
    push_natives(l);
    ffi::luaL_requiref(l, c"debug".as_ptr(), ffi::luaopen_debug, 0);
    ffi::lua_call(l, 2, 1);
    let helpers = ffi::lua_gettop(l);

    // The kernel module: (native, helpers) -> kernel.
    load_internal(l, KERNEL, KERNEL_NAME);
    push_natives(l);
    ffi::lua_pushvalue(l, helpers);
    ffi::lua_call(l, 2, 1);
    let kernel = ffi::lua_gettop(l);
    ffi::lua_pushvalue(l, kernel);
    ffi::lua_setglobal(l, c"kernel".as_ptr());
    ffi::lua_getfield(l, helpers, c"loaded".as_ptr());
    ffi::lua_pushvalue(l, kernel);
    ffi::lua_setfield(l, -2, c"kernel".as_ptr());
    ffi::lua_settop(l, helpers);

    // Everything global now is built in.
    ffi::lua_getfield(l, helpers, c"seal".as_ptr());
    ffi::lua_call(l, 0, 0);

    let mut refs = [0; 4];
    for (i, name) in [c"inspect", c"describe", c"variables"].iter().enumerate() {
        ffi::lua_getfield(l, helpers, name.as_ptr());
        refs[i] = ffi::luaL_ref(l, ffi::LUA_REGISTRYINDEX);
    }
    refs[3] = randomseed;
    SETUP_REFS.with(|r| r.set(Some(refs)));
    // A full collection now keeps the snapshot small.
    ffi::lua_settop(l, 0);
    ffi::lua_gc(l, ffi::LUA_GCCOLLECT, 0);
    0
}

/// Load an internal chunk (raises on a syntax error: a build bug).
unsafe fn load_internal(l: *mut lua_State, source: &str, name: &CStr) {
    if ffi::luaL_loadbufferx(
        l,
        source.as_ptr() as *const c_char,
        source.len(),
        name.as_ptr(),
        c"t".as_ptr(),
    ) != ffi::LUA_OK
    {
        ffi::lua_error(l);
    }
}

/// Push a fresh `native` table: the driver's hooks and the kernel's.
unsafe fn push_natives(l: *mut lua_State) {
    ffi::lua_createtable(l, 0, 24);
    let own: [(&CStr, ffi::lua_CFunction); 4] = [
        (c"write", native_write),
        (c"exit", native_exit),
        (c"exiting", native_exiting),
        (c"clock", native_clock),
    ];
    for (name, f) in own.iter().chain(kernel::NATIVES.iter()) {
        ffi::lua_pushcfunction(l, *f);
        ffi::lua_setfield(l, -2, name.as_ptr());
    }
}

// ------------------------------------------------------------------ natives

/// `write(fd, text)`: one write of the whole text to stdout (1) or stderr
/// (2), straight from Lua's buffer, flushed.
unsafe extern "C-unwind" fn native_write(l: *mut lua_State) -> c_int {
    let fd = arg_number(l, 1);
    let bytes = arg_bytes(l, 2);
    if fd == 2.0 {
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(bytes);
        let _ = err.flush();
    } else {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(bytes);
        let _ = out.flush();
    }
    0
}

/// `exit(code)`: record the exit code (the prelude then raises its exit value).
unsafe extern "C-unwind" fn native_exit(l: *mut lua_State) -> c_int {
    let code = arg_number(l, 1);
    let code = if code.is_finite() { code as i32 } else { 1 };
    EXIT_CODE.with(|c| c.set(Some(code)));
    0
}

/// `exiting()`: whether an exit was requested (or the artifact was
/// stopped before a limit): the prelude's `pcall` then re-raises.
unsafe extern "C-unwind" fn native_exiting(l: *mut lua_State) -> c_int {
    let exiting = EXIT_CODE.with(|c| c.get()).is_some() || STOPPED.with(|s| s.get()).is_some();
    ffi::lua_pushboolean(l, exiting as c_int);
    1
}

/// Lua calls and jumps between two polls of the run's budgets.
const STOP_POLL: c_int = 10_000;

/// The VM's countdown of calls and jumps (`luai_countdown`, see
/// `patches/countdown.patch` and `csrc/include/llmos_countdown.h`).
#[no_mangle]
static mut llmos_lua_countdown: c_int = STOP_POLL;

/// Called by the VM when the countdown runs out: while an artifact runs,
/// install a count hook for the very next instruction, where [`stop_hook`]
/// polls the budgets with the VM's position saved. (A count hook left on
/// for the whole run would make every instruction call `luaG_traceexec`.)
/// Once stopped, the countdown is 1, so every call or jump raises again.
#[no_mangle]
unsafe extern "C" fn llmos_lua_poll(l: *mut lua_State) {
    let stopped = STOPPED.with(|s| s.get()).is_some();
    llmos_lua_countdown = if stopped { 1 } else { STOP_POLL };
    // `l` is the thread running: the artifact's or one of its coroutines.
    if !RUNNING.with(|r| r.get()).is_null() && !l.is_null() {
        // Safe from anywhere in the VM: `lua_sethook` is the one API
        // function meant to be called asynchronously (from signal handlers).
        ffi::lua_sethook(l, Some(stop_hook), ffi::LUA_MASKCOUNT, 1);
    }
}

/// The one-shot count hook: removes itself, polls the run's budgets
/// (`process.budget`) and stops the artifact with an error just before the
/// host would trap (a twentieth of the budget left, at most 20 M fuel or
/// 100 ms), so its position and stack can be reported; once stopped, every
/// later poll raises again and the prelude's `pcall` will not catch it.
unsafe extern "C-unwind" fn stop_hook(l: *mut lua_State, _ar: *mut ffi::lua_Debug) {
    ffi::lua_sethook(l, None, 0, 0);
    if STOPPED.with(|s| s.get()).is_none() {
        let b = llmos::kernel::process::budget();
        let near_fuel = match (b.fuel_limit, b.fuel_left) {
            (Some(limit), Some(left)) => left <= (limit / 20).min(20_000_000),
            _ => false,
        };
        let near_time = b.ms_left <= (b.ms_limit / 20).min(100);
        if !(near_fuel || near_time) {
            return;
        }
        let kind = if near_fuel { "out_of_fuel" } else { "timeout" };
        STOPPED.with(|s| s.set(Some(kind)));
    }
    ffi::lua_pushstring(l, c"stopped by llmos before a limit".as_ptr());
    ffi::lua_error(l);
}

/// `os.clock()`: seconds of the WASI monotonic clock since the run's
/// first reading (a sandbox has no process CPU clock).
unsafe extern "C-unwind" fn native_clock(l: *mut lua_State) -> c_int {
    let now = Instant::now();
    let base = CLOCK_BASE.with(|c| match c.get() {
        Some(b) => b,
        None => {
            c.set(Some(now));
            now
        }
    });
    ffi::lua_pushnumber(l, now.duration_since(base).as_secs_f64());
    1
}

// ------------------------------------------------------------------ runs

/// Reseed `math.random` from WASI random (which the host can seed for
/// reproducible runs), never from what the snapshot holds.
unsafe fn reseed(st: State) {
    extern "C" {
        fn getentropy(buf: *mut u8, len: usize) -> i32;
    }
    let mut seed = [0u8; 16];
    if getentropy(seed.as_mut_ptr(), seed.len()) != 0 {
        seed = *b"llmos-lua-seed!!";
    }
    let a = i64::from_le_bytes(seed[..8].try_into().unwrap_or_default());
    let b = i64::from_le_bytes(seed[8..].try_into().unwrap_or_default());
    let l = st.l;
    ffi::lua_rawgeti(l, ffi::LUA_REGISTRYINDEX, st.randomseed as ffi::lua_Integer);
    ffi::lua_pushinteger(l, a);
    ffi::lua_pushinteger(l, b);
    if ffi::lua_pcall(l, 2, 0, 0) != ffi::LUA_OK {
        ffi::lua_settop(l, 0);
    }
}

/// Compile and run one artifact (or cell) on `st`.
unsafe fn evaluate(st: State, source: &str, filename: &str) -> Result<Option<String>, GuestError> {
    let l = st.l;
    ffi::lua_settop(l, 0);
    EXIT_CODE.with(|c| c.set(None));
    CLOCK_BASE.with(|c| c.set(None));
    // Initialise std's stdout/stderr (and their buffers) while memory is plentiful.
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    reseed(st);
    let filename = if filename.is_empty() {
        DEFAULT_FILENAME
    } else {
        filename
    };

    // The chunk name, `@filename` (NULs dropped).
    let mut chunk: Vec<u8> = Vec::with_capacity(filename.len() + 2);
    chunk.push(b'@');
    chunk.extend(filename.bytes().filter(|&b| b != 0));
    CAPTURE.with(|c| {
        let mut c = c.borrow_mut();
        c.chunk.clear();
        c.chunk.extend_from_slice(&chunk);
        c.in_handler = false;
        c.frames.clear();
        c.frames
            .reserve(INNER_FRAMES as usize + OUTER_FRAMES as usize);
        c.main_level = None;
    });
    chunk.push(0);
    ffi::lua_pushnil(l);
    ffi::lua_rawsetp(l, ffi::LUA_REGISTRYINDEX, locals_key());

    // Index 1: the message handler.
    ffi::lua_pushcfunction(l, message_handler);

    // Compile: as an expression first, `return (<source>\n)` (the prefix on
    // the same line, so positions do not move; parenthesised, so a call is
    // not a tail call that would drop the chunk's frame), else as
    // statements. A first line starting with `#` (a shebang) is commented
    // out, as the standalone lua does.
    let body = source.as_bytes();
    let shebang: &[u8] = if body.starts_with(b"#") { b"--" } else { b"" };
    let mut text: Vec<u8> = Vec::new();
    if text.try_reserve_exact(body.len() + 12).is_err() {
        return Err(memory_error("not enough memory to compile the source"));
    }
    text.extend_from_slice(b"return (");
    text.extend_from_slice(shebang);
    text.extend_from_slice(body);
    text.extend_from_slice(b"\n)");
    let name = chunk.as_ptr() as *const c_char;
    let mut status = ffi::luaL_loadbufferx(
        l,
        text.as_ptr() as *const c_char,
        text.len(),
        name,
        c"t".as_ptr(),
    );
    if status != ffi::LUA_OK {
        ffi::lua_settop(l, 1);
        let statements = &text[8..text.len() - 2];
        status = ffi::luaL_loadbufferx(
            l,
            statements.as_ptr() as *const c_char,
            statements.len(),
            name,
            c"t".as_ptr(),
        );
        if status != ffi::LUA_OK {
            let err = compile_error(l, status, filename, source);
            ffi::lua_settop(l, 0);
            return Err(err);
        }
    }
    drop(text);

    // Run.
    let mut ballast = Vec::new();
    let _ = ballast.try_reserve_exact(BALLAST_BYTES);
    BALLAST.with(|b| b.set(Some(ballast)));
    RUNNING.with(|r| r.set(l));
    STOPPED.with(|s| s.set(None));
    llmos_lua_countdown = STOP_POLL;
    let status = ffi::lua_pcall(l, 0, ffi::LUA_MULTRET, 1);
    ffi::lua_sethook(l, None, 0, 0);
    RUNNING.with(|r| r.set(ptr::null_mut()));
    // Memory to report with, should the artifact have used it all.
    drop(BALLAST.with(|b| b.take()));

    let result = if let Some(code) = EXIT_CODE.with(|c| c.get()) {
        Err(exit_error(code, filename))
    } else if let (Some(kind), true) = (STOPPED.with(|s| s.get()), status != ffi::LUA_OK) {
        let mut e = runtime_error(st, status, filename);
        e.kind = ErrorKind::Limit;
        e.class = kind.to_string();
        e.message = match kind {
            "timeout" => {
                "stopped just before its time limit: the artifact was still running here".into()
            }
            _ => "stopped just before its fuel ran out: the artifact was still running here".into(),
        };
        Err(e)
    } else if status != ffi::LUA_OK {
        let err = runtime_error(st, status, filename);
        // `kernel.exit` from a __tostring run while describing the error.
        match EXIT_CODE.with(|c| c.get()) {
            Some(code) => Err(exit_error(code, filename)),
            None => Err(err),
        }
    } else if ffi::lua_gettop(l) < 2 || ffi::lua_type(l, 2) == ffi::LUA_TNIL {
        Ok(None)
    } else {
        display(st, 2, filename)
    };
    ffi::lua_settop(l, 0);
    ffi::lua_pushnil(l);
    ffi::lua_rawsetp(l, ffi::LUA_REGISTRYINDEX, locals_key());
    result
}

/// The display of the value at `idx` (the prelude's `inspect`).
unsafe fn display(st: State, idx: c_int, filename: &str) -> Result<Option<String>, GuestError> {
    let l = st.l;
    ffi::lua_rawgeti(l, ffi::LUA_REGISTRYINDEX, st.inspect as ffi::lua_Integer);
    ffi::lua_pushvalue(l, idx);
    ffi::lua_pushinteger(l, VALUE_LIMIT as ffi::lua_Integer);
    ffi::lua_pushinteger(l, 4);
    let status = ffi::lua_pcall(l, 3, 1, 0);
    // `kernel.exit` from a __tostring metamethod.
    if let Some(code) = EXIT_CODE.with(|c| c.get()) {
        return Err(exit_error(code, filename));
    }
    if status == ffi::LUA_OK {
        if let Some(s) = string_at(l, -1, VALUE_LIMIT + 3) {
            return Ok(Some(s));
        }
    }
    Ok(Some("<the value could not be displayed>".to_string()))
}

// ------------------------------------------------------------------ errors

/// The message handler of an artifact's call: at the error point, before
/// the stack unwinds, record the artifact's frames and its main chunk's
/// locals. Returns the error value unchanged.
unsafe extern "C-unwind" fn message_handler(l: *mut lua_State) -> c_int {
    let entered = CAPTURE.with(|c| {
        let mut c = c.borrow_mut();
        !std::mem::replace(&mut c.in_handler, true)
    });
    if entered {
        // Level 0 is this handler.
        capture_frames(l, 1);
        let main = CAPTURE.with(|c| c.borrow().main_level);
        if main.is_some() && ffi::lua_checkstack(l, 4) != 0 {
            ffi::lua_pushcfunction(l, capture_locals);
            if ffi::lua_pcall(l, 0, 0, 0) != ffi::LUA_OK {
                ffi::lua_settop(l, 1);
            }
        }
        CAPTURE.with(|c| c.borrow_mut().in_handler = false);
    }
    ffi::lua_settop(l, 1);
    1
}

/// Record the artifact's frames (innermost first): the innermost
/// [`INNER_FRAMES`] levels and the outermost [`OUTER_FRAMES`] (finding the
/// depth by exponential and binary search: `lua_getstack` walks the call
/// list, so visiting every level of a deep recursion would be quadratic).
/// Uses no Lua call that can raise and allocates nothing.
unsafe fn capture_frames(l: *mut lua_State, first_level: c_int) {
    let mut ar: lua_Debug = std::mem::zeroed();
    let exists = |level: c_int, ar: &mut lua_Debug| ffi::lua_getstack(l, level, ar) != 0;
    let mut depth = None;
    CAPTURE.with(|c| {
        let mut c = c.borrow_mut();
        let c = &mut *c;
        c.frames.clear();
        c.main_level = None;
        for level in first_level..=INNER_FRAMES {
            if !exists(level, &mut ar) {
                depth = Some(level);
                break;
            }
            record(l, &mut ar, level, c);
        }
    });
    let depth = match depth {
        Some(d) => d,
        None => {
            let (mut lo, mut hi) = (INNER_FRAMES, INNER_FRAMES * 2);
            while hi < (1 << 26) && exists(hi, &mut ar) {
                lo = hi;
                hi *= 2;
            }
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if exists(mid, &mut ar) {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            hi
        }
    };
    if depth > INNER_FRAMES + 1 {
        let from = (INNER_FRAMES + 1).max(depth - OUTER_FRAMES);
        CAPTURE.with(|c| {
            let mut c = c.borrow_mut();
            let c = &mut *c;
            for level in from..depth {
                if exists(level, &mut ar) {
                    record(l, &mut ar, level, c);
                }
            }
        });
    }
}

/// Record level `level` (already in `ar`) if it runs the artifact's chunk.
unsafe fn record(l: *mut lua_State, ar: &mut lua_Debug, level: c_int, c: &mut Capture) {
    if ffi::lua_getinfo(l, c"Sln".as_ptr(), ar) == 0 || ar.source.is_null() {
        return;
    }
    let source = std::slice::from_raw_parts(ar.source as *const u8, ar.srclen);
    if source != c.chunk.as_slice() || ar.currentline < 1 {
        return;
    }
    let what = if ar.what.is_null() {
        &b""[..]
    } else {
        CStr::from_ptr(ar.what).to_bytes()
    };
    let mut frame = RawFrame {
        name: [0; 48],
        name_len: 0,
        kind: FrameKind::Anonymous,
        line: ar.currentline,
    };
    if what == b"main" {
        frame.kind = FrameKind::Main;
        c.main_level = Some(level);
    } else if !ar.name.is_null() {
        let name = CStr::from_ptr(ar.name).to_bytes();
        let n = name.len().min(frame.name.len());
        frame.name[..n].copy_from_slice(&name[..n]);
        frame.name_len = n as u8;
        frame.kind = FrameKind::Named;
    }
    if c.frames.len() < c.frames.capacity() {
        c.frames.push(frame);
    }
}

/// Protected, called by the message handler: the main chunk's active
/// locals as `{name1, value1, ..., n = 2k}` in the registry.
unsafe extern "C-unwind" fn capture_locals(l: *mut lua_State) -> c_int {
    let Some(main) = CAPTURE.with(|c| c.borrow().main_level) else {
        return 0;
    };
    let mut ar: lua_Debug = std::mem::zeroed();
    // One level deeper than from the handler: this function is level 0.
    if ffi::lua_getstack(l, main + 1, &mut ar) == 0 {
        return 0;
    }
    ffi::lua_createtable(l, 32, 1);
    let t = ffi::lua_gettop(l);
    let mut k: ffi::lua_Integer = 0;
    for n in 1..=200 {
        let name = ffi::lua_getlocal(l, &ar, n);
        if name.is_null() {
            break;
        }
        if *name == b'(' as c_char {
            // (temporary), (for state)...
            ffi::lua_settop(l, t);
            continue;
        }
        ffi::lua_pushstring(l, name);
        ffi::lua_rawseti(l, t, k + 1);
        ffi::lua_rawseti(l, t, k + 2);
        k += 2;
    }
    ffi::lua_pushinteger(l, k);
    ffi::lua_setfield(l, t, c"n".as_ptr());
    ffi::lua_rawsetp(l, ffi::LUA_REGISTRYINDEX, locals_key());
    0
}

/// The frames the handler recorded, as WIT frames (outermost first).
fn take_frames(filename: &str) -> Vec<Frame> {
    let raw: Vec<RawFrame> = CAPTURE.with(|c| std::mem::take(&mut c.borrow_mut().frames));
    raw.iter()
        .rev()
        .map(|f| Frame {
            function: match f.kind {
                FrameKind::Main => "<main>".to_string(),
                FrameKind::Anonymous => "<anonymous>".to_string(),
                FrameKind::Named => lossy(&f.name[..f.name_len as usize], 64).unwrap_or_default(),
            },
            file: filename.to_string(),
            line: f.line.max(1) as u32,
            column: 1,
        })
        .collect()
}

fn innermost(frames: &[Frame]) -> (Option<u32>, Option<u32>) {
    match frames.last() {
        Some(f) => (Some(f.line), Some(f.column)),
        None => (None, None),
    }
}

fn exit_error(code: i32, filename: &str) -> GuestError {
    let stack = take_frames(filename);
    let (line, column) = innermost(&stack);
    GuestError {
        kind: ErrorKind::Exit,
        class: "Exit".to_string(),
        message: format!("exit({code})"),
        line,
        column,
        stack,
        exit_code: Some(code),
        globals: Vec::new(),
    }
}

fn memory_error(message: &str) -> GuestError {
    GuestError {
        kind: ErrorKind::Runtime,
        class: "MemoryError".to_string(),
        message: message.to_string(),
        line: None,
        column: None,
        stack: Vec::new(),
        exit_code: None,
        globals: Vec::new(),
    }
}

/// How Lua names the chunk in messages (`luaO_chunkid` for `@` sources,
/// LUA_IDSIZE = 60): the file name, or "..." and its end when long.
fn short_src(filename: &str) -> Vec<u8> {
    let name: Vec<u8> = filename.bytes().filter(|&b| b != 0).collect();
    const IDSIZE: usize = 60;
    if name.len() < IDSIZE {
        name
    } else {
        let keep = IDSIZE - 4;
        let mut out = b"...".to_vec();
        out.extend_from_slice(&name[name.len() - keep..]);
        out
    }
}

/// Split `short_src:line: message` into (line, message) when the prefix
/// names the artifact's chunk.
fn strip_position<'a>(msg: &'a [u8], src: &[u8]) -> (Option<u32>, &'a [u8]) {
    let Some(rest) = msg.strip_prefix(src).and_then(|r| r.strip_prefix(b":")) else {
        return (None, msg);
    };
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 9 {
        return (None, msg);
    }
    let Some(tail) = rest[digits..].strip_prefix(b":") else {
        return (None, msg);
    };
    let line = std::str::from_utf8(&rest[..digits])
        .ok()
        .and_then(|s| s.parse().ok());
    (line, tail.strip_prefix(b" ").unwrap_or(tail))
}

/// A compile failure: the error message is at the top of the stack.
unsafe fn compile_error(
    l: *mut lua_State,
    status: c_int,
    filename: &str,
    source: &str,
) -> GuestError {
    if status == ffi::LUA_ERRMEM {
        return memory_error("not enough memory to compile the source");
    }
    let msg = arg_bytes(l, -1);
    let (line, text) = strip_position(msg, &short_src(filename));
    let message = lossy(text, MESSAGE_LIMIT).unwrap_or_default();
    // "near <eof>" after a final newline names the line past the end.
    let last = source.lines().count().max(1) as u32;
    let line = line.map(|n| n.min(last));
    let column = line.and_then(|n| near_column(source, n, &message));
    GuestError {
        kind: ErrorKind::Syntax,
        class: "SyntaxError".to_string(),
        message,
        line: line.or(Some(1)),
        column,
        stack: Vec::new(),
        exit_code: None,
        globals: Vec::new(),
    }
}

/// Best-effort column of a syntax error: Lua says "... near 'tok'"; when
/// `tok` occurs exactly once on the error's line, its 1-based column.
fn near_column(source: &str, line: u32, message: &str) -> Option<u32> {
    let start = message.rfind("near '")? + 6;
    let tok = message[start..].strip_suffix('\'')?;
    if tok.is_empty() {
        return None;
    }
    let text = source.lines().nth(line.checked_sub(1)? as usize)?;
    let at = text.find(tok)?;
    if text[at + tok.len()..].contains(tok) {
        return None;
    }
    Some(text[..at].chars().count() as u32 + 1)
}

/// A run-time failure: the error value is at the top of the stack.
unsafe fn runtime_error(st: State, status: c_int, filename: &str) -> GuestError {
    let l = st.l;
    let err = ffi::lua_gettop(l);
    if status == ffi::LUA_ERRMEM {
        // Whatever the artifact was building is garbage now.
        ffi::lua_gc(l, ffi::LUA_GCCOLLECT, 0);
    }
    let (class, mut message) = describe(st, err);
    let src = short_src(filename);
    let class = match class {
        Some(c) => c,
        None => {
            // A string error: drop Lua's position prefix when it is the
            // artifact's own (the line reported is the innermost frame's).
            let (_, text) = strip_position(message.as_bytes(), &src);
            let text = text.to_vec();
            message = lossy(&text, MESSAGE_LIMIT).unwrap_or_default();
            let class = if status == ffi::LUA_ERRMEM || message == "not enough memory" {
                "MemoryError"
            } else if status == ffi::LUA_ERRERR
                || message == "stack overflow"
                || message == "C stack overflow"
                || message.ends_with(": stack overflow")
            {
                "StackOverflowError"
            } else {
                "RuntimeError"
            };
            class.to_string()
        }
    };
    if status == ffi::LUA_ERRERR && message == "error in error handling" {
        message = "stack overflow (while handling an error)".to_string();
    }
    let stack = take_frames(filename);
    let (line, column) = innermost(&stack);
    let globals = variables(st);
    GuestError {
        kind: ErrorKind::Runtime,
        class,
        message,
        line,
        column,
        stack,
        exit_code: None,
        globals,
    }
}

/// (class, message) of the error value at `idx` from the prelude's
/// `describe`: no class for a string (classified by the caller).
unsafe fn describe(st: State, idx: c_int) -> (Option<String>, String) {
    let l = st.l;
    let top = ffi::lua_gettop(l);
    if ffi::lua_type(l, idx) == ffi::LUA_TSTRING {
        return (
            None,
            lossy(arg_bytes(l, idx), MESSAGE_LIMIT * 2).unwrap_or_default(),
        );
    }
    ffi::lua_rawgeti(l, ffi::LUA_REGISTRYINDEX, st.describe as ffi::lua_Integer);
    ffi::lua_pushvalue(l, idx);
    let out = if ffi::lua_pcall(l, 1, 2, 0) == ffi::LUA_OK {
        let class = string_at(l, -2, NAME_LIMIT);
        let message = string_at(l, -1, MESSAGE_LIMIT).unwrap_or_default();
        (
            Some(class.unwrap_or_else(|| "RuntimeError".to_string())),
            message,
        )
    } else {
        (
            Some("RuntimeError".to_string()),
            "<the error value could not be described>".to_string(),
        )
    };
    ffi::lua_settop(l, top);
    out
}

/// The artifact's top-level variables (the prelude's `variables`, fed the
/// locals the handler captured); best effort, empty on failure.
unsafe fn variables(st: State) -> Vec<Variable> {
    let l = st.l;
    let top = ffi::lua_gettop(l);
    let mut out = Vec::new();
    ffi::lua_rawgeti(l, ffi::LUA_REGISTRYINDEX, st.variables as ffi::lua_Integer);
    ffi::lua_rawgetp(l, ffi::LUA_REGISTRYINDEX, locals_key());
    if ffi::lua_pcall(l, 1, 1, 0) == ffi::LUA_OK && ffi::lua_type(l, -1) == ffi::LUA_TTABLE {
        let list = ffi::lua_gettop(l);
        let n = ffi::lua_rawlen(l, list).min(50);
        for i in 1..=n {
            if ffi::lua_rawgeti(l, list, i as ffi::lua_Integer) != ffi::LUA_TTABLE {
                ffi::lua_settop(l, list);
                continue;
            }
            let item = ffi::lua_gettop(l);
            let get = |j: ffi::lua_Integer, max: usize| {
                ffi::lua_rawgeti(l, item, j);
                let s = string_at(l, -1, max);
                ffi::lua_settop(l, item);
                s
            };
            if let (Some(name), Some(type_name), Some(preview)) =
                (get(1, NAME_LIMIT), get(2, 32), get(3, 250))
            {
                out.push(Variable {
                    name,
                    type_name,
                    preview,
                });
            }
            ffi::lua_settop(l, list);
        }
    }
    ffi::lua_settop(l, top);
    out
}
