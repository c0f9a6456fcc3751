//! The results file: one JSON line per job, written so that a crash loses
//! at most the jobs in flight.
//!
//! Each line goes to the file in one `write` as soon as its job finishes
//! (so a SIGKILL of the process loses nothing already written), and the
//! file is `fdatasync`ed in small groups ([`SYNC_EVERY`] lines or
//! [`SYNC_INTERVAL`]), so a machine crash loses at most one group. A line
//! cut short by a crash is found and cut off when the file is reopened
//! with `resume`. An id is never written twice.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::result::JobResult;
use crate::error::HostError;

/// Lines written between two syncs at most.
pub const SYNC_EVERY: usize = 256;
/// Time between two syncs at most, while lines are pending.
pub const SYNC_INTERVAL: Duration = Duration::from_millis(100);

/// Where results go.
pub struct ResultLog {
    out: Sink,
    written: HashSet<String>,
    unsynced: usize,
    last_sync: Instant,
}

enum Sink {
    File { file: File, path: PathBuf },
    Stdout,
}

impl ResultLog {
    /// Results on standard output (not durable; no resume).
    pub fn stdout() -> ResultLog {
        ResultLog {
            out: Sink::Stdout,
            written: HashSet::new(),
            unsynced: 0,
            last_sync: Instant::now(),
        }
    }

    /// Open `path` for results. Without `resume`, an existing non-empty
    /// file is refused (results are never overwritten); with it, the ids
    /// already in the file are loaded (see [`ResultLog::done`]) and a torn
    /// last line is cut off.
    pub fn open(path: &Path, resume: bool) -> Result<ResultLog, HostError> {
        let io = |e| HostError::io(path, e);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let mut written = HashSet::new();
        if len > 0 {
            if !resume {
                return Err(HostError::Usage(format!(
                    "{} already has results: pass --resume to continue it, or choose another --out",
                    path.display()
                )));
            }
            let mut bytes = Vec::new();
            file.seek(SeekFrom::Start(0)).map_err(io)?;
            file.read_to_end(&mut bytes).map_err(io)?;
            let complete = match bytes.iter().rposition(|&b| b == b'\n') {
                Some(i) => i + 1,
                None => 0,
            };
            if complete < bytes.len() {
                tracing::warn!(
                    file = %path.display(),
                    bytes = bytes.len() - complete,
                    "cutting off a torn last line"
                );
                file.set_len(complete as u64).map_err(io)?;
                file.sync_data().map_err(io)?;
            }
            for (n, line) in bytes[..complete].split(|&b| b == b'\n').enumerate() {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let id = serde_json::from_slice::<serde_json::Value>(line)
                    .ok()
                    .and_then(JobResult::from_value)
                    .map(|r| r.id().to_string());
                match id {
                    Some(id) => {
                        written.insert(id);
                    }
                    None => tracing::warn!(
                        file = %path.display(),
                        line = n + 1,
                        "a line of the results file is not a result; kept as it is"
                    ),
                }
            }
        }
        Ok(ResultLog {
            out: Sink::File {
                file,
                path: path.to_path_buf(),
            },
            written,
            unsynced: 0,
            last_sync: Instant::now(),
        })
    }

    /// Ids that already have a result.
    pub fn done(&self) -> &HashSet<String> {
        &self.written
    }

    /// Write `r` as one line unless its id already has one; `Ok(false)`
    /// when it was skipped.
    pub fn append(&mut self, r: &JobResult) -> Result<bool, HostError> {
        if self.written.contains(r.id()) {
            return Ok(false);
        }
        let mut line = r.to_line();
        line.push('\n');
        match &mut self.out {
            Sink::File { file, path } => {
                file.write_all(line.as_bytes())
                    .map_err(|e| HostError::io(&*path, e))?;
            }
            Sink::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(line.as_bytes())
                    .and_then(|()| out.flush())
                    .map_err(|e| HostError::io(Path::new("<stdout>"), e))?;
            }
        }
        self.written.insert(r.id().to_string());
        self.unsynced += 1;
        if self.unsynced >= SYNC_EVERY || self.last_sync.elapsed() >= SYNC_INTERVAL {
            self.sync()?;
        }
        Ok(true)
    }

    /// Make every line written so far durable.
    pub fn sync(&mut self) -> Result<(), HostError> {
        if let Sink::File { file, path } = &mut self.out
            && self.unsynced > 0
        {
            file.sync_data().map_err(|e| HostError::io(&*path, e))?;
        }
        self.unsynced = 0;
        self.last_sync = Instant::now();
        Ok(())
    }
}

impl Drop for ResultLog {
    fn drop(&mut self) {
        let _ = self.sync();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn r(id: &str) -> JobResult {
        JobResult::from_value(json!({"id": id, "status": "ok"})).expect("result")
    }

    #[test]
    fn resume_cuts_a_torn_line_and_never_writes_an_id_twice() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.jsonl");
        {
            let mut log = ResultLog::open(&path, false).expect("open");
            assert!(log.append(&r("a")).expect("a"));
            assert!(log.append(&r("b")).expect("b"));
            assert!(!log.append(&r("a")).expect("a again"));
        }
        // A crash in the middle of a line.
        let mut f = OpenOptions::new().append(true).open(&path).expect("reopen");
        f.write_all(br#"{"id":"c","sta"#).expect("torn");
        drop(f);

        assert!(ResultLog::open(&path, false).is_err(), "never overwrites");
        let mut log = ResultLog::open(&path, true).expect("resume");
        assert_eq!(log.done().len(), 2);
        assert!(!log.append(&r("b")).expect("b"));
        assert!(log.append(&r("c")).expect("c"));
        drop(log);
        let text = std::fs::read_to_string(&path).expect("read");
        let ids: Vec<String> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).expect("whole line")["id"]
                    .as_str()
                    .expect("id")
                    .to_string()
            })
            .collect();
        assert_eq!(ids, ["a", "b", "c"]);
    }
}
