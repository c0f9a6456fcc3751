//! The typed result of running an artifact.

use serde::{Deserialize, Serialize};

use wasmtime::Trap;

use crate::bindings::interpreter;
use crate::capture::OutputLimitExceeded;
use crate::outputs::Output;

/// How a run ended: `ok`, or exactly one kind of failure.
#[cfg_attr(feature = "serve", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The artifact ran to completion (or exited with code 0).
    Ok,
    /// The artifact raised an exception, failed to parse, or exited non-zero.
    Error,
    /// The fuel budget ran out (guest code or host work it caused).
    OutOfFuel,
    /// The wall-clock limit passed.
    Timeout,
    /// The memory limit refused a growth and the run then failed.
    MemoryLimit,
    /// The wasm stack ran out.
    StackOverflow,
    /// stdout, stderr or the logs went past their limit.
    OutputLimit,
    /// Any other trap (with its message and wasm backtrace).
    Trap,
    /// It ran to completion but printed something other than the expected
    /// stdout (`diff` shows how).
    WrongOutput,
    /// It ran to completion but its test program failed (`test` holds the
    /// test's own outcome: the failing assertion, its line, the values).
    TestFailed,
}

impl Status {
    /// The snake_case name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Error => "error",
            Status::OutOfFuel => "out_of_fuel",
            Status::Timeout => "timeout",
            Status::MemoryLimit => "memory_limit",
            Status::StackOverflow => "stack_overflow",
            Status::OutputLimit => "output_limit",
            Status::Trap => "trap",
            Status::WrongOutput => "wrong_output",
            Status::TestFailed => "test_failed",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of guest error.
#[cfg_attr(feature = "serve", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The source did not parse.
    Syntax,
    /// An exception escaped the artifact.
    Runtime,
    /// The artifact asked to exit with a non-zero code.
    Exit,
    /// The interpreter stopped the artifact just before a limit, to say
    /// where it was (the outcome's status is the limit's).
    Limit,
}

/// One frame of the artifact's stack (1-based positions in its own source).
#[cfg_attr(feature = "serve", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    /// Function name (`<module>`, `<anonymous>`...).
    pub function: String,
    /// The artifact's file name.
    pub file: String,
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
}

/// The guest's own error, in the guest language's terms.
#[cfg_attr(feature = "serve", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestError {
    /// Syntax, runtime or exit.
    pub kind: ErrorKind,
    /// The language's class name (`TypeError`, `ZeroDivisionError`).
    pub class: String,
    /// The message (clipped).
    pub message: String,
    /// 1-based line in the artifact, if known.
    pub line: Option<u32>,
    /// 1-based column in the artifact, if known.
    pub column: Option<u32>,
    /// Outermost frame first.
    pub stack: Vec<Frame>,
    /// The exit code of an `exit` error.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub exit_code: Option<i32>,
    /// The artifact's top-level variables when the error was raised.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub globals: Vec<Variable>,
}

/// One top-level variable of the artifact at the time of an error.
#[cfg_attr(feature = "serve", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variable {
    /// The variable's name.
    pub name: String,
    /// Its type in the language's terms.
    pub type_name: String,
    /// A short display of its value (clipped).
    pub preview: String,
}

/// Bounds on the error record a guest returns. Guest text is data: every
/// string is clipped (on a character boundary, with a marker) and every
/// number clamped before the record reaches a terminal, JSON, a report or an
/// LLM prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorLimits {
    /// Bytes of the exception's message.
    pub max_message_bytes: usize,
    /// Bytes of the class name, a function name, a file name.
    pub max_name_bytes: usize,
    /// Stack frames kept (the innermost ones, where the error is).
    pub max_frames: usize,
    /// Top-level variables kept.
    pub max_globals: usize,
    /// Bytes of one variable's preview.
    pub max_preview_bytes: usize,
    /// Largest line or column number believed; larger ones become `None`/clamped.
    pub max_position: u32,
}

impl Default for ErrorLimits {
    fn default() -> Self {
        ErrorLimits {
            max_message_bytes: 4096,
            max_name_bytes: 256,
            max_frames: 64,
            max_globals: 64,
            max_preview_bytes: 512,
            max_position: 10_000_000,
        }
    }
}

/// `text` cut to at most `max` bytes on a character boundary, with a marker
/// saying how much was cut.
pub fn clip(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… [{} more bytes]", &text[..end], text.len() - end)
}

impl GuestError {
    /// The guest's record, with every field clipped to `limits`.
    pub fn from_guest(e: interpreter::GuestError, limits: &ErrorLimits) -> Self {
        let name = |s: String| clip(&s, limits.max_name_bytes);
        let pos = |p: Option<u32>| p.filter(|&n| n <= limits.max_position);
        // Keep the innermost frames: the list is outermost first.
        let skip = e.stack.len().saturating_sub(limits.max_frames);
        GuestError {
            kind: match e.kind {
                interpreter::ErrorKind::Syntax => ErrorKind::Syntax,
                interpreter::ErrorKind::Runtime => ErrorKind::Runtime,
                interpreter::ErrorKind::Exit => ErrorKind::Exit,
                interpreter::ErrorKind::Limit => ErrorKind::Limit,
            },
            class: name(e.class),
            message: clip(&e.message, limits.max_message_bytes),
            line: pos(e.line),
            column: pos(e.column),
            stack: e
                .stack
                .into_iter()
                .skip(skip)
                .map(|f| Frame {
                    function: name(f.function),
                    file: name(f.file),
                    line: f.line.min(limits.max_position),
                    column: f.column.min(limits.max_position),
                })
                .collect(),
            exit_code: e.exit_code,
            globals: e
                .globals
                .into_iter()
                .take(limits.max_globals)
                .map(|v| Variable {
                    name: name(v.name),
                    type_name: name(v.type_name),
                    preview: clip(&v.preview, limits.max_preview_bytes),
                })
                .collect(),
        }
    }

    /// Host bytes this record holds (charged to the run's host memory).
    pub fn host_bytes(&self) -> usize {
        self.class.len()
            + self.message.len()
            + self
                .stack
                .iter()
                .map(|f| f.function.len() + f.file.len() + 16)
                .sum::<usize>()
            + self
                .globals
                .iter()
                .map(|v| v.name.len() + v.type_name.len() + v.preview.len())
                .sum::<usize>()
    }
}

/// How a run that Wasmtime aborted with an error ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Abort {
    /// A limit or trap, with the outcome status it maps to.
    Status(Status),
    /// The guest called `exit` (WASI) with this code.
    Exit(i32),
}

/// Classify an error returned by a guest call, by type, never by message.
///
/// `memory_denied` says whether the memory limiter refused a growth during
/// the run: a guest that then dies (an allocator abort, an `unreachable`) is
/// reported as `memory_limit`, not as a generic trap. Host work that ran out
/// of fuel or time ([`crate::meter::HostLimit`]) raises the same
/// `Trap::OutOfFuel` / `Trap::Interrupt` as the guest's own code.
pub fn classify(err: &wasmtime::Error, memory_denied: bool) -> Abort {
    if err.downcast_ref::<OutputLimitExceeded>().is_some() {
        return Abort::Status(Status::OutputLimit);
    }
    if let Some(exit) = err.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return Abort::Exit(exit.0);
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => Abort::Status(Status::OutOfFuel),
        Some(Trap::Interrupt) => Abort::Status(Status::Timeout),
        Some(Trap::StackOverflow) => Abort::Status(Status::StackOverflow),
        _ if memory_denied => Abort::Status(Status::MemoryLimit),
        _ => Abort::Status(Status::Trap),
    }
}

/// A trap or limit reported by Wasmtime.
#[cfg_attr(feature = "serve", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrapInfo {
    /// The trap's cause, e.g. `all fuel consumed by WebAssembly`.
    pub message: String,
    /// The wasm backtrace, when Wasmtime captured one.
    pub backtrace: Option<String>,
}

/// Severity of a log record.
#[cfg_attr(feature = "serve", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    /// Debug.
    Debug,
    /// Info.
    Info,
    /// Warning.
    Warn,
    /// Error.
    Error,
}

/// One record of the kernel log API.
#[cfg_attr(feature = "serve", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRecord {
    /// Severity.
    pub level: LogLevel,
    /// The message (clipped with the log's byte budget).
    pub message: String,
    /// Structured fields, displayed.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub fields: Vec<(String, String)>,
}

/// Everything a run produced. Serialised as-is for `llmos run --json`.
#[cfg_attr(feature = "serve", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// How the run ended.
    pub status: Status,
    /// The language's manifest name.
    pub language: String,
    /// Captured stdout (cut at the output limit, with a marker).
    pub stdout: String,
    /// Captured stderr (cut at the output limit, with a marker).
    pub stderr: String,
    /// Display of the last expression's value (Python) or completion value (JS).
    pub value: Option<String>,
    /// The guest's error, for `error` (and failed limit runs that raised one).
    pub error: Option<GuestError>,
    /// The trap, for limits and traps.
    pub trap: Option<TrapInfo>,
    /// Fuel used, when the run was metered.
    pub fuel_consumed: Option<u64>,
    /// Peak linear memory.
    pub memory_peak_bytes: u64,
    /// Fuel charged for host work done in kernel calls (included in
    /// `fuel_consumed`; 0 for un-metered runs).
    #[serde(default)]
    pub host_fuel: u64,
    /// Most host-side bytes the run's kernel calls held at once.
    #[serde(default)]
    pub host_memory_peak_bytes: u64,
    /// Instantiation plus run, in milliseconds.
    pub duration_ms: f64,
    /// Records of the kernel log API.
    pub logs: Vec<LogRecord>,
    /// Streams cut at the output limit (`stdout`, `stderr`, `logs`).
    pub truncated: Vec<String>,
    /// Pictures and documents produced through the kernel APIs, in order.
    #[serde(default)]
    pub outputs: Vec<Output>,
    /// The nondeterministic inputs the run was given (seed, clock
    /// readings, storage replies): what `llmos replay` serves back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "serve", schema(value_type = Option<Object>))]
    pub inputs: Option<crate::inputs::RunInputs>,
    /// A replayed run asked for inputs its record does not hold, or in
    /// another order: why. The outcome is then not a faithful replay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_diverged: Option<String>,
    /// For `wrong_output`: a unified diff of the expected stdout against
    /// the actual one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    /// When a test program ran after the artifact (`--test`): its outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "serve", schema(value_type = Option<Object>))]
    pub test: Option<Box<Outcome>>,
}

impl Outcome {
    /// Whether the status is `ok`.
    pub fn is_ok(&self) -> bool {
        self.status == Status::Ok
    }

    /// A one-line, human summary of why the run did not succeed.
    pub fn summary(&self) -> String {
        match (&self.status, &self.error, &self.trap) {
            (Status::Ok, ..) => "ok".into(),
            (_, Some(e), _) if e.kind == ErrorKind::Exit => {
                format!("exited with code {}", e.exit_code.unwrap_or(1))
            }
            (_, Some(e), _) => match e.line {
                Some(line) => format!("{}: {} (line {line})", e.class, e.message),
                None => format!("{}: {}", e.class, e.message),
            },
            (Status::OutOfFuel, ..) => format!(
                "out of fuel after {} units: the artifact ran longer than its CPU budget (an unbounded loop?)",
                self.fuel_consumed.unwrap_or(0)
            ),
            (Status::Timeout, ..) => {
                "wall-clock timeout: the artifact ran or waited longer than allowed".into()
            }
            (Status::MemoryLimit, ..) => {
                "memory limit: the artifact asked for more memory than allowed".into()
            }
            (Status::StackOverflow, ..) => {
                "stack overflow: recursion too deep (a missing base case?)".into()
            }
            (Status::OutputLimit, ..) => {
                "output limit: the artifact printed more than allowed".into()
            }
            (Status::WrongOutput, ..) => {
                "wrong output: the artifact ran but its stdout differs from the expected output"
                    .into()
            }
            (Status::TestFailed, ..) => match self.test.as_ref().and_then(|t| t.error.as_ref()) {
                Some(e) => format!(
                    "test failed: {}: {}{}",
                    e.class,
                    e.message,
                    e.line
                        .map(|l| format!(" (test line {l})"))
                        .unwrap_or_default()
                ),
                None => "test failed".into(),
            },
            (_, _, Some(t)) => format!("trap: {}", t.message),
            (s, ..) => s.to_string(),
        }
    }
}

/// Longest `diff` kept in a `wrong_output` outcome.
pub const MAX_DIFF_BYTES: usize = 8 << 10;

/// A unified diff of expected against actual stdout, clipped.
pub fn stdout_diff(expected: &str, actual: &str) -> String {
    let d = similar::TextDiff::from_lines(expected, actual)
        .unified_diff()
        .context_radius(2)
        .header("expected", "actual")
        .to_string();
    clip(&d, MAX_DIFF_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_is_by_type() {
        let fuel = wasmtime::Error::from(Trap::OutOfFuel);
        assert_eq!(classify(&fuel, false), Abort::Status(Status::OutOfFuel));
        let fuel_ctx = wasmtime::Error::from(Trap::OutOfFuel).context("while running");
        assert_eq!(classify(&fuel_ctx, true), Abort::Status(Status::OutOfFuel));
        let int = wasmtime::Error::from(Trap::Interrupt);
        assert_eq!(classify(&int, false), Abort::Status(Status::Timeout));
        let stack = wasmtime::Error::from(Trap::StackOverflow);
        assert_eq!(
            classify(&stack, false),
            Abort::Status(Status::StackOverflow)
        );
        let unreachable = wasmtime::Error::from(Trap::UnreachableCodeReached);
        assert_eq!(classify(&unreachable, false), Abort::Status(Status::Trap));
        assert_eq!(
            classify(&unreachable, true),
            Abort::Status(Status::MemoryLimit)
        );
        // A message that merely *looks* like a fuel trap is not one.
        let fake = wasmtime::format_err!("all fuel consumed by WebAssembly");
        assert_eq!(classify(&fake, false), Abort::Status(Status::Trap));
        let exit = wasmtime::Error::from(wasmtime_wasi::I32Exit(3));
        assert_eq!(classify(&exit, false), Abort::Exit(3));
        let out = wasmtime::Error::from(OutputLimitExceeded {
            stream: "stdout",
            limit: 10,
        });
        assert_eq!(classify(&out, false), Abort::Status(Status::OutputLimit));
    }

    #[test]
    fn guest_errors_are_clipped() {
        let huge = "x".repeat(1 << 20);
        let e = interpreter::GuestError {
            kind: interpreter::ErrorKind::Runtime,
            class: huge.clone(),
            message: format!("é{huge}"),
            line: Some(u32::MAX),
            column: Some(3),
            stack: (0..10_000)
                .map(|i| interpreter::Frame {
                    function: huge.clone(),
                    file: "a.js".into(),
                    line: i,
                    column: u32::MAX,
                })
                .collect(),
            exit_code: None,
            globals: Vec::new(),
        };
        let l = ErrorLimits::default();
        let g = GuestError::from_guest(e, &l);
        assert!(g.class.len() < l.max_name_bytes + 32);
        assert!(g.message.len() < l.max_message_bytes + 32);
        assert!(g.message.starts_with('é'));
        assert_eq!((g.line, g.column), (None, Some(3)));
        assert_eq!(g.stack.len(), l.max_frames);
        assert_eq!(g.stack.last().map(|f| f.line), Some(9_999));
        assert!(g.stack.iter().all(|f| f.column == l.max_position));
        assert!(g.host_bytes() < 64 << 10);
    }

    #[test]
    fn clip_keeps_characters_whole() {
        assert_eq!(clip("héllo", 2), "h… [5 more bytes]");
        assert_eq!(clip("short", 10), "short");
    }
}
