//! The dashboard in a real headless Chromium (Debian's, driven by
//! playwright-core from npm: `tests/browser/dashboard.mjs`), against a real
//! `llmos serve` whose LLM is the loopback fake: the boot screen, a run, a
//! plot, a 3D scene drawn by three.js, a refinement with its diff, the
//! trace, a session notebook and the error history. Screenshots go to
//! `target/dashboard-screenshots`; any console error fails the test.

use llmos_tests::LlmosServer;
use llmos_tests::fake_llm::{FakeLlm, Reply};

#[test]
fn the_dashboard_drives_the_kernel_in_a_real_browser() {
    let fake = FakeLlm::start(
        (0..4)
            .map(|_| Reply::text("```python\nprint('repaired')\n```"))
            .collect(),
    );
    let env = [
        ("LLMOS_LLM_PROVIDER", "openai".to_string()),
        ("LLMOS_LLM_URL", fake.url()),
        ("LLMOS_LLM_MODEL", "test-model".to_string()),
        ("OPENAI_API_KEY", "test-key".to_string()),
    ];
    let s = LlmosServer::start("dashboard", &[], &env);
    let out = llmos_tests::repo().join("target/dashboard-screenshots");
    let output = std::process::Command::new("node")
        .arg(llmos_tests::repo().join("tests/browser/dashboard.mjs"))
        .args(["--url", &s.url, "--out", &out.to_string_lossy()])
        .output()
        .expect("node (make test installs the dashboard's npm packages and chromium)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("dashboard: all steps passed"),
        "the browser test failed ({:?}):\n{stdout}\n{stderr}",
        output.status
    );
    for shot in [
        "boot.png",
        "run.png",
        "plot.png",
        "scene.png",
        "fix.png",
        "notebook.png",
    ] {
        assert!(out.join(shot).exists(), "{shot} missing");
    }
}
