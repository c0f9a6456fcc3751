//! Batch jobs and the inputs they come from.
//!
//! An input is an artifact file, a directory (walked recursively, keeping
//! the files whose extension a language claims) or a JSONL manifest with
//! one job a line:
//!
//! ```json
//! {"id": "t1", "path": "a.py", "limits": {"fuel": 1000000, "timeout": "2s"}, "seed": 7, "expect_stdout": "42\n"}
//! {"id": "t2", "source": "1 + 1", "language": "javascript"}
//! ```
//!
//! A relative `path` is relative to the manifest's directory. A line that is
//! not valid JSON, has unknown keys, or names no program is an
//! [`InputProblem`] with its file and line number; it never stops the
//! batch. Ids are unique: a later job with an id already seen is a problem.

use std::collections::HashSet;
use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::HostError;
use crate::facade::LimitOverrides;
use crate::language::Languages;

/// Longest id accepted (ids become file names and JSON keys).
pub const MAX_ID_BYTES: usize = 512;
/// Longest manifest line read; longer lines are problems, not allocations.
pub const MAX_LINE_BYTES: usize = 16 << 20;

/// One artifact to run in a batch. This is also the JSONL line format and
/// what a coordinator sends a worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Job {
    /// Unique within the batch; the result carries it.
    pub id: String,
    /// The artifact's file (`system:`/`user:` names work too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// The artifact's source, inline (always untrusted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Language name or alias (required with `source`; by default from the
    /// file extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Limits of this job, over the batch's flags.
    #[serde(default, skip_serializing_if = "JobLimits::is_empty")]
    pub limits: JobLimits,
    /// Seed for the guest's randomness.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// What the artifact must print on stdout; anything else is
    /// `wrong_output`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_stdout: Option<String>,
    /// A test program (source) run after the artifact in the same
    /// interpreter state; if it fails the job is `test_failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<String>,
    /// The test program as a file (relative to the manifest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_path: Option<PathBuf>,
    /// A snapshot (`llmos snapshot create`) the job starts from: it runs as
    /// the snapshot's next cell (relative to the manifest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<PathBuf>,
}

/// A job's limits in their textual or numeric forms: fuel a number or
/// `"none"`, memory and output a number of bytes or a size (`"64MiB"`),
/// timeout a number of seconds or a duration (`"500ms"`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobLimits {
    /// Fuel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel: Option<serde_json::Value>,
    /// Linear memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<serde_json::Value>,
    /// Wall clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<serde_json::Value>,
    /// Captured bytes per stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_limit: Option<serde_json::Value>,
}

impl JobLimits {
    fn is_empty(&self) -> bool {
        self == &JobLimits::default()
    }

    /// The overrides these limits ask for.
    pub fn overrides(&self) -> Result<LimitOverrides, HostError> {
        fn text(v: &Option<serde_json::Value>, what: &str) -> Result<Option<String>, HostError> {
            match v {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
                Some(serde_json::Value::Number(n)) => Ok(Some(n.to_string())),
                Some(other) => Err(HostError::InvalidLimit(format!(
                    "{what} must be a number or a string, not {other}"
                ))),
            }
        }
        let fuel = text(&self.fuel, "fuel")?;
        let memory = text(&self.memory, "memory")?;
        // A bare number of seconds reads as a duration.
        let timeout = text(&self.timeout, "timeout")?.map(|t| {
            if t.parse::<f64>().is_ok() {
                format!("{t}s")
            } else {
                t
            }
        });
        let output = text(&self.output_limit, "output_limit")?;
        LimitOverrides::parse(
            fuel.as_deref(),
            memory.as_deref(),
            timeout.as_deref(),
            output.as_deref(),
        )
    }
}

impl Job {
    /// A job running the file at `path`, with `id`.
    pub fn file(id: impl Into<String>, path: impl Into<PathBuf>) -> Job {
        Job {
            id: id.into(),
            path: Some(path.into()),
            source: None,
            language: None,
            limits: JobLimits::default(),
            seed: None,
            expect_stdout: None,
            test: None,
            test_path: None,
            from: None,
        }
    }

    /// A job running `source` in `language`, with `id`.
    pub fn inline(
        id: impl Into<String>,
        language: impl Into<String>,
        source: impl Into<String>,
    ) -> Job {
        Job {
            id: id.into(),
            path: None,
            source: Some(source.into()),
            language: Some(language.into()),
            limits: JobLimits::default(),
            seed: None,
            expect_stdout: None,
            test: None,
            test_path: None,
            from: None,
        }
    }

    /// The job's test program, read from `test_path` or inline in `test`.
    pub fn test_program(&self) -> Result<Option<crate::engine::TestProgram>, String> {
        match (&self.test, &self.test_path) {
            (Some(_), Some(_)) => Err("give `test` or `test_path`, not both".into()),
            (Some(source), None) => Ok(Some(crate::engine::TestProgram {
                source: source.clone(),
                filename: "test".into(),
            })),
            (None, Some(p)) => {
                let source = std::fs::read_to_string(p)
                    .map_err(|e| format!("cannot read the test `{}`: {e}", p.display()))?;
                let filename = p
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "test".into());
                Ok(Some(crate::engine::TestProgram { source, filename }))
            }
            (None, None) => Ok(None),
        }
    }

    /// Why this job cannot run as written, if it cannot.
    pub fn check(&self) -> Result<(), String> {
        if self.id.trim().is_empty() {
            return Err("`id` is empty".into());
        }
        if self.id.len() > MAX_ID_BYTES {
            return Err(format!("`id` is longer than {MAX_ID_BYTES} bytes"));
        }
        if self.id.chars().any(char::is_control) {
            return Err("`id` contains control characters".into());
        }
        match (&self.path, &self.source) {
            (Some(_), Some(_)) => return Err("give `path` or `source`, not both".into()),
            (None, None) => return Err("give `path` or `source`".into()),
            (None, Some(_)) if self.language.is_none() => {
                return Err("`source` needs `language`".into());
            }
            _ => {}
        }
        self.limits.overrides().map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// An input that could not become a job: where, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InputProblem {
    /// The input file.
    pub file: PathBuf,
    /// 1-based line in a manifest, if the problem is one line.
    pub line: Option<u64>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for InputProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{l}: {}", self.file.display(), self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

/// The jobs of a batch, in input order, and the inputs that were refused.
#[derive(Debug, Default)]
pub struct Inputs {
    /// Jobs, ids unique.
    pub jobs: Vec<Job>,
    /// Lines and files that were skipped.
    pub problems: Vec<InputProblem>,
}

impl Inputs {
    /// Read every input: files, directories and `.jsonl` manifests. `Err`
    /// only when an input named on the command line does not exist.
    pub fn read(paths: &[PathBuf], languages: &Languages) -> Result<Inputs, HostError> {
        let mut inputs = Inputs::default();
        let mut seen = HashSet::new();
        for p in paths {
            let meta = std::fs::metadata(p).map_err(|e| HostError::io(p, e))?;
            if meta.is_dir() {
                let mut files = Vec::new();
                walk(p, &mut files, &mut inputs.problems);
                files.sort();
                for f in files {
                    if languages.for_path(&f).is_ok() {
                        let id = f.display().to_string();
                        inputs.push(Job::file(id, f.clone()), &f, None, &mut seen);
                    }
                }
            } else if is_manifest(p) {
                inputs.read_manifest(p, &mut seen);
            } else {
                let id = p.display().to_string();
                inputs.push(Job::file(id, p.clone()), p, None, &mut seen);
            }
        }
        Ok(inputs)
    }

    fn push(&mut self, job: Job, file: &Path, line: Option<u64>, seen: &mut HashSet<String>) {
        let problem = |message: String| InputProblem {
            file: file.to_path_buf(),
            line,
            message,
        };
        if let Err(m) = job.check() {
            self.problems.push(problem(m));
        } else if !seen.insert(job.id.clone()) {
            self.problems
                .push(problem(format!("duplicate id `{}`: skipped", job.id)));
        } else {
            self.jobs.push(job);
        }
    }

    fn read_manifest(&mut self, path: &Path, seen: &mut HashSet<String>) {
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) => {
                self.problems.push(InputProblem {
                    file: path.to_path_buf(),
                    line: None,
                    message: format!("cannot read: {e}"),
                });
                return;
            }
        };
        let base = path.parent().unwrap_or(Path::new(""));
        let mut reader = BufReader::new(file);
        let mut buf = Vec::new();
        let mut n = 0u64;
        loop {
            buf.clear();
            n += 1;
            // Read at most MAX_LINE_BYTES + 1 so a huge line is refused
            // without holding it.
            let read = match (&mut reader)
                .take(MAX_LINE_BYTES as u64 + 1)
                .read_until(b'\n', &mut buf)
            {
                Ok(0) => break,
                Ok(r) => r,
                Err(e) => {
                    self.problems.push(InputProblem {
                        file: path.to_path_buf(),
                        line: Some(n),
                        message: format!("cannot read: {e}"),
                    });
                    break;
                }
            };
            if read > MAX_LINE_BYTES && buf.last() != Some(&b'\n') {
                self.problems.push(InputProblem {
                    file: path.to_path_buf(),
                    line: Some(n),
                    message: format!("line longer than {MAX_LINE_BYTES} bytes: skipped"),
                });
                // Skip the rest of the line.
                let mut rest = Vec::new();
                loop {
                    rest.clear();
                    match (&mut reader).take(1 << 20).read_until(b'\n', &mut rest) {
                        Ok(0) => break,
                        Ok(_) if rest.last() == Some(&b'\n') => break,
                        Ok(_) => continue,
                        Err(_) => break,
                    }
                }
                continue;
            }
            let text = String::from_utf8_lossy(&buf);
            let line = text.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match serde_json::from_str::<Job>(line) {
                Ok(mut job) => {
                    if let Some(p) = &job.path {
                        let named = p.to_string_lossy();
                        let volume = named.starts_with("system:") || named.starts_with("user:");
                        if p.is_relative() && !volume {
                            job.path = Some(base.join(p));
                        }
                    }
                    if let Some(p) = &job.test_path
                        && p.is_relative()
                    {
                        job.test_path = Some(base.join(p));
                    }
                    if let Some(p) = &job.from
                        && p.is_relative()
                    {
                        job.from = Some(base.join(p));
                    }
                    self.push(job, path, Some(n), seen);
                }
                Err(e) => self.problems.push(InputProblem {
                    file: path.to_path_buf(),
                    line: Some(n),
                    message: format!("not a job: {e}"),
                }),
            }
        }
    }
}

fn is_manifest(p: &Path) -> bool {
    matches!(
        p.extension().and_then(|e| e.to_str()),
        Some("jsonl" | "ndjson")
    )
}

/// Files under `dir`, recursively; symlinked directories are not followed
/// (no cycles), unreadable directories are problems.
fn walk(dir: &Path, out: &mut Vec<PathBuf>, problems: &mut Vec<InputProblem>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            problems.push(InputProblem {
                file: dir.to_path_buf(),
                line: None,
                message: format!("cannot read the directory: {e}"),
            });
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => walk(&path, out, problems),
            Ok(t) if t.is_file() => out.push(path),
            Ok(t) if t.is_symlink() && path.is_file() => out.push(path),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_limits_accept_numbers_and_text() {
        let l: JobLimits = serde_json::from_str(
            r#"{"fuel": 1000, "memory": "16MiB", "timeout": 2, "output_limit": 4096}"#,
        )
        .expect("limits");
        let o = l.overrides().expect("overrides");
        assert_eq!(o.fuel, Some(Some(1000)));
        assert_eq!(o.memory_bytes, Some(16 << 20));
        assert_eq!(o.timeout, Some(std::time::Duration::from_secs(2)));
        assert_eq!(o.output_bytes, Some(4096));
        let bad: JobLimits = serde_json::from_str(r#"{"fuel": [1]}"#).expect("parses");
        assert!(bad.overrides().is_err());
    }

    #[test]
    fn checks_name_what_is_wrong() {
        let mut j = Job::inline("a", "python", "1");
        assert!(j.check().is_ok());
        j.path = Some("x.py".into());
        assert!(j.check().expect_err("refused").contains("not both"));
        let j = Job::inline(" ", "python", "1");
        assert!(j.check().expect_err("refused").contains("empty"));
        let mut j = Job::inline("b", "python", "1");
        j.language = None;
        assert!(j.check().expect_err("refused").contains("language"));
        let mut j = Job::inline("c\n", "python", "1");
        j.id = "c\u{1b}[2J".into();
        assert!(j.check().expect_err("refused").contains("control"));
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(
            serde_json::from_str::<Job>(r#"{"id":"a","source":"1","language":"js","limit":{}}"#)
                .is_err()
        );
    }
}
