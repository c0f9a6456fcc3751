//! `make eval-fix`: how well the repair loop fixes the buggy corpus in
//! `tests/fixtures/buggy/` with the configured LLM provider.
//!
//! Each artifact runs under the supervisor (3 repairs at most); it counts as
//! fixed after repair N when the first version that runs ok prints exactly
//! the artifact's `.expect` output. Prints the cumulative fix rate after
//! repairs 1, 2 and 3 per language, the tokens used and the time taken.
//! Without a provider it says so and exits 0 without claiming a rate.
//! `LLMOS_EVAL_FILTER=substring` runs only the matching artifacts.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use llmos::supervisor::llm::{self, LlmConfig, LlmOverrides};
use llmos::supervisor::trace::TraceResult;
use llmos::supervisor::{Supervisor, SupervisorConfig};
use llmos::{RunRequest, Runtime};
use llmos_tests::{block_on, repo, test_config};

const MAX_ATTEMPTS: u32 = 3;

fn main() -> ExitCode {
    let config = match LlmConfig::from_env(&LlmOverrides::default()) {
        Ok(Some(c)) => c,
        Ok(None) => {
            println!("eval-fix: no LLM provider is configured, so no fix rate is claimed.\n");
            println!("{}", llm::HOW_TO_CONFIGURE);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("eval-fix: {e}");
            return ExitCode::from(2);
        }
    };
    let provider = match llm::provider(config) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("eval-fix: {e}");
            return ExitCode::from(2);
        }
    };
    let data = tempfile::tempdir().expect("temp dir");
    let mut cfg = test_config();
    cfg.data_dir = data.path().to_path_buf();
    let runtime = Runtime::new(cfg).expect("runtime");
    let sup = Supervisor::new(
        &runtime,
        Some(provider.as_ref()),
        SupervisorConfig {
            max_attempts: MAX_ATTEMPTS,
            ..SupervisorConfig::default()
        },
    )
    .expect("supervisor");
    let filter = std::env::var("LLMOS_EVAL_FILTER").unwrap_or_default();
    println!(
        "eval-fix: {} via {}, up to {MAX_ATTEMPTS} repairs each",
        provider.model(),
        provider.provider()
    );
    let start = Instant::now();
    for (lang, dir, ext) in [("javascript", "js", "js"), ("python", "python", "py")] {
        let root = repo().join("tests/fixtures/buggy").join(dir);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        files.retain(|p| {
            p.extension().is_some_and(|e| e == ext) && p.display().to_string().contains(&filter)
        });
        files.sort();
        let mut fixed_at = [0usize; MAX_ATTEMPTS as usize + 1];
        let (mut tokens_in, mut tokens_out, mut n) = (0u64, 0u64, 0usize);
        let lang_start = Instant::now();
        for file in &files {
            let source = std::fs::read_to_string(file).expect("read artifact");
            let expect = std::fs::read_to_string(file.with_extension("expect")).unwrap_or_default();
            let name = file
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut req = RunRequest::new(lang, source);
            req.filename = name.clone();
            req.artifact_id = format!("eval-{name}");
            n += 1;
            let verdict = match block_on(sup.run(&req, &|_| {})) {
                Ok(s) => {
                    tokens_in += s.trace.tokens.input_tokens;
                    tokens_out += s.trace.tokens.output_tokens;
                    match (&s.trace.result, s.outcome.stdout == expect) {
                        (TraceResult::Fixed { attempts }, true) => {
                            fixed_at[*attempts as usize] += 1;
                            format!("fixed after {attempts}")
                        }
                        (TraceResult::Fixed { .. }, false) => "ran ok, wrong output".into(),
                        (TraceResult::Ok, _) => "ran ok as given (not a bug?)".into(),
                        (TraceResult::Failed { reason }, _) => format!("not fixed: {reason}"),
                    }
                }
                Err(e) => format!("host error: {e}"),
            };
            println!("  {lang:<10} {name:<36} {verdict}");
        }
        if n == 0 {
            continue;
        }
        let mut cumulative = 0;
        let rates: Vec<String> = (1..=MAX_ATTEMPTS as usize)
            .map(|k| {
                cumulative += fixed_at[k];
                format!("{:.0}% after {k}", 100.0 * cumulative as f64 / n as f64)
            })
            .collect();
        println!(
            "{lang}: {n} artifacts, fix rate {}; tokens {tokens_in} in / {tokens_out} out; {:.1} s",
            rates.join(", "),
            lang_start.elapsed().as_secs_f64()
        );
    }
    println!("total time {:.1} s", start.elapsed().as_secs_f64());
    ExitCode::SUCCESS
}
