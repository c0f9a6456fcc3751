//! `llmos-preinit IN OUT`: pre-initialise a guest component at build time.
//!
//! Used by the Makefile on guests implementing the `language-preinit` world
//! (see `llmos::preinit`).

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output] = args.as_slice() else {
        eprintln!("usage: llmos-preinit IN.wasm OUT.wasm");
        return ExitCode::from(2);
    };
    let result = (|| -> Result<(), String> {
        let wasm = std::fs::read(input).map_err(|e| format!("cannot read {input}: {e}"))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let snapshot = rt
            .block_on(llmos::preinit::preinit(&wasm))
            .map_err(|e| format!("{input}: {e:#}"))?;
        let tmp = format!("{output}.tmp");
        std::fs::write(&tmp, &snapshot).map_err(|e| format!("cannot write {tmp}: {e}"))?;
        std::fs::rename(&tmp, output).map_err(|e| format!("cannot write {output}: {e}"))?;
        eprintln!(
            "llmos-preinit: {input} ({} bytes) -> {output} ({} bytes)",
            wasm.len(),
            snapshot.len()
        );
        Ok(())
    })();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("llmos-preinit: error: {e}");
            ExitCode::FAILURE
        }
    }
}
