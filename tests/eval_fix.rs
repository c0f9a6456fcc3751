//! `make eval-fix`: how well the repair loop fixes the buggy corpus in
//! `tests/fixtures/buggy/`, offline or with a live model.
//!
//! Categories: crashes (`js/`, `python/`), wrong output (`wrong/LANG/`, each
//! with its `.expect` as the run's expected stdout and, when present, its
//! `.test.*` program) and limit failures (`limits/LANG/`). An artifact counts
//! as fixed after repair N when the first version that runs ok prints
//! exactly its `.expect`. Prints the cumulative fix rate after repairs 1, 2
//! and 3 per category and language, the tokens used and the time per fix.
//!
//! Where the answers come from:
//! - a live provider (`LLMOS_LLM_PROVIDER`, ...): every answer is also
//!   recorded into the cassette (`LLMOS_EVAL_CASSETTE`, default
//!   `tests/fixtures/buggy/cassette.jsonl`);
//! - no provider: the cassette is replayed, offline and deterministically;
//!   a request it does not hold counts as not fixed;
//! - `LLMOS_EVAL_REFERENCE=1`: a scripted "model" that answers every repair
//!   with the corpus's reference fix. It exercises the loop (prompts,
//!   extraction, expectations, verification) end to end, not a model's
//!   skill. With `LLMOS_EVAL_CASSETTE` too, those answers are recorded.
//!   `make test` records them and then replays the cassette offline, with
//!   `LLMOS_EVAL_STRICT=1` (exit 1 unless every artifact is fixed).
//!
//! `LLMOS_EVAL_FILTER=substring` runs only the matching artifacts.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use llmos::engine::TestProgram;
use llmos::supervisor::cassette::Cassette;
use llmos::supervisor::llm::{
    self, ChatRequest, ChatResponse, FixProvider, LlmConfig, LlmError, LlmOverrides, Usage,
};
use llmos::supervisor::trace::TraceResult;
use llmos::supervisor::{Supervisor, SupervisorConfig};
use llmos::{Limits, RunRequest, Runtime};
use llmos_tests::{block_on, repo, test_config};

const MAX_ATTEMPTS: u32 = 3;

/// One artifact of the corpus.
struct Case {
    /// `crash`, `wrong` or `limits`.
    category: &'static str,
    language: &'static str,
    /// Relative to the corpus: `wrong/js/03-x.js`.
    rel: String,
    path: PathBuf,
}

fn corpus(root: &Path) -> Vec<Case> {
    let langs = [("js", "javascript"), ("python", "python"), ("lua", "lua")];
    let mut out = Vec::new();
    for (category, prefix) in [("crash", ""), ("wrong", "wrong/"), ("limits", "limits/")] {
        for (dir, language) in langs {
            let d = root.join(format!("{prefix}{dir}"));
            let Ok(rd) = std::fs::read_dir(&d) else {
                continue;
            };
            let mut files: Vec<PathBuf> = rd
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
                    matches!(
                        p.extension().and_then(|e| e.to_str()),
                        Some("js" | "py" | "lua")
                    ) && !name.is_some_and(|n| n.contains(".test."))
                })
                .collect();
            files.sort();
            for path in files {
                let rel = path
                    .strip_prefix(root)
                    .unwrap_or(&path)
                    .display()
                    .to_string();
                out.push(Case {
                    category,
                    language,
                    rel,
                    path,
                });
            }
        }
    }
    out
}

/// The scripted model of `LLMOS_EVAL_REFERENCE=1`: answers a repair of
/// `REL` with `reference/REL`, found by the artifact's file name in the
/// prompt (the corpus names files by their path relative to it).
struct Reference {
    root: PathBuf,
}

#[async_trait::async_trait]
impl FixProvider for Reference {
    fn provider(&self) -> &str {
        "reference"
    }
    fn model(&self) -> &str {
        "reference-fixes"
    }
    async fn complete(&self, req: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let prompt = req
            .messages
            .last()
            .map(|m| m.content.as_str())
            .unwrap_or("");
        let rel = prompt
            .split('`')
            .nth(1)
            .ok_or_else(|| LlmError::Config("no artifact name in the prompt".into()))?;
        let fix = self.root.join("reference").join(rel);
        let code = std::fs::read_to_string(&fix)
            .map_err(|e| LlmError::Config(format!("{}: {e}", fix.display())))?;
        let fence = match fix.extension().and_then(|e| e.to_str()) {
            Some("py") => "python",
            Some("lua") => "lua",
            _ => "js",
        };
        let text = format!("```{fence}\n{code}```\n");
        Ok(ChatResponse {
            raw: text.clone(),
            text,
            usage: Usage {
                input_tokens: (prompt.len() / 4) as u64,
                output_tokens: (code.len() / 4) as u64,
            },
            model: "reference-fixes".into(),
            http_attempts: 0,
            duration_ms: 0.0,
        })
    }
}

fn provider(root: &Path) -> Result<Option<Box<dyn FixProvider>>, String> {
    let cassette = std::env::var_os("LLMOS_EVAL_CASSETTE").map(PathBuf::from);
    let live: Option<Box<dyn FixProvider>> = if std::env::var_os("LLMOS_EVAL_REFERENCE").is_some() {
        let reference = Box::new(Reference {
            root: root.to_path_buf(),
        });
        match &cassette {
            // Record the reference answers into a cassette.
            Some(_) => Some(reference),
            None => return Ok(Some(reference)),
        }
    } else {
        match LlmConfig::from_env(&LlmOverrides::default()).map_err(|e| e.to_string())? {
            Some(c) => Some(llm::provider(c).map_err(|e| e.to_string())?),
            None => None,
        }
    };
    let cassette = cassette.unwrap_or_else(|| root.join("cassette.jsonl"));
    if live.is_none() && !cassette.exists() {
        return Ok(None);
    }
    Ok(Some(Box::new(
        Cassette::open(&cassette, live).map_err(|e| e.to_string())?,
    )))
}

fn main() -> ExitCode {
    let root = repo().join("tests/fixtures/buggy");
    let provider = match provider(&root) {
        Ok(Some(p)) => p,
        Ok(None) => {
            println!(
                "eval-fix: no LLM provider is configured and there is no cassette, so no fix rate is claimed.\n"
            );
            println!("{}", llm::HOW_TO_CONFIGURE);
            return ExitCode::SUCCESS;
        }
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
    // Limit failures are given 1e9 fuel (a tenth of the default): they
    // still fail, ten times faster.
    let fuel = std::env::var("LLMOS_EVAL_FUEL")
        .ok()
        .and_then(|f| f.replace('_', "").parse().ok())
        .unwrap_or(1_000_000_000u64);
    println!(
        "eval-fix: {} via {}, up to {MAX_ATTEMPTS} repairs each, {fuel} fuel per run",
        provider.model(),
        provider.provider()
    );
    let start = Instant::now();
    let cases: Vec<Case> = corpus(&root)
        .into_iter()
        .filter(|c| c.rel.contains(&filter))
        .collect();
    let mut all_fixed = true;
    let mut groups: Vec<(&str, &str)> = cases.iter().map(|c| (c.category, c.language)).collect();
    groups.dedup();
    for (category, language) in groups {
        let mut fixed_at = [0usize; MAX_ATTEMPTS as usize + 1];
        let (mut tokens_in, mut tokens_out, mut n) = (0u64, 0u64, 0usize);
        let group_start = Instant::now();
        for case in cases
            .iter()
            .filter(|c| c.category == category && c.language == language)
        {
            let source = std::fs::read_to_string(&case.path).expect("read artifact");
            let expect =
                std::fs::read_to_string(case.path.with_extension("expect")).unwrap_or_default();
            let mut req = RunRequest::new(language, source);
            req.filename = case.rel.clone();
            req.artifact_id = format!("eval-{}", case.rel);
            req.limits = Limits {
                fuel: Some(fuel),
                ..Limits::default()
            };
            if category == "wrong" {
                req.expect_stdout = Some(expect.clone());
                let ext = case.path.extension().and_then(|e| e.to_str()).unwrap_or("");
                let test = case.path.with_extension(format!("test.{ext}"));
                if let Ok(t) = std::fs::read_to_string(&test) {
                    req.test = Some(TestProgram {
                        source: t,
                        filename: test
                            .file_name()
                            .map(|f| f.to_string_lossy().into_owned())
                            .unwrap_or_default(),
                    });
                }
            }
            n += 1;
            let case_start = Instant::now();
            let mut case_tokens = (0, 0);
            let verdict = match block_on(sup.run(&req, &|_| {})) {
                Ok(s) => {
                    tokens_in += s.trace.tokens.input_tokens;
                    tokens_out += s.trace.tokens.output_tokens;
                    case_tokens = (s.trace.tokens.input_tokens, s.trace.tokens.output_tokens);
                    match (&s.trace.result, s.outcome.stdout == expect) {
                        (TraceResult::Fixed { attempts }, true) => {
                            fixed_at[*attempts as usize] += 1;
                            format!("fixed after {attempts}")
                        }
                        (TraceResult::Fixed { .. }, false) => {
                            all_fixed = false;
                            "ran ok, wrong output".into()
                        }
                        (TraceResult::Ok, _) => {
                            all_fixed = false;
                            "ran ok as given (not a bug?)".into()
                        }
                        (TraceResult::Failed { reason }, _) => {
                            all_fixed = false;
                            format!("not fixed: {reason}")
                        }
                    }
                }
                Err(e) => {
                    all_fixed = false;
                    format!("host error: {e}")
                }
            };
            println!(
                "  {category:<7} {language:<10} {:<44} {verdict} ({} in / {} out tokens, {:.2} s)",
                case.rel,
                case_tokens.0,
                case_tokens.1,
                case_start.elapsed().as_secs_f64()
            );
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
        let fixes = fixed_at.iter().sum::<usize>().max(1);
        println!(
            "{category}/{language}: {n} artifacts, fix rate {}; tokens {tokens_in} in / {tokens_out} out; {:.2} s per fix",
            rates.join(", "),
            group_start.elapsed().as_secs_f64() / fixes as f64
        );
    }
    println!("total time {:.1} s", start.elapsed().as_secs_f64());
    // `make test` runs the reference answers (and their replay from a
    // cassette) as a check of the loop: every artifact must be fixed.
    if std::env::var_os("LLMOS_EVAL_STRICT").is_some() && !all_fixed {
        eprintln!("eval-fix: not every artifact was fixed");
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
