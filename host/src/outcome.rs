//! The typed result of running an artifact.

use serde::{Deserialize, Serialize};

use crate::bindings::interpreter;
use crate::outputs::Output;

/// How a run ended: `ok`, or exactly one kind of failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    /// The artifact raised an exception, failed to parse, or exited non-zero.
    Error,
    OutOfFuel,
    Timeout,
    MemoryLimit,
    StackOverflow,
    OutputLimit,
    /// Any other trap (with its message and wasm backtrace).
    Trap,
}

impl Status {
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
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    Syntax,
    Runtime,
    Exit,
}

/// One frame of the artifact's stack (1-based positions in its own source).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    pub function: String,
    pub file: String,
    pub line: u32,
    pub column: u32,
}

/// The guest's own error, in the guest language's terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestError {
    pub kind: ErrorKind,
    pub class: String,
    pub message: String,
    pub line: Option<u32>,
    pub column: Option<u32>,
    /// Outermost frame first.
    pub stack: Vec<Frame>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub exit_code: Option<i32>,
    /// The artifact's top-level variables when the error was raised.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub globals: Vec<Variable>,
}

/// One top-level variable of the artifact at the time of an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variable {
    pub name: String,
    pub type_name: String,
    pub preview: String,
}

impl From<interpreter::GuestError> for GuestError {
    fn from(e: interpreter::GuestError) -> Self {
        GuestError {
            kind: match e.kind {
                interpreter::ErrorKind::Syntax => ErrorKind::Syntax,
                interpreter::ErrorKind::Runtime => ErrorKind::Runtime,
                interpreter::ErrorKind::Exit => ErrorKind::Exit,
            },
            class: e.class,
            message: e.message,
            line: e.line,
            column: e.column,
            stack: e
                .stack
                .into_iter()
                .map(|f| Frame {
                    function: f.function,
                    file: f.file,
                    line: f.line,
                    column: f.column,
                })
                .collect(),
            exit_code: e.exit_code,
            globals: e
                .globals
                .into_iter()
                .map(|v| Variable {
                    name: v.name,
                    type_name: v.type_name,
                    preview: v.preview,
                })
                .collect(),
        }
    }
}

/// A trap or limit reported by Wasmtime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrapInfo {
    pub message: String,
    /// The wasm backtrace, when Wasmtime captured one.
    pub backtrace: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRecord {
    pub level: LogLevel,
    pub message: String,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub fields: Vec<(String, String)>,
}

/// Everything a run produced. Serialised as-is for `llmos run --json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub status: Status,
    pub language: String,
    pub stdout: String,
    pub stderr: String,
    /// Display of the last expression's value (Python) or completion value (JS).
    pub value: Option<String>,
    pub error: Option<GuestError>,
    pub trap: Option<TrapInfo>,
    /// Fuel used, when the run was metered.
    pub fuel_consumed: Option<u64>,
    pub memory_peak_bytes: u64,
    pub duration_ms: f64,
    pub logs: Vec<LogRecord>,
    /// Streams cut at the output limit (`stdout`, `stderr`, `logs`).
    pub truncated: Vec<String>,
    /// Pictures and documents produced through the kernel APIs, in order.
    #[serde(default)]
    pub outputs: Vec<Output>,
}

impl Outcome {
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
            (_, _, Some(t)) => format!("trap: {}", t.message),
            (s, ..) => s.to_string(),
        }
    }
}
