//! The error report of a failed run: everything a good engineer would want
//! to see before fixing the artifact, and what the repair prompt is built from.

use serde::{Deserialize, Serialize};

use crate::outcome::{ErrorKind, Frame, LogRecord, Outcome, Status, Variable};

/// How many lines of source around the failing line the excerpt shows.
const EXCERPT_CONTEXT: usize = 3;
/// How much of stdout / stderr the report keeps (the tail).
const TAIL_BYTES: usize = 2000;
/// How many log records the report keeps (the last ones).
const TAIL_LOGS: usize = 20;

/// A failed run, explained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorReport {
    /// How the run ended.
    pub status: Status,
    /// Error class (`TypeError`, `ZeroDivisionError`, ...), or the limit's name.
    pub class: String,
    /// The error message (clipped).
    pub message: String,
    /// Line of the error in the artifact.
    pub line: Option<u32>,
    /// Column of the error in the artifact.
    pub column: Option<u32>,
    /// Outermost first.
    pub stack: Vec<Frame>,
    /// The source around the failing line, numbered, with a caret under the column.
    pub excerpt: Option<String>,
    /// The end of stdout.
    pub stdout_tail: String,
    /// The end of stderr.
    pub stderr_tail: String,
    /// The last log records.
    pub logs_tail: Vec<LogRecord>,
    /// Fuel used.
    pub fuel_consumed: Option<u64>,
    /// Peak linear memory.
    pub memory_peak_bytes: u64,
    /// Run time.
    pub duration_ms: f64,
    /// The artifact's top-level variables when the error was raised.
    pub globals: Vec<Variable>,
    /// For limits and traps: the likely cause, in plain language.
    pub explanation: Option<String>,
    /// For `wrong_output`: the unified diff of expected against actual stdout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    /// For `test_failed`: the test program (shown to the LLM, never to be
    /// changed) and its file name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<(String, String)>,
}

impl ErrorReport {
    /// The report of a non-`ok` outcome (`None` for `ok`).
    pub fn new(outcome: &Outcome, source: &str) -> Option<ErrorReport> {
        Self::with_test(outcome, source, None)
    }

    /// [`ErrorReport::new`] for a run with a test program: a `test_failed`
    /// report is about the test's failure (its assertion, line and values,
    /// with an excerpt of the test) and shows the test.
    pub fn with_test(
        outcome: &Outcome,
        source: &str,
        test: Option<&crate::engine::TestProgram>,
    ) -> Option<ErrorReport> {
        if outcome.is_ok() {
            return None;
        }
        if let (Status::TestFailed, Some(t), Some(program)) = (outcome.status, &outcome.test, test)
        {
            let mut r = Self::with_test(t, &program.source, None)?;
            r.status = Status::TestFailed;
            r.explanation = explain(outcome);
            r.stdout_tail = tail(&outcome.stdout, TAIL_BYTES);
            r.test = Some((program.filename.clone(), program.source.clone()));
            return Some(r);
        }
        if outcome.status == Status::WrongOutput {
            let mut r = ErrorReport {
                status: outcome.status,
                class: "WrongOutput".into(),
                message:
                    "the program ran without an error, but its stdout is not the expected output"
                        .into(),
                line: None,
                column: None,
                stack: Vec::new(),
                excerpt: None,
                stdout_tail: String::new(),
                stderr_tail: tail(&outcome.stderr, TAIL_BYTES),
                logs_tail: Vec::new(),
                fuel_consumed: outcome.fuel_consumed,
                memory_peak_bytes: outcome.memory_peak_bytes,
                duration_ms: outcome.duration_ms,
                globals: Vec::new(),
                explanation: explain(outcome),
                diff: outcome.diff.clone(),
                test: None,
            };
            if r.diff.is_none() {
                r.stdout_tail = tail(&outcome.stdout, TAIL_BYTES);
            }
            return Some(r);
        }
        let (class, message, line, column, stack, globals) = match &outcome.error {
            Some(e) => (
                e.class.clone(),
                if e.kind == ErrorKind::Exit {
                    format!("exited with code {}", e.exit_code.unwrap_or(1))
                } else {
                    e.message.clone()
                },
                e.line,
                e.column,
                e.stack.clone(),
                e.globals.clone(),
            ),
            None => (
                outcome.status.to_string(),
                outcome
                    .trap
                    .as_ref()
                    .map(|t| t.message.clone())
                    .unwrap_or_else(|| outcome.summary()),
                None,
                None,
                Vec::new(),
                Vec::new(),
            ),
        };
        let excerpt = line.and_then(|l| excerpt(source, l, column));
        Some(ErrorReport {
            status: outcome.status,
            class,
            message,
            line,
            column,
            stack,
            excerpt,
            stdout_tail: tail(&outcome.stdout, TAIL_BYTES),
            stderr_tail: tail(&outcome.stderr, TAIL_BYTES),
            logs_tail: outcome
                .logs
                .iter()
                .skip(outcome.logs.len().saturating_sub(TAIL_LOGS))
                .cloned()
                .collect(),
            fuel_consumed: outcome.fuel_consumed,
            memory_peak_bytes: outcome.memory_peak_bytes,
            duration_ms: outcome.duration_ms,
            globals,
            explanation: explain(outcome),
            diff: None,
            test: None,
        })
    }

    /// A short identity of the failure: class and line (and, for a wrong
    /// output, the diff: a different wrong output is progress). Two
    /// attempts with the same key made no progress.
    pub fn key(&self) -> (String, Option<u32>, String) {
        (
            self.class.clone(),
            self.line,
            self.diff.clone().unwrap_or_default(),
        )
    }

    /// The report as plain text, for prompts and the terminal.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let at = match (self.line, self.column) {
            (Some(l), Some(c)) => format!(" at line {l}, column {c}"),
            (Some(l), None) => format!(" at line {l}"),
            _ => String::new(),
        };
        s.push_str(&format!("status: {}\n", self.status));
        s.push_str(&format!("error: {}: {}{at}\n", self.class, self.message));
        if let Some(x) = &self.explanation {
            s.push_str(&format!("likely cause: {x}\n"));
        }
        if let Some(x) = &self.excerpt {
            s.push_str("source:\n");
            s.push_str(x);
        }
        if !self.stack.is_empty() {
            s.push_str("stack (innermost last):\n");
            for f in &self.stack {
                s.push_str(&format!(
                    "  at {} ({}:{}:{})\n",
                    f.function, f.file, f.line, f.column
                ));
            }
        }
        if !self.globals.is_empty() {
            s.push_str("top-level variables at the time of the error:\n");
            for v in &self.globals {
                s.push_str(&format!(
                    "  {}: {} = {}\n",
                    v.name,
                    v.type_name,
                    v.preview.replace('\n', " ")
                ));
            }
        }
        if let Some(d) = &self.diff {
            s.push_str("expected stdout (-) against actual stdout (+), unified diff:\n");
            s.push_str(&indent(d));
        }
        if let Some((file, source)) = &self.test {
            s.push_str(&format!(
                "the test program `{file}`, run after the artifact with its globals (it must pass unchanged):\n"
            ));
            s.push_str(&indent(source));
        }
        if !self.stdout_tail.is_empty() {
            s.push_str("stdout (tail):\n");
            s.push_str(&indent(&self.stdout_tail));
        }
        if !self.stderr_tail.is_empty() {
            s.push_str("stderr (tail):\n");
            s.push_str(&indent(&self.stderr_tail));
        }
        if !self.logs_tail.is_empty() {
            s.push_str("logs (tail):\n");
            for l in &self.logs_tail {
                s.push_str(&format!("  [{:?}] {}\n", l.level, l.message));
            }
        }
        let fuel = self
            .fuel_consumed
            .map(|f| format!("fuel {f}, "))
            .unwrap_or_default();
        s.push_str(&format!(
            "resources: {fuel}peak memory {:.1} MiB, {:.1} ms\n",
            self.memory_peak_bytes as f64 / (1 << 20) as f64,
            self.duration_ms
        ));
        s
    }
}

fn indent(text: &str) -> String {
    let mut s: String = text.lines().map(|l| format!("  {l}\n")).collect();
    if s.is_empty() {
        s.push('\n');
    }
    s
}

/// The last `max` bytes of `text`, cut at a character boundary.
fn tail(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("[...]{}", &text[start..])
}

/// Numbered source lines around `line` (1-based), with a caret under `column`.
pub fn excerpt(source: &str, line: u32, column: Option<u32>) -> Option<String> {
    let lines: Vec<&str> = source.lines().collect();
    let idx = usize::try_from(line).ok()?.checked_sub(1)?;
    if idx >= lines.len() {
        return None;
    }
    let first = idx.saturating_sub(EXCERPT_CONTEXT);
    let last = (idx + EXCERPT_CONTEXT).min(lines.len() - 1);
    let width = (last + 1).to_string().len();
    let mut s = String::new();
    for (i, text) in lines.iter().enumerate().take(last + 1).skip(first) {
        let marker = if i == idx { ">" } else { " " };
        s.push_str(&format!("{marker} {:>width$} | {text}\n", i + 1));
        if i == idx
            && let Some(c) = column
        {
            let pad: String = text
                .chars()
                .take(c.saturating_sub(1) as usize)
                .map(|ch| if ch == '\t' { '\t' } else { ' ' })
                .collect();
            s.push_str(&format!("  {:>width$} | {pad}^\n", ""));
        }
    }
    Some(s)
}

/// A plain-language explanation of a limit or trap outcome.
pub fn explain(o: &Outcome) -> Option<String> {
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    Some(match o.status {
        Status::Ok | Status::Error => return None,
        Status::OutOfFuel => format!(
            "an unbounded or far too long computation: the artifact used its whole CPU budget ({} fuel units) without finishing. Look for a loop whose condition never becomes false (a counter that is not updated), recursion without a base case, or an algorithm far slower than needed.",
            o.fuel_consumed.unwrap_or(0)
        ),
        Status::Timeout => "the artifact ran or waited longer than its wall-clock limit: an endless loop, a sleep or timer that never ends (e.g. setInterval never cleared), or far too much work.".into(),
        Status::MemoryLimit => format!(
            "the artifact asked for more memory than allowed (peak {:.1} MiB): data that grows without bound (appending in an endless loop, a huge list or string), or a much larger structure than needed.",
            mib(o.memory_peak_bytes)
        ),
        Status::StackOverflow => "the call stack overflowed: recursion too deep, usually a recursive function whose base case is never reached.".into(),
        Status::OutputLimit => format!(
            "the artifact printed or logged more than allowed ({}): output inside an endless or very long loop.",
            if o.truncated.is_empty() { "output".to_string() } else { o.truncated.join(", ") }
        ),
        Status::Trap => "the interpreter itself trapped (a WebAssembly fault), which usually follows resource exhaustion; simplify the artifact.".into(),
        Status::WrongOutput => "the artifact runs without an error but prints the wrong result: compare the expected and actual output below and fix the logic (an off-by-one, a wrong operator or condition, the wrong key or rounding), keeping the output format exactly.".into(),
        Status::TestFailed => "the artifact runs, but its test program (run afterwards with the artifact's globals) failed: fix the artifact so the test passes; never change the test.".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_has_numbers_marker_and_caret() {
        let src = "a = 1\nb = 2\nc = a / 0\nd = 4\n";
        let x = excerpt(src, 3, Some(5)).expect("excerpt");
        assert_eq!(
            x,
            "  1 | a = 1\n  2 | b = 2\n> 3 | c = a / 0\n    |     ^\n  4 | d = 4\n"
        );
        assert!(excerpt(src, 9, None).is_none());
        assert!(excerpt(src, 0, None).is_none());
    }

    #[test]
    fn tail_keeps_the_end_on_a_char_boundary() {
        assert_eq!(tail("abc", 5), "abc");
        assert_eq!(tail("ééé", 3), "[...]é");
    }
}
