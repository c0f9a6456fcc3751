//! The buggy corpus behind `make eval-fix` is sound: every buggy artifact
//! fails, every reference fix prints exactly its `.expect`, and the repair
//! loop turns a buggy artifact into a passing one when the LLM (here the
//! fake server) answers with the reference fix.

use std::path::PathBuf;

use llmos::supervisor::llm::{self, LlmConfig, ProviderKind};
use llmos::supervisor::trace::TraceResult;
use llmos::supervisor::{Supervisor, SupervisorConfig};
use llmos::{Limits, RunRequest, Status};
use llmos_tests::fake_llm::{FakeLlm, Reply};
use llmos_tests::{block_on, repo, run_with, runtime};

fn corpus(dir: &str, ext: &str) -> Vec<PathBuf> {
    let root = repo().join("tests/fixtures/buggy").join(dir);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    v
}

fn reference(dir: &str, file: &std::path::Path) -> PathBuf {
    repo()
        .join("tests/fixtures/buggy/reference")
        .join(dir)
        .join(file.file_name().expect("name"))
}

#[test]
fn every_buggy_artifact_fails_and_every_reference_fix_passes() {
    for (lang, dir, ext) in [("javascript", "js", "js"), ("python", "python", "py")] {
        let files = corpus(dir, ext);
        assert!(files.len() >= 30, "{lang}: only {} artifacts", files.len());
        for f in files {
            let name = f
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let limits = Limits {
                fuel: Some(2_000_000_000),
                ..Limits::default()
            };
            let buggy = std::fs::read_to_string(&f).expect("read");
            let o = run_with(lang, &buggy, |r| {
                r.filename = name.clone();
                r.artifact_id = format!("corpus-{name}");
                r.limits = limits.clone();
            });
            assert_ne!(o.status, Status::Ok, "{name} should fail");
            let fixed = std::fs::read_to_string(reference(dir, &f)).expect("reference fix");
            let expect = std::fs::read_to_string(f.with_extension("expect")).expect("expect");
            let o = run_with(lang, &fixed, |r| {
                r.filename = name.clone();
                r.artifact_id = format!("corpus-{name}");
                r.limits = limits.clone();
            });
            assert_eq!(
                o.status,
                Status::Ok,
                "reference fix of {name}: {:?}",
                o.error
            );
            assert_eq!(o.stdout, expect, "reference fix of {name}");
        }
    }
}

#[test]
fn the_loop_fixes_corpus_artifacts_given_a_correct_answer() {
    for (lang, dir, ext, tag) in [
        ("javascript", "js", "js", "js"),
        ("python", "python", "py", "python"),
    ] {
        for f in corpus(dir, ext).into_iter().take(3) {
            let name = f
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let fixed = std::fs::read_to_string(reference(dir, &f)).expect("reference");
            let fake = FakeLlm::start(vec![Reply::text(format!("```{tag}\n{fixed}```"))]);
            let provider = llm::provider(LlmConfig::new(ProviderKind::OpenAi, &fake.url(), "m"))
                .expect("provider");
            let sup = Supervisor::new(
                runtime(),
                Some(provider.as_ref()),
                SupervisorConfig::default(),
            )
            .expect("supervisor");
            let mut req = RunRequest::new(lang, std::fs::read_to_string(&f).expect("read"));
            req.filename = name.clone();
            req.artifact_id = format!("corpus-loop-{name}");
            let s = block_on(sup.run(&req, &|_| {})).expect("run");
            assert_eq!(s.trace.result, TraceResult::Fixed { attempts: 1 }, "{name}");
            let expect = std::fs::read_to_string(f.with_extension("expect")).expect("expect");
            assert_eq!(s.outcome.stdout, expect, "{name}");
        }
    }
}
