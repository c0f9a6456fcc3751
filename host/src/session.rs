//! Sessions: notebook-style cells that share one interpreter's globals.
//!
//! A [`Session`] keeps a guest instance alive between cells and calls its
//! `session.run-cell` export once per cell (`wit/session.wit`), each cell
//! under its own limits with fresh streams, logs and outputs. Its
//! [`Journal`] lists the cells that finished on their own (returned a value
//! or raised) with the nondeterministic inputs each was given
//! ([`crate::inputs`]): their seed, every clock reading and every storage
//! reply.
//!
//! The journal is the session's state on disk and its recovery path:
//! - **Traps.** A cell that traps (fuel, memory, stack, timeout, output
//!   limit, a WASI exit) leaves its instance in an unknown state; the
//!   session drops it and replays the journal into a fresh instance, so it
//!   is again exactly as after the last good cell ([`CellOutcome::restored`]).
//! - **Save and restore.** A saved journal restored in another process
//!   replays every cell on its recorded inputs: same seed, same clock
//!   readings, storage replies served from the record (a write is never
//!   applied twice), outputs and logs discarded. Each replayed cell must end
//!   as recorded (status, value, streams, fuel to the unit); anything else is
//!   a typed [`HostError::Session`] naming the cell, never a silently
//!   different state. This restores what no serialiser can: closures,
//!   generators, class instances, prototypes.
//! - **Snapshots.** A frozen journal from which new sessions and runs start
//!   (`llmos snapshot create`, `llmos run --from`).
//!
//! The cost of this choice: restoring takes as long as running the cells
//! did (the README has the numbers); a live session in one process (the
//! library, the server) never replays except after a trap.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use wasmtime::Store;

use crate::bindings::interpreter;
use crate::engine::{self, Prepared, Runtime};
use crate::error::HostError;
use crate::facade::Tier;
use crate::inputs::{RunInputs, Source, Tape};
use crate::limits::{self, Limits};
use crate::outcome::{Outcome, Status};
use crate::state::HostState;

/// The journal format this build writes and reads.
pub const FORMAT: &str = "llmos-session/1";
/// The most cells a session keeps.
pub const MAX_CELLS: usize = 10_000;
/// The largest journal file read.
pub const MAX_JOURNAL_BYTES: u64 = 256 << 20;

/// A session's journal: everything needed to rebuild its state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Journal {
    /// Always [`FORMAT`].
    pub format: String,
    /// The language's manifest name.
    pub language: String,
    /// The storage namespace of the session's cells.
    pub artifact_id: String,
    /// How far the session's cells are trusted.
    pub tier: Tier,
    /// Fuel across every cell, if budgeted.
    #[serde(default)]
    pub budget_fuel: Option<u64>,
    /// Fuel used by every cell so far (journaled or not).
    #[serde(default)]
    pub fuel_used: u64,
    /// Cells run so far, journaled or not (the next cell is `cells_run + 1`).
    pub cells_run: u32,
    /// The good cells, in order.
    pub cells: Vec<CellRecord>,
}

/// One journaled cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CellRecord {
    /// The cell's number in the session (1-based).
    pub cell: u32,
    /// The cell's source.
    pub source: String,
    /// Its file name in stack traces.
    pub filename: String,
    /// The limits it ran under.
    pub limits: Limits,
    /// The inputs it was given.
    pub inputs: RunInputs,
    /// How it ended: `ok` or `error` (a raised exception).
    pub status: Status,
    /// Fuel it consumed.
    pub fuel: Option<u64>,
    /// Fingerprint of its value, streams and error (see [`fingerprint`]).
    pub check: u64,
}

impl Journal {
    /// An empty journal.
    pub fn new(language: &str, artifact_id: &str, tier: Tier) -> Journal {
        Journal {
            format: FORMAT.into(),
            language: language.into(),
            artifact_id: artifact_id.into(),
            tier,
            budget_fuel: None,
            fuel_used: 0,
            cells_run: 0,
            cells: Vec::new(),
        }
    }

    /// Read a journal (a saved session or a snapshot) from `path`.
    pub fn read(path: &Path) -> Result<Journal, HostError> {
        let file = std::fs::File::open(path).map_err(|e| HostError::io(path, e))?;
        let len = file.metadata().map_err(|e| HostError::io(path, e))?.len();
        if len > MAX_JOURNAL_BYTES {
            return Err(HostError::Session(format!(
                "`{}` is {len} bytes, more than a session file may be ({MAX_JOURNAL_BYTES})",
                path.display()
            )));
        }
        let journal: Journal =
            serde_json::from_reader(std::io::BufReader::new(file)).map_err(|e| {
                HostError::Session(format!("`{}` is not a session file: {e}", path.display()))
            })?;
        journal.validate(path)?;
        Ok(journal)
    }

    fn validate(&self, path: &Path) -> Result<(), HostError> {
        let bad = |why: String| HostError::Session(format!("`{}`: {why}", path.display()));
        if self.format != FORMAT {
            return Err(bad(format!(
                "format `{}` is not `{FORMAT}`",
                self.format.chars().take(64).collect::<String>()
            )));
        }
        if self.cells.len() > MAX_CELLS {
            return Err(bad(format!("more than {MAX_CELLS} cells")));
        }
        let mut last = 0;
        for c in &self.cells {
            if c.cell <= last || c.cell > self.cells_run {
                return Err(bad(format!("cell numbers out of order at cell {}", c.cell)));
            }
            last = c.cell;
            if !matches!(c.status, Status::Ok | Status::Error) {
                return Err(bad(format!("cell {} did not finish on its own", c.cell)));
            }
            c.limits
                .validate()
                .map_err(|e| bad(format!("cell {}: {e}", c.cell)))?;
            if c.limits.fuel.is_none() {
                return Err(bad(format!("cell {} is not fuel-metered", c.cell)));
            }
        }
        Ok(())
    }

    /// Write the journal to `path` atomically (a temporary file, synced,
    /// renamed over it): a crash leaves the old journal or the new one.
    pub fn write(&self, path: &Path) -> Result<(), HostError> {
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let io = |e| HostError::io(path, e);
        {
            let mut f = std::fs::File::create(&tmp).map_err(io)?;
            let bytes = serde_json::to_vec(self).map_err(|e| HostError::System {
                what: "cannot encode a session journal",
                source: std::io::Error::other(e),
            })?;
            f.write_all(&bytes).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, path).map_err(io)?;
        Ok(())
    }

    /// The fuel a cell may still use under the session budget.
    pub fn fuel_left(&self) -> Option<u64> {
        self.budget_fuel.map(|b| b.saturating_sub(self.fuel_used))
    }
}

/// A fingerprint of what a cell showed: status, value, streams, error class
/// and message. A replayed cell must reproduce it.
pub fn fingerprint(o: &Outcome) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    let mut part = |b: &[u8]| {
        h.update(&(b.len() as u64).to_le_bytes());
        h.update(b);
    };
    part(o.status.as_str().as_bytes());
    part(o.value.as_deref().unwrap_or("\u{0}").as_bytes());
    part(o.stdout.as_bytes());
    part(o.stderr.as_bytes());
    if let Some(e) = &o.error {
        part(e.class.as_bytes());
        part(e.message.as_bytes());
    }
    h.digest()
}

/// How a cell ended, in its session.
#[derive(Debug, Clone, Serialize)]
pub struct CellOutcome {
    /// The cell's number.
    pub cell: u32,
    /// The run's outcome (the `llmos run --json` schema).
    #[serde(flatten)]
    pub outcome: Outcome,
    /// The cell trapped, and the session was rebuilt as it was after the
    /// last good cell.
    pub restored: bool,
    /// The cell is in the journal (it returned or raised).
    pub journaled: bool,
}

/// What a restore did.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Replayed {
    /// Cells replayed.
    pub cells: usize,
    /// Wall time, milliseconds.
    pub millis: f64,
    /// Fuel the replay used.
    pub fuel: u64,
}

/// A live session: an instance kept between cells and its journal.
pub struct Session {
    prepared: Arc<Prepared>,
    live: Option<Live>,
    journal: Journal,
}

struct Live {
    store: Store<HostState>,
    instance: Option<wasmtime::component::Instance>,
}

/// A cell to run.
#[derive(Debug, Clone)]
pub struct Cell<'a> {
    /// The source.
    pub source: &'a str,
    /// File name in stack traces (empty: `cell<N>.<ext>`).
    pub filename: &'a str,
    /// Its limits (must be fuel-metered).
    pub limits: Limits,
    /// A seed: deterministic randomness and clocks for this cell.
    pub seed: Option<u64>,
}

impl Session {
    /// A session over `journal` on `runtime`, with its cells replayed.
    pub async fn open(
        runtime: &Runtime,
        journal: Journal,
    ) -> Result<(Session, Replayed), HostError> {
        let prepared = runtime.prepare_async(&journal.language, true).await?;
        if prepared.run_cell.is_none() {
            return Err(HostError::Session(format!(
                "{} does not run sessions (its manifest declares no `sessions` capability)",
                prepared.language.display_name()
            )));
        }
        let mut session = Session {
            prepared,
            live: None,
            journal,
        };
        let replayed = session.rebuild().await?;
        Ok((session, replayed))
    }

    /// The session's journal.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// Set (or remove) the session-wide fuel budget.
    pub fn set_budget_fuel(&mut self, budget: Option<u64>) {
        self.journal.budget_fuel = budget;
    }

    /// Run the next cell.
    ///
    /// `Err` for host problems only (and a spent session budget); whatever
    /// the cell does is in the [`CellOutcome`]. After a trap the session is
    /// rebuilt before this returns.
    pub async fn run_cell(&mut self, cell: Cell<'_>) -> Result<CellOutcome, HostError> {
        let mut limits = cell.limits.clone();
        let Some(fuel) = limits.fuel else {
            return Err(HostError::Session(
                "session cells are fuel-metered: give a fuel limit, not `none`".into(),
            ));
        };
        if let Some(left) = self.journal.fuel_left() {
            if left == 0 {
                return Err(HostError::Session(format!(
                    "the session's fuel budget ({}) is spent",
                    self.journal.budget_fuel.unwrap_or(0)
                )));
            }
            limits.fuel = Some(fuel.min(left));
        }
        if self.journal.cells.len() >= MAX_CELLS {
            return Err(HostError::Session(format!(
                "a session keeps at most {MAX_CELLS} cells"
            )));
        }
        let number = self.journal.cells_run.saturating_add(1);
        let filename = if cell.filename.is_empty() {
            let ext = self
                .prepared
                .language
                .extensions
                .first()
                .map(String::as_str)
                .unwrap_or("txt");
            format!("cell{number}.{ext}")
        } else {
            cell.filename.to_string()
        };
        let (outcome, returned) = self
            .call(cell.source, &filename, &limits, Source::for_seed(cell.seed))
            .await?;
        self.journal.cells_run = number;
        self.journal.fuel_used = self
            .journal
            .fuel_used
            .saturating_add(outcome.fuel_consumed.unwrap_or(0));
        // Anything but a return or a raise (a trap, or a stop just before a
        // limit) may have left the instance half-way: rebuild it.
        let poisoned = !returned || !matches!(outcome.status, Status::Ok | Status::Error);
        let mut journaled = false;
        let mut restored = false;
        if poisoned {
            self.live = None;
            self.rebuild().await?;
            restored = true;
        } else if let Some(inputs) = &outcome.inputs {
            self.journal.cells.push(CellRecord {
                cell: number,
                source: cell.source.to_string(),
                filename,
                limits,
                inputs: inputs.clone(),
                status: outcome.status,
                fuel: outcome.fuel_consumed,
                check: fingerprint(&outcome),
            });
            journaled = true;
        }
        Ok(CellOutcome {
            cell: number,
            outcome,
            restored,
            journaled,
        })
    }

    /// One call of `run-cell` on the live instance (made first if needed).
    /// Returns the outcome and whether the guest returned (no trap).
    async fn call(
        &mut self,
        source: &str,
        filename: &str,
        limits: &Limits,
        inputs: Source,
    ) -> Result<(Outcome, bool), HostError> {
        let prepared = self.prepared.clone();
        let live = match &mut self.live {
            Some(live) => {
                live.store.data().tape.restart(inputs);
                live
            }
            None => {
                let store = engine::new_store(
                    &prepared,
                    &self.journal.artifact_id,
                    limits,
                    Tape::new(inputs),
                )?;
                self.live.insert(Live {
                    store,
                    instance: None,
                })
            }
        };
        live.store.data_mut().start_cell(limits, &prepared.quotas);
        engine::arm(&mut live.store, limits)?;
        let start = Instant::now();
        let Live { store, instance } = live;
        let Some(index) = prepared.run_cell else {
            return Err(HostError::Session(
                "the language does not run sessions".into(),
            ));
        };
        let result = tokio::time::timeout(limits.timeout + limits::EPOCH_TICK, async {
            let inst = match instance {
                Some(i) => *i,
                None => *instance.insert(
                    prepared
                        .pre
                        .instance_pre()
                        .instantiate_async(&mut *store)
                        .await?,
                ),
            };
            let run_cell = inst.get_typed_func::<(&str, &str), (Result<
                interpreter::Success,
                interpreter::GuestError,
            >,)>(&mut *store, index)?;
            Ok(run_cell
                .call_async(&mut *store, (source, filename))
                .await?
                .0)
        })
        .await;
        let returned = matches!(result, Ok(Ok(_)));
        let outcome = engine::finish(store, &prepared.language.name, limits, result, start)?;
        if !returned {
            self.live = None;
        }
        Ok((outcome, returned))
    }

    /// Replay the journal into a fresh instance, checking that every cell
    /// ends exactly as recorded.
    async fn rebuild(&mut self) -> Result<Replayed, HostError> {
        self.live = None;
        let start = Instant::now();
        let mut fuel = 0;
        let cells = self.journal.cells.clone();
        for c in &cells {
            if !c.inputs.replayable() {
                return Err(HostError::Session(format!(
                    "cell {} cannot be replayed: it read the clocks or storage more than a record holds",
                    c.cell
                )));
            }
            let (outcome, returned) = self
                .call(
                    &c.source,
                    &c.filename,
                    &c.limits,
                    Source::Replay(c.inputs.clone()),
                )
                .await?;
            fuel += outcome.fuel_consumed.unwrap_or(0);
            let differs = if let Some(why) = &outcome.replay_diverged {
                Some(why.clone())
            } else if !returned || outcome.status != c.status {
                Some(format!(
                    "it ended `{}`, recorded `{}`",
                    outcome.status.as_str(),
                    c.status.as_str()
                ))
            } else if outcome.fuel_consumed != c.fuel {
                Some(format!(
                    "it used {} fuel, recorded {}",
                    outcome.fuel_consumed.unwrap_or(0),
                    c.fuel.unwrap_or(0)
                ))
            } else if fingerprint(&outcome) != c.check {
                Some("its value or output differs from the record".into())
            } else {
                None
            };
            if let Some(why) = differs {
                self.live = None;
                return Err(HostError::Session(format!(
                    "replaying cell {} did not reproduce it: {why} (was the component rebuilt?)",
                    c.cell
                )));
            }
        }
        Ok(Replayed {
            cells: cells.len(),
            millis: start.elapsed().as_secs_f64() * 1e3,
            fuel,
        })
    }
}

/// Sessions kept on disk between commands: one journal file per session in
/// a directory (`<data dir>/sessions`), each locked while a command uses it.
#[derive(Debug, Clone)]
pub struct SessionDir {
    dir: PathBuf,
}

/// A session's file, locked for one command.
#[derive(Debug)]
pub struct Locked {
    _file: std::fs::File,
    path: PathBuf,
}

impl Locked {
    /// The journal file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// One line of `llmos session list`.
#[derive(Debug, Clone, Serialize)]
pub struct SessionInfo {
    /// The session's name.
    pub name: String,
    /// Its language.
    pub language: String,
    /// Cells run.
    pub cells_run: u32,
    /// Cells in the journal.
    pub cells: usize,
    /// Fuel used.
    pub fuel_used: u64,
}

impl SessionDir {
    /// The sessions kept in `dir` (created 0700 on first use).
    pub fn new(dir: impl Into<PathBuf>) -> SessionDir {
        SessionDir { dir: dir.into() }
    }

    /// Where session `name`'s journal lives.
    pub fn path(&self, name: &str) -> Result<PathBuf, HostError> {
        check_name(name)?;
        Ok(self.dir.join(format!("{name}.json")))
    }

    /// Lock session `name` for this command (waiting for another command
    /// that holds it).
    pub fn lock(&self, name: &str) -> Result<Locked, HostError> {
        let path = self.path(name)?;
        std::fs::create_dir_all(&self.dir).map_err(|e| HostError::io(&self.dir, e))?;
        let lock_path = self.dir.join(format!(".{name}.lock"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| HostError::io(&lock_path, e))?;
        file.lock().map_err(|e| HostError::io(&lock_path, e))?;
        Ok(Locked { _file: file, path })
    }

    /// Whether session `name` exists.
    pub fn exists(&self, name: &str) -> Result<bool, HostError> {
        Ok(self.path(name)?.is_file())
    }

    /// Session `name`'s journal.
    pub fn load(&self, lock: &Locked, name: &str) -> Result<Journal, HostError> {
        if !lock.path.is_file() {
            return Err(HostError::Session(format!(
                "no session named `{name}` (see `llmos session list`)"
            )));
        }
        Journal::read(&lock.path)
    }

    /// Every session, by name.
    pub fn list(&self) -> Result<Vec<SessionInfo>, HostError> {
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(HostError::io(&self.dir, e)),
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
            else {
                continue;
            };
            if check_name(name).is_err() {
                continue;
            }
            match Journal::read(&path) {
                Ok(j) => out.push(SessionInfo {
                    name: name.to_string(),
                    language: j.language,
                    cells_run: j.cells_run,
                    cells: j.cells.len(),
                    fuel_used: j.fuel_used,
                }),
                Err(e) => tracing::warn!(session = name, "unreadable session: {e}"),
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Remove session `name`; `false` if there was none.
    pub fn drop_session(&self, name: &str) -> Result<bool, HostError> {
        let lock = self.lock(name)?;
        match std::fs::remove_file(&lock.path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(HostError::io(&lock.path, e)),
        }
    }
}

/// The language of a session that names none.
pub const DEFAULT_LANGUAGE: &str = "python";

/// The storage namespace of session `name`'s cells.
pub fn namespace(name: &str) -> String {
    format!("session:{name}")
}

/// Session names: 1–64 characters of `A-Z a-z 0-9 _ - .`, not starting
/// with a dot.
pub fn check_name(name: &str) -> Result<(), HostError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(HostError::Usage(format!(
            "invalid session name `{}`: use 1-64 letters, digits, `_`, `-` or `.`, not starting with `.`",
            name.chars().take(80).collect::<String>()
        )))
    }
}

/// Run `req` and then its test program in the same interpreter state: the
/// artifact as cell 1 of a fresh session, the test as cell 2. The outcome is
/// the artifact's, `test_failed` when the test did not end ok (its own
/// outcome in `test`), and `wrong_output` when the stdout differs from
/// `req.expect_stdout`.
pub(crate) async fn run_with_test(
    runtime: &Runtime,
    req: &crate::engine::RunRequest,
) -> Result<Outcome, HostError> {
    let Some(test) = &req.test else {
        return Err(HostError::Usage("no test program to run".into()));
    };
    let prepared = runtime.prepare_async(&req.language, true).await?;
    if prepared.run_cell.is_none() {
        return Err(HostError::Usage(format!(
            "a test program runs in the artifact's session, and {} does not run sessions",
            prepared.language.display_name()
        )));
    }
    let mut limits = req.limits.clone();
    if limits.fuel.is_none() {
        limits.fuel = Some(crate::limits::DEFAULT_FUEL);
    }
    let journal = Journal::new(&req.language, &req.artifact_id, Tier::Sandboxed);
    let (mut session, _) = Session::open(runtime, journal).await?;
    let filename = engine::artifact_filename(&prepared, &req.filename);
    let mut outcome = session
        .run_cell(Cell {
            source: &req.source,
            filename: &filename,
            limits: limits.clone(),
            seed: req.seed,
        })
        .await?
        .outcome;
    if !outcome.is_ok() {
        return Ok(outcome);
    }
    engine::check_stdout(&mut outcome, req.expect_stdout.as_deref());
    let test_outcome = session
        .run_cell(Cell {
            source: &test.source,
            filename: &test.filename,
            limits,
            seed: req.seed,
        })
        .await?
        .outcome;
    if outcome.is_ok() && !test_outcome.is_ok() {
        outcome.status = Status::TestFailed;
    }
    outcome.test = Some(Box::new(test_outcome));
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_name("nb-1.v2").is_ok());
        for bad in ["", ".hidden", "a/b", "../x", &"x".repeat(65), "a b"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn journals_round_trip_and_bad_ones_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("j.json");
        let j = Journal::new("python", "session:x", Tier::Sandboxed);
        j.write(&p).expect("write");
        assert_eq!(Journal::read(&p).expect("read"), j);
        std::fs::write(&p, b"{\"format\": 3").expect("write");
        assert!(matches!(Journal::read(&p), Err(HostError::Session(_))));
        let mut other = serde_json::to_value(&j).expect("json");
        other["format"] = "llmos-session/99".into();
        std::fs::write(&p, other.to_string()).expect("write");
        assert!(matches!(Journal::read(&p), Err(HostError::Session(_))));
    }
}
