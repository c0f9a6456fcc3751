//! `llmos conformance LANG` for every language of the system volume: each
//! guest keeps the whole contract (guests/README.md).

use llmos_tests::{measure_llmos, repo, scratch_data_dir};

fn languages() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(repo().join("volumes/system/languages"))
        .expect("languages dir")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let p = e.path();
            let stem = p.file_stem()?.to_string_lossy().into_owned();
            (p.extension()? == "toml").then_some(stem)
        })
        .collect();
    v.sort();
    v
}

#[test]
fn every_language_passes_the_conformance_suite() {
    for lang in languages() {
        let data = scratch_data_dir(&format!("conformance-{lang}"));
        let m = measure_llmos(&["conformance", &lang, "--json"], &data);
        let report = m.json();
        let failed: Vec<String> = report["checks"]
            .as_array()
            .expect("checks")
            .iter()
            .filter(|c| c["result"] == "fail")
            .map(|c| format!("{}: {}", c["rule"], c["detail"]))
            .collect();
        assert!(
            failed.is_empty(),
            "{lang} broke the contract:\n{}",
            failed.join("\n")
        );
        assert_eq!(m.code, Some(0), "{lang}");
        assert!(
            report["passed"].as_u64().is_some_and(|n| n >= 20),
            "{report}"
        );
    }
}

#[test]
fn a_rule_without_a_program_fails_and_names_the_rule() {
    // A copy of the system volume whose JavaScript cases lack one rule.
    let data = scratch_data_dir("conformance-missing");
    let volume = data.join("volume");
    copy_dir(&repo().join("volumes/system"), &volume);
    let cases = volume.join("conformance/javascript/cases.toml");
    let text = std::fs::read_to_string(&cases).expect("cases");
    let cut = text.find("[limit-stack]").expect("limit-stack");
    let end = text[cut..].find("\n\n").map_or(text.len(), |e| cut + e);
    std::fs::write(&cases, format!("{}{}", &text[..cut], &text[end..])).expect("write");
    let manifest = std::process::Command::new("sh")
        .arg("-c")
        .arg("find . -type f ! -name MANIFEST.sha256 ! -path '*/__pycache__/*' ! -name '*.pyc' | sed 's|^\\./||' | LC_ALL=C sort | xargs -d '\\n' sha256sum > MANIFEST.sha256")
        .current_dir(&volume)
        .status()
        .expect("sha256sum");
    assert!(manifest.success());
    let mut cmd = llmos_tests::llmos_command(&["conformance", "javascript", "--json"], &data);
    cmd.env("LLMOS_SYSTEM_VOLUME", &volume);
    let out = cmd.output().expect("run");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let stack = v["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["rule"] == "limit-stack")
        .expect("rule")
        .clone();
    assert_eq!(stack["result"], "fail");
    assert!(
        stack["detail"]
            .as_str()
            .is_some_and(|d| d.contains("no program")),
        "{stack}"
    );
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir").flatten() {
        let p = e.path();
        let dest = to.join(e.file_name());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).expect("copy");
        }
    }
}
