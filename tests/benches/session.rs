//! `make bench`: sessions, restore and snapshots, as a table of medians.
//!
//! - warm cell latency: one trivial cell on a live session (after a first
//!   cell), per language;
//! - a 5-cell session end to end: a new session and five small cells;
//! - save (journal to file, fsynced) and restore (read + replay of every
//!   cell, checked) of sessions of 10 and 100 cells;
//! - a run forked from a snapshot (3 setup cells) against the same artifact
//!   in a fresh sandbox;
//! - restore + run: a saved 5-cell session restored and one cell run, the
//!   figure hyperlight-sandbox publishes as 0.7–1.5 ms;
//! - the same through the CLI: a `llmos session run` process on a 10-cell
//!   session (each command is a new process that replays the journal).
//!
//! Set `LLMOS_BENCH_QUICK=1` for fewer iterations.

use std::time::Instant;

use llmos::session::Journal;
use llmos::{Cell, Limits, RunRequest, Runtime, Session, Status, Tier};
use llmos_tests::bench::{iterations, median, time_ms};
use llmos_tests::{llmos_command, test_config};

struct Bench {
    rt: tokio::runtime::Runtime,
    runtime: Runtime,
}

fn cell(source: &str) -> Cell<'_> {
    Cell {
        source,
        filename: "",
        limits: Limits::default(),
        seed: None,
    }
}

impl Bench {
    fn open(&self, journal: Journal) -> Session {
        self.rt
            .block_on(Session::open(&self.runtime, journal))
            .expect("open session")
            .0
    }

    fn run(&self, s: &mut Session, source: &str) {
        let c = self.rt.block_on(s.run_cell(cell(source))).expect("cell");
        assert_eq!(c.outcome.status, Status::Ok, "{source}: {:?}", c.outcome);
    }

    fn empty(&self, lang: &str) -> Journal {
        Journal::new(lang, "bench-session", Tier::Sandboxed)
    }

    /// A session whose journal holds `n` small cells.
    fn journal_of(&self, lang: &str, n: usize) -> Journal {
        let mut s = self.open(self.empty(lang));
        for i in 0..n {
            let src = match lang {
                "python" => format!("v{i} = [{i}] * 10\nv{i}[0] + {i}\n"),
                _ => format!("var v{i} = new Array(10).fill({i});\nv{i}[0] + {i};\n"),
            };
            self.run(&mut s, &src);
        }
        s.journal().clone()
    }
}

fn five_cells(lang: &str) -> [&'static str; 5] {
    match lang {
        "python" => [
            "import json\ndata = json.loads('[1, 2, 3]')",
            "def total(v):\n    return sum(v)",
            "t = total(data)",
            "class Acc:\n    def __init__(self):\n        self.n = t",
            "print(Acc().n)",
        ],
        _ => [
            "const data = JSON.parse('[1, 2, 3]');",
            "function total(v) { return v.reduce((a, b) => a + b, 0); }",
            "var t = total(data);",
            "class Acc { constructor() { this.n = t; } }",
            "console.log(new Acc().n);",
        ],
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let runtime = Runtime::new(test_config()).expect("runtime");
    for lang in ["javascript", "python"] {
        runtime.prepare(lang, true).expect("prepare");
    }
    let b = Bench { rt, runtime };
    let dir = std::env::temp_dir().join(format!("llmos-bench-session-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("bench dir");

    println!("\nSessions (medians; ms)");
    println!("{:<54} {:>12} {:>12}", "", "javascript", "python");
    let row = |name: &str, js: f64, py: f64| println!("{name:<54} {js:>12.3} {py:>12.3}");
    let per_lang = |f: &dyn Fn(&str) -> f64| (f("javascript"), f("python"));

    let (js, py) = per_lang(&|lang| {
        let mut s = b.open(b.empty(lang));
        b.run(&mut s, "1");
        let n = iterations(500);
        let trivial = if lang == "python" { "x = 1" } else { "x = 1;" };
        time_ms(n, || b.run(&mut s, trivial))
    });
    row("warm cell, trivial (target JS ≤ 0.1, Python ≤ 0.5)", js, py);

    let (js, py) = per_lang(&|lang| {
        time_ms(iterations(50), || {
            let mut s = b.open(b.empty(lang));
            for c in five_cells(lang) {
                b.run(&mut s, c);
            }
        })
    });
    row("5-cell session end to end (peer: ≈ 3 ms, Python)", js, py);

    for cells in [10usize, 100] {
        let (js_save, py_save, js_restore, py_restore) = {
            let mut out = [0.0; 4];
            for (k, lang) in ["javascript", "python"].into_iter().enumerate() {
                let j = b.journal_of(lang, cells);
                let path = dir.join(format!("{lang}-{cells}.json"));
                out[k] = time_ms(iterations(20), || j.write(&path).expect("save"));
                out[2 + k] = time_ms(iterations(20), || {
                    let j = Journal::read(&path).expect("read");
                    drop(b.open(j));
                });
            }
            (out[0], out[1], out[2], out[3])
        };
        row(
            &format!("save, {cells} cells (journal, fsynced)"),
            js_save,
            py_save,
        );
        row(
            &format!("restore, {cells} cells (read + replay, checked)"),
            js_restore,
            py_restore,
        );
    }

    let mut fork = Vec::new();
    let (js, py) = per_lang(&|lang| {
        let setup = b.journal_of(lang, 0);
        let mut s = b.open(setup);
        for c in &five_cells(lang)[..3] {
            b.run(&mut s, c);
        }
        let snapshot = s.journal().clone();
        let artifact = if lang == "python" { "t * 2" } else { "t * 2;" };
        time_ms(iterations(200), || {
            let mut s = b.open(snapshot.clone());
            b.run(&mut s, artifact);
        })
    });
    fork.push(("run forked from a snapshot (3 setup cells)", js, py));
    let (js, py) = per_lang(&|lang| {
        let src = if lang == "python" {
            "import json\ndata = json.loads('[1, 2, 3]')\ndef total(v):\n    return sum(v)\nt = total(data)\nt * 2"
        } else {
            "const data = JSON.parse('[1, 2, 3]');\nfunction total(v) { return v.reduce((a, b) => a + b, 0); }\nvar t = total(data);\nt * 2;"
        };
        let p = b.runtime.prepare(lang, true).expect("prepare");
        let req = RunRequest::new(lang, src);
        time_ms(iterations(200), || {
            let o =
                b.rt.block_on(llmos::engine::run_prepared(&p, &req))
                    .expect("run");
            assert_eq!(o.status, Status::Ok);
        })
    });
    fork.push(("same program in a fresh sandbox (baseline)", js, py));
    for (name, js, py) in &fork {
        row(name, *js, *py);
    }
    row(
        "  ratio fork / fresh (target ≤ 1)",
        fork[0].1 / fork[1].1,
        fork[0].2 / fork[1].2,
    );

    let (js, py) = per_lang(&|lang| {
        let mut s = b.open(b.empty(lang));
        for c in five_cells(lang) {
            b.run(&mut s, c);
        }
        let path = dir.join(format!("{lang}-5.json"));
        s.journal().write(&path).expect("save");
        time_ms(iterations(100), || {
            let j = Journal::read(&path).expect("read");
            let mut s = b.open(j);
            b.run(&mut s, "t");
        })
    });
    row("restore 5 cells + run one (hyperlight: 0.7–1.5)", js, py);

    // The CLI: every command is a new process that replays the journal.
    let data = dir.join("cli-data");
    let (js, py) = per_lang(&|lang| {
        let name = format!("cli-{lang}");
        let ok = llmos_command(
            &["session", "new", "--name", &name, "--lang", lang, "--force"],
            &data,
        )
        .output()
        .expect("session new");
        assert!(ok.status.success(), "{ok:?}");
        let cell_file = dir.join(format!(
            "cell.{}",
            if lang == "python" { "py" } else { "js" }
        ));
        std::fs::write(
            &cell_file,
            if lang == "python" {
                "x = 1\n"
            } else {
                "var x = 1;\n"
            },
        )
        .expect("cell");
        let c = cell_file.display().to_string();
        let run = || {
            let o = llmos_command(&["session", "run", &name, &c], &data)
                .output()
                .expect("session run");
            assert!(o.status.success(), "{o:?}");
        };
        for _ in 0..9 {
            run();
        }
        let path = data.join("sessions").join(format!("{name}.json"));
        let samples = (0..iterations(20))
            .map(|_| {
                // Keep the session at 9 cells before the timed 10th.
                let mut j = Journal::read(&path).expect("journal");
                j.cells.truncate(9);
                j.write(&path).expect("write");
                let t = Instant::now();
                run();
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        median(samples)
    });
    row("`llmos session run` process, 10-cell session", js, py);
    let _ = std::fs::remove_dir_all(&dir);
}
