//! `llmos boot`: the boot screen (or one JSON event per line).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;

use llmos::boot::{BootEvent, BootOptions, Stage};
use llmos::{HostError, Llmos};

pub fn show(json: bool, recheck: bool, config: Option<PathBuf>) -> Result<ExitCode, HostError> {
    let opts = BootOptions {
        config,
        checks: true,
        recheck,
        ..Default::default()
    };
    let rt = super::async_runtime()?;
    if json {
        let k = rt.block_on(Llmos::boot(&opts, &|e| {
            if let Ok(line) = serde_json::to_string(e) {
                outln!("{line}");
            }
        }));
        let code = if k.is_ok() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(super::EXIT_HOST_ERROR)
        };
        super::leave(k);
        super::leave(rt);
        return Ok(code);
    }
    errln!(
        "llmos {} — wasmtime {}",
        env!("CARGO_PKG_VERSION"),
        llmos::cache::WASMTIME_VERSION
    );
    let tty = std::io::stderr().is_terminal();
    let bars: Mutex<Vec<(Stage, indicatif::ProgressBar)>> = Mutex::new(Vec::new());
    let multi = indicatif::MultiProgress::new();
    let llmos = rt.block_on(Llmos::boot(&opts, &|e| {
        let mut bars = bars.lock().unwrap_or_else(|p| p.into_inner());
        match e {
            BootEvent::Started { stage } if tty => {
                let bar =
                    multi.add(indicatif::ProgressBar::new_spinner().with_message(stage.title()));
                bar.enable_steady_tick(std::time::Duration::from_millis(80));
                bars.push((*stage, bar));
            }
            BootEvent::Progress { stage, detail } => match bars.iter().find(|(s, _)| s == stage) {
                Some((_, bar)) => bar.set_message(format!("{}: {detail}", stage.title())),
                None => errln!("  {}: {detail}", stage.title()),
            },
            BootEvent::Done { stage, ms, detail } => {
                let line = format!("✓ {:<34} {ms:>8.1} ms  {detail}", stage.title());
                match bars.iter().position(|(s, _)| s == stage) {
                    Some(i) => bars.remove(i).1.finish_with_message(line),
                    None => errln!("{line}"),
                }
            }
            BootEvent::Failed { stage, error } => {
                let line = format!("✗ {}: {error}", stage.title());
                match bars.iter().position(|(s, _)| s == stage) {
                    Some(i) => bars.remove(i).1.abandon_with_message(line),
                    None => errln!("{line}"),
                }
            }
            _ => {}
        }
    }))?;
    for m in llmos.languages().iter() {
        errln!(
            "  language {:<12} .{}  {}",
            m.name,
            m.extensions.join(" ."),
            m.description
        );
    }
    errln!("system ready in {:.1} ms", llmos.boot_ms());
    super::leave(llmos);
    super::leave(rt);
    Ok(ExitCode::SUCCESS)
}
