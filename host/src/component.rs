//! Artifacts that are components themselves: `llmos run app.wasm`.
//!
//! A precompiled WebAssembly component that exports `wasi:cli/run` (a
//! command: a Rust `wasm32-wasip2` binary, C through wasi-sdk, TinyGo, ...)
//! runs like every artifact: the same engines, limits, outcomes, tape of
//! inputs and no-capability WASI, with the llmos kernel interfaces
//! (`llmos:kernel/storage`, `viz`, ...) available to import. It is compiled
//! once and cached like the interpreters (keyed by its content and the
//! engine).
//!
//! Before anything runs, the file is checked: a non-WebAssembly file, a core
//! module (not a component), a truncated or invalid component, an import
//! the kernel does not provide, or a missing `wasi:cli/run` export are each
//! a [`HostError`] that says what is wrong; none reaches the guest.

use std::path::Path;
use std::time::Instant;

use wasmtime_wasi::p2::bindings::CommandPre;

use crate::bindings::interpreter;
use crate::engine::{self, RunRequest, Runtime};
use crate::error::HostError;
use crate::inputs::{Source, Tape};
use crate::limits;
use crate::outcome::Outcome;

/// The `language` name of component artifacts in outcomes and requests.
pub const LANGUAGE: &str = "component";
/// The file extension of component artifacts.
pub const EXTENSION: &str = "wasm";

/// The `llmos:kernel` WIT package, as built into this binary: what a
/// component artifact may import (`llmos wit --out DIR` writes it, e.g. to
/// `wit/deps/llmos-kernel/` for `wit-bindgen`).
pub const WIT: &[(&str, &str)] = &[
    ("world.wit", include_str!("../../wit/world.wit")),
    ("interpreter.wit", include_str!("../../wit/interpreter.wit")),
    ("session.wit", include_str!("../../wit/session.wit")),
    ("log.wit", include_str!("../../wit/log.wit")),
    ("process.wit", include_str!("../../wit/process.wit")),
    ("storage.wit", include_str!("../../wit/storage.wit")),
    ("viz.wit", include_str!("../../wit/viz.wit")),
    ("dom.wit", include_str!("../../wit/dom.wit")),
    ("quantum.wit", include_str!("../../wit/quantum.wit")),
];

/// What the first 8 bytes of a file say it is.
fn kind_of(path: &Path, head: &[u8]) -> Result<(), HostError> {
    let bad = |reason: &str| HostError::Compile {
        path: path.to_owned(),
        reason: reason.into(),
    };
    if head.len() < 8 || &head[..4] != b"\0asm" {
        return Err(bad("not a WebAssembly file (no `\\0asm` header)"));
    }
    match head[4..8] {
        // Core module, version 1.
        [1, 0, 0, 0] => Err(bad(
            "a core WebAssembly module, not a component: build for wasm32-wasip2, or wrap it with `wasm-tools component new`",
        )),
        // Component, layer 1.
        [_, _, 1, 0] => Ok(()),
        _ => Err(bad("an unknown WebAssembly binary version")),
    }
}

/// A name for the component's cache entries: readable, unique per path.
fn cache_name(path: &Path) -> String {
    let stem: String = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(32)
        .collect();
    let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let hash = xxhash_rust::xxh3::xxh3_64(canonical.as_os_str().as_encoded_bytes());
    format!("artifact-{stem}-{hash:016x}")
}

impl Runtime {
    /// Check and load the component at `path` for the metered (or
    /// un-metered) engine: compiled on first use, cached afterwards.
    pub fn prepare_component(
        &self,
        path: &Path,
        metered: bool,
    ) -> Result<CommandPre<crate::state::HostState>, HostError> {
        let mut head = [0u8; 8];
        {
            use std::io::Read;
            let mut f = std::fs::File::open(path).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => HostError::ComponentMissing {
                    path: path.to_owned(),
                },
                _ => HostError::io(path, e),
            })?;
            let n = f.read(&mut head).map_err(|e| HostError::io(path, e))?;
            kind_of(path, &head[..n])?;
        }
        let (engine, fingerprint) = self.engine_and_fingerprint(metered)?;
        let loaded =
            self.component_cache()
                .load(engine, fingerprint, &cache_name(path), path, &|_| {
                    tracing::info!(component = %path.display(), "compiling artifact component");
                })?;
        let linker = engine::linker(engine)?;
        let pre = linker
            .instantiate_pre(&loaded.component)
            .map_err(|e| HostError::Compile {
                path: path.to_owned(),
                reason: format!("it imports something the llmos kernel does not provide: {e:#}"),
            })?;
        CommandPre::new(pre).map_err(|e| HostError::Compile {
            path: path.to_owned(),
            reason: format!(
                "it does not export `wasi:cli/run` (build a command, e.g. a Rust binary for wasm32-wasip2): {}",
                e.root_cause()
            ),
        })
    }

    /// Run the component artifact named by `req.component` under
    /// `req.limits`: `Ok` for everything the component does (including an
    /// exit code, a trap or a limit), `Err` for host problems.
    pub(crate) async fn run_component(
        &self,
        path: &Path,
        req: &RunRequest,
    ) -> Result<Outcome, HostError> {
        let limits = &req.limits;
        limits.validate()?;
        let metered = limits.fuel.is_some();
        let pre = {
            let rt = self.clone();
            let path = path.to_owned();
            tokio::task::spawn_blocking(move || rt.prepare_component(&path, metered))
                .await
                .map_err(|e| HostError::System {
                    what: "a component loader thread failed",
                    source: std::io::Error::other(e.to_string()),
                })??
        };
        let source = match &req.inputs {
            Some(s) => s.clone(),
            None => Source::for_seed(req.seed),
        };
        let mut store = engine::new_store_on(
            pre.engine(),
            metered,
            &self.quotas(),
            self.storage(),
            &req.artifact_id,
            limits,
            Tape::new(source),
        )?;
        engine::arm(&mut store, limits)?;
        let start = Instant::now();
        let result = tokio::time::timeout(limits.timeout + limits::EPOCH_TICK, async {
            let command = pre.instantiate_async(&mut store).await?;
            let ran = command.wasi_cli_run().call_run(&mut store).await?;
            Ok(match ran {
                Ok(()) => Ok(interpreter::Success { value: None }),
                // `run` returned `err`: the command's way of exiting 1.
                Err(()) => Err(interpreter::GuestError {
                    kind: interpreter::ErrorKind::Exit,
                    class: "Exit".into(),
                    message: "exited with code 1".into(),
                    line: None,
                    column: None,
                    stack: Vec::new(),
                    exit_code: Some(1),
                    globals: Vec::new(),
                }),
            })
        })
        .await;
        engine::finish(&mut store, LANGUAGE, limits, result, start)
    }
}

/// Whether `path` names a component artifact (by its extension).
pub fn is_component_path(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case(EXTENSION))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_wit_package_is_every_file_of_wit() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .expect("wit dir")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".wit"))
            .collect();
        on_disk.sort();
        let mut built: Vec<String> = WIT.iter().map(|(n, _)| n.to_string()).collect();
        built.sort();
        assert_eq!(built, on_disk);
    }

    #[test]
    fn headers_are_told_apart() {
        let p = Path::new("x.wasm");
        assert!(kind_of(p, b"\0asm\x0d\0\x01\0").is_ok());
        let core = kind_of(p, b"\0asm\x01\0\0\0").expect_err("core module");
        assert!(
            core.to_string().contains("core WebAssembly module"),
            "{core}"
        );
        assert!(kind_of(p, b"\x7fELF\x02\x01\x01\0").is_err());
        assert!(kind_of(p, b"\0as").is_err());
    }
}
