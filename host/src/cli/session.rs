//! `llmos session ...` and `llmos snapshot create`: parse, call the facade,
//! print. Each command is its own process, so a session lives on disk as
//! its journal (`<data dir>/sessions/NAME.json`, locked while a command uses
//! it) and every command that runs a cell first replays it (see
//! `llmos::session`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::EXIT_ARTIFACT_FAILED;
use super::run::LimitArgs;
use llmos::session::{Journal, Replayed};
use llmos::{Cell, HostError, Llmos};

#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// Start a session: an interpreter whose globals persist across cells.
    New(NewArgs),
    /// Run one cell (FILE, or `-` for stdin) in a session.
    Run(CellArgs),
    /// Write a session to a file (to restore elsewhere, or keep).
    Save {
        /// The session.
        name: String,
        /// Where to write it.
        file: PathBuf,
    },
    /// Make a session from a saved file, replaying and checking every cell.
    Restore {
        /// A file written by `llmos session save` (or a snapshot).
        file: PathBuf,
        /// The new session's name (default: the file's stem).
        #[arg(long)]
        name: Option<String>,
        /// Replace a session of that name.
        #[arg(long)]
        force: bool,
        /// One JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// List the sessions.
    List {
        /// One JSON array on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Delete a session.
    Drop {
        /// The session.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Freeze a session into a snapshot file that runs (`llmos run --from`)
    /// and sessions (`llmos session new --from`) start from.
    Create {
        /// The session.
        name: String,
        /// The snapshot file.
        #[arg(short, long)]
        output: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct NewArgs {
    /// The session's name (default: a new unique name, printed).
    #[arg(long)]
    pub name: Option<String>,
    /// Language (default: python, or the snapshot's).
    #[arg(long)]
    pub lang: Option<String>,
    /// Start from a snapshot (or a saved session).
    #[arg(long, value_name = "FILE")]
    pub from: Option<PathBuf>,
    /// Cells are untrusted (written by a model): strict limits.
    #[arg(long)]
    pub untrusted: bool,
    /// Fuel across every cell of the session.
    #[arg(long, value_name = "N")]
    pub budget_fuel: Option<String>,
    /// Replace a session of that name.
    #[arg(long)]
    pub force: bool,
    /// One JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CellArgs {
    /// The session.
    pub name: String,
    /// The cell's source file, or `-` for stdin.
    pub file: PathBuf,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Seed the cell's randomness and clocks (reproducible cells).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Directory for the cell's outputs (default: <data dir>/outputs/session-NAME).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// One JSON object on stdout: the `llmos run --json` schema plus
    /// `session`, `cell`, `restored` and `journaled`.
    #[arg(long)]
    pub json: bool,
}

pub fn session(
    command: SessionCommand,
    verbose: bool,
    config: Option<PathBuf>,
) -> Result<ExitCode, HostError> {
    let rt = super::async_runtime()?;
    rt.block_on(async move {
        let llmos = super::boot_lazy(config, verbose, true).await?;
        match command {
            SessionCommand::New(args) => new(&llmos, args).await,
            SessionCommand::Run(args) => run_cell(&llmos, args).await,
            SessionCommand::Save { name, file } => {
                let dir = llmos.sessions();
                let lock = dir.lock(&name)?;
                let journal = dir.load(&lock, &name)?;
                journal.write(&file)?;
                errln!(
                    "llmos: saved session `{name}` ({} cells) to {}",
                    journal.cells.len(),
                    file.display()
                );
                Ok(ExitCode::SUCCESS)
            }
            SessionCommand::Restore {
                file,
                name,
                force,
                json,
            } => {
                let name = match name {
                    Some(n) => n,
                    None => file
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                };
                let journal = Journal::read(&file)?;
                let replayed = create(&llmos, &name, journal, force).await?;
                report_created(&name, &replayed, json, "restored");
                Ok(ExitCode::SUCCESS)
            }
            SessionCommand::List { json } => {
                let list = llmos.sessions().list()?;
                if json {
                    outln!("{}", serde_json::to_value(&list).unwrap_or_default());
                } else if list.is_empty() {
                    errln!("llmos: no sessions (start one with `llmos session new`)");
                } else {
                    outln!(
                        "{:<24} {:<12} {:>6} {:>16}",
                        "NAME",
                        "LANGUAGE",
                        "CELLS",
                        "FUEL"
                    );
                    for s in list {
                        outln!(
                            "{:<24} {:<12} {:>6} {:>16}",
                            s.name,
                            s.language,
                            s.cells_run,
                            s.fuel_used
                        );
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
            SessionCommand::Drop { name } => {
                if llmos.sessions().drop_session(&name)? {
                    errln!("llmos: dropped session `{name}`");
                    Ok(ExitCode::SUCCESS)
                } else {
                    Err(HostError::Session(format!("no session named `{name}`")))
                }
            }
        }
    })
}

pub fn snapshot(
    command: SnapshotCommand,
    verbose: bool,
    config: Option<PathBuf>,
) -> Result<ExitCode, HostError> {
    let SnapshotCommand::Create { name, output } = command;
    let rt = super::async_runtime()?;
    rt.block_on(async move {
        let llmos = super::boot_lazy(config, verbose, true).await?;
        let dir = llmos.sessions();
        let lock = dir.lock(&name)?;
        let mut journal = dir.load(&lock, &name)?;
        // A snapshot carries the state, not the session's accounting.
        journal.budget_fuel = None;
        journal.fuel_used = 0;
        journal.write(&output)?;
        errln!(
            "llmos: snapshot of `{name}` ({} cells) written to {}",
            journal.cells.len(),
            output.display()
        );
        Ok(ExitCode::SUCCESS)
    })
}

async fn new(llmos: &Llmos, args: NewArgs) -> Result<ExitCode, HostError> {
    let name = match &args.name {
        Some(n) => n.clone(),
        None => format!("s{:08x}", rand::random::<u32>()),
    };
    llmos::session::check_name(&name)?;
    let mut journal = match &args.from {
        Some(file) => {
            let mut j = Journal::read(file)?;
            if let Some(l) = &args.lang
                && llmos.languages().by_name(l)?.name != j.language
            {
                return Err(HostError::Usage(format!(
                    "the snapshot is a {} session, not {l}",
                    j.language
                )));
            }
            j.artifact_id = llmos::session::namespace(&name);
            j.fuel_used = 0;
            j
        }
        None => llmos.new_session(args.lang.as_deref(), &name, args.untrusted)?,
    };
    if args.untrusted {
        journal.tier = llmos::Tier::Untrusted;
    }
    journal.budget_fuel = args
        .budget_fuel
        .as_deref()
        .map(llmos::parse_fuel)
        .transpose()?
        .flatten();
    let replayed = create(llmos, &name, journal, args.force).await?;
    report_created(&name, &replayed, args.json, "created");
    Ok(ExitCode::SUCCESS)
}

/// Replay `journal` (checking it) and keep it as session `name`.
async fn create(
    llmos: &Llmos,
    name: &str,
    journal: Journal,
    force: bool,
) -> Result<Replayed, HostError> {
    let dir = llmos.sessions();
    let lock = dir.lock(name)?;
    if lock.path().exists() && !force {
        return Err(HostError::Session(format!(
            "a session named `{name}` exists (drop it, or pass --force)"
        )));
    }
    let mut journal = journal;
    journal.artifact_id = llmos::session::namespace(name);
    let replayed = if journal.cells.is_empty() {
        // Nothing to replay; still check the language is ready.
        llmos
            .runtime()
            .prepare_async(&journal.language, true)
            .await?;
        Replayed::default()
    } else {
        llmos.open_session(journal.clone()).await?.1
    };
    journal.write(lock.path())?;
    Ok(replayed)
}

fn report_created(name: &str, replayed: &Replayed, json: bool, verb: &str) {
    if json {
        outln!(
            "{}",
            serde_json::json!({"session": name, "replayed": replayed})
        );
    } else {
        outln!("{name}");
        if replayed.cells > 0 {
            errln!(
                "llmos: {verb} session `{name}`: {} cells replayed in {:.1} ms",
                replayed.cells,
                replayed.millis
            );
        } else {
            errln!("llmos: {verb} session `{name}`");
        }
    }
}

async fn run_cell(llmos: &Llmos, args: CellArgs) -> Result<ExitCode, HostError> {
    let dir = llmos.sessions();
    let lock = dir.lock(&args.name)?;
    let journal = dir.load(&lock, &args.name)?;
    let (source, filename) = if args.file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .map_err(|e| HostError::io("<stdin>", e))?;
        (text, String::new())
    } else {
        let bytes = std::fs::read(&args.file).map_err(|e| HostError::io(&args.file, e))?;
        let text = String::from_utf8(bytes).map_err(|_| {
            HostError::io(
                &args.file,
                std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"),
            )
        })?;
        let name = args
            .file
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        (text, name)
    };
    let limits = llmos.cell_limits(journal.tier, &journal.language, &args.limits.overrides()?)?;
    let id = journal.artifact_id.clone();
    let (mut session, replayed) = llmos.open_session(journal).await?;
    let mut cell = session
        .run_cell(Cell {
            source: &source,
            filename: &filename,
            limits,
            seed: args.seed,
        })
        .await?;
    // The journal is kept before anything is printed: a closed stdout
    // never loses the cell.
    session.journal().write(lock.path())?;
    if let Err(e) = llmos.save_outputs_for(&mut cell.outcome, &id, args.out.as_deref()) {
        errln!("llmos: warning: cannot write the outputs: {e}");
    }
    if args.json {
        let mut v = serde_json::to_value(&cell).map_err(|e| HostError::System {
            what: "cannot serialise the outcome",
            source: std::io::Error::other(e),
        })?;
        if let Some(obj) = v.as_object_mut() {
            obj.insert("session".into(), args.name.clone().into());
            obj.insert("replay_ms".into(), replayed.millis.into());
        }
        outln!("{v}");
    } else {
        errln!("[cell {}]", cell.cell);
        super::run::print_human(&cell.outcome, &source, session.journal().tier);
        if cell.restored {
            errln!(
                "llmos: the cell's instance trapped; session `{}` is back as it was after its last good cell",
                args.name
            );
        }
    }
    Ok(if cell.outcome.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_ARTIFACT_FAILED)
    })
}
