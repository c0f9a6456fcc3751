//! Embedding llmos in an agent: boot inside your own tokio runtime, run
//! model-written JavaScript and Python, read what they produced, and repair a
//! failing artifact with your own LLM provider.
//!
//! ```sh
//! make build && cargo run --release --example embed
//! ```
//!
//! It reads the same environment as the `llmos` binary (`LLMOS_COMPONENTS`,
//! `LLMOS_SYSTEM_VOLUME`, `LLMOS_DATA_DIR`, ...). `make test` runs it.

use std::process::ExitCode;

use llmos::supervisor::llm::{ChatRequest, ChatResponse, FixProvider, LlmError, Usage};
use llmos::{
    ArtifactOptions, ArtifactSource, BootOptions, FixOptions, LimitOverrides, Llmos, RunOptions,
};

/// Your agent's own model. This one "repairs" a division by zero by
/// guarding it: enough to show the loop without a network.
struct GuardDivisions;

#[async_trait::async_trait]
impl FixProvider for GuardDivisions {
    fn provider(&self) -> &str {
        "example"
    }
    fn model(&self) -> &str {
        "guard-divisions"
    }
    async fn complete(&self, req: &ChatRequest) -> Result<ChatResponse, LlmError> {
        // The prompt carries the failing code in a fenced block.
        let prompt = req
            .messages
            .last()
            .map(|m| m.content.as_str())
            .unwrap_or("");
        let code = prompt
            .split("```python\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .unwrap_or("");
        let fixed = code.replace(
            "return sum(values) / len(values)",
            "return sum(values) / len(values) if values else 0.0",
        );
        Ok(ChatResponse {
            text: format!("Guard the empty list.\n```python\n{fixed}```\n"),
            usage: Usage::default(),
            model: self.model().into(),
            raw: String::new(),
            http_attempts: 0,
            duration_ms: 0.0,
        })
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match embed().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("embed: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn embed() -> Result<(), Box<dyn std::error::Error>> {
    // 1. Boot inside this tokio runtime; languages load on first use.
    let llmos = Llmos::boot(
        &BootOptions {
            languages: Some(Vec::new()),
            ..Default::default()
        },
        &|_event| {},
    )
    .await?;
    println!("booted in {:.1} ms", llmos.boot_ms());

    // 2. Run JavaScript the model wrote. Inline source is untrusted: strict
    // limits, which your overrides may only tighten.
    let js = llmos.artifact(
        ArtifactSource::Inline {
            language: "javascript".into(),
            source:
                "kernel.viz.plot([1, 4, 9, 16], { title: 'Squares' }); [1, 2, 3].map(x => x * 2)"
                    .into(),
            name: None,
        },
        &ArtifactOptions::default(),
    )?;
    let opts = RunOptions {
        expect_stdout: None,
        test: None,
        limits: LimitOverrides::parse(Some("1000000000"), Some("64MiB"), Some("5s"), None)?,
        seed: Some(7),
        ..Default::default()
    };
    let outcome = llmos.run(&js, &opts).await?;
    println!("javascript: {} => {:?}", outcome.status, outcome.value);
    for output in &outcome.outputs {
        let mimes: Vec<_> = output.items.iter().map(|i| i.mime.as_str()).collect();
        println!(
            "  output {}: {} ({})",
            output.index,
            output.summary,
            mimes.join(", ")
        );
    }
    if !outcome.is_ok() || outcome.outputs.is_empty() {
        return Err(format!("the JavaScript run failed: {}", outcome.summary()).into());
    }

    // 3. Python, with a runaway loop: the fuel budget stops it.
    let py = llmos.artifact(
        ArtifactSource::Inline {
            language: "python".into(),
            source: "while True:\n    pass\n".into(),
            name: Some("spin.py".into()),
        },
        &ArtifactOptions::default(),
    )?;
    let stopped = llmos.run(&py, &opts).await?;
    println!("python: {} ({})", stopped.status, stopped.summary());
    if stopped.status != llmos::Status::OutOfFuel {
        return Err("the runaway loop was not stopped by fuel".into());
    }

    // 4. A failing artifact, repaired by your provider.
    let buggy = llmos.artifact(
        ArtifactSource::Inline {
            language: "python".into(),
            source: "def mean(values):\n    return sum(values) / len(values)\n\nprint(mean([]))\n"
                .into(),
            name: Some("mean.py".into()),
        },
        &ArtifactOptions::default(),
    )?;
    let provider = GuardDivisions;
    let fixed = llmos
        .fix(
            &buggy,
            &RunOptions::default(),
            &FixOptions::default(),
            Some(&provider),
            &|_event| {},
        )
        .await?;
    println!(
        "fix: {:?} after {} attempt(s); output {:?}",
        fixed.trace.result,
        fixed.trace.attempts.len(),
        fixed.outcome.stdout
    );
    if !fixed.outcome.is_ok() {
        return Err("the repair did not succeed".into());
    }
    Ok(())
}
