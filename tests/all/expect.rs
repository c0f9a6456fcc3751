//! Expectations: `--expect-stdout` and `--test` on `llmos run`, and
//! `expect_stdout` / `test` / `test_path` in batch manifests.

use llmos_tests::{measure_llmos, scratch_data_dir};

#[test]
fn run_reports_wrong_output_with_a_diff_and_a_failing_test_with_its_assertion() {
    let d = scratch_data_dir("expect-run");
    std::fs::create_dir_all(&d).expect("dir");
    let w = |name: &str, text: &str| {
        let p = d.join(name);
        std::fs::write(&p, text).expect("write");
        p.display().to_string()
    };
    let art = w(
        "mean.py",
        "def mean(v):\n    return sum(v) / (len(v) + 1)\n\nprint(mean([1, 2, 3]))\n",
    );
    let expect = w("mean.expect", "2.0\n");
    let test = w(
        "test_mean.py",
        "import math\nassert math.isclose(mean([2, 4]), 3), f'mean([2, 4]) = {mean([2, 4])}'\n",
    );
    let good = w("good.expect", "1.5\n");

    let m = measure_llmos(&["run", &art, "--expect-stdout", &expect, "--json"], &d);
    assert_eq!(m.code, Some(1));
    let v = m.json();
    assert_eq!(v["status"], "wrong_output");
    assert_eq!(v["stdout"], "1.5\n");
    let diff = v["diff"].as_str().expect("diff");
    assert!(diff.contains("-2.0") && diff.contains("+1.5"), "{diff}");

    let m = measure_llmos(&["run", &art, "--test", &test, "--json"], &d);
    assert_eq!(m.code, Some(1));
    let v = m.json();
    assert_eq!(v["status"], "test_failed");
    assert_eq!(v["test"]["error"]["class"], "AssertionError");
    assert_eq!(v["test"]["error"]["message"], "mean([2, 4]) = 2.0");
    assert_eq!(v["test"]["error"]["line"], 2);
    assert_eq!(v["test"]["error"]["stack"][0]["file"], "test_mean.py");

    // Both met: ok, and the human output says nothing more.
    let fixed = w(
        "fixed.py",
        "def mean(v):\n    return sum(v) / len(v)\n\nprint(mean([1, 2, 3]))\n",
    );
    let m = measure_llmos(
        &[
            "run",
            &fixed,
            "--expect-stdout",
            &expect,
            "--test",
            &test,
            "--json",
        ],
        &d,
    );
    assert_eq!(m.code, Some(0), "{}", String::from_utf8_lossy(&m.stdout));
    assert_eq!(m.json()["test"]["status"], "ok");
    // A failing run is reported as itself, not as a wrong output.
    let crash = w("crash.py", "print(1 / 0)\n");
    let v = measure_llmos(&["run", &crash, "--expect-stdout", &good, "--json"], &d).json();
    assert_eq!(v["status"], "error");

    // Lua and JavaScript tests see the artifact's globals too.
    let lua = w(
        "sum.lua",
        "function total(t) local s = 0 for i = 1, #t - 1 do s = s + t[i] end return s end\nprint(total({1, 2, 3}))\n",
    );
    let lua_test = w(
        "sum_test.lua",
        "assert(total({4, 5}) == 9, 'total({4, 5}) = ' .. total({4, 5}))\n",
    );
    let v = measure_llmos(&["run", &lua, "--test", &lua_test, "--json"], &d).json();
    assert_eq!(v["status"], "test_failed", "{v}");
    assert!(
        v["test"]["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("total({4, 5}) = 4")),
        "{v}"
    );
}

#[test]
fn batch_jobs_carry_expectations_and_tests() {
    let d = scratch_data_dir("expect-batch");
    std::fs::create_dir_all(&d).expect("dir");
    std::fs::write(
        d.join("t.js"),
        "if (double(4) !== 8) throw new Error('double(4) = ' + double(4));\n",
    )
    .expect("write");
    let manifest = d.join("jobs.jsonl");
    std::fs::write(
        &manifest,
        [
            r#"{"id": "ok", "language": "js", "source": "function double(x) { return x * 2 }\nconsole.log(double(2))", "expect_stdout": "4\n", "test_path": "t.js"}"#,
            r#"{"id": "wrong", "language": "js", "source": "console.log(5)", "expect_stdout": "4\n"}"#,
            r#"{"id": "test", "language": "js", "source": "function double(x) { return x + 2 }", "test": "if (double(4) !== 8) throw new Error('double(4) = ' + double(4));"}"#,
            r#"{"id": "missing", "language": "js", "source": "1", "test_path": "nope.js"}"#,
        ]
        .join("\n"),
    )
    .expect("manifest");
    let out = d.join("results.jsonl");
    let (m, o) = (manifest.display().to_string(), out.display().to_string());
    let r = measure_llmos(&["batch", &m, "--out", &o, "--jobs", "1"], &d);
    assert_eq!(r.code, Some(1), "{}", String::from_utf8_lossy(&r.stderr));
    let text = std::fs::read_to_string(&out).expect("results");
    let by: std::collections::HashMap<String, serde_json::Value> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("line");
            (v["id"].as_str().expect("id").to_string(), v)
        })
        .collect();
    assert_eq!(by["ok"]["status"], "ok", "{}", by["ok"]);
    assert_eq!(by["wrong"]["status"], "wrong_output");
    assert!(
        by["wrong"]["diff"]
            .as_str()
            .is_some_and(|d| d.contains("+5"))
    );
    assert_eq!(by["test"]["status"], "test_failed");
    assert_eq!(by["test"]["test"]["error"]["message"], "double(4) = 6");
    assert_eq!(by["missing"]["status"], "invalid");
}
